"""The forward kernel vectorised over filters (vec.py), forced onto 5x5 layers as the AVX2 plan
puts it there, against the slow references in float64 and float32 with a relu fused in."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build, same_bits_on_1_and_2_threads
from test_conv2d_kernels import check

from nettrain.layers.conv2d import vec
from nettrain.layers.conv2d.layer import Conv2d
from nettrain.runtime import vectors

# (C, H, W, filters, padding): LeNet's second layer; 18 filters (a last block of 16 overlapping
# the first); outputs of odd rows (9x7) whose blocks of 4 cross rows; 'valid' padding
CASES = [(8, 14, 14, 16, 2), (3, 9, 7, 18, 2), (2, 8, 11, 16, 0)]


def five_by_five(monkeypatch, dtype, C, H, W, F, padding, N=3):
    """A conv2d 5x5 planned for AVX2 (its forward pass through vec16x4), random bias, x, dy."""
    monkeypatch.setattr(vectors, "unit", lambda: vectors.AVX2)
    layer = build(Conv2d, (C, H, W), dtype=dtype, filters=F, kernel=5, padding=padding,
                  fused="relu")  # fmt: skip
    assert [s.kernel for s in layer.plan.forward.steps] == ["vec16x4"]
    rng = np.random.default_rng(5)
    layer.params["bias"][...] = rng.standard_normal(F) * 0.1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    return layer, x, rng.standard_normal((N, *layer.out_shape)).astype(dtype)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vec_matches_the_reference(case, dtype, monkeypatch):
    layer, x, dy = five_by_five(monkeypatch, dtype, *case)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    check(layer, x, dy, rtol=tol, atol=tol)


def test_a_case_worked_by_hand():
    """All-ones input and weights, zero bias: each output counts the taps inside the image (one
    5x5 channel under a 5x5 'same' window: 3 x 3 at a corner, 5 x 5 at the centre), each filter
    once more than the one before from its bias."""
    x = np.ones((1, 1, 5, 5))
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))).reshape(1, -1)
    offsets = np.array([i * 9 + j for i in range(5) for j in range(5)], dtype=np.int64)
    y, bias = np.empty((1, 16, 5, 5)), np.arange(16.0)
    vec.FORWARD["vec16x4"][2](xp, np.ones((25, 16)), bias, offsets, False, 5, 9, y, 0, 16)
    inside = np.array([3, 4, 5, 4, 3], dtype=float)
    assert np.array_equal(y[0], np.outer(inside, inside) + bias[:, None, None])


def test_vec_gives_the_same_bits_on_1_and_2_threads(monkeypatch):
    layer, x, _ = five_by_five(monkeypatch, np.float32, *CASES[0])
    same_bits_on_1_and_2_threads(lambda: (layer.forward(x, train=False)[0],))


def test_the_plan_uses_it_for_avx2_5x5_layers_only():
    from nettrain.layers.conv2d.plan import plan

    def forward(C, F, k, unit):
        return plan((C, 14, 14), F, (k, k), (1, 1), (k // 2, k // 2), "float32", unit).forward

    assert forward(8, 16, 5, vectors.AVX2).kernel == "vec16x4"
    assert forward(8, 16, 5, vectors.AVX512).kernel != "vec16x4"
    assert forward(8, 15, 5, vectors.AVX2).kernel != "vec16x4"  # fewer filters than a block
    assert "vec" not in forward(16, 16, 3, vectors.AVX2).kernel  # 3x3: the tiles measured faster
    assert "25 taps" in forward(8, 16, 5, vectors.AVX2).reason
