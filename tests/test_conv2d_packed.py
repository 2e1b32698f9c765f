"""The packed layout (nettrain/layers/conv2d/packed.py): 'same' stride-1 conv2d layers whose
whole batch runs as one wide run through the register tiles and the weight gradient, against
the slow references (forward, input gradient, weight and bias gradients; float64 and float32;
relu fused or not), on awkward shapes, and the same bits for 1 and 2 threads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import build, same_bits_on_1_and_2_threads
from helpers import run_layer as run
from references import conv_backward, conv_forward

from nettrain.layers.conv2d import packed, tile
from nettrain.layers.conv2d.layer import Conv2d
from nettrain.layers.conv2d.plan import Pass, Step
from nettrain.runtime import vectors

TILES = {vectors.AVX512: "tile4x48", vectors.AVX2: "tile3x32"}


def packed_layer(unit, C, H, W, F, N, kernel, dtype, relu, seed=0):
    """A conv2d with 'same' padding whose plan is forced to the packed tiles of ``unit``
    (channels a multiple of the tile's height), random bias, x and dy."""
    layer = build(Conv2d, (C, H, W), dtype=dtype, filters=F, kernel=kernel, padding="same",
                  fused="relu" if relu else None, seed=seed)  # fmt: skip
    name = TILES[unit]
    layer.plan = dataclasses.replace(
        layer.plan, direct=True, packed=True,
        forward=Pass(name, "test", (Step(name, 0, F),)),
        input_grad=Pass(name, "test", (Step(name, 0, C),)),
        weight_grad=Pass("wgrad", "test", tuple(Step(f"wgrad{w}", a, b) for w, a, b in
                                                 [(4, 0, F // 4 * 4), (2, F // 4 * 4, F // 2 * 2),
                                                  (1, F // 2 * 2, F)] if b > a)),
    )  # fmt: skip
    layer.direct = True
    rng = np.random.default_rng(seed + 1)
    layer.params["bias"][...] = rng.standard_normal(F) * 0.1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    dy = rng.standard_normal((N, F, H, W)).astype(dtype)
    return layer, x, dy


def check(layer, x, dy, relu, tol):
    k, p = layer.k, layer.p
    w = layer.params["weight"].astype(np.float64)
    b = layer.params["bias"].astype(np.float64)
    s = conv_forward(x.astype(np.float64), w, b, (1, 1), p)
    y, dx = run(layer, x, dy)
    np.testing.assert_allclose(y, np.maximum(s, 0) if relu else s, rtol=tol, atol=tol)
    d = dy * (s > 0) if relu else dy
    ref_dx, ref_dW, ref_db = conv_backward(x.astype(np.float64), w, d, (1, 1), p)
    np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.grads["weight"], ref_dW, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=tol, atol=tol)
    assert k == layer.k


# (C, H, W, F, N, kernel): 1x1 and 2x2 images, 7x7 and 8x8, odd widths, batch 1, 5x5 and 3x1
# kernels; channels that leave a last tile overlapping the one before (13 and 15 under 4x48, 10
# and 13 under 3x32) and filters that leave pairs and singles to the weight gradient (13, 15, 18);
# whole runs just under and over a tile
CASES = [
    (12, 1, 1, 12, 48, 3),  # run 95
    (12, 2, 2, 12, 5, 3),
    (12, 7, 7, 12, 3, 3),
    (12, 8, 8, 24, 2, 3),
    (12, 5, 9, 15, 4, 3),
    (13, 3, 5, 10, 3, 3),
    (10, 4, 4, 13, 2, 3),
    (24, 7, 5, 12, 1, 3),
    (12, 6, 7, 18, 2, 5),
    (3, 4, 9, 15, 3, (3, 1)),
    (12, 3, 3, 12, 3, 3),  # run 43: under a 4x48 tile, over a 3x32 one
    (12, 3, 4, 12, 3, 3),  # run 51: just over both
    (12, 1, 1, 12, 24, 3),  # run 47: one under a 4x48 tile
    (12, 2, 15, 12, 2, 3),  # run 79: a 3x32 tile's last overlaps
    (12, 3, 11, 12, 3, (1, 9)),  # no zero rows between samples (ph = 0)
    (12, 4, 16, 12, 2, (1, 3)),
]


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("unit", [vectors.AVX512, vectors.AVX2])
@pytest.mark.parametrize("case", CASES)
def test_packed_matches_the_reference(case, unit, dtype, relu):
    C, H, W, F, N, kernel = case
    rows, columns = tile.shape(TILES[unit])
    if min(C, F) < rows:
        pytest.skip("packed tiles take at least a tile's filters")
    layer, x, dy = packed_layer(unit, C, H, W, F, N, kernel, dtype, relu)
    if packed.Packing(N, H, W, *layer.p).run < columns:
        pytest.skip("the whole run is shorter than a tile")
    check(layer, x, dy, relu, 1e-10 if dtype == np.float64 else 3e-4)


def test_packed_gives_the_same_bits_on_1_and_2_threads():
    def case():
        layer, x, dy = packed_layer(vectors.AVX512, 16, 7, 7, 16, 9, 3, np.float32, True)
        y, dx = run(layer, x, dy)
        return y, dx, layer.grads["weight"].copy(), layer.grads["bias"].copy()

    same_bits_on_1_and_2_threads(case)


@pytest.mark.parametrize("piece", [1, 100])
@pytest.mark.parametrize("case", [(12, 7, 7, 13, 9, 3), (12, 2, 5, 12, 40, 3)])
def test_packed_weight_gradient_in_groups_of_samples(case, piece, monkeypatch):
    """Groups of one sample or a few (packed.PIECE made small), each summed as its own run from
    its first sample's rows: every group's sums and its dpad rows against the references."""
    monkeypatch.setattr(packed, "PIECE", piece)
    C, H, W, F, N, kernel = case
    assert packed.groups(N, H, W, 1, 1) > 1
    layer, x, dy = packed_layer(vectors.AVX512, C, H, W, F, N, kernel, np.float64, True)
    check(layer, x, dy, True, 1e-10)
