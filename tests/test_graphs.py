"""Nets as graphs (docs/graphs.md): references resolved and refused before any data is read, the
forward and backward passes along the graph against hand-written numpy and gradcheck, gradients
summed where outputs fan out, saved arrays dropped as soon as backward is done with them,
fusion only where nothing else reads, and every feature (summary, bench, resume, MPI, the
ensemble, the Python API) on a residual net. PyTorch's side: tests/test_graphs_torch.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import interrupt_and_resume, invoke, net_arrays, without_seconds

import nettrain
from nettrain.config import config_from_dict, load_config
from nettrain.core.errors import UserError
from nettrain.net.network import build_network
from nettrain.tools.gradcheck import check_net
from nettrain.training.fit import fit

ROOT = Path(__file__).resolve().parents[1]

# a residual block with an identity shortcut, a 1x1-projection shortcut, a concat of both paths
RESIDUAL = [
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same", "name": "stem"},
    {"type": "batchnorm"},
    {"type": "relu", "name": "block_in"},
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same", "bias": False},
    {"type": "batchnorm"},
    {"type": "add", "from": [-1, "block_in"]},
    {"type": "relu", "name": "out1"},
    {"type": "conv2d", "filters": 6, "kernel": 3, "stride": 2, "padding": 1},
    {"type": "batchnorm"},
    {"type": "conv2d", "filters": 6, "kernel": 1, "stride": 2, "from": "out1"},
    {"type": "add", "from": [-2, -1]},
    {"type": "relu"},
    {"type": "conv2d", "filters": 2, "kernel": 1, "stride": 2, "from": "block_in"},
    {"type": "concat", "from": [-2, -1]},
    {"type": "global_avgpool2d"},
    {"type": "dense", "units": 3},
    {"type": "softmax"},
]


def net_of(layers, shape=(2, 6, 6), loss="squared_error", dtype=np.float64):
    cfg, src = config_from_dict({"model": {"input": list(shape), "layers": layers, "loss": loss}})
    return build_network(cfg["model"], dtype, shape, src)


def refused(layers, shape=(2, 6, 6)) -> str:
    """The message a net of ``layers`` is refused with."""
    with pytest.raises(UserError) as info:
        net_of(layers, shape)
    return f"{info.value}\n{info.value.hint or ''}"


# -- references: resolved before anything is built, refused with the line ----------------------

CONV = {"type": "conv2d", "filters": 2, "kernel": 3, "padding": "same"}


@pytest.mark.parametrize(
    "layers, words",
    [
        ([CONV, {**CONV, "from": 2}, {"type": "add", "from": [0, 1]}],
         ["layer 1 reads 2, which is layer 2, after it", "backwards only"]),
        ([CONV, {**CONV, "from": 1}], ["which is itself"]),
        ([CONV, {**CONV, "from": "blok"}, {"type": "add", "from": [0, 1]}],
         ["no layer named 'blok'", "expected one of: input"]),
        ([{**CONV, "name": "block"}, {**CONV, "from": "blok"}, {"type": "add", "from": [0, 1]}],
         ["no layer named 'blok'", "did you mean 'block'?"]),
        ([CONV, {**CONV, "from": -2}], ["offset -2 from layer 1 points before the first layer"]),
        ([CONV, {**CONV, "from": [0, "input"]}],
         ["conv2d layer 1 takes one input, but its from lists 2", "join them first"]),
        ([CONV, {"type": "add", "from": 0}], ["add layer 1 joins two or more inputs"]),
        ([CONV, {"type": "concat"}], ["concat layer 1 joins two or more inputs", "no `from`"]),
        ([{**CONV, "name": "a"}, {**CONV, "name": "a"}], ["layer 0 is already named 'a'"]),
        ([{**CONV, "name": "3"}], ["'3' cannot name a layer"]),
        ([{**CONV, "name": "input"}], ["'input' cannot name a layer"]),
        ([{**CONV, "name": "a b"}], ["'a b' cannot name a layer"]),
        ([CONV, {**CONV, "from": "input"}],
         ["nothing reads the output of conv2d layer 0", "from: 0"]),
    ],
)  # fmt: skip
def test_bad_references_are_refused_naming_the_layer(layers, words):
    message = refused(layers)
    for w in words:
        assert w in message, message


def test_a_join_of_mismatched_shapes_names_every_input_and_its_shape():
    layers = [
        {**CONV, "name": "block_in"},
        {**CONV, "filters": 3, "stride": 2},
        {"type": "add", "from": [-1, "block_in", "input"]},
    ]
    message = refused(layers)
    assert "add layer 2 cannot be built: add needs inputs of one shape" in message
    assert "layer 1 (3, 3, 3), layer 0 'block_in' (2, 6, 6), input (2, 6, 6)" in message
    concat = [{**CONV, "stride": 2}, {"type": "concat", "from": ["input", 0]}]
    message = refused(concat)
    assert "every other axis must be equal" in message and "(2, 6, 6), (2, 3, 3)" in message


CLI_CONFIG = """\
model:
  input: [2, 6, 6]
  layers:
    - {type: conv2d, filters: 2, kernel: 3, padding: same, name: block_in}
    - {type: conv2d, filters: 3, kernel: 3, padding: same}
    - {type: add, from: [-1, block_in]}
    - {type: dense, units: 2}
  loss: squared_error
