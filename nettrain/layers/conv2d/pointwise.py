"""1x1 convolutions without padding (pointwise: ResNets' projection shortcuts, bottlenecks), any
stride, as one BLAS product a sample. Stride (sh, sw) keeps every sh-th row and sw-th column:

    xs = x[:, :, ::sh, ::sw] as (N, C, P),  P = OH*OW,
    y[n] = weight (F, C) @ xs[n] + bias,
    dW = sum_n dy[n] @ xs[n].T,   db = sum_{n, p} dy[n, :, p],   dxs[n] = weight.T @ dy[n],

dy masked by y > 0 first with a fused relu; dx is dxs at the kept rows and columns, zeros
elsewhere. There is no im2col matrix to build (xs is x itself at stride 1), and the direct
kernels' taps are only C here, too few to pay for a register tile's stores (plan.py has the
measurements). numpy's matmul calls BLAS once a sample, and dW's samples are added in order;
like every BLAS product (runtime/threads.py), a product may round differently on another thread
count for some shapes, the documented exception to the kernels' thread independence (the
ResNets' projections give the same bits on 1 and 2 threads: tested).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nettrain.runtime import native


def forward(x, W, bias, stride, relu, y) -> np.ndarray:
    """y (N, F, OH, OW) from x (N, C, H, W), the weight as (F, C) and the bias (F,) (zeros where
    the layer has none); returns xs (N, C, P), what the weight gradient reads."""
    (N, C), (sh, sw), F = x.shape[:2], stride, len(W)
    x = np.ascontiguousarray(x, dtype=y.dtype)
    if (sh, sw) == (1, 1):
        xs = x.reshape(N, C, -1)
    else:  # a parallel loop: numpy's strided copy went value by value (2.6 ms of 5.1)
        xs = np.empty((N, C, y.shape[2] * y.shape[3]), y.dtype)
        native.run(_subsample, _SUBSAMPLE, x, sh, sw, xs)
    out = y.reshape(N, F, -1)
    np.matmul(W, xs, out=out)
    if bias.any():  # a layer without bias gets zeros
        out += bias[:, None]
    if relu:
        np.maximum(out, 0, out=out)
    return xs


def backward(layer, xs, dy, y, relu, need_dx):
    """A Conv2d ``layer``'s gradients into layer.grads, dx (N, C, H, W) or None returned: the
    forward's xs, its output y (read for the mask when ``relu``) and the output gradient dy."""
    (N, F), (C, H, W), (sh, sw) = dy.shape[:2], layer.in_shape, layer.s
    g = dy.reshape(N, F, -1)
    if relu:
        g = np.where(y.reshape(N, F, -1) > 0, g, 0).astype(dy.dtype, copy=False)
    per_sample = layer._buffer("dW_samples", (N, F, C))
    np.matmul(g, xs.transpose(0, 2, 1), out=per_sample)
    np.sum(per_sample, axis=0, out=layer.grads["weight"].reshape(F, C))
    if "bias" in layer.params:
        np.sum(g, axis=(0, 2), out=layer.grads["bias"])
    if not need_dx:
        return None
    Wt = layer.params["weight"].reshape(F, C).T
    if (sh, sw) == (1, 1):
        return np.matmul(Wt, g).reshape(N, C, H, W)
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    dx[:, :, ::sh, ::sw] = np.matmul(Wt, g).reshape(N, C, *layer.out_shape[1:])
    return dx


@njit(cache=True)
def _subsample_sample(x, sh, sw, out, n):
    """out[n] (C, OH*OW) = x[n, :, ::sh, ::sw]; stride 2 as a constant."""
    C, H = x.shape[1:3]
    OH = -(-H // sh)
    OW = out.shape[2] // OH
    for c in range(C):
        for i in range(OH):
            src, dst = x[n, c, i * sh], out[n, c, i * OW :]
            if sw == 2:
                for j in range(OW):
                    dst[j] = src[2 * j]
            else:
                for j in range(OW):
                    dst[j] = src[sw * j]


@njit(cache=True)
def _subsample(table, x, sh, sw, out):
    """_subsample_sample (its table) over the samples, a thread each (native.py)."""
    return native.parallel(table, (x, sh, sw, out), len(x))


_SUBSAMPLE = native.Kernel(_subsample_sample)
