"""Stride-1 convolution vectorised over filters: the forward kernel for layers whose output rows
are short beside their padding, where tile.py's tiles (vectorised over wide columns) compute a
padded row's columns too (vec_plan.py says where; input gradients, which are such convolutions
too, stay in the tiles: measured for the forward pass only).

Same flat padded samples and taps as direct.py (xp[n] is sample n, C*Hp*Wp values; tap t of
output (oh, ow) reads xp[n, offsets[t] + oh*pitch + ow]), but the outputs are taken COLUMNS at a
time in their own order p = oh*OW + ow, whatever their rows: no column of a row's padding is
computed. For a block of FILTERS filters and COLUMNS outputs, the FILTERS x COLUMNS sums stay in
vector registers over the whole sum over taps: each tap loads the block's FILTERS weights (whole
vectors of Wt's row) once, and each of the COLUMNS inputs once, broadcast into all the filters'
sums. AVX2 (16 registers), 16 filters x 4 outputs: 8 ymm registers of sums, 2 of weights, 4
broadcast inputs (LLVM loads a tap's inputs first: 16 x 6 spilled sums to the stack, and 8 x 7,
whose filter loop LLVM unrolled before it could vectorise it, ran at a tenth of the speed; the
filter loop must be the vectorised one, inside the outputs' loop it compiled to scalar code). A
sample's last block starts at OH*OW - COLUMNS (its outputs computed twice get the same values), a
last filter block at f1 - FILTERS, as in tile.py. The sums are written out output by output:
FILTERS values of one output lie OH*OW apart in y. On LeNet's 8 -> 16 5x5 layer (14x14 outputs
in rows of 18 padded columns) the tiles compute 256 columns a sample for its 196 outputs; these
kernels 196 (AMD EPYC Zen 3, batch 128, best of 45 interleaved, ms: 1.69 -> 1.45 on two threads,
1.47 -> 1.25 on one).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from nettrain.layers.conv2d.tile import _pointer, _stack_array
from nettrain.runtime import native


def _vec_span(FILTERS: int, COLUMNS: int):
    """The serial kernel of FILTERS x COLUMNS blocks, both constants of its compiled code (see
    tile.py's _tile_span)."""
    SIZE = FILTERS * COLUMNS

    @njit(cache=True, fastmath={"contract"})
    def span(xp, Wt, bias, offsets, relu, OW, pitch, y, f0, f1, n):
        """Filters f0 .. f1 - 1 (at least FILTERS) of sample n: xp (N, C*Hp*Wp) padded
        samples, Wt (T, F) the weights, one tap a row, y (N, F, OH, OW). Only contraction into
        fused multiply-add: each sum goes over the taps in order."""
        acc = numba.carray(_stack_array(SIZE, y.dtype), (COLUMNS, FILTERS))
        at = numba.carray(_stack_array(COLUMNS, np.uint64), COLUMNS)
        vs = numba.carray(_stack_array(COLUMNS, y.dtype), COLUMNS)
        x, out, F = xp[n], y[n], Wt.shape[1]
        OH = y.shape[2]
        P = OH * OW
        for b in range(0, P, COLUMNS):
            p0 = min(b, P - COLUMNS)
            for c in range(COLUMNS):  # where output p0 + c's window starts in the sample
                oh = (p0 + c) // OW
                at[c] = oh * pitch + p0 + c - oh * OW
            for g in range(f0, f1, FILTERS):
                f = min(g, f1 - FILTERS)
                for c in range(COLUMNS):
                    for k in range(FILTERS):
                        acc[c, k] = bias[f + k]
                for t in range(len(offsets)):
                    xs = numba.carray(_pointer(x, offsets[t]), len(x))
                    ws = numba.carray(_pointer(Wt, t * F + f), FILTERS)
                    for c in range(COLUMNS):  # each input once
                        vs[c] = xs[at[c]]
                    for k in range(FILTERS):  # the loop LLVM vectorises: over filters
                        w = ws[k]
                        for c in range(COLUMNS):
                            acc[c, k] += w * vs[c]
                for c in range(COLUMNS):
                    oh = (p0 + c) // OW
                    ow = p0 + c - oh * OW
                    for k in range(FILTERS):
                        v = acc[c, k]
                        out[f + k, oh, ow] = max(v, 0) if relu else v

    return span


@njit(cache=True)
def _samples(table, xp, Wt, bias, offsets, relu, OW, pitch, y, f0, f1):
    """One of the kernels (its table) over the samples, a sample a thread at a time (native.py:
    the kernel is compiled once, not again inside this loop)."""
    args = (xp, Wt, bias, offsets, relu, OW, pitch, y, f0, f1)
    return native.parallel(table, args, len(y))


def _forward(kernel: native.Kernel):
    """The forward function of a kernel: filters f0 .. f1 - 1 of every sample."""

    def forward(xp, Wt, bias, offsets, relu, OW, pitch, y, f0, f1):
        native.run(_samples, kernel, xp, Wt, bias, offsets, relu, OW, pitch, y, f0, f1)

    return forward


# name -> (filters, outputs, kernel): xp (N, C*Hp*Wp) padded samples, Wt (T, F), bias (F,) ->
# filters f0 .. f1 - 1 of y (N, F, OH, OW), f1 - f0 >= its filters, OH*OW >= its outputs.
FORWARD = {
    "vec16x4": (16, 4, _forward(native.Kernel(_vec_span(16, 4)))),
}
