"""MaxPool2d: against a slow numpy reference, cases worked by hand, ties, finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build, layer_grad_errors

from nettrain.layers.base import ShapeError
from nettrain.layers.maxpool2d import MaxPool2d


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference(x, dy, size, stride):
    """y and dx for dL/dy = dy, one window at a time.

    np.argmax over the window flattened in row-major order returns the first maximum, which is
    exactly the tie rule of docs/reference.md.
    """
    (kh, kw), (sh, sw) = size, stride
    N, C, H, W = x.shape
    OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
    y = np.zeros((N, C, OH, OW))
    dx = np.zeros(x.shape)
    for oh in range(OH):
        for ow in range(OW):
            rows, cols = slice(oh * sh, oh * sh + kh), slice(ow * sw, ow * sw + kw)
            window = x[:, :, rows, cols].reshape(N, C, kh * kw)
            first = np.argmax(window, axis=2)
            y[:, :, oh, ow] = np.take_along_axis(window, first[..., None], axis=2)[..., 0]
            n, c = np.indices((N, C))
            dx[n, c, rows.start + first // kw, cols.start + first % kw] += dy[:, :, oh, ow]
    return y, dx


# (batch, channels, H, W, size, stride)
CASES = [
    (1, 1, 4, 4, 2, None),
    (2, 3, 7, 5, 2, None),  # the last row and column fill no window: dropped
    (3, 2, 9, 9, 3, 2),  # overlapping windows
    (2, 1, 6, 8, [2, 3], [1, 2]),
    (1, 2, 5, 5, [3, 1], 1),
    (2, 2, 4, 4, 4, None),  # one window over the whole plane
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, ties, dtype):
    N, C, H, W, size, stride = case
    layer = build(MaxPool2d, (C, H, W), dtype=dtype, size=size, stride=stride)
    rng = np.random.default_rng(1)
    # small integers make ties common, so the tie rule is checked on every window shape
    x = rng.integers(0, 3, (N, C, H, W)) if ties else rng.standard_normal((N, C, H, W))
    x = x.astype(dtype)
    dy = rng.standard_normal((N, *layer.out_shape)).astype(dtype)
    ref_y, ref_dx = reference(x, dy, pair(size), pair(stride or size))

    y = layer.forward(x)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(y, ref_y)
    tol = 1e-12 if dtype == np.float64 else 1e-5  # overlapping windows add in float32
    np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)


def test_by_hand():
    layer = build(MaxPool2d, (1, 4, 4), size=2)
    x = np.array([[[[1, 5, 2, 0], [3, 4, 8, 7], [9, 0, 1, 1], [2, 6, 3, 4]]]], dtype=float)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, [[[[5, 8], [9, 4]]]])
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = [[[[0, 1, 0, 0], [0, 0, 2, 0], [3, 0, 0, 0], [0, 0, 0, 4]]]]
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize(
    "window, expected",
    [
        ([[1, 1], [1, 1]], [[1, 0], [0, 0]]),
        ([[0, 3], [3, 1]], [[0, 1], [0, 0]]),
        ([[0, 0], [3, 3]], [[0, 0], [1, 0]]),
    ],
)
def test_tie_goes_to_first_in_row_major_order(window, expected):
    layer = build(MaxPool2d, (1, 2, 2), size=2)
    layer.forward(np.array([[window]], dtype=float))
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1))), [[expected]])


def test_overlapping_windows_add_up():
    # size 3, stride 2 on 5x5: four windows, all sharing the centre, which holds the max
    layer = build(MaxPool2d, (1, 5, 5), size=3, stride=2)
    x = np.arange(25.0).reshape(1, 1, 5, 5) / 100
    x[0, 0, 2, 2] = 10
    np.testing.assert_array_equal(layer.forward(x), np.full((1, 1, 2, 2), 10.0))
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, 2, 2] = 10
    np.testing.assert_array_equal(dx, expected)


def test_output_rounds_down():
    layer = build(MaxPool2d, (1, 5, 5), size=2)
    assert layer.out_shape == (1, 2, 2)
    x = np.arange(25.0).reshape(1, 1, 5, 5)  # the maxima sit in the dropped last row/column
    np.testing.assert_array_equal(layer.forward(x), [[[[6, 8], [16, 18]]]])
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 4].sum() == 0 and dx[0, 0, :, 4].sum() == 0 and dx.sum() == 4


@pytest.mark.parametrize(
    "in_shape, size, stride",
    [((2, 6, 6), 2, None), ((1, 7, 6), 3, 2), ((2, 5, 7), [2, 3], [1, 2])],
)
def test_gradcheck(in_shape, size, stride):
    layer = build(MaxPool2d, in_shape, size=size, stride=stride)
    rng = np.random.default_rng(3)
    n = 2 * int(np.prod(in_shape))
    # distinct values 0.01 apart: a step of 1e-6 never changes which input is a window's max
    x = rng.permutation(n).reshape(2, *in_shape) * 0.01
    layer.forward(x)
    before = layer.kinks()
    errors = layer_grad_errors(layer, x, rng)
    assert errors["input"] < 1e-6, errors
    np.testing.assert_array_equal(layer.kinks(), before)


def test_kinks_mark_the_switch():
    layer = build(MaxPool2d, (1, 2, 2), size=2)
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    layer.forward(x)
    kinks = layer.kinks()
    kinks[...] = -1  # a copy: the layer's own record is untouched
    np.testing.assert_array_equal(layer.kinks(), [[[[3]]]])
    x[0, 0, 0, 0] = 5
    layer.forward(x)
    np.testing.assert_array_equal(layer.kinks(), [[[[0]]]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype(dtype):
    layer = build(MaxPool2d, (2, 6, 6), dtype=dtype, size=2)
    x = np.random.default_rng(4).standard_normal((2, 2, 6, 6)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == layer.backward(np.ones_like(y)).dtype == dtype


def test_stride_defaults_to_size_and_summary():
    layer = build(MaxPool2d, (8, 28, 28), size=[2, 2])
    assert layer.out_shape == (8, 14, 14)
    assert layer.describe() == "maxpool2d 2x2 s2"
    assert layer.flops() == 4 * 8 * 14 * 14
    assert layer.params == {}


def test_window_larger_than_input():
    with pytest.raises(ShapeError, match="window 3x3 is larger than its input 2x5"):
        build(MaxPool2d, (1, 2, 5), size=3)


def test_flat_input():
    with pytest.raises(ShapeError, match=r"\(channels, height, width\).*\(784,\).*\[1, 28, 28\]"):
        build(MaxPool2d, (784,), size=2)
