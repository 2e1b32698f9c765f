"""Batchnorm, average pooling and leaky relu beyond the layer table: cases worked by hand, the
batch of one, PyTorch's numbers, running statistics through gradcheck, checkpoints, resume,
--weights and predict, config checks, summary and bench."""

from __future__ import annotations

import numpy as np
import pytest
import references
from helpers import build, interrupt_and_resume, net_arrays, write_blobs
from helpers import run_layer as run

from nettrain.config import config_from_dict
from nettrain.core.errors import UserError
from nettrain.inference import single
from nettrain.layers.avgpool2d import AvgPool2d
from nettrain.layers.batchnorm import BatchNorm
from nettrain.layers.global_avgpool2d import GlobalAvgPool2d
from nettrain.net.network import build_network
from nettrain.tools.bench import time_layers
from nettrain.tools.gradcheck import check_net
from nettrain.tools.summary import format_summary
from nettrain.training.fit import fit
from nettrain.training.prepare import prepare

# -- by hand --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["dense", "conv"])
def test_batchnorm_by_hand(layout):
    """x = 0..4 in one unit (5 samples) or one channel (1 sample, 1 x 5 plane): mean 2, biased
    variance 2; eps 2 makes sqrt(var + eps) = 2, so xhat = [-1, -0.5, 0, 0.5, 1]."""
    shape, in_shape = ((5, 1), (1,)) if layout == "dense" else ((1, 1, 1, 5), (1, 1, 5))
    layer = build(BatchNorm, in_shape, eps=2.0)
    layer.params["weight"][...] = 3
    layer.params["bias"][...] = 1
    dy = np.zeros(5)
    dy[0] = 1
    y, dx = run(layer, np.arange(5.0).reshape(shape), dy.reshape(shape))
    np.testing.assert_allclose(y.reshape(-1), [-2, -0.5, 1, 2.5, 4])
    # dbias = sum dy = 1, dweight = sum dy xhat = -1,
    # dx = weight / (m std) (m dy - dbias - xhat dweight) = 0.3 ([4, -1, -1, -1, -1] + xhat)
    np.testing.assert_allclose(layer.grads["bias"], [1])
    np.testing.assert_allclose(layer.grads["weight"], [-1])
    np.testing.assert_allclose(dx.reshape(-1), [0.9, -0.45, -0.3, -0.15, 0], atol=1e-15)
    # running_mean 0.9 * 0 + 0.1 * 2; running_var 0.9 * 1 + 0.1 * 2.5 (unbiased: 10 / 4)
    np.testing.assert_allclose(layer.state["running_mean"], [0.2])
    np.testing.assert_allclose(layer.state["running_var"], [1.15])
    # evaluation: the running statistics, here set so that sqrt(running_var + eps) = 2
    layer.state["running_mean"][...] = 1
    layer.state["running_var"][...] = 2
    y, _ = run(layer, np.array([1.0, 3.0, 1.0, 1.0, 1.0]).reshape(shape), train=False)
    np.testing.assert_allclose(y.reshape(-1)[:2], [1, 4])


def test_batchnorm_starts_as_pytorch_does():
    layer = build(BatchNorm, (3, 2, 2))
    assert {k: v.tolist() for k, v in {**layer.params, **layer.state}.items()} == {
        "weight": [1, 1, 1],
        "bias": [0, 0, 0],
        "running_mean": [0, 0, 0],
        "running_var": [1, 1, 1],
    }
    assert layer.options == {"momentum": 0.1, "eps": 1e-5}


