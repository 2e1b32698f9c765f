"""Winograd F(2x2, 3x3) (Lavin & Gray, 2016) for 3x3 stride-1 convolutions: all three passes of
training with 16 matrix products over channels in place of the 36 multiplications a 2x2 block of
outputs takes directly, 2.25x fewer.

The input is cut into 4x4 tiles d at stride 2, one per 2x2 block of outputs (P = th*tw tiles a
sample), and with B, G, A the transforms below,

    V = B^T d B   (16 values a tile and channel),   U = G g G^T   (16 a filter and channel),
    M[k] = U[k] @ V[k]   (k < 16: (F, C) @ (C, N*P), one BLAS product each),
    y = A^T M A   (the 2x2 outputs of a tile and filter).

Backward: the weight gradient is the adjoint in g, dU[k] = dM[k] @ V[k].T with dM = A dY A^T
(dY the tile's 2x2 of the masked output gradient) and dW = G^T dU G, from the V the forward
pass kept; the input gradient is a 3x3 stride-1 convolution of the output gradient padded by
2 - p (the flipped filter, its two channel axes swapped), run through the same forward. The
transforms are memory-bound Numba loops, one sample per thread, with no sums across samples
(bit-identical for any thread count); the products go through numpy's matmul and BLAS, whose
results may change in the last bit with its thread count (like im2col + BLAS). plan.py says
where this runs, with the measured speed and float32 error.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# G (4x3): U = G g G^T. B^T and A^T are written out in the kernels below:
# B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], A^T = [[1, 1, 1, 0],
# [0, 1, -1, -1]].
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def tiles(OH: int, OW: int) -> tuple[int, int]:
    """(th, tw): 2x2 output blocks down and across."""
    return (OH + 1) // 2, (OW + 1) // 2


@njit(cache=True, inline="always")
def _bt(d0, d1, d2, d3):
    """B^T (d0, d1, d2, d3)."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, parallel=True)
def input_transform(xp, th, tw, V):
    """xp (N, C, >= 2*th + 2, >= 2*tw + 2) padded -> V (16, C, N*th*tw): V[4a + b, c, tile] =
    (B^T d B)[a, b] for the 4x4 tile d at rows 2i.., columns 2j.. (tile = (n*th + i)*tw + j)."""
    N, C = xp.shape[0], xp.shape[1]
    for n in prange(N):
        for c in range(C):
            plane = xp[n, c]
            for i in range(th):
                r0, r1, r2, r3 = plane[2 * i], plane[2 * i + 1], plane[2 * i + 2], plane[2 * i + 3]
                base = (n * th + i) * tw
                for j in range(tw):
                    s, q = 2 * j, base + j
                    t0 = _bt(r0[s], r1[s], r2[s], r3[s])  # B^T d, column by column
                    t1 = _bt(r0[s + 1], r1[s + 1], r2[s + 1], r3[s + 1])
                    t2 = _bt(r0[s + 2], r1[s + 2], r2[s + 2], r3[s + 2])
                    t3 = _bt(r0[s + 3], r1[s + 3], r2[s + 3], r3[s + 3])
                    for a in range(4):  # then (B^T d) B, row by row
                        v = _bt(t0[a], t1[a], t2[a], t3[a])
                        V[4 * a, c, q], V[4 * a + 1, c, q] = v[0], v[1]
                        V[4 * a + 2, c, q], V[4 * a + 3, c, q] = v[2], v[3]


@njit(cache=True, parallel=True)
def output_transform(M, bias, relu, th, tw, y):
    """M (16, F, N*th*tw) -> y (N, F, OH, OW) = A^T M A + bias per tile, max(., 0) with relu;
    the outputs past OH, OW are dropped."""
    N, F, OH, OW = y.shape
    for n in prange(N):
        for f in range(F):
            b, out = bias[f], y[n, f]
            for i in range(th):
                base = (n * th + i) * tw
                for j in range(tw):
                    q = base + j
                    m = M[:, f, q]
                    # u = A^T m: two rows of four
                    u0 = m[0] + m[4] + m[8]
                    u1 = m[1] + m[5] + m[9]
                    u2 = m[2] + m[6] + m[10]
                    u3 = m[3] + m[7] + m[11]
                    v0 = m[4] - m[8] - m[12]
                    v1 = m[5] - m[9] - m[13]
                    v2 = m[6] - m[10] - m[14]
                    v3 = m[7] - m[11] - m[15]
                    o = (u0 + u1 + u2 + b, u1 - u2 - u3 + b, v0 + v1 + v2 + b, v1 - v2 - v3 + b)
                    for k in range(4):
                        h, w = 2 * i + k // 2, 2 * j + k % 2
                        if h < OH and w < OW:
                            out[h, w] = max(o[k], 0) if relu else o[k]


