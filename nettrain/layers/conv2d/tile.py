"""Register-tiled stride-1 convolution: the forward kernel for filters in fours wherever the run
holds a tile (plan.py decides, and has the measurements against direct.py's kernels); it also
computes input gradients, which are such convolutions.

Same flat "wide" layout and notation as direct.py: for a sample x (C*Hp*Wp,),

    out[f, q] = bias[f] + sum_t Wm[f, t] * x[offsets[t] + q]          (q < run)

A tile is FILTERS = 4 filters by COLUMNS = 48 consecutive wide columns. Its 192 sums stay in
vector registers for the whole sum over the T taps (they live in a small array on the stack,
which LLVM promotes to registers: 4 x 3 zmm, or 4 x 6 ymm where it prefers 256-bit vectors):
each tap loads 48 inputs and broadcasts 4 weights for 192 multiply-adds, and the sums are
written once, at the end, where direct.py's kernels load and store their sums in memory
every four taps. Only the outputs (ow < OW) are stored, with max(., 0) when relu is fused. A
sample's last tile starts at run - COLUMNS, overlapping the one before (the columns computed
twice get the same values), so that nothing is read past the sample; runs shorter than a tile
use direct.py's kernels. Tiles go column block by column block, the filters inside, so
that the inputs a column block reads stay in the L1 cache while every filter uses them.

Compiled for Zen 4 (512-bit vectors), Skylake-AVX512 (LLVM's 256-bit choice on Intel) and
Haswell (AVX2) alike, 4 x 48 was the fastest tile tried; 8-filter tiles spill registers, and
32-column tiles come out as scalar code (LLVM unrolls the column loop fully and does not vectorise
it again), as slow as 5 GFLOP/s. FILTERS and COLUMNS stay here, beside the kernel compiled with
them: Numba's on-disk cache keeps a global's value from compile time and checks only this file.
"""

from __future__ import annotations

import numba
from numba import njit, prange, types
from numba.core import cgutils, errors
from numba.extending import intrinsic

FILTERS, COLUMNS = 4, 48
SIZE = FILTERS * COLUMNS


@intrinsic
def _stack_array(typingctx, size, dtype):
    """A pointer to ``size`` (a constant) uninitialised values of ``dtype`` on the stack of the
    calling function: unlike np.empty, LLVM can keep such an array in registers."""
    if not isinstance(size, types.IntegerLiteral):
        raise errors.RequireLiteralValue(size)

    def codegen(context, builder, signature, args):
        value_type = context.get_value_type(dtype.dtype)
        return cgutils.alloca_once(builder, value_type, size=size.literal_value)

    return types.CPointer(dtype.dtype)(size, dtype), codegen


@njit(cache=True, fastmath={"contract"})
def _sample(x, Wt, bias, offsets, relu, OW, pitch, run, y, f0, f1):
    """Filters f0 .. f1 - 1 (a multiple of FILTERS) of one sample x (C*Hp*Wp,) into y (F, OH, OW);
    Wt is Wm transposed, (T, F). Only contraction into fused multiply-add is allowed: each
    column's sum goes over the taps in order, and nothing needs regrouping to be vectorised."""
    acc = numba.carray(_stack_array(SIZE, y.dtype), (FILTERS, COLUMNS))
    q0 = 0
    while q0 < run:
        q0 = min(q0, run - COLUMNS)
        for f in range(f0, f1, FILTERS):
            for k in range(FILTERS):
                b = bias[f + k]
                for q in range(COLUMNS):
                    acc[k, q] = b
            for t in range(len(offsets)):
                xs = x[offsets[t] + q0 : offsets[t] + q0 + COLUMNS]
                ws = Wt[t, f : f + FILTERS]
                for k in range(FILTERS):
                    w = ws[k]
                    for q in range(COLUMNS):
                        acc[k, q] += w * xs[q]
            oh = q0 // pitch
            ow = q0 - oh * pitch
            for q in range(COLUMNS):
                if ow < OW:
                    for k in range(FILTERS):
                        v = acc[k, q]
                        y[f + k, oh, ow] = max(v, 0) if relu else v
                ow += 1
                if ow == pitch:
                    oh, ow = oh + 1, 0
        q0 += COLUMNS


@njit(cache=True, parallel=True)
def forward(xp, Wt, bias, offsets, relu, OW, pitch, run, y, f0, f1):
    """xp (N, C*Hp*Wp) padded samples, Wt (T, F), bias (F,) -> filters f0 .. f1 - 1 of y
    (N, F, OH, OW), f1 - f0 a multiple of FILTERS and run >= COLUMNS; one sample per thread."""
    for n in prange(len(xp)):
        _sample(xp[n], Wt, bias, offsets, relu, OW, pitch, run, y[n], f0, f1)
