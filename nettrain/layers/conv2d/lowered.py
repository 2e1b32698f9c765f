"""im2col kernels for strided convolution: the whole batch lowered to one matrix product.

The im2col matrix ``cols`` (C*kh*kw, N*OH*OW) holds each output position's receptive field as a
column, rows in the weight's (c, i, j) order, so that y = weight (F, C*kh*kw) @ cols; backward
computes dW = dY @ cols.T and scatters dcols = weight.T @ dY back onto the padded input
(col2im). Inputs are padded first, which keeps bounds tests out of the inner loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def forward(layer, xp, bias, train, y):
    """A Conv2d ``layer``'s y (N, F, OH, OW) of its padded input xp through im2col: training
    lowers the whole batch at once and returns the matrix for backward; evaluation goes a
    cache-sized chunk of samples at a time (the plan's ``chunk``) and keeps nothing."""
    N, (F, OH, OW), relu = len(xp), layer.out_shape, layer.fused is not None
    step, Wm = N if train else layer.plan.chunk, layer._weight_matrix()
    for start in range(0, N, step):
        stop = min(start + step, N)
        cols = layer._buffer("cols", (Wm.shape[1], (stop - start) * OH * OW))
        im2col(xp[start:stop], *layer.k, *layer.s, OH, OW, cols)
        Y = np.dot(Wm, cols, out=layer._buffer("Y", (F, cols.shape[1])))
        gemm_to_nchw(Y, bias, relu, y[start:stop].reshape(-1, F, OH * OW))
    return cols if train else None


def backward(layer, cols, y, relu, dy, need_dx):
    """The layer's gradients into layer.grads, dx (or None) returned, from forward's matrix
    ``cols``, its output y (read for the mask when ``relu``) and the output gradient dy."""
    N, (F, OH, OW) = len(dy), layer.out_shape
    dY = layer._buffer("dY", (F, N * OH * OW))
    nchw_to_gemm(dy.reshape(N, F, -1), y.reshape(N, F, -1), relu, dY)
    np.dot(dY, cols.T, out=layer.grads["weight"].reshape(F, -1))
    if "bias" in layer.params:
        np.sum(dY, axis=1, out=layer.grads["bias"])
    if not need_dx:
        return None
    (ph, pw), (C, H, W) = layer.p, layer.in_shape
    dxp = np.empty((N, C, H + 2 * ph, W + 2 * pw), dtype=layer.dtype)
    Wt = layer._weight_matrix().T
    step = layer.plan.chunk  # dcols is scattered while it is still in cache
    for start in range(0, N, step):
        stop = min(start + step, N)
        part = dY[:, start * OH * OW : stop * OH * OW]
        dcols = np.dot(Wt, part, out=layer._buffer("dcols", (Wt.shape[0], part.shape[1])))
        col2im(dcols, *layer.k, *layer.s, OH, OW, dxp[start:stop])
    return np.ascontiguousarray(dxp[:, :, ph : ph + H, pw : pw + W])


@njit(cache=True, parallel=True)
def im2col(xp, kh, kw, sh, sw, OH, OW, cols):
    """xp (N, C, Hp, Wp), already padded -> cols (C*kh*kw, N*OH*OW).

    cols[(c*kh + i)*kw + j, (n*OH + oh)*OW + ow] = xp[n, c, oh*sh + i, ow*sw + j]. Padding the
    input first keeps bounds tests out of the inner loop.
    """
    N, C = xp.shape[0], xp.shape[1]
    P = OH * OW
    for n in prange(N):
        k = 0
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    dst = cols[k, n * P : (n + 1) * P]
                    for oh in range(OH):
                        src = xp[n, c, oh * sh + i, j:]
                        out = dst[oh * OW : (oh + 1) * OW]
                        if sw == 1:  # its own loop so that LLVM vectorises the plain copy
                            for ow in range(OW):
                                out[ow] = src[ow]
                        else:
                            for ow in range(OW):
                                out[ow] = src[ow * sw]
                    k += 1


@njit(cache=True, parallel=True)
def col2im(dcols, kh, kw, sh, sw, OH, OW, dxp):
    """The adjoint of _im2col: dxp (N, C, Hp, Wp) = dcols (C*kh*kw, N*OH*OW) summed over windows.

    Each sample is summed by one thread in a fixed order, so the result is the same every run.
    """
    N, C = dxp.shape[0], dxp.shape[1]
    P = OH * OW
    for n in prange(N):
        dxp[n] = 0
        k = 0
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    src = dcols[k, n * P : (n + 1) * P]
                    for oh in range(OH):
                        dst = dxp[n, c, oh * sh + i, j:]
                        part = src[oh * OW : (oh + 1) * OW]
                        if sw == 1:  # its own loop so that LLVM vectorises the plain sum
                            for ow in range(OW):
                                dst[ow] += part[ow]
                        else:
                            for ow in range(OW):
                                dst[ow * sw] += part[ow]
                    k += 1


@njit(cache=True, parallel=True)
def gemm_to_nchw(Y, bias, relu, y):
    """Y (F, N*P) + bias -> y (N, F, P); with ``relu``, max(., 0) on the way."""
    N, F, P = y.shape
    for n in prange(N):
        for f in range(F):
            b, src, dst = bias[f], Y[f, n * P : (n + 1) * P], y[n, f]
            for q in range(P):
                v = src[q] + b
                dst[q] = max(v, 0) if relu else v


@njit(cache=True, parallel=True)
def nchw_to_gemm(dy, y, relu, dY):
    """dy (N, F, P) -> dY (F, N*P), the forward GEMM's layout; with ``relu``, only where y > 0."""
    N, F, P = dy.shape
    for n in prange(N):
        for f in range(F):
            g, out, dst = dy[n, f], y[n, f], dY[f, n * P : (n + 1) * P]
            for q in range(P):
                v = g[q]  # loaded first: a select, not a mispredicted branch
                dst[q] = v if not relu or out[q] > 0 else 0
