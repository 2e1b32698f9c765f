"""Where plan.py's direct plans run their forward pass vectorised over filters (vec.py): the
measured rule, beside the constants that make it."""

from __future__ import annotations

from dataclasses import replace

from nettrain.layers.conv2d import vec
from nettrain.layers.conv2d.passes import Pass, Plan, Step
from nettrain.runtime import vectors

# Vectorised over filters (vec.py), whose outputs skip the padding columns that the tiles compute:
# the forward pass of layers with 5x5 kernels or more and 16+ filters, on AVX2 (the kernel that
# tiles 16 filters by 4 outputs, 8 of 16 registers of sums; 16 x 6 spilled). Measured on an AMD
# EPYC Zen 3 (AVX2), batch 128, best of 45 interleaved, ms tiles -> vec16x4: LeNet's 8 -> 16 5x5
# on 14x14 (18-column rows) 1.47 -> 1.25 on one thread, 1.69 -> 1.45 on two; slower on the 3x3
# layers, whose rows waste fewer columns: 16 -> 16 on 28x28 2.40 -> 2.61, 32 -> 32 on 14x14 2.41
# -> 3.17, 32 -> 32 on 16x16 5.33 -> 5.76 (two threads).
VEC = ("vec16x4", "AVX2: no padding columns computed, 1.1x the tiles on LeNet's 8 -> 16 5x5")
VEC_UNITS = (vectors.AVX2,)
VEC_MIN_TAPS = 25  # a channel's: kh * kw


def over_filters(p: Plan, taps: int, F: int, unit: str, why: str) -> Plan:
    """The direct plan ``p`` (its forward pass there for ``why``) with its forward pass
    vectorised over filters where VEC's measurements say it pays: kh * kw = ``taps`` of
    VEC_MIN_TAPS or more, a block's filters or more, a vector unit of VEC_UNITS."""
    name, (rows, _, _) = VEC[0], vec.FORWARD[VEC[0]]
    if unit not in VEC_UNITS or taps < VEC_MIN_TAPS or rows > F:
        return p
    why = f"{why}; {taps} taps, {F} >= {rows} filters ({VEC[1]})"
    return replace(p, forward=Pass(name, why, (Step(name, 0, F),)))
