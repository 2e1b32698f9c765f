"""2-D average pooling, NCHW, per channel.

x: (batch, C, H, W) -> y: (batch, C, OH, OW) with y[n, c, oh, ow] = the mean of the window
x[n, c, oh*sh : oh*sh + kh, ow*sw : ow*sw + kw] (its sum divided by kh*kw). Output size as
maxpool2d: OH = floor((H - kh) / sh) + 1, likewise OW; trailing rows and columns that fill no
window are dropped. ``stride`` defaults to ``size``.

Backward adds dy[n, c, oh, ow] / (kh*kw) to every input of the window; overlapping windows
(stride < size) add up.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nettrain.layers.maxpool2d import MaxPool2d


class AvgPool2d(MaxPool2d):
    """Shapes, options, errors and summary as maxpool2d; the mean instead of the max."""

    kind = "avgpool2d"
    OUTPUT_RANGE = None  # its input's: a mean of values in a range stays in it
    TORCH = "torch.nn.AvgPool2d"  # ceil_mode False: the output size rounds down

    def onnx(self, g, x):
        """AveragePool without padding, ceil_mode 0."""
        (kh, kw), (sh, sw) = self.geometry()
        return g.node("AveragePool", [x], kernel_shape=[kh, kw], strides=[sh, sw], ceil_mode=0)

    def forward(self, x, train=True):
        """saved: nothing (backward needs only the shapes)."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        y = np.empty((len(x), *self.out_shape), dtype=self.dtype)
        _kernels(*self.k, *self.s)[0](x, y)
        return y, None

    def backward(self, saved, dy, need_dx=True):
        dx = np.empty((len(dy), *self.in_shape), dtype=self.dtype)
        _kernels(*self.k, *self.s)[1](np.ascontiguousarray(dy, dtype=self.dtype), dx)
        return dx

    def kinks(self, saved):
        return None


@functools.cache
def _kernels(kh: int, kw: int, sh: int, sw: int):
    """(forward, backward) kernels for one window size and stride, compile-time constants of
    the kernels so that LLVM unrolls the window loops (as maxpool2d's)."""

    @njit(cache=True, parallel=True)
    def pool(x, y):
        """x (N, C, H, W) -> y (N, C, OH, OW): window sums in row-major order, / (kh*kw)."""
        N, C = x.shape[0], x.shape[1]
        OH, OW = y.shape[2], y.shape[3]
        count = y.dtype.type(kh * kw)
        for n in prange(N):
            for c in range(C):
                for oh in range(OH):
                    for ow in range(OW):
                        h0, w0 = oh * sh, ow * sw
                        total = y.dtype.type(0)
                        for h in range(h0, h0 + kh):
                            for w in range(w0, w0 + kw):
                                total += x[n, c, h, w]
                        y[n, c, oh, ow] = total / count

    @njit(cache=True, parallel=True)
    def unpool(dy, dx):
        """dy (N, C, OH, OW) -> dx (N, C, H, W): each dy / (kh*kw) added over its window.
        One thread per sample, adding in a fixed order."""
        N, C, OH, OW = dy.shape
        count = dx.dtype.type(kh * kw)
        for n in prange(N):
            dx[n] = 0
            for c in range(C):
                for oh in range(OH):
                    for ow in range(OW):
                        g = dy[n, c, oh, ow] / count
                        for h in range(oh * sh, oh * sh + kh):
                            for w in range(ow * sw, ow * sw + kw):
                                dx[n, c, h, w] += g

    return pool, unpool
