"""Where a conv2d layer runs Winograd F(4x4, 3x3) (wino4.py), with the measurements behind the
choice: an evaluation forward (predict, validation: ``Plan.inference``) where it pays, and the
forward pass and input gradient of training where they pay too (the weight gradient stays
direct); NETTRAIN_CONV=wino4 for every 3x3 stride-1 layer. plan.py's ``plan()`` adds it to a
layer's plan."""

from __future__ import annotations

from dataclasses import replace

from nettrain.layers.conv2d.passes import Pass, Plan
from nettrain.layers.conv2d.winograd import F44
from nettrain.runtime import vectors

# Winograd F(4x4, 3x3) (wino4.py) for an evaluation forward (predict, validation): 4x fewer
# multiplications than direct, 1.78x fewer than F(2x2), each input value transformed into 2.25
# values instead of 4, a float32 error about 10x F(2x2)'s (docs/speed.md). Measured against the
# training forward (relu fused, batch 256, 2 threads, best of 9 twice, one process; Zen 4), ms
# training forward -> F(4x4), AVX-512 code: 16 -> 16 on 32x32 (tiles) 9.4 -> 6.1; 32 -> 32 on
# 32x32 (F(2x2)) 25.2 -> 18.4; on 28x28 16.5-16.9 -> 12.6-12.9; 32 -> 32 / 32 -> 64 / 64 -> 64
# on 16x16 6.1 -> 5.7, 10.7 -> 8.9, 17.4 -> 15.0; 8 -> 16 on 28x28 (tiles) 3.9 -> 3.6. Slower
# or even below 16x16 outputs, whose tiles waste more: 64 -> 64 on 8x8 5.6 -> 6.7, 32 -> 32 on
# 14x14 5.7 -> 6.2 (64 -> 64 17.0 -> 15.4). AVX2 code (NUMBA_CPU_NAME=haswell, the 3x32
# products) faster on all of them: 12.0 -> 6.6, 28.8 -> 19.2, 19.9 -> 16.5, 7.8 -> 5.7, 15.1 ->
# 11.3, 24.1 -> 20.4, 4.8 -> 3.7, and on 8x8 6.2 -> 5.7, 14x14 5.7 -> 5.1; 4 -> 8 on 32x32
# (first layers) slower, 1.6 -> 1.9.
WINO4_UNITS = (vectors.AVX512, vectors.AVX2)
WINO4_MIN_CHANNELS = 8  # in and out
WINO4_MIN_SIDE = {vectors.AVX512: 16, vectors.AVX2: 8}  # output rows and columns
WINO4_WHY = "inference: 8+ channels, outputs {side}x{side}+, 1.1-1.8x the training forward"
# And in training, forward pass and input gradient, the weight gradient direct: measured against
# the plan without it (relu fused, 2 threads, best of 7 three times, one process; Zen 4), ms
# forward / backward -> with it, AVX-512 code: 16 -> 16 on 32x32, batch 128 (tiles) 4.0 / 8.1 ->
# 3.8 / 7.2; 32 -> 32 on 32x32, batch 64 (F(2x2)) 6.5 / 13.0 -> 5.3 / 11.8; on 16x16, batch 128
# 3.9 / 7.7 -> 3.4 / 7.6; 16 -> 16 on 28x28 (tiles) 3.2 / 7.1 -> 3.0 / 5.8. Even or slower with
# more channels or smaller outputs: 32 -> 64 and 64 -> 64 on 16x16, batch 64, 3.2 / 7.4 -> 3.1 /
# 7.9 and 5.5 / 13.5 -> 5.6 / 13.9; 32 -> 32 on 14x14 2.9 / 5.7 -> 3.2 / 5.8; 64 -> 64 on 8x8
# 3.8 / 7.5 -> 4.7 / 8.7. AVX2 code: 4.8 / 8.8 -> 4.2 / 7.6, 7.0 / 13.7 -> 5.2 / 11.9, 3.8 / 8.0
# -> 3.2 / 7.2, 3.9 / 7.5 -> 3.5 / 6.0; 1.01-1.04x on the next three, 0.89x on 8x8. Training
# through it does as well as without: configs/mnist-bn-cnn.yaml with NETTRAIN_CONV=wino4 (every
# conv but the first through F(4x4)) reached 99.70% test accuracy, seed 0 (F(2x2): 99.71%).
WINO4_TRAIN_MAX_CHANNELS = 32  # in and out
WINO4_TRAIN_MIN_SIDE = 16  # output rows and columns, for every vector unit


def with_wino4(p: Plan, in_shape, F: int, kernel, stride, padding, unit, conv) -> Plan:
    """``p`` with F(4x4, 3x3), for 3x3 stride-1 layers with padding <= 2: NETTRAIN_CONV 'auto',
    for inference and training where they pay (the vector units and sizes above); 'wino4', for
    inference and for the training forward and input gradient of a direct plan, 4+ channels in
    and out."""
    (C, H, W), (ph, pw) = in_shape, padding
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    if (kernel, stride) != ((3, 3), (1, 1)) or max(ph, pw) > 2:
        return p
    gemm = F44 + ("wino8x32" if unit == vectors.AVX512 else "wino3x32")  # as F(2x2)'s
    if conv == "wino4" and min(C, F) >= 4 and p.direct:
        forward = Pass(gemm, "3x3 stride 1: Winograd F(4x4, 3x3), NETTRAIN_CONV=wino4")
        dx = Pass(gemm, "the padded dy, flipped filters, through the same")
        return replace(p, forward=forward, input_grad=dx, inference=forward, winograd=True)
    if conv != "auto" or unit not in WINO4_UNITS:
        return p
    side = WINO4_MIN_SIDE[unit]
    if min(C, F) < WINO4_MIN_CHANNELS or min(OH, OW) < side:
        return p
    why = WINO4_WHY.format(side=side)
    p = replace(p, inference=Pass(gemm, f"Winograd F(4x4, 3x3) ({why})"))
    side = WINO4_TRAIN_MIN_SIDE
    if not p.direct or max(C, F) > WINO4_TRAIN_MAX_CHANNELS or min(OH, OW) < side:
        return p
    why = f"3x3 stride 1, {max(C, F)} <= {WINO4_TRAIN_MAX_CHANNELS} channels, {side}x{side}+"
    forward = Pass(gemm, f"{why}: Winograd F(4x4, 3x3) (1.06-1.2x a step)")
    dx = Pass(gemm, "the padded dy, flipped filters, through F(4x4, 3x3)")
    return replace(p, forward=forward, input_grad=dx, winograd=True)
