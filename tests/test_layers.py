"""Dense and activation layers: cases worked by hand, and gradients against finite differences."""

import numpy as np
import pytest
from helpers import build, layer_grad_errors

from nettrain.layers import LAYERS
from nettrain.layers.dense import Dense
from nettrain.layers.relu import Relu
from nettrain.layers.sigmoid import Sigmoid
from nettrain.layers.softmax import Softmax
from nettrain.layers.tanh import Tanh


def test_dense_by_hand():
    layer = build(Dense, (2,), units=3)
    layer.params["weight"][...] = [[1, 0, -1], [2, 1, 0]]
    layer.params["bias"][...] = [0.5, 0, -0.5]
    y = layer.forward(np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(y, [[5.5, 2.0, -1.5]])
    dx = layer.backward(np.array([[1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(dx, [[0.0, 3.0]])
    np.testing.assert_allclose(layer.grads["weight"], [[1, 1, 1], [2, 2, 2]])
    np.testing.assert_allclose(layer.grads["bias"], [1, 1, 1])


def test_dense_weight_layout_and_flatten_order():
    """weight is (in, out); a (C, H, W) input is flattened in C, H, W order (SPEC.md)."""
    layer = build(Dense, (2, 2, 3), units=4, bias=False)
    assert layer.params["weight"].shape == (12, 4)
    assert "bias" not in layer.params
    x = np.random.default_rng(0).standard_normal((5, 2, 2, 3))
    expected = x.reshape(5, 12) @ layer.params["weight"]
    np.testing.assert_allclose(layer.forward(x), expected)
    assert layer.backward(np.ones((5, 4))).shape == (5, 2, 2, 3)


@pytest.mark.parametrize("in_shape,units,bias", [((3,), 2, True), ((2, 3, 2), 5, False)])
def test_dense_gradcheck(in_shape, units, bias):
    rng = np.random.default_rng(1)
    layer = build(Dense, in_shape, units=units, bias=bias)
    if bias:
        layer.params["bias"][...] = rng.standard_normal(units)
    errors = layer_grad_errors(layer, rng.standard_normal((4, *in_shape)), rng)
    assert max(errors.values()) < 1e-7, errors


def test_activations_by_hand():
    s = np.array([[0.0, np.log(3.0)]])
    np.testing.assert_allclose(build(Softmax, (2,)).forward(s), [[0.25, 0.75]])
    sig = build(Sigmoid, (2,))
    np.testing.assert_allclose(sig.forward(np.array([[0.0, 0.0]])), [[0.5, 0.5]])
    np.testing.assert_allclose(sig.backward(np.array([[1.0, 2.0]])), [[0.25, 0.5]])
    tanh = build(Tanh, (2,))
    np.testing.assert_allclose(tanh.forward(np.array([[0.0, 0.0]])), [[0.0, 0.0]])
    np.testing.assert_allclose(tanh.backward(np.array([[3.0, 1.0]])), [[3.0, 1.0]])
    relu = build(Relu, (2,))
    np.testing.assert_allclose(relu.forward(np.array([[-1.0, 2.0]])), [[0.0, 2.0]])
    np.testing.assert_allclose(relu.backward(np.array([[5.0, 7.0]])), [[0.0, 7.0]])


def test_softmax_jacobian_by_hand():
    """dL/ds_j = sum_i dL/do_i o_i (delta_ij - o_j) with the full Jacobian written out."""
    layer = build(Softmax, (3,))
    s = np.array([[0.2, -1.0, 0.5]])
    o = layer.forward(s)[0]
    dy = np.array([0.3, -0.7, 1.1])
    jacobian = np.diag(o) - np.outer(o, o)
    np.testing.assert_allclose(layer.backward(dy[None])[0], jacobian.T @ dy)


def test_softmax_is_stable_for_huge_inputs():
    y = build(Softmax, (3,)).forward(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(y, [[0.5, 0.5, 0.0]])


def test_sigmoid_never_overflows():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = build(Sigmoid, (3,)).forward(np.array([[-1000.0, 0.0, 1000.0]]))
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])


@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "relu", "linear", "softmax"])
@pytest.mark.parametrize("shape", [(5,), (2, 3, 3)])
def test_activation_gradcheck(kind, shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, *shape))
    x[np.abs(x) < 0.05] = 0.5  # keep relu away from its kink at 0
    errors = layer_grad_errors(build(LAYERS[kind], shape), x, rng)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "relu", "linear", "softmax"])
def test_activation_keeps_float32(kind):
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    layer = build(LAYERS[kind], (4,), dtype=np.float32)
    assert layer.forward(x).dtype == np.float32
    assert layer.backward(x).dtype == np.float32