"""


@pytest.mark.parametrize(
    "edit, line, words",
    [
        (("from: [-1, block_in]", "from: [-1, block]"), 6,
         ["model.layers.2.from", "no layer named 'block'", "did you mean 'block_in'?"]),
        (("from: [-1, block_in]", "from: [-1, 3]"), 6,
         ["model.layers.2.from", "which is layer 3, after it"]),
        ((), 6, ["model.layers.2", "add needs inputs of one shape", "layer 1 (3, 6, 6)",
                 "layer 0 'block_in' (2, 6, 6)"]),
        (("name: block_in", "nmae: block_in"), 4, ["unknown key 'nmae'", "did you mean 'name'?"]),
        (("from: [-1", "form: [-1"), 6, ["unknown key 'form'", "did you mean 'from'?"]),
        (("from: [-1, block_in]", "from: {a: 1}"), 6,
         ["model.layers.2.from", "expected a layer's"]),
        (("padding: same}", "padding: same, from: [-1, 0]}"), 5,
         ["model.layers.1.from", "takes one input"]),
    ],
)  # fmt: skip
def test_config_errors_exit_2_naming_the_yaml_line(tmp_path, edit, line, words):
    text = CLI_CONFIG.replace(*edit, 1) if edit else CLI_CONFIG
    (tmp_path / "c.yaml").write_text(text)
    result = invoke("summary", tmp_path / "c.yaml", code=2)
    assert f"c.yaml:{line}: " in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, result.stderr


def test_a_dead_branch_is_an_error_naming_its_line(tmp_path):
    text = CLI_CONFIG.replace("padding: same}", "padding: same, from: input}")
    (tmp_path / "c.yaml").write_text(text.replace("[-1, block_in]", "[-1, input]"))
    result = invoke("summary", tmp_path / "c.yaml", code=2)
    assert "c.yaml:4: model.layers.0" in result.stderr
    assert "nothing reads the output of conv2d layer 0 ('block_in')" in result.stderr
    assert "from: block_in" in result.stderr


def test_the_resolved_config_holds_name_and_from_only_where_given():
    cfg, _ = config_from_dict(
        {"model": {"input": [3], "loss": "squared_error", "layers": [
            {"type": "dense", "units": 3, "name": "h"}, "tanh",
            {"type": "add", "from": ["h", -1]}]}}
    )  # fmt: skip
    layers = cfg["model"]["layers"]
    assert layers[0]["name"] == "h" and "from" not in layers[0]
    assert layers[1] == {"type": "tanh"} and layers[2] == {"type": "add", "from": ["h", -1]}


# -- the passes against hand-written numpy ----------------------------------------------------

TINY = [
    {"type": "dense", "units": 4, "activation": "tanh", "name": "h"},
    {"type": "dense", "units": 4},
    {"type": "add", "from": [-1, "h"]},  # h is read twice: its gradient is a sum
    {"type": "relu"},
    {"type": "concat", "from": [-1, "h", "input"]},
    {"type": "dense", "units": 2},
]


def tiny_numpy(p, x, t):
    """Forward and backward of TINY by hand, float64: (loss, out, {grad}, dx), the squared
    error summed over outputs and averaged over the batch."""
    n = len(x)
    h = np.tanh(x @ p["layers.0.weight"] + p["layers.0.bias"])
    a = h @ p["layers.1.weight"] + p["layers.1.bias"]
    s = a + h
    r = np.maximum(s, 0)
    c = np.concatenate([r, h, x], axis=1)
    out = c @ p["layers.5.weight"] + p["layers.5.bias"]
    loss = 0.5 * np.sum((out - t) ** 2) / n
    d_out = (out - t) / n
    g = {"layers.5.weight": c.T @ d_out, "layers.5.bias": d_out.sum(0)}
    dc = d_out @ p["layers.5.weight"].T
    dr, dh_concat, dx_concat = dc[:, :4], dc[:, 4:8], dc[:, 8:]
    ds = dr * (s > 0)
    da, dh_add = ds, ds
    g["layers.1.weight"], g["layers.1.bias"] = h.T @ da, da.sum(0)
    dh = da @ p["layers.1.weight"].T + dh_add + dh_concat  # three readers of h
    dz = dh * (1 - h**2)
    g["layers.0.weight"], g["layers.0.bias"] = x.T @ dz, dz.sum(0)
    dx = dz @ p["layers.0.weight"].T + dx_concat
    return loss, out, g, dx


def test_forward_and_backward_equal_hand_written_numpy():
    net = net_of(TINY, shape=(3,), loss="squared_error")
    rng = np.random.default_rng(0)
    net.init_params(rng)
    for p in net.params().values():
        p[...] = rng.standard_normal(p.shape) * 0.7
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    loss, out, dx = net.loss_and_backward(x, t)
    e_loss, e_out, e_grads, e_dx = tiny_numpy(net.params(), x, t)
    assert abs(loss - e_loss) <= 1e-12 * abs(e_loss)
    np.testing.assert_allclose(out, e_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, e_dx, rtol=1e-10, atol=1e-12)
    grads = net.grads()
    assert set(grads) == set(e_grads)
    for k, g in grads.items():
        np.testing.assert_allclose(g, e_grads[k], rtol=1e-10, atol=1e-12, err_msg=k)


# one output twice in one join, and the input read by a join and by the first layer
TWICE = [
    {"type": "dense", "units": 3, "activation": "tanh", "name": "h"},
    {"type": "add", "from": ["h", "h", "input"]},
    {"type": "dense", "units": 2},
]


@pytest.mark.parametrize("layers, shape", [(TINY, (3,)), (TWICE, (3,)), (RESIDUAL, (2, 6, 6))])
def test_gradcheck_passes_on_graphs_every_tensor(layers, shape):
    loss = "multinomial_cross_entropy" if layers is RESIDUAL else "squared_error"
    net = net_of(layers, shape, loss)
    rng = np.random.default_rng(1)
    net.init_params(rng)
    for name, p in net.params().items():
        if name.endswith("bias"):
            p[...] = rng.uniform(-0.1, 0.1, p.shape)
    x = rng.standard_normal((4, *shape))
    t = np.eye(3)[rng.integers(0, 3, 4)] if layers is RESIDUAL else rng.standard_normal((4, 2))
    results, step = check_net(net, x, t, entries=40)
    assert {r.name for r in results} == {*net.params(), "input"}
    assert all(r.ok and r.checked for r in results), [(r.name, r.max_rel) for r in results]
    assert step.ok


def test_backward_drops_each_saved_array_once_its_layer_is_done():
    """When layer k's backward runs, the saved arrays of every later layer are gone."""
    net = net_of(RESIDUAL)
    net.init_params(np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6))
    _, out, saved = net.forward_saving(x, True)
    assert sum(s is not None for s in saved) > 5
    seen = []
    for k, layer in enumerate(net.layers):
        run = layer.backward

        def watched(s, dy, need_dx=True, k=k, run=run):
            seen.append((k, [i for i in range(k + 1, len(saved)) if saved[i] is not None]))
            return run(s, dy, need_dx)

        layer.backward = watched
    net.backward(saved, len(net.layers) - 1, np.ones_like(out))
    assert [k for k, _ in seen] == list(reversed(range(len(net.layers))))
    assert all(later == [] for _, later in seen) and all(s is None for s in saved)


