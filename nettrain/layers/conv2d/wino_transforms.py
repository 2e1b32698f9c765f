"""Winograd's transforms (winograd.py) for one unit of samples, in the blocked layout its
products read: the unit's tile columns in chunks of CHUNK, one (ROWS, CHUNK) block a chunk and
channel, its first 16 rows used,

    V[ch, c, k, qq] = (B^T d B)[k] of tile column ch*CHUNK + qq,  dM (ch, f, k, qq) alike,

tile column g = s*S + i*P + j being tile (i, j) of the unit's sample s (P = tw + 1, S = th*P:
each row of tiles has one column more than tiles, whose values are not used; the columns past
the unit's last tile are zeros).

A transform goes in two passes of vector loops:
1. each plane (one sample and channel) is copied into a zero-padded scratch plane, its even and
   odd rows apart, and split into phases (row and column parity) laid out at the sample's tile
   columns: A[2r + s, g] holds the value of phase (r, s) in tile column g's first row of tiles,
   and for the input A[4 + 2r + s, g] the same one row of tiles further down. Every value a
   tile reads is then at its own column g or at g + 1 (the next pair of columns), so that
2. each chunk's 16 values a tile column are computed over whole chunks, whatever samples they
   hold, from 16 (input) or 4 (output gradient) unit-stride rows, straight into its block.
The output transform goes the other way: each chunk's A^T M A into four phase rows (a tile's
2x2 outputs), then each row of tiles' phases interleaved into two rows of y. A sample's
transformed input, measured per pass on one thread (Zen 4, batch 128), ms before -> after this
layout (which replaced per-sample phase planes whose chunks straddling two samples were computed
twice and merged, and whose loops LLVM turned into gathers): 16 channels on 32x32 3.1 -> 1.8-2.1,
32 on 16x16 1.8-2.0 -> 1.0-1.3, 64 on 8x8 2.1 -> 0.9; the output gradient's alike.

Indices inside the vector loops are the loop's own counter, offsets going into slices taken
before the loops: Numba must know an index is not negative (an offset it cannot prove so costs a
select per value, and the loop can turn into gathers).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from nettrain.layers.conv2d.tile import _stack_array

CHUNK = 32  # tile columns a block: the products' tile width (wino_gemm.py)
# Rows of CHUNK values a block of V or dM takes: 16 and one unused, so that the blocks of
# consecutive channels do not lie 2 kB apart (float32) where the products read one k's rows
# across channels: in the same few sets of the L1 cache, they were read from L2 (the weight
# gradient's products, 16 channels on 32x32: 36 -> 51-57 GFLOP/s on one core).
ROWS = 17


@njit(cache=True, inline="always")
def _plane(x, mask, masked, n, c, top, left, pad, width):
    """pad[(R % 2)*half + (R // 2)*width + left + w] = x[n, c, h, w] for padded row R = top + h
    (times mask > 0 when ``masked``), half = len(pad) // 2: even and odd padded rows apart, rows
    of ``width``; the rest of pad is left as it is (zeros). Flat, as _split reads it (a reshape
    calls Numba's run time)."""
    H, W, half = x.shape[2], x.shape[3], len(pad) // 2
    for h in range(H):
        at = (top + h) % 2 * half + (top + h) // 2 * width + left
        src, m, dst = x[n, c, h], mask[n, c, h], pad[at:]
        for w in range(W):
            v = src[w]  # loaded first: a select, not a branch
            dst[w] = v if not masked or m[w] > 0 else 0


@njit(cache=True, inline="always")
def _phases(rows, skip, count, even, odd):
    """even[m], odd[m] = rows[skip + 2m], rows[skip + 2m + 1] for m < count: the even and odd
    columns of flat rows apart (their rows P = half as long)."""
    src = rows[skip:]
    for m in range(count):
        even[m], odd[m] = src[2 * m], src[2 * m + 1]


@njit(cache=True, inline="always")
def _split(pad, P, S, base, A, shifted):
    """A[2r + s, base + i*P + j] = padded row 2i + r, column 2j + s (i < th = S // P), and with
    ``shifted`` A[4 + 2r + s, .] the same of row 2(i + 1) + r: a tile column's every value at
    its own place, so that a chunk's tiles read columns g and g + 1 alone, whatever sample
    they belong to."""
    for r in range(2):
        flat = pad[r * (len(pad) // 2) :]
        _phases(flat, 0, S, A[2 * r, base:], A[2 * r + 1, base:])
        if shifted:
            _phases(flat, 2 * P, S, A[4 + 2 * r, base:], A[5 + 2 * r, base:])


@njit(cache=True, inline="always")
def _columns_in(A, g0, t):
    """t[k*CHUNK + q] = (B^T d B)[k] of tile column g0 + q, its d[2di + r, 2dj + s] being
    A[4di + 2r + s, g0 + q + dj] (_split)."""
    p00, p01, p10, p11 = A[0, g0:], A[1, g0:], A[2, g0:], A[3, g0:]
    q00, q01, q10, q11 = A[4, g0:], A[5, g0:], A[6, g0:], A[7, g0:]
    for q in range(CHUNK):
        d00, d01, d02, d03 = p00[q], p01[q], p00[q + 1], p01[q + 1]
        d10, d11, d12, d13 = p10[q], p11[q], p10[q + 1], p11[q + 1]
        d20, d21, d22, d23 = q00[q], q01[q], q00[q + 1], q01[q + 1]
        d30, d31, d32, d33 = q10[q], q11[q], q10[q + 1], q11[q + 1]
        # B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3
        t00, t01, t02, t03 = d00 - d20, d01 - d21, d02 - d22, d03 - d23
        t10, t11, t12, t13 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
        t20, t21, t22, t23 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
        t30, t31, t32, t33 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
        # then times B: columns e0 - e2, e1 + e2, e2 - e1, e1 - e3
        _row4(t, 0, q, t00 - t02, t01 + t02, t02 - t01, t01 - t03)
        _row4(t, 4, q, t10 - t12, t11 + t12, t12 - t11, t11 - t13)
        _row4(t, 8, q, t20 - t22, t21 + t22, t22 - t21, t21 - t23)
        _row4(t, 12, q, t30 - t32, t31 + t32, t32 - t31, t31 - t33)


@njit(cache=True, inline="always")
def _columns_grad(A, g0, t):
    """t[k*CHUNK + q] = (A dY A^T)[k] of tile column g0 + q, its dY[r, s] being A[2r + s,
    g0 + q] (_split)."""
    g00, g01, g10, g11 = A[0, g0:], A[1, g0:], A[2, g0:], A[3, g0:]
    for q in range(CHUNK):
        a00, a01, a10, a11 = g00[q], g01[q], g10[q], g11[q]
        # A dY: rows g0, g0 + g1, g0 - g1, -g1; then times A^T, the same on columns
        u0, u1, u2, u3 = a00, a00 + a10, a00 - a10, -a10
        v0, v1, v2, v3 = a01, a01 + a11, a01 - a11, -a11
        _row4(t, 0, q, u0, u0 + v0, u0 - v0, -v0)
        _row4(t, 4, q, u1, u1 + v1, u1 - v1, -v1)
        _row4(t, 8, q, u2, u2 + v2, u2 - v2, -v2)
        _row4(t, 12, q, u3, u3 + v3, u3 - v3, -v3)


@njit(cache=True, inline="always")
def _row4(t, k, q, a, b, c, d):
    """t's values k .. k + 3 of tile column q."""
    t[k * CHUNK + q] = a
    t[(k + 1) * CHUNK + q] = b
    t[(k + 2) * CHUNK + q] = c
    t[(k + 3) * CHUNK + q] = d


@njit(cache=True)
def transform_in(x, mask, masked, ph, pw, th, tw, n0, n1, V):
    """V (chunks, C, ROWS*CHUNK) = B^T d B of the tiles of samples n0 .. n1 - 1 of x (N, C, H,
    W) zero-padded by ph, pw (times mask > 0 when ``masked``)."""
    C, G, P = x.shape[1], n1 - n0, tw + 1
    S = th * P
    pad = np.zeros(2 * (th + 1) * 2 * P, dtype=V.dtype)  # the rows and columns tiles reach
    A = np.zeros((8, (len(V) + 1) * CHUNK), dtype=V.dtype)
    for c in range(C):
        for s in range(G):
            _plane(x, mask, masked, n0 + s, c, ph, pw, pad, 2 * P)
            _split(pad, P, S, s * S, A, True)
        for ch in range(len(V)):
            _columns_in(A, ch * CHUNK, V[ch, c])


@njit(cache=True)
def transform_grad(dy, y, relu, th, tw, n0, n1, dM):
    """dM (chunks, F, ROWS*CHUNK) = A dY A^T of the output gradient's tiles (2x2 of dy, masked
    by y > 0 with relu; zeros past OH, OW), samples n0 .. n1 - 1."""
    F, G, P = dy.shape[1], n1 - n0, tw + 1
    S = th * P
    pad = np.zeros(2 * th * 2 * P, dtype=dM.dtype)
    A = np.zeros((4, (len(dM) + 1) * CHUNK), dtype=dM.dtype)
    for f in range(F):
        for s in range(G):
            _plane(dy, y, relu, n0 + s, f, 0, 0, pad, 2 * P)
            _split(pad, P, S, s * S, A, False)
        for ch in range(len(dM)):
            _columns_grad(A, ch * CHUNK, dM[ch, f])


@njit(cache=True, inline="always")
def _chunk_out(M, ch, f, bf, relu, t):
    """t[a*CHUNK + q] (a = 2r + s: output row r, column s of the tile) = A^T m A + bf of chunk
    ch's tile column q, m = M[ch, :, f, q] (A^T: rows m0 + m1 + m2, m1 - m2 - m3)."""
    m0, m1, m2, m3 = M[ch, 0, f], M[ch, 1, f], M[ch, 2, f], M[ch, 3, f]
    m4, m5, m6, m7 = M[ch, 4, f], M[ch, 5, f], M[ch, 6, f], M[ch, 7, f]
    m8, m9, m10, m11 = M[ch, 8, f], M[ch, 9, f], M[ch, 10, f], M[ch, 11, f]
    m12, m13, m14, m15 = M[ch, 12, f], M[ch, 13, f], M[ch, 14, f], M[ch, 15, f]
    for q in range(CHUNK):
        u0, u1, u2 = m0[q] + m4[q] + m8[q], m1[q] + m5[q] + m9[q], m2[q] + m6[q] + m10[q]
        u3, w0 = m3[q] + m7[q] + m11[q], m4[q] - m8[q] - m12[q]
        w1, w2, w3 = m5[q] - m9[q] - m13[q], m6[q] - m10[q] - m14[q], m7[q] - m11[q] - m15[q]
        y00, y01 = u0 + u1 + u2 + bf, u1 - u2 - u3 + bf
        y10, y11 = w0 + w1 + w2 + bf, w1 - w2 - w3 + bf
        t[q] = max(y00, 0) if relu else y00
        t[CHUNK + q] = max(y01, 0) if relu else y01
        t[2 * CHUNK + q] = max(y10, 0) if relu else y10
        t[3 * CHUNK + q] = max(y11, 0) if relu else y11


@njit(cache=True)
def transform_out(M, bias, relu, th, tw, n0, n1, y):
    """y (N, F, OH, OW), samples n0 .. n1 - 1, = A^T M A + bias per tile (max(., 0) with
    relu), M (chunks, 16, >= F, CHUNK); the outputs past OH, OW are dropped. A chunk's outputs go
    to a stack array first (which LLVM knows no other array shares: without it, the loop's
    vector code sat behind run-time overlap checks and took 1.8x as long)."""
    F, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    G, P = n1 - n0, tw + 1
    o = np.empty((4, len(M) * CHUNK), dtype=y.dtype)  # the tiles' four output phases
    t = numba.carray(_stack_array(128, y.dtype), (4 * CHUNK,))  # 4 * CHUNK
    for f in range(F):
        for ch in range(len(M)):
            _chunk_out(M, ch, f, bias[f], relu, t)
            for a in range(4):
                dst = o[a, ch * CHUNK :]
                for q in range(CHUNK):
                    dst[q] = t[a * CHUNK + q]
        for s in range(G):  # the phases interleaved into the rows
            for h in range(OH):
                at = s * th * P + h // 2 * P
                even, odd, dst = o[2 * (h % 2), at:], o[2 * (h % 2) + 1, at:], y[n0 + s, f, h]
                for j in range(OW // 2):
                    dst[2 * j], dst[2 * j + 1] = even[j], odd[j]
                if OW % 2:
                    dst[OW - 1] = even[OW // 2]
