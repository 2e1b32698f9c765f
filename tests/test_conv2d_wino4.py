"""Winograd F(4x4, 3x3) (wino4.py), the inference forward of 3x3 stride-1 layers: a case worked
by hand, the slow reference in float64 and float32, the same bits on any thread count, and where
the plan (wino4_plan.py) uses it."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build, layer_grad_errors, same_bits_on_1_and_2_threads
from references import conv_forward
from test_conv2d_kernels import check, layer_and_data

from nettrain.layers.conv2d import wino4
from nettrain.layers.conv2d.layer import Conv2d
from nettrain.layers.conv2d.plan import plan
from nettrain.runtime import vectors


def test_ones_count_the_taps_inside_the_image():
    """All-ones 2-channel 5x5 input and 3x3 filters, padding 1: each output is 2 x the taps that
    land inside the image, 9 inside, 6 on an edge, 4 in a corner; plus the bias, then relu."""
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    taps = np.full((5, 5), 9.0)
    taps[[0, -1], :] = 6
    taps[:, [0, -1]] = 6
    taps[[0, 0, -1, -1], [0, -1, 0, -1]] = 4
    bias = np.array([0.0, 1.0, -30.0])
    y = wino4.forward(x, w, bias, (1, 1), True, "wino8x32")
    expected = np.stack([2 * taps, 2 * taps + 1, np.zeros((5, 5))])
    np.testing.assert_allclose(y[0], expected, rtol=1e-12, atol=1e-12)


# (C, H, W, filters, padding, N): outputs that 4x4 tiles cut off (odd, 2 past a multiple of 4),
# paddings 0-2, 9 filters (a last block of 8 overlapping the first), 5 and 3 (the 3-filter
# product tiles); batches of 40 make units of several samples whose chunks of tile columns hold
# the tiles of two or more samples
CASES = [
    (5, 10, 12, 9, (1, 1), 3),
    (4, 7, 6, 4, (0, 0), 3),
    (6, 5, 9, 5, (2, 1), 3),
    (3, 9, 9, 3, (0, 2), 2),
    (4, 7, 6, 8, (1, 1), 40),
    (8, 18, 19, 16, (1, 1), 5),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("gemm", ["wino8x32", "wino3x32"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_the_reference(case, gemm, dtype):
    """Both product tiles, with and without relu; float32 within 10x F(2x2)'s bound."""
    C, H, W, F, padding, N = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w, b = rng.standard_normal((F, C, 3, 3)).astype(dtype), rng.standard_normal(F).astype(dtype)
    ref = conv_forward(x.astype(np.float64), w.astype(np.float64), b, (1, 1), padding)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for relu in (False, True):
        y = wino4.forward(x, w, b, padding, relu, gemm)
        assert y.dtype == dtype
        expected = np.maximum(ref, 0) if relu else ref
        np.testing.assert_allclose(y, expected, rtol=tol, atol=tol * np.abs(ref).max())


def test_same_bits_on_1_and_2_threads():
    """Every output is its own tile's: units and threads change nothing."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 8, 16, 16)).astype(np.float32)
    w, b = rng.standard_normal((16, 8, 3, 3)).astype(np.float32), np.zeros(16, np.float32)
    same_bits_on_1_and_2_threads(lambda: (wino4.forward(x, w, b, (1, 1), True, "wino8x32"),))


def test_an_evaluation_forward_runs_it_and_agrees_with_training():
    """A layer planned for it: train=False through F(4x4), train=True through the training
    kernels, the same outputs in float64."""
    layer = build(Conv2d, (8, 16, 16), filters=8, kernel=3, padding="same", fused="relu")
    assert layer.plan.inference is not None
    x = np.random.default_rng(6).standard_normal((3, 8, 16, 16))
    y_eval, saved = layer.forward(x, train=False)
    y_train, _ = layer.forward(x, train=True)
    assert saved is None
    np.testing.assert_allclose(y_eval, y_train, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "in_shape, F, stride, unit, conv, uses",
    [
        ((16, 32, 32), 16, 1, vectors.AVX512, "auto", True),
        ((8, 16, 16), 8, 1, vectors.AVX512, "auto", True),
        ((64, 8, 8), 64, 1, vectors.AVX512, "auto", False),  # small outputs: slower there
        ((64, 8, 8), 64, 1, vectors.AVX2, "auto", True),
        ((4, 32, 32), 8, 1, vectors.AVX2, "auto", False),  # few channels
        ((16, 32, 32), 16, 2, vectors.AVX512, "auto", False),
        ((16, 32, 32), 16, 1, vectors.OTHER, "auto", False),
        ((16, 32, 32), 16, 1, vectors.AVX512, "no-winograd", False),
    ],
)
def test_where_the_plan_uses_it(in_shape, F, stride, unit, conv, uses):
    p = plan(in_shape, F, (3, 3), (stride, stride), (1, 1), np.float32, unit, conv)
    assert (p.inference is not None) == uses
    if uses:
        gemm = "wino8x32" if unit == vectors.AVX512 else "wino3x32"
        assert p.inference.kernel == f"wino4:{gemm}"
        assert any(line.startswith("inference") for line in p.lines())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H, W", [(10, 12), (8, 9)])
def test_training_through_it_matches_the_reference(H, W, dtype, monkeypatch):
    """NETTRAIN_CONV=wino4: the training forward and the input gradient (dy masked by the fused
    relu) through F(4x4), the weight gradient direct (or packed, for the small images)."""
    monkeypatch.setenv("NETTRAIN_CONV", "wino4")
    layer, x, dy = layer_and_data(monkeypatch, vectors.unit(), dtype, 6, H, W, 9, "same", 3)
    p = layer.plan
    assert p.winograd and p.direct and p.forward.kernel.startswith("wino4:")
    assert p.input_grad.kernel == p.forward.kernel
    tol = 1e-12 if dtype == np.float64 else 1e-4
    check(layer, x, dy, rtol=tol, atol=tol)


def test_training_through_it_passes_gradcheck(monkeypatch):
    """Finite differences on a small float64 layer (their own noise: the direct kernels 2.6e-7
    on this layer, up to 1.7e-6 on others)."""
    monkeypatch.setenv("NETTRAIN_CONV", "wino4")
    layer = build(Conv2d, (4, 6, 5), filters=5, kernel=3, padding="same")
    assert layer.plan.forward.kernel.startswith("wino4:")
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 5))
    errors = layer_grad_errors(layer, x, np.random.default_rng(2))
    assert max(errors.values()) < 1e-5, errors
