"""The `nettrain` command line end to end through click's CliRunner (the cli_call fixture), on a
tiny data set."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
import yaml
from helpers import blobs

import nettrain
from nettrain.cli.commands import cli
from nettrain.layers.dense import Dense

REPO = Path(nettrain.__file__).resolve().parents[1]
COMMANDS = ["fit", "gradcheck", "predict", "evaluate", "summary"]
METRICS_HEADER = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr,seconds"

CONFIG = """\
seed: 0
data:
  train: train.npz
  test: test.npz
model:
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 3
  batch_size: 16
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder with train.npz (60), test.npz (30), x.npz (the test inputs only), c.yaml."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((3, 4)) * 3
    x, y = blobs(rng, centers, 60)
    np.savez(folder / "train.npz", x=x, y=y)
    x, y = blobs(rng, centers, 30)
    np.savez(folder / "test.npz", x=x, y=y)
    np.savez(folder / "x.npz", x=x)
    (folder / "c.yaml").write_text(CONFIG)
    return folder


def fit(cli_call, data, out, *extra, code=0):
    return cli_call("fit", data / "c.yaml", "--out", out, *extra, code=code)


def read_metrics(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def arrays_of(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def assert_same_arrays(a_path, b_path):
    a, b = arrays_of(a_path), arrays_of(b_path)
    a.pop("__meta__")
    b.pop("__meta__")
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert np.array_equal(a[name], b[name]), name


def assert_user_error(result, *needles):
    """Exit 2, one 'error: ...' line (plus an optional indented hint) on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip("\n").splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert len(lines) <= 2, result.stderr
    if len(lines) == 2:
        assert lines[1].startswith("  "), result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in {result.stderr!r}"
    return lines[0]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory, cli_call):
    """A finished 3-epoch run folder (shared, read only)."""
    out = tmp_path_factory.mktemp("runs") / "trained"
    result = fit(cli_call, data, out)
    return out, result


# -- help and version -----------------------------------------------------------------------


def test_version(cli_call):
    result = cli_call("--version")
    assert result.stdout.strip() == f"nettrain, version {nettrain.__version__}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_documents_every_option(cli_call, command):
    args = [command, "--help"] if command else ["--help"]
    result = cli_call(*args)
    assert result.stdout.startswith("Usage: ")
    cmd = cli if command is None else cli.commands[command]
    assert cmd.help, f"{command} has no help text"
    assert cmd.help.split("\n")[0][:30] in " ".join(result.stdout.split())
    text = " ".join(result.stdout.split())
    options = [p for p in cmd.get_params(click.Context(cmd)) if isinstance(p, click.Option)]
    assert options
    for option in options:
        assert option.help, f"{option.opts} has no help"
        assert option.opts[-1] in text
        assert " ".join(option.help.split())[:25] in text, option.opts
    # every line of the Options section that starts an option carries help text on it
    section = result.stdout.split("Options:", 1)[1].split("Commands:", 1)[0]
    for line in section.splitlines():
        if line.strip().startswith("-"):
            assert re.match(r"^\s+-\S.*?\s{2,}\S", line), f"no help on {line!r}"
    if command is None:
        for name in COMMANDS:
            assert re.search(rf"^\s+{name}\s+\S", result.stdout, re.M), name


# -- fit --------------------------------------------------------------------------------------


def test_fit_writes_the_run_folder(data, trained):
    out, result = trained
    assert {"config.yaml", "metrics.csv", "last.npz", "best.npz"} <= {p.name for p in out.iterdir()}
    # stdout: one line per epoch
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {i}/3"), line
        assert "train_loss" in line
    # metrics.csv: header + 3 rows, loss falls
    header, rows = read_metrics(out / "metrics.csv")
    assert ",".join(header) == METRICS_HEADER
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    losses = [float(r[1]) for r in rows]
    assert losses[-1] < losses[0]
    assert all(0 <= float(r[2]) <= 1 and 0 <= float(r[4]) <= 1 for r in rows)
    assert all(float(r[5]) == 0.1 for r in rows)
    # the stdout lines show the same losses
    for line, loss in zip(lines, losses, strict=True):
        assert f"train_loss {loss:.4f}" in line
    # config.yaml: the resolved config, defaults filled in, loadable as a config again
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 3
    assert cfg["train"]["batch_size"] == 16
    assert cfg["train"]["shuffle"] is True
    assert cfg["dtype"] == "float32"
    optimizer = cfg["train"]["optimizer"]
    assert {k: optimizer[k] for k in ("name", "lr", "momentum")} == {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
    }
    assert cfg["model"]["layers"][1]["activation"] == "linear"
    assert Path(cfg["data"]["train"]) == (data / "train.npz").resolve()
    from nettrain.config import load_config

    again, _ = load_config(out / "config.yaml")
    assert again == cfg


def test_checkpoint_follows_the_spec(data, trained):
    out, _ = trained
    with np.load(out / "last.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert arrays["layers.0.weight"].shape == (4, 8)
    assert arrays["layers.0.bias"].shape == (8,)
    assert arrays["layers.1.weight"].shape == (8, 3)
    assert arrays["layers.1.bias"].shape == (3,)
    assert not any(k.startswith("layers.2.") for k in arrays)  # softmax: no parameters
    for name, a in arrays.items():
        if name.startswith("layers."):
            assert a.dtype == np.float32, name
    assert any(k.startswith("optimizer.") for k in arrays)
    meta_array = arrays["__meta__"]
    assert meta_array.shape == ()
    assert meta_array.dtype.kind == "U"
    meta = json.loads(str(meta_array))
    assert meta["epoch"] == 3
    assert meta["step"] == 3 * 4  # ceil(60 / 16) = 4 batches per epoch
    assert meta["config"] == yaml.safe_load((out / "config.yaml").read_text())
    assert meta["config"]["model"]["layers"][0]["units"] == 8


def test_fit_is_deterministic(cli_call, data, tmp_path):
    fit(cli_call, data, tmp_path / "a")
    fit(cli_call, data, tmp_path / "b")
    assert_same_arrays(tmp_path / "a" / "last.npz", tmp_path / "b" / "last.npz")
    _, rows_a = read_metrics(tmp_path / "a" / "metrics.csv")
    _, rows_b = read_metrics(tmp_path / "b" / "metrics.csv")
    assert [r[:-1] for r in rows_a] == [r[:-1] for r in rows_b]


def test_fit_set_epochs(cli_call, data, tmp_path):
    result = fit(cli_call, data, tmp_path / "r", "--set", "train.epochs=1")
    _, rows = read_metrics(tmp_path / "r" / "metrics.csv")
    assert len(rows) == 1
    assert len(result.stdout.strip().splitlines()) == 1
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["train"]["epochs"] == 1


def test_fit_unknown_set_key(cli_call, data, tmp_path):
    result = fit(cli_call, data, tmp_path / "r", "--set", "train.epochz=1", code=2)
    line = assert_user_error(result, "train.epochz", "did you mean 'epochs'")
    assert line.startswith("error: --set train.epochz=1")
    assert not (tmp_path / "r").exists()


def test_fit_refuses_an_existing_run_without_overwrite(cli_call, data, tmp_path):
    out = tmp_path / "r"
    fit(cli_call, data, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = fit(cli_call, data, out, "--set", "train.epochs=1", code=2)
    assert_user_error(result, str(out), "already holds a run", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    fit(cli_call, data, out, "--set", "train.epochs=1", "--overwrite")
    _, rows = read_metrics(out / "metrics.csv")
    assert len(rows) == 1
    assert json.loads(str(np.load(out / "last.npz")["__meta__"]))["epoch"] == 1


def test_fit_resume_and_weights_exclude_each_other(cli_call, data, trained, tmp_path):
    ckpt = trained[0] / "last.npz"
    result = fit(cli_call, data, tmp_path / "r", "--resume", ckpt, "--weights", ckpt, code=2)
    assert_user_error(result, "--resume", "--weights")
    assert not (tmp_path / "r").exists()


def test_fit_from_weights_starts_lower(cli_call, data, trained, tmp_path):
    _, fresh = read_metrics(trained[0] / "metrics.csv")
    fit(cli_call, data, tmp_path / "r", "--weights", trained[0] / "last.npz")
    _, rows = read_metrics(tmp_path / "r" / "metrics.csv")
    assert len(rows) == 3  # a new run: its own epochs from 1
    assert rows[0][0] == "1"
    assert float(rows[0][1]) < float(fresh[0][1])
    meta = json.loads(str(np.load(tmp_path / "r" / "last.npz")["__meta__"]))
    assert meta["epoch"] == 3


def test_resume_continues_bit_identically(cli_call, data, tmp_path):
    part = tmp_path / "part"
    fit(cli_call, data, part)
    _, first = read_metrics(part / "metrics.csv")
    result = cli_call(
        "fit", data / "c.yaml", "--resume", part / "last.npz", "--set", "train.epochs=5"
    )
    assert len(result.stdout.strip().splitlines()) == 2  # epochs 4 and 5 only
    header, rows = read_metrics(part / "metrics.csv")
    assert ",".join(header) == METRICS_HEADER
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    assert [r[:-1] for r in rows[:3]] == [r[:-1] for r in first]
    whole = tmp_path / "whole"
    fit(cli_call, data, whole, "--set", "train.epochs=5")
    assert_same_arrays(part / "last.npz", whole / "last.npz")
    _, straight = read_metrics(whole / "metrics.csv")
    assert [r[:-1] for r in rows] == [r[:-1] for r in straight]
    meta = json.loads(str(np.load(part / "last.npz")["__meta__"]))
    assert (meta["epoch"], meta["step"]) == (5, 20)


def test_fit_quiet_prints_nothing_on_success(cli_call, data, trained, tmp_path):
    result = fit(cli_call, data, tmp_path / "r", "--quiet")
    assert (result.stdout, result.stderr) == ("", "")
    assert (tmp_path / "r" / "last.npz").exists()
    # a resume that changes train.epochs reports the change, except with --quiet
    shutil.copytree(trained[0], tmp_path / "c")
    ckpt = tmp_path / "c" / "last.npz"
    result = cli_call("fit", data / "c.yaml", "--resume", ckpt, "--set", "train.epochs=4")
    assert "train.epochs changes from 3 to 4" in result.stderr and "done:" in result.stderr
    args = ("fit", data / "c.yaml", "--resume", ckpt, "--set", "train.epochs=5", "--quiet")
    result = cli_call(*args)
    assert (result.stdout, result.stderr) == ("", "")
    # errors still go to stderr
    result = fit(cli_call, data, tmp_path / "e", "--quiet", "--set", "train.epochz=1", code=2)
    assert_user_error(result, "unknown key 'epochz'")


def test_resume_without_config_uses_the_checkpoints(cli_call, data, trained, tmp_path):
    for name in ("with", "without"):
        shutil.copytree(trained[0], tmp_path / name)
    ckpt = tmp_path / "with" / "last.npz"
    cli_call("fit", data / "c.yaml", "--resume", ckpt, "--set", "train.epochs=5")
    ckpt = tmp_path / "without" / "last.npz"
    result = cli_call("fit", "--resume", ckpt, "--set", "train.epochs=5")
    assert "train.epochs changes from 3 to 5" in result.stderr
    assert_same_arrays(tmp_path / "with" / "last.npz", ckpt)
    _, a = read_metrics(tmp_path / "with" / "metrics.csv")
    _, b = read_metrics(ckpt.parent / "metrics.csv")
    assert [r[:-1] for r in a] == [r[:-1] for r in b] and len(b) == 5
    # a bad --set still names the --set; a finished run still asks for more epochs
    result = cli_call("fit", "--resume", ckpt, "--set", "train.epochz=9", code=2)
    assert_user_error(result, "--set train.epochz=9", "did you mean 'epochs'")
    result = cli_call("fit", "--resume", ckpt, code=2)
    assert_user_error(result, "already trained 5 epochs", "--set train.epochs=10")


def test_resume_without_config_checks_the_training_data(cli_call, data, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(data, world)
    fit(cli_call, world, tmp_path / "r", "--set", "train.epochs=1")
    (world / "train.npz").rename(world / "moved.npz")
    result = cli_call("fit", "--resume", tmp_path / "r" / "last.npz", code=2)
    assert_user_error(result, "last.npz (config): data.train", "not found", "train.npz")


@pytest.mark.parametrize("extra", [[], ["--weights", "w.npz"], ["--out", "r"]])
def test_fit_without_config_or_resume_is_refused(cli_call, tmp_path, extra, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.npz").write_bytes(b"")
    result = cli_call("fit", *extra, code=2)
    assert_user_error(result, "no CONFIG given", "--resume CKPT")
    assert list(tmp_path.iterdir()) == [tmp_path / "w.npz"]


def test_resume_with_a_changed_model_is_refused(cli_call, data, trained, tmp_path):
    ckpt = trained[0] / "last.npz"
    before = ckpt.read_bytes()
    result = cli_call(
        "fit",
        data / "c.yaml",
        "--resume",
        ckpt,
        "--out",
        tmp_path / "r",
        "--set",
        "train.epochs=5",
        "--set",
        "model.layers.0.units=9",
        code=2,
    )
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert str(ckpt) in errors[0]
    assert "model" in errors[0]
    assert ckpt.read_bytes() == before


# -- predict and evaluate -----------------------------------------------------------------


def predict_csv(cli_call, ckpt, x_path):
    result = cli_call("predict", ckpt, x_path)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    return result, rows[0], rows[1:]


def test_predict_csv_matches_evaluate(cli_call, data, trained):
    ckpt = trained[0] / "last.npz"
    result, header, rows = predict_csv(cli_call, ckpt, data / "x.npz")
    assert header == ["index", "prediction", "p0", "p1", "p2"]
    assert len(rows) == 30
    assert [int(r[0]) for r in rows] == list(range(30))
    probs = np.array([[float(v) for v in r[2:]] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    predictions = np.array([int(r[1]) for r in rows])
    assert np.array_equal(predictions, probs.argmax(axis=1))
    assert "written" not in result.stdout
    y = np.load(data / "test.npz")["y"]
    accuracy = float(np.mean(predictions == y))
    ev = cli_call("evaluate", ckpt, "--data", data / "test.npz", "--format", "json")
    report = json.loads(ev.stdout)
    assert report["samples"] == 30
    assert report["accuracy"] == pytest.approx(accuracy)
    assert accuracy > 0.5  # it learned something


def test_predict_jsonl_and_npy_agree_with_csv(cli_call, data, trained, tmp_path):
    ckpt = trained[0] / "last.npz"
    _, header, rows = predict_csv(cli_call, ckpt, data / "x.npz")
    result = cli_call("predict", ckpt, data / "x.npz", "--format", "jsonl")
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(records) == 30
    for record, row in zip(records, rows, strict=True):
        assert list(record) == header
        assert record["index"] == int(row[0])
        assert record["prediction"] == int(row[1])
        assert [record[f"p{k}"] for k in range(3)] == [float(v) for v in row[2:]]
    out = tmp_path / "f.npy"
    result = cli_call("predict", ckpt, data / "x.npz", "--format", "npy", "--output", out)
    assert result.stdout == ""
    assert "written to" in result.stderr
    array = np.load(out, allow_pickle=False)
    assert array.shape == (30, 3)
    expected = np.array([[float(v) for v in r[2:]] for r in rows])
    assert array.dtype == np.float32
    assert np.array_equal(array, expected.astype(np.float32))  # the texts read back exactly
    out_csv = tmp_path / "p.csv"
    result = cli_call("predict", ckpt, data / "x.npz", "--output", out_csv)
    assert result.stdout == ""
    assert "written to" in result.stderr
    assert list(csv.reader(out_csv.open())) == [header, *rows]


def significant_digits(text):
    mantissa = text.lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if mantissa else 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_prints_the_shortest_text_of_each_probability(cli_call, data, tmp_path, dtype):
    fit(cli_call, data, tmp_path / "r", "--set", f"dtype={dtype}", "--set", "train.epochs=1")
    ckpt = tmp_path / "r" / "last.npz"
    out = tmp_path / "p.npy"
    cli_call("predict", ckpt, data / "x.npz", "--format", "npy", "--output", out)
    array = np.load(out)
    assert array.dtype == dtype
    _, _, rows = predict_csv(cli_call, ckpt, data / "x.npz")
    jsonl = cli_call("predict", ckpt, data / "x.npz", "--format", "jsonl").stdout
    texts = [r[2:] for r in rows]
    json_texts = [re.findall(r'"p\d": ([^,}]+)', line) for line in jsonl.splitlines()]
    assert json_texts == texts
    for k, row in enumerate(texts):
        for j, text in enumerate(row):
            value = array[k, j]
            assert np.array_equal(np.array(text, dtype=dtype), value), (text, value)
            if dtype == "float32":  # float32's shortest repr: at most 9 digits, not 17
                assert text == str(value) and significant_digits(text) <= 9, text
            else:
                assert text == repr(float(value)), text
    digits = [significant_digits(t) for row in texts for t in row]
    assert max(digits) <= 9 if dtype == "float32" else max(digits) >= 15


def test_evaluate_text_and_default_test_set(cli_call, data, trained):
    ckpt = trained[0] / "last.npz"
    text = cli_call("evaluate", ckpt, "--data", data / "test.npz").stdout
    report = json.loads(
        cli_call("evaluate", ckpt, "--data", data / "test.npz", "--format", "json").stdout
    )
    assert set(report) >= {"samples", "loss", "accuracy"}
    assert re.search(r"^samples\s+30$", text, re.M), text
    assert re.search(rf"^loss\s+{report['loss']:.6f}$", text, re.M), text
    assert re.search(rf"^accuracy\s+{100 * report['accuracy']:.2f}%$", text, re.M), text
    default = json.loads(cli_call("evaluate", ckpt, "--format", "json").stdout)
    assert default == report
    # the test score of the last epoch, as logged during training
    _, rows = read_metrics(trained[0] / "metrics.csv")
    assert report["loss"] == pytest.approx(float(rows[-1][3]), rel=1e-6)
    assert report["accuracy"] == pytest.approx(float(rows[-1][4]))


# -- summary and gradcheck ------------------------------------------------------------------


def test_summary(cli_call, data):
    result = cli_call("summary", data / "c.yaml")
    out = result.stdout
    assert re.search(r"^\s*0\s+dense 8 \+ tanh\s+\(8\)\s+40\s", out, re.M), out
    assert re.search(r"^\s*1\s+dense 3\s+\(3\)\s+27\s", out, re.M), out
    assert re.search(r"^\s*2\s+softmax\s+\(3\)\s+0\s", out, re.M), out
    assert re.search(r"^\s*total\s+67\s", out, re.M), out
    assert re.search(r"^\s*input\s+\(4\)", out, re.M), out


GRAD_TENSORS = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "input"]


def verdicts(stdout):
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in GRAD_TENSORS:
            out[parts[0]] = "FAIL" if "FAIL" in line else ("ok" if line.endswith("ok") else "?")
    return out


def test_gradcheck_passes(cli_call, data):
    result = cli_call("gradcheck", data / "c.yaml")
    assert verdicts(result.stdout) == dict.fromkeys(GRAD_TENSORS, "ok")
    step = [line for line in result.stdout.splitlines() if line.startswith("step check")]
    assert len(step) == 1 and step[0].endswith("ok")
    assert "passed" in result.stderr


def test_gradcheck_fails_on_a_wrong_tanh_derivative(cli_call, data, monkeypatch):
    # dense applies the tanh in its own kernels (Dense.FUSABLE)
    monkeypatch.setattr("nettrain.layers.dense.tanh_grad", lambda dy, y: dy * (1 - y))
    result = cli_call("gradcheck", data / "c.yaml", code=1)
    v = verdicts(result.stdout)
    assert v["layers.0.weight"] == "FAIL"
    assert v["layers.0.bias"] == "FAIL"
    assert v["input"] == "FAIL"
    assert v["layers.1.weight"] == "ok"  # above the tanh: unaffected
    assert "FAILED" in result.stderr


def test_gradcheck_fails_on_a_scaled_weight_gradient(cli_call, data, monkeypatch):
    original = Dense.backward

    def backward(self, saved, dy, need_dx=True):
        dx = original(self, saved, dy, need_dx)
        self.grads["weight"] *= 1.01
        return dx

    monkeypatch.setattr(Dense, "backward", backward)
    result = cli_call("gradcheck", data / "c.yaml", code=1)
    v = verdicts(result.stdout)
    assert v["layers.0.weight"] == "FAIL"
    assert v["layers.1.weight"] == "FAIL"
    assert v["layers.0.bias"] == v["layers.1.bias"] == v["input"] == "ok"
    assert "FAILED" in result.stderr


REGRESSION = """\
data:
  train: r.npz
model:
  layers:
    - {type: dense, units: 16, activation: tanh}
    - {type: dense, units: 1}
  loss: squared_error
"""


@pytest.mark.parametrize("scale", [1, 100])
def test_gradcheck_passes_a_regression_net_with_large_targets(cli_call, tmp_path, scale):
    # targets 25..346 as in the diabetes data: loss ~1e4, gradients ~100; and the same / 100
    rng = np.random.default_rng(5)
    y = rng.uniform(25, 346, size=(40, 1)) / scale
    np.savez(tmp_path / "r.npz", x=rng.standard_normal((40, 10)), y=y)
    (tmp_path / "r.yaml").write_text(REGRESSION)
    result = cli_call("gradcheck", tmp_path / "r.yaml")
    assert "FAIL" not in result.stdout and "passed" in result.stderr


def test_gradcheck_fails_a_wrong_backward_on_large_targets(cli_call, tmp_path, monkeypatch):
    monkeypatch.setattr("nettrain.layers.dense.tanh_grad", lambda dy, y: dy * (1 - y))
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "r.npz", x=rng.standard_normal((40, 10)), y=rng.uniform(25, 346, (40, 1)))
    (tmp_path / "r.yaml").write_text(REGRESSION)
    result = cli_call("gradcheck", tmp_path / "r.yaml", code=1)
    v = verdicts(result.stdout)
    assert v["layers.0.weight"] == v["layers.0.bias"] == v["input"] == "FAIL"
    assert v["layers.1.weight"] == "ok"


# -- error paths ------------------------------------------------------------------------------


def test_error_config_not_found(cli_call, tmp_path):
    result = cli_call("fit", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r"), code=None)
    assert_user_error(result, "nope.yaml", "not found")
    assert not (tmp_path / "r").exists()


def test_error_malformed_yaml(cli_call, data, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("  epochs: 3", "\tepochs: 3"))
    for command in ("fit", "gradcheck", "summary"):
        result = cli_call(command, str(bad), code=None)
        line = assert_user_error(result, "invalid YAML")
        assert line.startswith(f"error: {bad}:12: "), line


def test_error_predict_missing_checkpoint(cli_call, data, tmp_path):
    result = cli_call("predict", str(tmp_path / "none.npz"), str(data / "x.npz"), code=None)
    assert_user_error(result, "none.npz", "not found")


def test_error_predict_on_a_data_file(cli_call, data):
    result = cli_call("predict", str(data / "train.npz"), str(data / "x.npz"), code=None)
    assert_user_error(result, "train.npz", "not a nettrain checkpoint")


def test_error_predict_wrong_feature_count(cli_call, data, trained, tmp_path):
    np.savez(tmp_path / "x5.npz", x=np.zeros((4, 5), dtype=np.float32))
    result = cli_call("predict", str(trained[0] / "last.npz"), str(tmp_path / "x5.npz"), code=None)
    assert_user_error(result, "x5.npz", "(5,)", "(4,)")
    assert result.stdout == ""


def test_error_evaluate_labels_out_of_range(cli_call, trained, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 4), dtype=np.float32), y=np.array([0, 1, 2, 5]))
    result = cli_call(
        "evaluate", str(trained[0] / "last.npz"), "--data", str(tmp_path / "bad.npz"), code=None
    )
    assert_user_error(result, "bad.npz", "class label 5", "3 outputs")


TANH_CE = REPO / "configs" / "seed-tanh-cross-entropy.yaml"


@pytest.mark.parametrize("command", ["gradcheck", "fit"])
def test_error_tanh_cross_entropy_config(cli_call, tmp_path, command, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default run folder would land here
    result = cli_call(command, str(TANH_CE), code=None)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    loss_line = TANH_CE.read_text().splitlines().index("  loss: cross_entropy") + 1
    assert errors[0].startswith(f"error: {TANH_CE}:{loss_line}: model.loss: "), errors[0]
    assert "cross_entropy" in errors[0] and "tanh" in errors[0]
    assert "sigmoid" in result.stderr
    assert not list(tmp_path.rglob("*.npz"))


def test_fit_on_an_unbuildable_model_leaves_nothing_behind(cli_call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli_call("fit", str(TANH_CE), code=None)
    assert_user_error(result, "sigmoid")
    assert not (tmp_path / "runs").exists()


def test_debug_shows_the_exception(cli_call, tmp_path):
    result = cli_call("--debug", "summary", str(tmp_path / "nope.yaml"), code=None)
    assert result.exit_code != 0
    assert result.exception is not None
    assert "not found" in str(result.exception)


def test_repo_configs_are_valid(cli_call):
    # every shipped config except the deliberate tanh + cross_entropy one builds its net
    for config in sorted((REPO / "configs").glob("*.yaml")):
        result = cli_call("summary", str(config), code=None)
        if config.name == "seed-tanh-cross-entropy.yaml":
            assert result.exit_code == 2
        else:
            assert result.exit_code == 0, (config.name, result.stderr)
            assert re.search(r"^\s*total\s+[\d,]+\s", result.stdout, re.M)


def test_run_folder_is_copied_whole(data, trained, tmp_path, cli_call):
    # a checkpoint moved to another folder still predicts (it carries its own config)
    moved = tmp_path / "moved.npz"
    shutil.copy(trained[0] / "last.npz", moved)
    _, _, rows = predict_csv(cli_call, moved, data / "x.npz")
    assert len(rows) == 30


def test_bench_runs_with_the_default_thread_count(cli_call, tmp_path, monkeypatch):
    """Without --threads or NETTRAIN_THREADS the count follows the load: bench says which."""
    monkeypatch.delenv("NETTRAIN_THREADS", raising=False)
    (tmp_path / "c.yaml").write_text(
        "model: {input: [4], layers: [{type: dense, units: 3}, softmax], "
        "loss: multinomial_cross_entropy}\ntrain: {batch_size: 8}\n"
    )
    result = cli_call("bench", tmp_path / "c.yaml", "--repeats", "2")
    assert re.search(r"samples/s \(\d+ threads?\)", result.stdout)
    # and what the kernels were compiled for, on which threads
    assert re.search(r"kernels: compiled for \S+, .*; Numba threading layer: \w+", result.stdout)