def test_no_layer_writes_into_its_input_or_its_gradient():
    """The net hands an output read by several layers to each as it is (and add hands one dy
    to all its inputs): a pass leaves what it was given unchanged."""
    net = net_of(RESIDUAL)
    net.init_params(np.random.default_rng(0))
    rng = np.random.default_rng(2)
    for layer in net.layers:
        shapes = layer.in_shape if layer.JOIN else [layer.in_shape]
        xs = [rng.standard_normal((3, *s)) for s in shapes]
        before = [a.copy() for a in xs]
        y, kept = layer.forward(xs if layer.JOIN else xs[0], True)
        dy = rng.standard_normal(y.shape)
        dy0 = dy.copy()
        layer.backward(kept, dy)
        assert all(np.array_equal(a, b) for a, b in zip(before, xs, strict=True)), layer.kind
        assert np.array_equal(dy, dy0), layer.kind


# -- fusion where nothing else reads ------------------------------------------------------------


def test_a_relu_is_fused_only_where_nothing_else_reads_the_layer_before_it():
    fused = net_of([{**CONV, "name": "c"}, {"type": "relu", "name": "r"},
                    {"type": "add", "from": ["r", "input"]}])  # fmt: skip
    assert [(lay.kind, lay.fused) for lay in fused.layers] == [("conv2d", "relu"), ("add", None)]
    kept = net_of([{**CONV, "name": "c"}, {"type": "relu"}, {"type": "add", "from": [-1, "c"]}])
    assert [(lay.kind, lay.fused) for lay in kept.layers] == [
        ("conv2d", None), ("relu", None), ("add", None)
    ]  # fmt: skip
    elsewhere = net_of([CONV, {"type": "conv2d", "filters": 2, "kernel": 1},
                        {"type": "relu", "from": 0}, {"type": "add", "from": [1, 2]}])  # fmt: skip
    assert [lay.fused for lay in elsewhere.layers] == [None, None, None, None]
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6))
    for net in (fused, kept):
        net.init_params(np.random.default_rng(3))
    conv = kept.layers[0].forward(x, False)[0]
    np.testing.assert_array_equal(kept.forward(x), np.maximum(conv, 0) + conv)
    np.testing.assert_array_equal(fused.forward(x), np.maximum(conv, 0) + x)


