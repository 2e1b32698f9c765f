"""conv2d's kernels per vector unit (register tiles of 4x48 for AVX-512, 3x32 for AVX2) and
Winograd F(2x2, 3x3), each forced onto a layer and checked against the slow references in
float64 and float32, with a relu fused in."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build, layer_grad_errors, same_bits_on_1_and_2_threads
from helpers import run_layer as run
from references import conv_backward, conv_forward

from nettrain.layers.conv2d.layer import Conv2d
from nettrain.runtime import vectors


def check(layer, x, dy, rtol, atol):
    """The layer (relu fused) against the references: y, dx, dW, db."""
    p = layer.p
    w = layer.params["weight"].astype(np.float64)
    b = layer.params["bias"].astype(np.float64)
    s_ref = conv_forward(x.astype(np.float64), w, b, (1, 1), p)
    y, dx = run(layer, x, dy)
    np.testing.assert_allclose(y, np.maximum(s_ref, 0), rtol=rtol, atol=atol)
    ref_dx, ref_dW, ref_db = conv_backward(x.astype(np.float64), w, dy * (s_ref > 0), (1, 1), p)
    np.testing.assert_allclose(dx, ref_dx, rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.grads["weight"], ref_dW, rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, rtol=rtol, atol=atol)


def layer_and_data(monkeypatch, unit, dtype, C=5, H=10, W=12, F=6, padding="same", N=3):
    """A conv2d 3x3 planned for vector ``unit``, random bias, x and dy."""
    monkeypatch.setattr(vectors, "unit", lambda: unit)
    layer = build(Conv2d, (C, H, W), dtype=dtype, filters=F, kernel=3, padding=padding,
                  fused="relu")  # fmt: skip
    rng = np.random.default_rng(4)
    layer.params["bias"][...] = rng.standard_normal(F) * 0.1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    dy = rng.standard_normal((N, *layer.out_shape)).astype(dtype)
    return layer, x, dy


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("unit, tile", [(vectors.AVX512, "tile4x48"), (vectors.AVX2, "tile3x32")])
def test_each_units_tile_matches_the_reference(unit, tile, dtype, monkeypatch):
    """Runs of 138 columns: both tile shapes, for the forward pass and the input gradient, with
    channels left over from the tile's height, computed again by a last tile overlapping the
    one before (6 filters under 4x48, 5 input channels under both)."""
    layer, x, dy = layer_and_data(monkeypatch, unit, dtype)
    assert [s.kernel for s in layer.plan.forward.steps] == [tile]
    assert [s.kernel for s in layer.plan.input_grad.steps] == [tile]
    tol = 1e-10 if dtype == np.float64 else 2e-4
    check(layer, x, dy, rtol=tol, atol=tol)


# (C, H, W, filters, padding, N): Winograd's tiles cut off odd outputs, paddings 0-2; 9 filters
# (a last block of 8 overlapping the first), 5 (fewer than 8: the 3-filter tiles); batches of
# 40 make units of several samples (winograd.units), whose chunks of tile columns hold the
# tiles of two or more samples (7x6: 16 columns a sample; 5x5: 12)
WINOGRAD_CASES = [
    (5, 10, 12, 9, "same", 3),
    (4, 7, 6, 4, 0, 3),
    (6, 5, 9, 5, [2, 1], 3),
    (4, 7, 6, 8, 1, 40),
    (4, 5, 5, 4, "same", 40),
]


@pytest.mark.parametrize("case", WINOGRAD_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_matches_the_reference(case, dtype, monkeypatch):
    """Forced by NETTRAIN_CONV=winograd: forward, input and weight gradients. float32 within
    the bound measured for the CIFAR layers (plan.py), scaled to these few channels."""
    monkeypatch.setenv("NETTRAIN_CONV", "winograd")
    C, H, W, F, padding, N = case
    layer, x, dy = layer_and_data(monkeypatch, vectors.unit(), dtype, C, H, W, F, padding, N)
    assert layer.plan.winograd and layer.plan.forward.kernel.startswith("wino")
    tol = 1e-12 if dtype == np.float64 else 1e-5
    check(layer, x, dy, rtol=tol, atol=tol)


UNIT_KERNELS = [
    (vectors.AVX512, ("wino8x32", "wgrad4+wgrad1")),
    (vectors.AVX2, ("wino3x32", "wgrad2+wgrad1")),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H, W, packing", [(18, 19, False), (8, 9, True)])
@pytest.mark.parametrize("unit, kernels", UNIT_KERNELS)
def test_winograd_with_the_direct_weight_gradient_matches_the_reference(
    dtype, H, W, packing, unit, kernels, monkeypatch
):
    """The plan's own choice ('auto') for 32+ channels on 8x8+: Winograd's forward pass and
    input gradient in each unit's product tiles, the direct weight gradient over the padded
    (or, for small images, packed) x the forward kept (33 filters: a last block overlapping, a
    filter left to wgrad1; odd widths)."""
    monkeypatch.delenv("NETTRAIN_CONV", raising=False)
    layer, x, dy = layer_and_data(monkeypatch, unit, dtype, 32, H, W, 33, "same", 3)
    p = layer.plan
    assert p.winograd and p.direct and (p.forward.kernel, p.weight_grad.kernel) == kernels
    assert p.packed == packing
    tol = 1e-12 if dtype == np.float64 else 2e-5
    check(layer, x, dy, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode, C", [("winograd", 8), ("auto", 32)])
def test_winograd_gives_the_same_bits_on_1_and_2_threads(mode, C, monkeypatch):
    """Units of several samples, summed in unit order: y, dx and dW bit for bit, all three
    passes through Winograd, and the plan's own mix (the direct weight gradient, packed)."""
    monkeypatch.setenv("NETTRAIN_CONV", mode)

    def case():
        unit = vectors.AVX512 if mode == "auto" else vectors.unit()
        layer, x, dy = layer_and_data(monkeypatch, unit, np.float32, C, 9, 9, C, 1, 40)
        assert layer.plan.winograd
        y, dx = run(layer, x, dy)
        return y, dx, layer.grads["weight"].copy(), layer.grads["bias"].copy()

    same_bits_on_1_and_2_threads(case)


