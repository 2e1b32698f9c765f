"""MaxPool2d: against a slow numpy reference, cases worked by hand, ties, finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build
from helpers import run_layer as run
from references import maxpool as reference
from references import pair

from nettrain.layers.base import ShapeError
from nettrain.layers.maxpool2d import MaxPool2d

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
@pytest.mark.parametrize("case", CASES)
def test_matches_reference_with_ties(case, dtype):
    """Without ties in test_layer_table.py; here small integers make ties common, so that the
    tie rule is checked on every window shape."""
    N, C, H, W, size, stride = case
    layer = build(MaxPool2d, (C, H, W), dtype=dtype, size=size, stride=stride)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (N, C, H, W)).astype(dtype)
    dy = rng.standard_normal((N, *layer.out_shape)).astype(dtype)
    ref_y, ref_dx = reference(x, dy, pair(size), pair(stride or size))

    y, dx = run(layer, x, dy)
    np.testing.assert_array_equal(y, ref_y)
    tol = 1e-12 if dtype == np.float64 else 1e-5  # overlapping windows add in float32
    np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)
    evaluated, kept = layer.forward(x, train=False)  # no argmax written or kept
    assert kept is None and np.array_equal(evaluated, ref_y)


def test_by_hand():
    layer = build(MaxPool2d, (1, 4, 4), size=2)
    x = np.array([[[[1, 5, 2, 0], [3, 4, 8, 7], [9, 0, 1, 1], [2, 6, 3, 4]]]], dtype=float)
    y, dx = run(layer, x, [[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(y, [[[[5, 8], [9, 4]]]])
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
    _, dx = run(layer, [[window]], np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx, [[expected]])


def test_overlapping_windows_add_up():
    # size 3, stride 2 on 5x5: four windows, all sharing the centre, which holds the max
    layer = build(MaxPool2d, (1, 5, 5), size=3, stride=2)
    x = np.arange(25.0).reshape(1, 1, 5, 5) / 100
    x[0, 0, 2, 2] = 10
    y, dx = run(layer, x, [[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 10.0))
    expected = np.zeros((1, 1, 5, 5))
    expected[0, 0, 2, 2] = 10
    np.testing.assert_array_equal(dx, expected)


def test_output_rounds_down():
    layer = build(MaxPool2d, (1, 5, 5), size=2)
    assert layer.out_shape == (1, 2, 2)
    x = np.arange(25.0).reshape(1, 1, 5, 5)  # the maxima sit in the dropped last row/column
    y, dx = run(layer, x, np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(y, [[[[6, 8], [16, 18]]]])
    assert dx[0, 0, 4].sum() == 0 and dx[0, 0, :, 4].sum() == 0 and dx.sum() == 4


def test_kinks_mark_the_switch():
    layer = build(MaxPool2d, (1, 2, 2), size=2)
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    _, saved = layer.forward(x)
    kinks = layer.kinks(saved)
    kinks[...] = -1  # a copy: what backward uses is untouched
    np.testing.assert_array_equal(layer.kinks(saved), [[[[3]]]])
    x[0, 0, 0, 0] = 5
    np.testing.assert_array_equal(layer.kinks(layer.forward(x)[1]), [[[[0]]]])


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
