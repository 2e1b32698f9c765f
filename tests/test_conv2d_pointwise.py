"""1x1 conv2d layers without padding, one BLAS product a sample (nettrain/layers/conv2d/
pointwise.py): a case by hand, forward and both gradients against the slow references
(tests/references.py) at strides 1, 2 and 3, with and without a fused relu and a bias, in float64
and float32, finite differences, and the same bits on one thread and two."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build, layer_grad_errors
from helpers import run_layer as run
from references import conv_backward, conv_forward, pair

from nettrain.layers.conv2d.layer import Conv2d
from nettrain.runtime.threads import configure

# (N, C, H, W, filters, stride): odd sizes the stride does not divide, one axis strided, one
# channel, many filters on a small image (where im2col went before)
CASES = [
    (3, 5, 7, 6, 4, 1),
    (2, 4, 11, 13, 6, 2),
    (2, 3, 10, 7, 5, [1, 3]),
    (4, 1, 5, 5, 3, 3),
    (2, 32, 4, 4, 64, 1),
]


def layer_for(case, dtype=np.float64, fused=None, bias=True):
    N, C, H, W, F, stride = case
    layer = build(Conv2d, (C, H, W), dtype=dtype, filters=F, kernel=1, stride=stride, bias=bias,
                  fused=fused)  # fmt: skip
    assert layer.plan.pointwise and not layer.direct
    return layer


def test_a_case_by_hand():
    """Two channels into one filter, weight [2, -1], bias 0.5, stride 2 on a 3x3 image: y keeps
    the four corners; dx is the weight at the corners and zero elsewhere."""
    layer = layer_for((1, 2, 3, 3, 1, 2))
    layer.params["weight"][...] = np.array([2.0, -1.0]).reshape(1, 2, 1, 1)
    layer.params["bias"][...] = 0.5
    x = np.stack([np.arange(9.0).reshape(3, 3), np.ones((3, 3))])[None]
    y, dx = run(layer, x, np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(y[0, 0], [[2 * 0 - 1 + 0.5, 2 * 2 - 1 + 0.5],
                                            [2 * 6 - 1 + 0.5, 2 * 8 - 1 + 0.5]])  # fmt: skip
    corners = np.array([[1.0, 0, 1], [0, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(dx[0], [2 * corners, -corners])
    np.testing.assert_array_equal(layer.grads["weight"].ravel(), [0 + 2 + 6 + 8, 4])
    np.testing.assert_array_equal(layer.grads["bias"], [4])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fused, bias", [(None, True), ("relu", True), ("relu", False)])
def test_pointwise_matches_the_reference(case, dtype, fused, bias):
    layer = layer_for(case, dtype, fused, bias)
    rng = np.random.default_rng(3)
    F, stride = case[4], pair(case[5])
    b = rng.standard_normal(F) * 0.5 if bias else np.zeros(F)
    if bias:
        layer.params["bias"][...] = b
    x = rng.standard_normal((case[0], *case[1:4]))
    dy = rng.standard_normal((case[0], *layer.out_shape))
    w = layer.params["weight"].astype(np.float64)
    s_ref = conv_forward(x, w, b, stride, (0, 0))
    mask = s_ref > 0 if fused else np.ones_like(s_ref, dtype=bool)
    y, dx = run(layer, x, dy)
    ref_dx, ref_dW, ref_db = conv_backward(x, w, dy * mask, stride, (0, 0))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y, s_ref * mask, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.grads["weight"], ref_dW, rtol=tol, atol=tol)
    if bias:
        np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES[:3])
def test_pointwise_gradcheck(case):
    layer = layer_for(case)
    layer.params["bias"][...] = 0.1
    x = np.random.default_rng(1).standard_normal((case[0], *case[1:4]))
    errors = layer_grad_errors(layer, x, np.random.default_rng(2), h=1e-5)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < 1e-7, errors


def test_pointwise_gives_the_same_bits_on_one_thread_and_two():
    """float32, 64 samples, relu fused, stride 1 and 2: y, dx and the gradients, bit for bit."""
    threads, results = None, []
    for count in (1, 2):
        run_results = []
        for stride in (1, 2):
            layer = layer_for((64, 16, 14, 14, 32, stride), np.float32, "relu")
            rng = np.random.default_rng(5)
            x = rng.standard_normal((64, 16, 14, 14)).astype(np.float32)
            dy = rng.standard_normal((64, *layer.out_shape)).astype(np.float32)
            configure(count)
            try:
                y, dx = run(layer, x, dy)
            finally:
                configure(threads)
            run_results += [y, dx, layer.grads["weight"].copy(), layer.grads["bias"].copy()]
        results.append(run_results)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