def test_winograd_gradcheck(monkeypatch):
    """Finite differences on a small float64 layer forced onto Winograd (no relu: no kinks)."""
    monkeypatch.setenv("NETTRAIN_CONV", "winograd")
    layer = build(Conv2d, (4, 5, 4), filters=4, kernel=3, padding="same")
    assert layer.plan.winograd
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 4))
    errors = layer_grad_errors(layer, x, np.random.default_rng(2))
    assert max(errors.values()) < 1e-6, errors  # the direct kernels: 2.7e-7 here too


def test_no_winograd_and_bad_settings(monkeypatch):
    monkeypatch.setenv("NETTRAIN_CONV", "no-winograd")
    assert not build(Conv2d, (4, 8, 8), filters=4, kernel=3, padding="same").plan.winograd
    monkeypatch.setenv("NETTRAIN_CONV", "winograd")  # 5x5 and stride 2 cannot
    assert not build(Conv2d, (4, 8, 8), filters=4, kernel=5, padding="same").plan.winograd
    assert not build(Conv2d, (4, 8, 8), filters=4, kernel=3, stride=2).plan.winograd
    assert not build(Conv2d, (3, 8, 8), filters=4, kernel=3).plan.winograd  # channels < 4
    monkeypatch.setenv("NETTRAIN_CONV", "fast")
    with pytest.raises(ValueError, match="NETTRAIN_CONV must be one of auto, winograd"):
        build(Conv2d, (4, 8, 8), filters=4, kernel=3)


def test_the_vector_unit_is_read_as_numba_reads_the_target(monkeypatch):
    """NUMBA_CPU_FEATURES when set (the last word of a feature wins), else the host's."""
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+fma,+avx512f,-avx512f")
    assert vectors.unit_of(vectors.target_features()) == vectors.AVX2
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2,+fma,+avx512f,-prefer-256-bit")
    assert vectors.unit_of(vectors.target_features()) == vectors.AVX512
    monkeypatch.setenv("NUMBA_CPU_FEATURES", "+avx2")  # no FMA: not the AVX2 unit
    assert vectors.unit_of(vectors.target_features()) == vectors.OTHER
    monkeypatch.delenv("NUMBA_CPU_FEATURES")
    monkeypatch.setenv("NUMBA_CPU_NAME", "haswell")  # Numba keeps the host's features
    import llvmlite.binding

    monkeypatch.setattr(llvmlite.binding, "get_host_cpu_features", lambda: {"avx512f": True})
    assert vectors.unit_of(vectors.target_features()) == vectors.AVX512
