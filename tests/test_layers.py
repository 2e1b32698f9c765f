"""Dense and activation layers: cases worked by hand, and gradients against finite differences."""

import numpy as np
import pytest
from helpers import build
from helpers import run_layer as run

from nettrain.layers.dense import Dense
from nettrain.layers.leaky_relu import LeakyRelu
from nettrain.layers.relu import Relu
from nettrain.layers.sigmoid import Sigmoid
from nettrain.layers.softmax import Softmax
from nettrain.layers.tanh import Tanh


def test_dense_by_hand():
    layer = build(Dense, (2,), units=3)
    layer.params["weight"][...] = [[1, 0, -1], [2, 1, 0]]
    layer.params["bias"][...] = [0.5, 0, -0.5]
    y, dx = run(layer, [[1.0, 2.0]], [[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(y, [[5.5, 2.0, -1.5]])
    np.testing.assert_allclose(dx, [[0.0, 3.0]])
    np.testing.assert_allclose(layer.grads["weight"], [[1, 1, 1], [2, 2, 2]])
    np.testing.assert_allclose(layer.grads["bias"], [1, 1, 1])


def test_dense_weight_layout_and_flatten_order():
    """weight is (in, out); a (C, H, W) input is flattened in C, H, W order (docs/maths.md)."""
    layer = build(Dense, (2, 2, 3), units=4, bias=False)
    assert layer.params["weight"].shape == (12, 4)
    assert "bias" not in layer.params
    x = np.random.default_rng(0).standard_normal((5, 2, 2, 3))
    expected = x.reshape(5, 12) @ layer.params["weight"]
    y, dx = run(layer, x, np.ones((5, 4)))
    np.testing.assert_allclose(y, expected)
    assert dx.shape == (5, 2, 2, 3)


def test_activations_by_hand():
    s = np.array([[0.0, np.log(3.0)]])
    np.testing.assert_allclose(run(build(Softmax, (2,)), s)[0], [[0.25, 0.75]])
    y, dx = run(build(Sigmoid, (2,)), [[0.0, 0.0]], [[1.0, 2.0]])
    np.testing.assert_allclose(y, [[0.5, 0.5]])
    np.testing.assert_allclose(dx, [[0.25, 0.5]])
    y, dx = run(build(Tanh, (2,)), [[0.0, 0.0]], [[3.0, 1.0]])
    np.testing.assert_allclose(y, [[0.0, 0.0]])
    np.testing.assert_allclose(dx, [[3.0, 1.0]])
    y, dx = run(build(Relu, (2,)), [[-1.0, 2.0]], [[5.0, 7.0]])
    np.testing.assert_allclose(y, [[0.0, 2.0]])
    np.testing.assert_allclose(dx, [[0.0, 7.0]])
    y, dx = run(build(LeakyRelu, (3,)), [[-2.0, 0.0, 2.0]], [[5.0, 7.0, 9.0]])
    np.testing.assert_allclose(y, [[-0.02, 0.0, 2.0]])
    np.testing.assert_allclose(dx, [[0.05, 0.07, 9.0]])  # at 0: the slope, as PyTorch
    y, dx = run(build(LeakyRelu, (2,), negative_slope=0.5), [[-2.0, 4.0]], [[1.0, 1.0]])
    np.testing.assert_allclose(y, [[-1.0, 4.0]])
    np.testing.assert_allclose(dx, [[0.5, 1.0]])


def test_softmax_jacobian_by_hand():
    """dL/ds_j = sum_i dL/do_i o_i (delta_ij - o_j) with the full Jacobian written out."""
    layer = build(Softmax, (3,))
    s = np.array([[0.2, -1.0, 0.5]])
    dy = np.array([0.3, -0.7, 1.1])
    (o,), (dx,) = run(layer, s, dy[None])
    jacobian = np.diag(o) - np.outer(o, o)
    np.testing.assert_allclose(dx, jacobian.T @ dy)


def test_softmax_is_stable_for_huge_inputs():
    y, _ = run(build(Softmax, (3,)), [[1000.0, 1000.0, -1000.0]])
    np.testing.assert_allclose(y, [[0.5, 0.5, 0.0]])


def test_sigmoid_never_overflows():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, _ = run(build(Sigmoid, (3,)), [[-1000.0, 0.0, 1000.0]])
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])


def test_tanh_float32_within_5_ulp_of_the_exact_value():
    """float32 tanh is a rational approximation (nettrain/layers/tanh.py); float64 is numpy's."""
    s = np.concatenate([np.linspace(-12, 12, 400_001), np.logspace(-9, 1, 20_001)])
    s = np.concatenate([s, -s]).astype(np.float32)
    y = run(build(Tanh, s.shape, dtype=np.float32), s[None])[0][0]
    exact = np.tanh(s.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(y - exact) / ulp) <= 5
    assert np.all(np.abs(y) <= 1) and np.all(np.sign(y) == np.sign(s))
    x64 = s.astype(np.float64)[None]
    np.testing.assert_array_equal(run(build(Tanh, s.shape), x64)[0], np.tanh(x64))


def test_tanh_float32_special_values():
    s = np.array([[np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, 9.0, -9.5]], dtype=np.float32)
    y, _ = run(build(Tanh, (8,), dtype=np.float32), s)
    expected = np.array([1, -1, 0, 0, 1e-30, 1, -1], dtype=np.float32)
    np.testing.assert_array_equal(y[0, [0, 1, 3, 4, 5, 6, 7]], expected)
    assert np.isnan(y[0, 2]) and np.signbit(y[0, 4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_backward_is_dy_times_one_minus_y_squared(dtype):
    rng = np.random.default_rng(4)
    layer = build(Tanh, (3, 5), dtype=dtype)
    dy = rng.standard_normal((4, 3, 5)).astype(dtype)
    y, dx = run(layer, rng.standard_normal((4, 3, 5)), dy)
    np.testing.assert_array_equal(dx, dy * (1 - y * y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_with_tanh_fused_in_matches_the_two_layers(dtype, monkeypatch):
    from nettrain.net import network

    specs = [{"type": "dense", "units": 6, "activation": "tanh", "bias": True, "init": "auto"}]
    model = {"layers": specs, "loss": "squared_error"}
    fused = network.build_network(model, dtype, (5,))
    assert [(layer.kind, layer.fused) for layer in fused.layers] == [("dense", "tanh")]
    monkeypatch.setattr(Dense, "FUSABLE", ())
    plain = network.build_network(model, dtype, (5,))
    assert [(layer.kind, layer.fused) for layer in plain.layers] == [
        ("dense", None),
        ("tanh", None),
    ]
    rng = np.random.default_rng(5)
    bias = rng.standard_normal(6)
    for net in (fused, plain):
        net.init_params(np.random.default_rng(0))
        net.layers[0].params["bias"][...] = bias
    x = rng.standard_normal((4, 5)).astype(dtype)
    t = rng.standard_normal((4, 6)).astype(dtype)
    results = [net.loss_and_backward(x, t) for net in (fused, plain)]
    for a, b in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(a, b)
    for name, g in fused.grads().items():
        np.testing.assert_array_equal(g, plain.grads()[name])