# -- every feature on a residual net ------------------------------------------------------------

FIT = """\
seed: 4
dtype: float64
data:
  train: {path: train.npz}
  validation: 0.25
model:
  input: [1, 6, 6]
  layers:
    - {type: conv2d, filters: 3, kernel: 3, padding: same, activation: relu, name: block_in}
    - {type: conv2d, filters: 3, kernel: 3, padding: same, bias: false}
    - {type: batchnorm}
    - {type: add, from: [-1, block_in]}
    - {type: relu, name: out1}
    - {type: conv2d, filters: 4, kernel: 1, stride: 2, from: block_in}
    - {type: dropout, drop_prob: 0.2, from: out1}
    - {type: maxpool2d, size: 2}
    - {type: concat, from: [-1, -3]}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 10
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
"""


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 69)  # 52 training samples: a short last batch
    x = rng.standard_normal((69, 1, 6, 6)) + y[:, None, None, None]
    np.savez(tmp_path / "train.npz", x=x, y=y)
    (tmp_path / "net.yaml").write_text(FIT)
    return tmp_path


def test_summary_shows_what_each_layer_reads(folder):
    text = invoke("summary", folder / "net.yaml").stdout
    head, _, _, first, *rows = text.splitlines()
    assert "from" in head.split() and "block_in: conv2d 3@3x3 s1 p1 + relu" in first
    assert " input " in first
    add = next(r for r in rows if r.split()[1] == "add")
    assert "2, block_in (0)" in add
    concat = next(r for r in rows if r.split()[1] == "concat")
    assert "7, 5" in concat
    plain = invoke("summary", ROOT / "configs" / "mnist-lenet.yaml").stdout
    assert "from" not in plain.splitlines()[0].split()  # a stack has no such column