@njit(cache=True, parallel=True)
def pad_masked(dy, y, relu, top, left, dpad):
    """dpad (N, F, Hd, Wd) = zeros with dy (N, F, OH, OW), masked by y > 0 when ``relu``, at row
    ``top`` and column ``left``."""
    N, F, OH, OW = dy.shape
    for n in prange(N):
        dpad[n] = 0
        for f in range(F):
            for h in range(OH):
                src, out, dst = dy[n, f, h], y[n, f, h], dpad[n, f, h + top, left:]
                for w in range(OW):
                    v = src[w]  # loaded first: a select, not a mispredicted branch
                    dst[w] = v if not relu or out[w] > 0 else 0


@njit(cache=True, parallel=True)
def grad_transform(dpad, top, left, th, tw, dM):
    """dM (16, F, N*th*tw) = A dY A^T per tile, dY the 2x2 of dpad at rows top + 2i..,
    columns left + 2j.. (the output gradient's tiles, as the forward pass cut the outputs)."""
    N, F = dpad.shape[0], dpad.shape[1]
    for n in prange(N):
        for f in range(F):
            plane = dpad[n, f]
            for i in range(th):
                g0, g1 = plane[top + 2 * i, left:], plane[top + 2 * i + 1, left:]
                base = (n * th + i) * tw
                for j in range(tw):
                    q = base + j
                    p, r, s, t = g0[2 * j], g0[2 * j + 1], g1[2 * j], g1[2 * j + 1]
                    rows = ((p, r), (p + s, r + t), (p - s, r - t), (-s, -t))  # A dY
                    for a in range(4):
                        e0, e1 = rows[a]
                        dM[4 * a, f, q] = e0  # then (A dY) A^T
                        dM[4 * a + 1, f, q] = e0 + e1
                        dM[4 * a + 2, f, q] = e0 - e1
                        dM[4 * a + 3, f, q] = -e1


def filter_transform(weight) -> np.ndarray:
    """weight (F, C, 3, 3) -> U (16, F, C) = G g G^T, contiguous, in the weight's dtype."""
    g = G.astype(weight.dtype)
    F, C = weight.shape[:2]
    return np.ascontiguousarray(np.einsum("ai,fcij,bj->abfc", g, weight, g).reshape(16, F, C))


def convolve(xp, U, bias, relu, OH, OW, keep):
    """y (N, F, OH, OW) of the padded input xp (N, C, >= 2*th + 2, >= 2*tw + 2) and the
    transformed filters U (16, F, C); and V, when ``keep`` (for the weight gradient)."""
    N, C = xp.shape[:2]
    th, tw = tiles(OH, OW)
    V = np.empty((16, C, N * th * tw), dtype=xp.dtype)
    input_transform(xp, th, tw, V)
    M = np.matmul(U, V)
    y = np.empty((N, U.shape[1], OH, OW), dtype=xp.dtype)
    output_transform(M, bias, relu, th, tw, y)
    return y, (V if keep else None)


def forward(x, weight, bias, padding, relu, keep):
    """y (N, F, OH, OW) of x (N, C, H, W) with 3x3 ``weight`` (F, C, 3, 3), (ph, pw)
    ``padding`` (each at most 2); and the transformed input V when ``keep``."""
    (N, C, H, W), (ph, pw) = x.shape, padding
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    th, tw = tiles(OH, OW)
    xp = np.zeros((N, C, 2 * th + 2, 2 * tw + 2), dtype=weight.dtype)
    xp[:, :, ph : ph + H, pw : pw + W] = x
    return convolve(xp, filter_transform(weight), bias, relu, OH, OW, keep)


def backward(V, weight, dy, y, relu, padding, in_shape, need_dx):
    """(dW, db, dx or None) of forward's y for the output gradient dy (N, F, OH, OW), masked
    by y > 0 when ``relu``; V is what forward kept."""
    (N, F, OH, OW), (C, H, W), (ph, pw) = dy.shape, in_shape, padding
    th, tw = tiles(OH, OW)
    hx, wx = tiles(H, W)
    top, left = 2 - ph, 2 - pw
    Hd, Wd = max(2 * hx + 2, 2 * th + top), max(2 * wx + 2, 2 * tw + left)
    dpad = np.empty((N, F, Hd, Wd), dtype=weight.dtype)
    pad_masked(dy, y, relu, top, left, dpad)
    db = dpad.sum(axis=(0, 2, 3))
    dM = np.empty((16, F, N * th * tw), dtype=weight.dtype)
    grad_transform(dpad, top, left, th, tw, dM)
    dU = np.matmul(dM, V.transpose(0, 2, 1)).reshape(4, 4, F, C)
    g = G.astype(weight.dtype)
    dW = np.einsum("ai,abfc,bj->fcij", g, dU, g)
    if not need_dx:
        return dW, db, None
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    zeros = np.zeros(C, dtype=weight.dtype)
    dx, _ = convolve(dpad, filter_transform(flipped), zeros, False, H, W, False)
    return dW, db, dx
