"""Winograd's transforms (winograd.py) for one unit of samples, in the blocked layout its
products read: the unit's tile columns in chunks of CHUNK, one (16, CHUNK) block a chunk and
channel,

    V[ch, c, k, qq] = (B^T d B)[k] of tile column ch*CHUNK + qq,  M and dM (ch, f, k, qq) alike,

tile column s*S + i*(tw + 1) + j being tile (i, j) of the unit's sample s (S = th*(tw + 1): each
row of tiles has one column more than tiles, whose values are not used). A sample is first split
into its four phases (row and column parity), so that every value of a tile is a unit-stride
load at a fixed offset; a chunk is computed into a stack array (which LLVM knows no other array
shares, so that it vectorises the loop) and copied out as one block. A chunk that holds the
columns of two samples is computed once from each, the second overwriting from where its
columns start; columns past the unit's last tile are zeros.

Indices inside the vector loops are the loop's own counter (Numba must know an index is not
negative: an offset it cannot prove so costs a select per value, and the loop turns into
gathers), so offsets go into slices taken before the loops.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from nettrain.layers.conv2d.tile import _stack_array

CHUNK = 32  # tile columns a block: the products' tile width (wino_gemm.py)


@njit(cache=True, inline="always")
def _split(x, mask, masked, n, c, ph, pw, P, planes):
    """planes (4, .) = the phases of x[n, c] (H, W) zero-padded by ph, pw (times mask > 0
    when ``masked``), from column CHUNK on: phase (r, s) holds padded row 2i + r, column 2j + s
    at CHUNK + i*P + j. Indexed throughout (a slice a row cost more than its values)."""
    H, W = x.shape[2], x.shape[3]
    for h in range(H):
        r, o = (h + ph) % 2, CHUNK + (h + ph) // 2 * P
        pa, pb = 2 * r + pw % 2, 2 * r + 1 - pw % 2  # where even and odd columns of x land
        oa, ob = o + pw // 2, o + (pw + 1) // 2
        for m in range(W // 2):
            u, v = x[n, c, h, 2 * m], x[n, c, h, 2 * m + 1]  # loaded first: selects
            planes[pa, oa + m] = u if not masked or mask[n, c, h, 2 * m] > 0 else 0
            planes[pb, ob + m] = v if not masked or mask[n, c, h, 2 * m + 1] > 0 else 0
        if W % 2:
            u = x[n, c, h, W - 1]
            planes[pa, oa + W // 2] = u if not masked or mask[n, c, h, W - 1] > 0 else 0


@njit(cache=True, inline="always")
def _chunk_in(planes, P, start, t):
    """t[k*CHUNK + q] = (B^T d B)[k] of the tile at phase column start + q, q < CHUNK."""
    i0, P1, one = np.uint64(start), np.uint64(P), np.uint64(1)
    for q in range(CHUNK):
        # d[a][b] for rows a = 2di + r, columns b = 2dj + s: phase (r, s) at q + di*P + dj
        i = i0 + np.uint64(q)  # unsigned: no test for a negative index
        j = i + P1
        k, m = i + one, j + one
        d00, d01, d02, d03 = planes[0, i], planes[1, i], planes[0, k], planes[1, k]
        d10, d11, d12, d13 = planes[2, i], planes[3, i], planes[2, k], planes[3, k]
        d20, d21, d22, d23 = planes[0, j], planes[1, j], planes[0, m], planes[1, m]
        d30, d31, d32, d33 = planes[2, j], planes[3, j], planes[2, m], planes[3, m]
        # B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3
        t00, t01, t02, t03 = d00 - d20, d01 - d21, d02 - d22, d03 - d23
        t10, t11, t12, t13 = d10 + d20, d11 + d21, d12 + d22, d13 + d23
        t20, t21, t22, t23 = d20 - d10, d21 - d11, d22 - d12, d23 - d13
        t30, t31, t32, t33 = d10 - d30, d11 - d31, d12 - d32, d13 - d33
        # then times B: columns e0 - e2, e1 + e2, e2 - e1, e1 - e3 (t flat: k*CHUNK + q)
        t[q] = t00 - t02
        t[CHUNK + q] = t01 + t02
        t[2 * CHUNK + q] = t02 - t01
        t[3 * CHUNK + q] = t01 - t03
        t[4 * CHUNK + q] = t10 - t12
        t[5 * CHUNK + q] = t11 + t12
        t[6 * CHUNK + q] = t12 - t11
        t[7 * CHUNK + q] = t11 - t13
        t[8 * CHUNK + q] = t20 - t22
        t[9 * CHUNK + q] = t21 + t22
        t[10 * CHUNK + q] = t22 - t21
        t[11 * CHUNK + q] = t21 - t23
        t[12 * CHUNK + q] = t30 - t32
        t[13 * CHUNK + q] = t31 + t32
        t[14 * CHUNK + q] = t32 - t31
        t[15 * CHUNK + q] = t31 - t33


@njit(cache=True, inline="always")
def _chunk_grad(planes, start, t):
    """t[k*CHUNK + q] = (A dY A^T)[k] of the output gradient's tile at phase column start + q."""
    g00, g01, g10, g11 = planes[0, start:], planes[1, start:], planes[2, start:], planes[3, start:]
    for q in range(CHUNK):
        a00, a01, a10, a11 = g00[q], g01[q], g10[q], g11[q]
        # A dY: rows g0, g0 + g1, g0 - g1, -g1; then times A^T, the same on columns
        t00, t01, t10, t11 = a00, a01, a00 + a10, a01 + a11
        t20, t21, t30, t31 = a00 - a10, a01 - a11, -a10, -a11
        _row(t, 0, q, t00, t01)
        _row(t, 4, q, t10, t11)
        _row(t, 8, q, t20, t21)
        _row(t, 12, q, t30, t31)