def test_bench_times_every_layer_of_a_graph(folder):
    out = invoke("bench", folder / "net.yaml", "--repeats", "2").stdout
    for kind in ("add", "concat", "maxpool2d", "dropout"):
        assert f"  {kind}" in out, out


def test_resume_is_bit_identical_on_a_graph(folder, monkeypatch):
    cfg, src = load_config(folder / "net.yaml", ())
    full = fit(cfg, src, folder=folder / "full").rows
    meta, rows = interrupt_and_resume(cfg, src, folder / "cut", monkeypatch, reads=9)
    assert meta["epoch"] == 1 and meta["batch"] > 0  # stopped within the second epoch
    assert without_seconds(rows) == without_seconds(full)
    a, b = net_arrays(folder / "full/last.npz"), net_arrays(folder / "cut/last.npz")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_api_fit_predict_and_an_ensemble_of_graph_nets(folder):
    with np.load(folder / "train.npz") as f:
        x, y = f["x"], f["y"]
    config = yaml.safe_load(FIT)
    del config["data"]
    paths = []
    for seed in (1, 2):
        model = nettrain.Model.from_config({**config, "seed": seed})
        model.fit(x, y)
        paths.append(folder / f"m{seed}.npz")
        model.save(paths[-1])
    singles = [nettrain.load(p).predict(x[:7]) for p in paths]
    both = nettrain.load(paths).predict(x[:7])
    np.testing.assert_allclose(both, np.mean(singles, axis=0), rtol=1e-12)
    assert np.allclose(both.sum(axis=1), 1)


MPIRUN = shutil.which("mpirun")


@pytest.mark.skipif(MPIRUN is None, reason="no mpirun (pip install 'nettrain[mpi]')")
def test_mpi_ranks_train_a_graph_as_one_process(folder):
    """Batchnorm's statistics summed over 3 ranks (one of them empty in the short last batch)
    and dropout's masks of the global batch, on a residual net: the weights of one process."""
    pytest.importorskip("mpi4py")
    env = {
        **__import__("os").environ,
        "PYTHONPATH": str(ROOT),
        "NETTRAIN_THREADS": "1",
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
    }
    cmd = [sys.executable, "-m", "nettrain", "fit", str(folder / "net.yaml"), "--quiet"]
    one = subprocess.run([*cmd, "--out", str(folder / "one")], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert one.returncode == 0, one.stderr
    three = subprocess.run(
        [MPIRUN, "-n", "3", "--oversubscribe", *cmd, "--out", str(folder / "three")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert three.returncode == 0, three.stderr
    a, b = net_arrays(folder / "one/last.npz"), net_arrays(folder / "three/last.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.abs(a[k] - b[k]).max() <= 1e-10 * max(np.abs(a[k]).max(), 1e-300), k


def test_docs_graph_example_builds(tmp_path):
    """The example of docs/graphs.md builds, and its shapes are as the page says."""
    text = (ROOT / "docs" / "graphs.md").read_text()
    block = textwrap.dedent(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    (tmp_path / "g.yaml").write_text(block)
    out = invoke("summary", tmp_path / "g.yaml").stdout
    assert "add" in out and "concat" in out
