"""The products over channels inside Winograd's convolution (winograd.py; wino4.py's forward too,
36 values a tile), for one unit of tiles in the blocked layout of wino_transforms.py (chunks of
CHUNK tile columns, (16, CHUNK) a chunk and channel), register-tiled like tile.py's direct kernels:

    M[ch, k, f] = sum_c Ut[k, c, f] * V[ch, c, k]        (forward, input gradient; k < 16)
    dU[k, f, c] = sum_ch dM[ch, f, k] . V[ch, c, k]       (weight gradient)

The forward product keeps FILTERS x CHUNK sums in vector registers over the whole sum over
channels, each V value loaded once for all the tile's filters (a broadcast weight a filter), and
stores them once; a chunk's V (C x 16 x CHUNK values) stays in the core's cache while every k
and filter block uses it. Its tile shapes are constants of separately compiled kernels (see
tile.py for why), one per vector unit: GEMMS, picked by plan.py. The weight-gradient product
keeps 4 x 4 sums of LANES lanes each, whose lanes are added in halves at the end: a fixed
order, the same bits whatever the thread count or vector width.
"""

from __future__ import annotations

import numba
from numba import njit

from nettrain.layers.conv2d.tile import _stack_array
from nettrain.layers.conv2d.wino_transforms import CHUNK

# The weight gradient's partial sums a pair: a divisor of CHUNK, added in four halvings (wgemm).
LANES = 16


def _gemm(FILTERS: int):
    SIZE = FILTERS * CHUNK

    @njit(cache=True, fastmath={"contract"})
    def gemm(Ut, V, M):
        """M (chunks, K, >= F, CHUNK) = Ut (K, C, F) transposed times V (chunks, C, >= K,
        CHUNK), per chunk and k (K: 16 for F(2x2, 3x3), 36 for F(4x4, 3x3)); F >= FILTERS (a
        last filter block overlaps the one before and writes the same values again)."""
        ptr = _stack_array(SIZE, M.dtype)
        acc, sums = numba.carray(ptr, (FILTERS, CHUNK)), numba.carray(ptr, (SIZE,))
        K, C, F, Fp = Ut.shape[0], Ut.shape[1], Ut.shape[2], M.shape[2]
        flat = M.reshape(M.size)
        for ch in range(len(V)):
            for k in range(K):
                for g in range(0, F, FILTERS):
                    f = max(min(g, F - FILTERS), 0)  # known not negative: vector stores
                    for i in range(FILTERS):  # zeros (in registers: a product of the first
                        for q in range(CHUNK):  # channel here was scalar code for AVX2)
                            acc[i, q] = 0
                    for c in range(C):  # indexed, not sliced: a slice costs more than a c
                        for q in range(CHUNK):  # each value once, into every filter's sums
                            v = V[ch, c, k, q]
                            for i in range(FILTERS):
                                acc[i, q] += Ut[k, c, f + i] * v
                    # the block is FILTERS whole rows of M: one loop copies it (a loop of one
                    # row is unrolled, and then its stores stay scalar); ``sums`` is acc flat,
                    # made once (a reshape here called Numba's run time every block)
                    out = flat[((ch * K + k) * Fp + f) * CHUNK :]
                    for e in range(SIZE):
                        out[e] = sums[e]

    return gemm


@njit(cache=True, fastmath={"contract"})
def wgemm(dM, V, dU):
    """dU (16, F, C) = the sum over chunks of dM[ch, :, k] (F, CHUNK) times V[ch, :, k] (C,
    CHUNK) transposed, per k; F, C >= 4 (last blocks overlap, as in gemm)."""
    acc = numba.carray(_stack_array(256, dU.dtype), (4, 4, LANES))  # 4 * 4 * LANES
    F, C = dU.shape[1], dU.shape[2]
    for k in range(16):
        for g in range(0, F, 4):
            f = max(min(g, F - 4), 0)
            for h in range(0, C, 4):
                c = max(min(h, C - 4), 0)
                for i in range(4):
                    for j in range(4):
                        for lane in range(LANES):
                            acc[i, j, lane] = 0
                for ch in range(len(V)):
                    for q0 in range(0, CHUNK, LANES):
                        for lane in range(LANES):
                            q = q0 + lane
                            for i in range(4):
                                e = dM[ch, f + i, k, q]
                                for j in range(4):
                                    acc[i, j, lane] += e * V[ch, c + j, k, q]
                _halves(acc, 8)  # the lanes added in halves: a fixed order
                _halves(acc, 4)
                _halves(acc, 2)
                _halves(acc, 1)
                for i in range(4):
                    for j in range(4):
                        dU[k, f + i, c + j] = acc[i, j, 0]


@njit(cache=True, inline="always")
def _halves(acc, width):
    """acc[i, j, lane] += acc[i, j, lane + width] for lane < width (a constant where it is
    inlined: a loop of a known length, in vector registers)."""
    for i in range(4):
        for j in range(4):
            for lane in range(width):
                acc[i, j, lane] += acc[i, j, lane + width]


# name -> (filters, kernel); plan.py has the choice per vector unit.
GEMMS = {"wino8x32": (8, _gemm(8)), "wino3x32": (3, _gemm(3))}
