"""The Python API (`import nettrain`): load, Model.predict / evaluate / fit / save / export,
the same bits as the CLI, nothing written without a path, a light `import nettrain`, and the
example of docs/python-api.md run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nettrain
from nettrain.core.errors import UserError

REPO = Path(nettrain.__file__).resolve().parents[1]
XOR = REPO / "configs" / "xor-mlp.yaml"


def test_import_nettrain_loads_neither_numpy_nor_numba():
    code = (
        "import sys; import nettrain; "
        "print(sorted(m for m in ('numpy', 'numba', 'nettrain.api') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["[]"], out  # so it takes milliseconds, whatever the machine
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import nettrain, sys; nettrain.Model; print('nettrain.api' in sys.modules)",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.strip() == "True"  # the API loads on first use (numpy with a net)


def test_the_api_and_the_cli_train_the_same_bits(tmp_path, cli_call):
    cli_call("fit", XOR, "--set", "seed=5", "--set", "train.epochs=3", "--out", tmp_path / "cli",
             "--quiet")  # fmt: skip
    model = nettrain.Model.from_config(XOR, {"seed": 5, "train.epochs": 3})
    rows = model.fit()
    cli_arrays = dict(np.load(tmp_path / "cli" / "last.npz"))
    for name, a in model.nets[0].arrays().items():
        assert np.array_equal(a, cli_arrays[name]), name
    cli_rows = (tmp_path / "cli" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and cli_rows[0].startswith("epoch,train_loss")
    assert float(cli_rows[-1].split(",")[1]) == rows[-1]["train_loss"]
    # and the API's run folder is the CLI's
    nettrain.Model.from_config(XOR, ["seed=5", "train.epochs=3"]).fit(out=tmp_path / "api")
    api_arrays = dict(np.load(tmp_path / "api" / "last.npz"))
    assert all(np.array_equal(api_arrays[k], cli_arrays[k]) for k in cli_arrays if k != "__meta__")


def test_nothing_is_written_without_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = nettrain.Model.from_config(XOR, {"train.epochs": 1})
    model.fit()
    model.predict(np.zeros((2, 2), np.float32))
    model.evaluate()
    assert list(tmp_path.iterdir()) == []
    model.save("m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_fit_on_arrays_with_a_callback_that_stops(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 6, 6)).astype(np.float32)
    y = rng.standard_normal((64, 2)).astype(np.float32)
    config = {
        "model": {
            "layers": [
                {"type": "conv2d", "filters": 2, "kernel": 3},
                {"type": "dense", "units": 2},
            ],
            "loss": "squared_error",
        },
        "train": {"epochs": 5, "batch_size": 16},
    }
    seen = []
    model = nettrain.Model.from_config(config)
    rows = model.fit(
        x, y, test=(x[:8], y[:8]), callback=lambda row: seen.append(row) or len(seen) < 2
    )
    assert [r["epoch"] for r in rows] == [1, 2] and [r["epoch"] for r in seen] == [1, 2]
    assert {"train_rmse", "test_loss", "test_r2"} <= set(rows[0])
    assert model.input_shape == (1, 6, 6) and model.n_outputs == 2
    assert model.predict(x[:3]).shape == (3, 2)
    result = model.evaluate(x, y)
    assert {"loss", "rmse", "mae", "r2"} <= set(result) and result["accuracy"] is None
    assert model.predict(x.reshape(64, 36)).shape == (64, 2)  # flat samples of the same size
    again = model.fit(x, y)  # goes on from the weights it has
    assert again[0]["train_loss"] < rows[0]["train_loss"]


def test_predict_and_evaluate_are_the_cli_s(tmp_path, cli_call):
    ckpts = []
    for seed in (1, 2):
        model = nettrain.Model.from_config(XOR, {"seed": seed, "train.epochs": 2})
        model.fit()
        ckpts.append(tmp_path / f"n{seed}.npz")
        model.save(ckpts[-1])
    x = np.random.default_rng(3).standard_normal((5, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    for chosen in ([ckpts[0]], ckpts):
        out = tmp_path / "p.npy"
        cli_call("predict", *chosen, tmp_path / "x.npy", "--format", "npy", "--output", out)
        model = nettrain.load(chosen if len(chosen) > 1 else chosen[0])
        assert np.array_equal(model.predict(x), np.load(out))
        assert np.array_equal(model.predict(tmp_path / "x.npy"), np.load(out))
        output = cli_call("evaluate", *chosen, "--format", "json").output
        assert json.loads(output) == json.loads(json.dumps(model.evaluate()))
    single = [nettrain.load(c).predict(x) for c in ckpts]
    assert np.allclose(nettrain.load(ckpts).predict(x), (single[0] + single[1]) / 2, atol=1e-7)


def test_a_loaded_model_saves_the_checkpoint_it_read(tmp_path, cli_call):
    model = nettrain.Model.from_config(XOR, {"train.epochs": 1})
    model.fit()
    model.save(tmp_path / "a.npz")
    nettrain.load(tmp_path / "a.npz").save(tmp_path / "b.npz")
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert set(a.files) == set(b.files)
    assert all(np.array_equal(a[k], b[k]) for k in a.files if k != "__meta__")
    cli_call("fit", "--resume", tmp_path / "b.npz", "--set", "train.epochs=2", "--quiet",
             "--out", tmp_path / "r")  # fmt: skip


def test_api_errors_say_what_to_do(tmp_path):
    model = nettrain.Model.from_config(XOR)
    with pytest.raises(UserError, match="no trained weights yet"):
        model.predict(np.zeros((1, 2)))
    with pytest.raises(UserError, match="x given without y"):
        model.fit(np.zeros((4, 2)))
    with pytest.raises(UserError, match="not found"):
        nettrain.load(tmp_path / "none.npz")
    with pytest.raises(UserError, match="unknown key"):
        nettrain.Model.from_config(XOR, {"train.epochz": 1})


def readme_api_example() -> str:
    text = (REPO / "docs" / "python-api.md").read_text()
    section = text[text.index("# Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(readme_api_example(), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("epoch 1 ")
    accuracy = float(next(line for line in printed if line.startswith("test accuracy")).split()[-1])
    assert accuracy > 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor.npz", "xor.onnx"]


def test_predict_on_a_handful_of_inputs_does_no_setup():
    """No per-call setup beyond the forward pass (a few inputs then take well under a
    millisecond): once a first call has run, predict reads no config or checkpoint, builds no
    net and compiles nothing. Counted by the functions it calls, not timed, so that a busy or
    slow machine cannot fail it."""
    model = nettrain.Model.from_config(XOR, {"train.epochs": 1})
    model.fit()
    x = np.zeros((3, 2), np.float32)
    model.predict(x)
    setup = ("nettrain/config/", "nettrain/checkpoint.py", "nettrain/assemble.py",
             "nettrain/net/network.py:build_network", "numba/core/compiler.py")  # fmt: skip
    called = set()

    def record(frame, event, arg):
        if event == "call":
            code = frame.f_code
            called.add(f"{code.co_filename.replace(os.sep, '/')}:{code.co_name}")

    sys.setprofile(record)
    try:
        model.predict(x)
    finally:
        sys.setprofile(None)
    assert any("nettrain/inference/" in c for c in called)  # the profile saw the call
    assert not [c for c in called if any(s in c for s in setup)]


def test_export_without_the_onnx_package_says_how_to_install_it(tmp_path, monkeypatch):
    model = nettrain.Model.from_config(XOR, {"train.epochs": 1})
    model.fit()
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(UserError, match="needs the onnx package") as caught:
        model.export(tmp_path / "x.onnx")
    assert caught.value.hint == "pip install 'nettrain[onnx]'"
    assert list(tmp_path.iterdir()) == []