def test_a_statistic_of_one_value_does_not_touch_the_running_statistics():
    """A batch of one sample after a dense layer: its unbiased variance is undefined (PyTorch
    refuses it). nettrain normalises it by itself (y = bias, dx = 0) and leaves the running
    statistics as they were."""
    layer = build(BatchNorm, (3,))
    layer.params["bias"][...] = [0.5, -1, 2]
    y, dx = run(layer, [[4.0, -7.0, 0.3]], [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(y, [[0.5, -1, 2]])
    np.testing.assert_array_equal(dx, [[0, 0, 0]])
    assert layer.state["running_mean"].tolist() == [0, 0, 0]
    assert layer.state["running_var"].tolist() == [1, 1, 1]
    # one sample of an image still has H*W values per channel: the statistics are updated
    conv = build(BatchNorm, (2, 2, 2))
    run(conv, np.arange(8.0).reshape(1, 2, 2, 2))
    np.testing.assert_allclose(conv.state["running_mean"], [0.15, 0.55])


def test_batchnorm_matches_pytorch_s_documented_formulas():
    """Without PyTorch (CI has none): the same two training steps and evaluation as below,
    against the formulas PyTorch documents (biased variance to normalise, unbiased into the
    running variance, running = (1 - momentum) running + momentum batch), written out in
    tests/references.py."""
    rng = np.random.default_rng(0)
    for in_shape in ((5,), (3, 4, 6)):
        layer = build(BatchNorm, in_shape, momentum=0.1, eps=1e-5)
        channels = in_shape[0]
        weight, bias = rng.uniform(0.5, 1.5, channels), rng.uniform(-0.5, 0.5, channels)
        layer.params["weight"][...], layer.params["bias"][...] = weight, bias
        mean, var = np.zeros(channels), np.ones(channels)
        for _ in range(2):  # two steps: the running statistics move twice
            x = rng.standard_normal((8, *in_shape)) * 2 + 1
            dy = rng.standard_normal(x.shape)
            ry, rdx, rdw, rdb, mean, var = references.batchnorm(
                x, dy, weight, bias, mean, var, 0.1, 1e-5, True
            )
            y, dx = run(layer, x, dy)
            np.testing.assert_allclose(y, ry, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(dx, rdx, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(layer.grads["weight"], rdw)
            np.testing.assert_allclose(layer.grads["bias"], rdb)
        np.testing.assert_allclose(layer.state["running_mean"], mean)
        np.testing.assert_allclose(layer.state["running_var"], var)
        y_eval, _ = run(layer, x, train=False)
        expected = references.batchnorm(x, dy, weight, bias, mean, var, 0.1, 1e-5, False)[0]
        np.testing.assert_allclose(y_eval, expected)


def test_batchnorm_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for in_shape, module in (((5,), torch.nn.BatchNorm1d(5)), ((3, 4, 6), torch.nn.BatchNorm2d(3))):
        module = module.double()
        layer = build(BatchNorm, in_shape, momentum=0.1, eps=1e-5)
        with torch.no_grad():
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.5, 0.5)
        layer.params["weight"][...] = module.weight.detach().numpy()
        layer.params["bias"][...] = module.bias.detach().numpy()
        for _ in range(2):  # two steps: the running statistics move twice
            x = rng.standard_normal((8, *in_shape)) * 2 + 1
            dy = rng.standard_normal(x.shape)
            xt = torch.tensor(x, requires_grad=True)
            yt = module.train()(xt)
            yt.backward(torch.tensor(dy))
            y, dx = run(layer, x, dy)
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(layer.grads["weight"], module.weight.grad.numpy())
            np.testing.assert_allclose(layer.grads["bias"], module.bias.grad.numpy())
            module.zero_grad()
        np.testing.assert_allclose(layer.state["running_mean"], module.running_mean.numpy())
        np.testing.assert_allclose(layer.state["running_var"], module.running_var.numpy())
        y_eval, _ = run(layer, x, train=False)
        np.testing.assert_allclose(y_eval, module.eval()(torch.tensor(x)).detach().numpy())


def test_avgpool_by_hand():
    layer = build(AvgPool2d, (1, 4, 5), size=2)  # the last column fills no window: dropped
    x = np.arange(20.0).reshape(1, 1, 4, 5)
    y, dx = run(layer, x, [[[[4.0, 8.0], [12.0, 16.0]]]])
    np.testing.assert_array_equal(y, [[[[3, 5], [13, 15]]]])
    expected = [[1, 1, 2, 2, 0], [1, 1, 2, 2, 0], [3, 3, 4, 4, 0], [3, 3, 4, 4, 0]]
    np.testing.assert_array_equal(dx, [[expected]])
    assert layer.describe() == "avgpool2d 2x2 s2"
    overlapping = build(AvgPool2d, (1, 3, 3), size=2, stride=1)
    _, dx = run(overlapping, np.zeros((1, 1, 3, 3)), np.full((1, 1, 2, 2), 4.0))
    np.testing.assert_array_equal(dx, [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])


def test_global_avgpool_by_hand():
    layer = build(GlobalAvgPool2d, (2, 2, 2))
    x = np.array([[[[1.0, 2.0], [3.0, 6.0]], [[-1.0, -1.0], [-1.0, 7.0]]]])
    y, dx = run(layer, x, [[4.0, 8.0]])
    np.testing.assert_array_equal(y, [[3, 1]])
    np.testing.assert_array_equal(dx, [[np.full((2, 2), 1.0), np.full((2, 2), 2.0)]])


# -- in a net -------------------------------------------------------------------------------

CONV_BN = [
    {"type": "conv2d", "filters": 3, "kernel": 3, "padding": "same", "bias": False},
    {"type": "batchnorm"},
    {"type": "leaky_relu"},
    {"type": "avgpool2d", "size": 2},
    {"type": "conv2d", "filters": 4, "kernel": 2, "activation": "leaky_relu"},
    {"type": "batchnorm", "momentum": 0.5},
    {"type": "relu"},
    {"type": "global_avgpool2d"},
    {"type": "dense", "units": 3},
    {"type": "batchnorm"},
    {"type": "softmax"},
]


def net_of(specs, input_shape, loss="multinomial_cross_entropy", dtype=np.float64):
    cfg, _ = config_from_dict(
        {"model": {"input": list(input_shape), "layers": specs, "loss": loss}}
    )
    net = build_network(cfg["model"], dtype, input_shape)
    net.init_params(np.random.default_rng(0))
    return net


def test_gradcheck_differentiates_training_mode_and_leaves_the_running_statistics():
    net = net_of(CONV_BN, (2, 6, 6))
    rng = np.random.default_rng(1)
    for p in net.params().values():
        if p.ndim == 1:  # batchnorm's scale and shift, off their initial 1 and 0
            p[...] = rng.uniform(0.5, 1.5, p.shape)
    for a in net.state().values():
        a[...] = rng.uniform(0.5, 1.5, a.shape)
    before = {k: a.copy() for k, a in net.state().items()}
    x, t = rng.standard_normal((4, 2, 6, 6)), np.eye(3)[[0, 1, 2, 1]]
    results, step = check_net(net, x, t, entries=30)
    assert all(r.ok for r in results), [(r.name, r.max_rel) for r in results]
    assert step.ok
    assert {r.name for r in results} == {*net.params(), "input"}  # never the state
    for k, a in net.state().items():
        np.testing.assert_array_equal(a, before[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_relu_after_batchnorm_runs_in_its_kernels_with_the_same_bits(dtype, monkeypatch):
    def pairs(net):
        return [(layer.kind, layer.fused) for layer in net.layers if layer.index in (5, 6)]

    fused = net_of(CONV_BN, (2, 6, 6), dtype=dtype)
    assert pairs(fused) == [("batchnorm", "relu")]  # the standalone relu entry is absorbed
    monkeypatch.setattr(BatchNorm, "FUSABLE", ())
    plain = net_of(CONV_BN, (2, 6, 6), dtype=dtype)
    assert pairs(plain) == [("batchnorm", None), ("relu", None)]
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((5, 2, 6, 6)).astype(dtype), np.eye(3, dtype=dtype)[[0, 1, 2, 1, 0]]
    results = []
    for net in (fused, plain):
        loss, out, dx = net.loss_and_backward(x, t)
        _, evaluated = net.evaluate(x, t)
        results.append([loss, out, dx, evaluated, *net.grads().values(), *net.state().values()])
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_summary_and_bench_know_the_new_layers():
    net = net_of(CONV_BN, (2, 6, 6), dtype=np.float32)
    text = format_summary(net)
    for row in ("batchnorm", "leaky_relu", "avgpool2d 2x2 s2", "global_avgpool2d", "(4)"):
        assert row in text
    assert "state (saved, not trained): 20 values" in text
    rows = time_layers(net, 8, {"name": "sgd", "lr": 0.1, "momentum": 0.0}, repeats=1)["layers"]
    assert [r[1] for r in rows][:3] == ["conv2d 3@3x3 s1 p1", "batchnorm", "leaky_relu"]


def test_output_range_checks_know_the_new_layers():
    def loss_error(specs):
        with pytest.raises(UserError) as info:
            net_of(specs, (1, 4, 4), loss="cross_entropy")
        return str(info.value)

    sigmoid_conv = {"type": "conv2d", "filters": 2, "kernel": 1, "activation": "sigmoid"}
    net_of([sigmoid_conv, {"type": "avgpool2d", "size": 2}], (1, 4, 4), loss="cross_entropy")
    net_of([sigmoid_conv, {"type": "global_avgpool2d"}], (1, 4, 4), loss="cross_entropy")
    assert "output of layer 1 is linear" in loss_error([sigmoid_conv, {"type": "batchnorm"}])
    leaky = {"type": "conv2d", "filters": 2, "kernel": 1, "activation": "leaky_relu"}
    assert "is leaky_relu, with values in (-inf, inf)" in loss_error([leaky])


@pytest.mark.parametrize(
    "layer, expected",
    [
        (
            "{type: batchnorm, momentun: 0.1}",
            ["cfg.yaml:4", "unknown key 'momentun'", "'momentum'"],
        ),
        ("{type: batchnorm, momentum: high}", ["cfg.yaml:4", "model.layers.1.momentum", "number"]),
        ("{type: batchnorm, eps: 0}", ["cfg.yaml:4", "model.layers.1.eps"]),
        ("{type: avgpool2d, sise: 2}", ["cfg.yaml:4", "unknown key 'sise'", "'size'"]),
        ("{type: leaky_relu, negative_slope: -1}", ["model.layers.1.negative_slope", ">= 0"]),
        ("{type: batchnrom}", ["cfg.yaml:4", "'batchnrom'", "did you mean 'batchnorm'?"]),
    ],
)
def test_config_checks_know_the_new_layers(make_config, layer, expected):
    text = f"model:\n  layers:\n    - {{type: dense, units: 3}}\n    - {layer}\n"
    text += "  loss: squared_error\n"
    with pytest.raises(UserError) as info:
        make_config(text)
    message = f"{info.value} {info.value.hint or ''}"
    for part in expected:
        assert part in message


# -- running statistics through checkpoints ---------------------------------------------------


@pytest.fixture
def config(tmp_path, blob_config):
    """The blob MLP (conftest.py) with batchnorm and leaky_relu after a dense layer without
    bias; 81 samples in batches of 16: every epoch ends on a batch of ONE sample."""
    write_blobs(tmp_path, sizes=(("train", 81), ("test", 30)))
    layers = "model.layers=[{type: dense, units: 8, bias: false}, {type: batchnorm}, "
    layers += "{type: leaky_relu}, {type: dense, units: 3}, softmax]"
    return blob_config(layers)


def test_running_statistics_are_checkpointed_and_resume_bit_identically(
    config, tmp_path, monkeypatch
):
    cfg, src = config
    full = fit(cfg, src, folder=tmp_path / "full").rows
    assert full[-1]["test_accuracy"] > 0.8
    saved = net_arrays(tmp_path / "full/last.npz")
    assert saved["layers.1.running_var"].shape == (8,)
    assert not np.all(saved["layers.1.running_mean"] == 0)  # trained, and finite
    assert np.all(np.isfinite(saved["layers.1.running_var"]))

    # 6 batches an epoch (the last of one sample): stop after batch 3 of epoch 2
    meta, resumed = interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads=9)
    assert (meta["epoch"], meta["batch"]) == (1, 3)
    again = net_arrays(tmp_path / "cut/last.npz")
    assert saved.keys() == again.keys()
    for k in saved:
        np.testing.assert_array_equal(saved[k], again[k], err_msg=k)
    assert [r["test_loss"] for r in resumed] == [r["test_loss"] for r in full]


def test_weights_predict_and_load_carry_the_running_statistics(config, tmp_path):
    cfg, src = config
    cfg["train"]["epochs"] = 1
    fit(cfg, src, folder=tmp_path / "run")
    saved = net_arrays(tmp_path / "run/last.npz")
    net, _ = single.load_net(tmp_path / "run/last.npz")
    for k, a in net.state().items():
        np.testing.assert_array_equal(a, saved[k])
    # predict uses them: other running statistics, other outputs
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    before = single.predict(net, x)
    net.state()["layers.1.running_mean"][...] += 1
    assert not np.allclose(single.predict(net, x), before)

    fresh = prepare(cfg, src, weights=(saved, "w.npz"))
    for k, a in fresh.net.state().items():
        np.testing.assert_array_equal(a, saved[k])
    del saved["layers.1.running_var"]
    with pytest.raises(UserError, match="no array 'layers.1.running_var' for this net's state"):
        prepare(cfg, src, weights=(saved, "w.npz"))
