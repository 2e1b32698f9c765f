"""What an evaluation forward (predict, validation; never a training step) of a conv2d layer
runs where it differs from the training forward: Winograd F(4x4, 3x3) (wino4.py), with the
measurements behind the choice. plan.py's ``plan()`` adds it to a layer's plan."""

from __future__ import annotations

from dataclasses import replace

from nettrain.layers.conv2d.passes import Pass, Plan
from nettrain.runtime import vectors

# Winograd F(4x4, 3x3) (wino4.py) for an evaluation forward (predict, validation; never a
# training step): 4x fewer multiplications than direct, 1.78x fewer than F(2x2), each input
# value transformed into 2.25 values instead of 4, a float32 error about 10x F(2x2)'s
# (docs/speed.md). Measured against the training forward (2 threads, Zen 4, batch 256, best of
# 15, ms): TODO
WINO4_UNITS = (vectors.AVX512, vectors.AVX2)
WINO4_MIN_CHANNELS = 16  # in and out
WINO4_MIN_SIDE = 16  # output rows and columns: 8x8 outputs waste a third of the products
WINO4_WHY = "inference, 16+ channels, 16x16+"


def with_inference(p: Plan, in_shape, F: int, kernel, stride, padding, unit, conv) -> Plan:
    """``p`` with F(4x4, 3x3) for inference where it pays: 3x3 stride 1, padding <= 2, the
    vector units and sizes above, NETTRAIN_CONV 'auto'."""
    (C, H, W), (ph, pw) = in_shape, padding
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    shaped = (kernel, stride) == ((3, 3), (1, 1)) and max(ph, pw) <= 2 and conv == "auto"
    big = min(C, F) >= WINO4_MIN_CHANNELS and min(OH, OW) >= WINO4_MIN_SIDE
    if not (shaped and big and unit in WINO4_UNITS):
        return p
    gemm = "wino8x32" if unit == vectors.AVX512 else "wino3x32"  # as F(2x2)'s
    return replace(p, inference=Pass(gemm, f"Winograd F(4x4, 3x3) ({WINO4_WHY})"))