@njit(cache=True, inline="always")
def _row(t, k, q, u, v):
    """Row (u, v) of A dY times A^T: values k .. k + 3 of column q, u, u + v, u - v, -v."""
    t[k * CHUNK + q] = u
    t[(k + 1) * CHUNK + q] = u + v
    t[(k + 2) * CHUNK + q] = u - v
    t[(k + 3) * CHUNK + q] = -v


@njit(cache=True, inline="always")
def _merge(t, part, lo, stop):
    """t[:, q] = part[:, q] for lo <= q < stop, zeros from stop on, the rest kept: selects over
    whole rows (a loop from a bound that Numba cannot prove positive would not vectorise)."""
    for k in range(16):
        for q in range(CHUNK):
            v = part[k, q] if q >= lo else t[k, q]
            t[k, q] = v if q < stop else 0


@njit(cache=True, inline="always")
def _copy(flat, out):
    for i in range(16 * CHUNK):
        out[i] = flat[i]


@njit(cache=True, inline="always")
def _chunk(planes, P, start, grad, t):
    if grad:
        _chunk_grad(planes, start, t)
    else:
        _chunk_in(planes, P, start, t)


@njit(cache=True)
def _blocks(planes, P, S, grad, out, c):
    """out[:, c] (chunks, ., 16*CHUNK) = the transformed tiles of the phases ``planes`` (G, 4,
    .) of a unit's samples, S columns each: their inputs' (B^T d B) or, with ``grad``, their
    output gradients' (A dY A^T)."""
    G = len(planes)
    ptr, pptr = _stack_array(512, out.dtype), _stack_array(512, out.dtype)  # 16 * CHUNK
    t, flat = numba.carray(ptr, (16, CHUNK)), numba.carray(ptr, (16 * CHUNK,))
    part, pflat = numba.carray(pptr, (16, CHUNK)), numba.carray(pptr, (16 * CHUNK,))
    for ch in range(len(out)):
        g0 = ch * CHUNK
        g, end = g0, min(g0 + CHUNK, G * S)
        s = g // S  # the samples whose tiles the chunk holds
        if end - g0 == CHUNK and end <= (s + 1) * S:  # one sample's: straight into out
            _chunk(planes[s], P, CHUNK + g - s * S, grad, out[ch, c])
            continue
        _chunk(planes[s], P, CHUNK + g - s * S, grad, flat)
        g = min(end, (s + 1) * S)
        while g < end:
            s = g // S
            _chunk(planes[s], P, CHUNK + g - s * S - (g - g0), grad, pflat)
            _merge(t, part, g - g0, CHUNK)
            g = min(end, (s + 1) * S)
        if end - g0 < CHUNK:
            _merge(t, t, CHUNK, end - g0)
        _copy(flat, out[ch, c])


