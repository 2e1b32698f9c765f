"""Winograd F(2x2, 3x3) (Lavin & Gray, 2016) for 3x3 stride-1 convolutions: all three passes of
training with 16 matrix products over channels in place of the 36 multiplications a 2x2 block of
outputs takes directly, 2.25x fewer.

The input is cut into 4x4 tiles d at stride 2, one per 2x2 block of outputs (P = th*tw tiles a
sample), and with B, G, A the transforms below,

    V = B^T d B   (16 values a tile and channel),   U = G g G^T   (16 a filter and channel),
    M[n, k] = U[k] @ V[n, k]   (k < 16: (F, C) @ (C, P), a BLAS product a sample),
    y = A^T M A   (the 2x2 outputs of a tile and filter).

Backward: the weight gradient is the adjoint in g, dU[k] = sum_n dM[n, k] @ V[n, k].T with
dM = A dY A^T
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


@njit(cache=True, parallel=True)
def input_transform(xp, th, tw, V):
    """xp (N, C, >= 2*th + 2, >= 2*tw + 2) padded -> V (N, 16, C, th*tw): V[n, 4a + b, c,
    i*tw + j] = (B^T d B)[a, b] for the 4x4 tile d at rows 2i.., columns 2j.. Each sample's
    products then read one contiguous block. B^T d goes along whole rows, then (B^T d) B tile by
    tile: both loops vectorise."""
    N, C = xp.shape[0], xp.shape[1]
    width = 2 * tw + 2
    for n in prange(N):
        t = np.empty((4, width), dtype=xp.dtype)
        for c in range(C):
            plane = xp[n, c]
            for i in range(th):
                r0, r1, r2, r3 = plane[2 * i], plane[2 * i + 1], plane[2 * i + 2], plane[2 * i + 3]
                for w in range(width):  # B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3
                    t[0, w] = r0[w] - r2[w]
                    t[1, w] = r1[w] + r2[w]
                    t[2, w] = r2[w] - r1[w]
                    t[3, w] = r1[w] - r3[w]
                for a in range(4):  # then each row times B
                    ta = t[a]
                    v0 = V[n, 4 * a, c, i * tw : (i + 1) * tw]
                    v1 = V[n, 4 * a + 1, c, i * tw : (i + 1) * tw]
                    v2 = V[n, 4 * a + 2, c, i * tw : (i + 1) * tw]
                    v3 = V[n, 4 * a + 3, c, i * tw : (i + 1) * tw]
                    for j in range(tw):
                        e0, e1, e2, e3 = ta[2 * j], ta[2 * j + 1], ta[2 * j + 2], ta[2 * j + 3]
                        v0[j], v1[j], v2[j], v3[j] = e0 - e2, e1 + e2, e2 - e1, e1 - e3


@njit(cache=True, parallel=True)
def output_transform(M, bias, relu, th, tw, y):
    """M (N, 16, F, th*tw) -> y (N, F, OH, OW) = A^T M A + bias per tile, max(., 0) with relu;
    the outputs past OH, OW are dropped."""
    N, F, OH, OW = y.shape
    for n in prange(N):
        rows = np.empty((2, 2 * tw), dtype=y.dtype)
        for f in range(F):
            b, out = bias[f], y[n, f]
            for i in range(th):
                m = M[n, :, f, i * tw : (i + 1) * tw]
                top, bottom = rows[0], rows[1]
                for j in range(tw):  # A^T m, then times A
                    u0 = m[0, j] + m[4, j] + m[8, j]
                    u1 = m[1, j] + m[5, j] + m[9, j]
                    u2 = m[2, j] + m[6, j] + m[10, j]
                    u3 = m[3, j] + m[7, j] + m[11, j]
                    w0 = m[4, j] - m[8, j] - m[12, j]
                    w1 = m[5, j] - m[9, j] - m[13, j]
                    w2 = m[6, j] - m[10, j] - m[14, j]
                    w3 = m[7, j] - m[11, j] - m[15, j]
                    top[2 * j], top[2 * j + 1] = u0 + u1 + u2 + b, u1 - u2 - u3 + b
                    bottom[2 * j], bottom[2 * j + 1] = w0 + w1 + w2 + b, w1 - w2 - w3 + b
                for k in range(min(2, OH - 2 * i)):
                    src, dst = rows[k], out[2 * i + k]
                    for w in range(OW):
                        v = src[w]
                        dst[w] = max(v, 0) if relu else v


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
    """dM (N, 16, F, th*tw) = A dY A^T per tile, dY the 2x2 of dpad at rows top + 2i..,
    columns left + 2j.. (the output gradient's tiles, as the forward pass cut the outputs)."""
    N, F = dpad.shape[0], dpad.shape[1]
    for n in prange(N):
        t = np.empty((4, 2 * tw), dtype=dpad.dtype)
        for f in range(F):
            plane = dpad[n, f]
            for i in range(th):
                g0, g1 = plane[top + 2 * i, left:], plane[top + 2 * i + 1, left:]
                for w in range(2 * tw):  # A dY: rows g0, g0 + g1, g0 - g1, -g1
                    t[0, w] = g0[w]
                    t[1, w] = g0[w] + g1[w]
                    t[2, w] = g0[w] - g1[w]
                    t[3, w] = -g1[w]
                for a in range(4):  # then times A^T
                    ta = t[a]
                    d0 = dM[n, 4 * a, f, i * tw : (i + 1) * tw]
                    d1 = dM[n, 4 * a + 1, f, i * tw : (i + 1) * tw]
                    d2 = dM[n, 4 * a + 2, f, i * tw : (i + 1) * tw]
                    d3 = dM[n, 4 * a + 3, f, i * tw : (i + 1) * tw]
                    for j in range(tw):
                        e0, e1 = ta[2 * j], ta[2 * j + 1]
                        d0[j], d1[j], d2[j], d3[j] = e0, e0 + e1, e0 - e1, -e1


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
    V = np.empty((N, 16, C, th * tw), dtype=xp.dtype)
    input_transform(xp, th, tw, V)
    M = np.matmul(U, V)  # (N, 16, F, P): a product per sample and k
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
    dM = np.empty((N, 16, F, th * tw), dtype=weight.dtype)
    grad_transform(dpad, top, left, th, tw, dM)
    dU = np.matmul(dM, V.transpose(0, 1, 3, 2)).sum(axis=0).reshape(4, 4, F, C)
    g = G.astype(weight.dtype)
    dW = np.einsum("ai,abfc,bj->fcij", g, dU, g)
    if not need_dx:
        return dW, db, None
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    zeros = np.zeros(C, dtype=weight.dtype)
    dx, _ = convolve(dpad, filter_transform(flipped), zeros, False, H, W, False)
    return dW, db, dx