@njit(cache=True)
def transform_in(x, mask, masked, ph, pw, th, tw, n0, n1, V):
    """V (chunks, C, 16*CHUNK) = B^T d B of the tiles of samples n0 .. n1 - 1 of x (N, C, H,
    W) zero-padded by ph, pw (times mask > 0 when ``masked``)."""
    C, G, P = x.shape[1], n1 - n0, tw + 1
    planes = np.zeros((G, 4, CHUNK + (th + 2) * P + CHUNK), dtype=V.dtype)
    for c in range(C):
        for s in range(G):
            _split(x, mask, masked, n0 + s, c, ph, pw, P, planes[s])
        _blocks(planes, P, th * P, False, V, c)


@njit(cache=True)
def transform_grad(dy, y, relu, th, tw, n0, n1, dM):
    """dM (chunks, F, 16*CHUNK) = A dY A^T of the output gradient's tiles (2x2 of dy, masked
    by y > 0 with relu; zeros past OH, OW), samples n0 .. n1 - 1."""
    F, G, P = dy.shape[1], n1 - n0, tw + 1
    planes = np.zeros((G, 4, CHUNK + th * P + CHUNK), dtype=dM.dtype)
    for f in range(F):
        for s in range(G):
            _split(dy, y, relu, n0 + s, f, 0, 0, P, planes[s])
        _blocks(planes, P, th * P, True, dM, f)


@njit(cache=True)
def transform_out(M, bias, relu, th, tw, n0, n1, y):
    """y (N, F, OH, OW), samples n0 .. n1 - 1, = A^T M A + bias per tile (max(., 0) with
    relu), M (chunks, 16, F, CHUNK); the outputs past OH, OW are dropped."""
    F, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    G, P = n1 - n0, tw + 1
    S = th * P
    o = np.empty((G, 4, S + CHUNK), dtype=y.dtype)  # each sample's four output phases
    t = numba.carray(_stack_array(128, y.dtype), (4, CHUNK))  # 4 * CHUNK
    for f in range(F):
        bf = bias[f]
        for ch in range(len(M)):
            for q in range(CHUNK):  # A^T m, then times A (indexed: a view over k is strided)
                m0, m1, m2, m3 = M[ch, 0, f, q], M[ch, 1, f, q], M[ch, 2, f, q], M[ch, 3, f, q]
                m4, m5, m6, m7 = M[ch, 4, f, q], M[ch, 5, f, q], M[ch, 6, f, q], M[ch, 7, f, q]
                m8, m9, m10 = M[ch, 8, f, q], M[ch, 9, f, q], M[ch, 10, f, q]
                m11, m12, m13 = M[ch, 11, f, q], M[ch, 12, f, q], M[ch, 13, f, q]
                m14, m15 = M[ch, 14, f, q], M[ch, 15, f, q]
                u0, u1, u2, u3 = m0 + m4 + m8, m1 + m5 + m9, m2 + m6 + m10, m3 + m7 + m11
                w0, w1, w2, w3 = m4 - m8 - m12, m5 - m9 - m13, m6 - m10 - m14, m7 - m11 - m15
                y00, y01 = u0 + u1 + u2 + bf, u1 - u2 - u3 + bf
                y10, y11 = w0 + w1 + w2 + bf, w1 - w2 - w3 + bf
                t[0, q] = max(y00, 0) if relu else y00
                t[1, q] = max(y01, 0) if relu else y01
                t[2, q] = max(y10, 0) if relu else y10
                t[3, q] = max(y11, 0) if relu else y11
            g0 = ch * CHUNK
            g, end = g0, min(g0 + CHUNK, G * S)
            while g < end:  # into the phases of the samples whose tiles the chunk holds
                s = g // S
                stop = min(end, (s + 1) * S)
                for a in range(4):
                    o[s, a, g - s * S : stop - s * S] = t[a, g - g0 : stop - g0]
                g = stop
        for s in range(G):  # the phases interleaved into the rows
            for h in range(OH):
                r, i = h % 2, h // 2
                even, odd, dst = o[s, 2 * r, i * P :], o[s, 2 * r + 1, i * P :], y[n0 + s, f, h]
                for j in range(OW // 2):
                    dst[2 * j], dst[2 * j + 1] = even[j], odd[j]
                if OW % 2:
                    dst[OW - 1] = even[OW // 2]
