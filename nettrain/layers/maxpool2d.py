"""2-D max pooling, NCHW, per channel.

x: (batch, C, H, W) -> y: (batch, C, OH, OW) with y[n, c, oh, ow] = the max of the window
x[n, c, oh*sh : oh*sh + kh, ow*sw : ow*sw + kw]. Output size OH = floor((H - kh) / sh) + 1,
likewise OW: windows never pass the input's edge, so trailing rows and columns that do not fill
a window are dropped. ``stride`` defaults to ``size``.

Backward routes each output's gradient to the input that was its max; on a tie, to the first
maximum in row-major order within the window. Overlapping windows (stride < size) add up.
An evaluation forward (predict, validation) writes no argmax: the same kernel, told not to, the
window loop unchanged. Its int64 per output had been written and dropped: LeNet's 2x2 pool over
1,000 samples took 1.73-1.78 ms, 0.88-1.18 without, its 3x3 pool 1.03-1.04 -> 0.57-0.60, the
CIFAR net's first pool (256 samples) 2.2-2.4 -> 1.0-1.3 (AMD EPYC Zen 3, 2 threads, best of 35
interleaved); training, which keeps the argmax, measured the same.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nettrain.core.options import Opt
from nettrain.layers.base import Layer, ShapeError
from nettrain.layers.conv2d.layer import as_pair, needs_chw, shape_text


class MaxPool2d(Layer):
    kind = "maxpool2d"
    OPTIONS = {
        "size": Opt("size", doc="window height and width: an integer or [h, w]"),
        "stride": Opt("size", None, doc="step between windows; defaults to size"),
    }
    OUTPUT_RANGE = None  # its input's: each output is one of its window's values
    TORCH = "torch.nn.MaxPool2d"  # ceil_mode False: the output size rounds down

    def onnx(self, g, x):
        """MaxPool without padding, ceil_mode 0."""
        (kh, kw), (sh, sw) = self.geometry()
        return g.node("MaxPool", [x], kernel_shape=[kh, kw], strides=[sh, sw], ceil_mode=0)

    def geometry(self):
        """(window, stride) as (h, w) pairs, from the options."""
        k = as_pair(self.options["size"], "size", 1)
        stride = self.options["stride"]
        return k, (k if stride is None else as_pair(stride, "stride", 1))

    def shapes(self, in_shape):
        if len(in_shape) != 3:
            raise needs_chw(self.kind, in_shape)
        C, H, W = in_shape
        (kh, kw), (sh, sw) = self.geometry()
        if kh > H or kw > W:
            raise ShapeError(
                f"{self.kind} window {kh}x{kw} is larger than its input {H}x{W}; "
                f"use a smaller size or drop the pooling layer"
            )
        return (C, (H - kh) // sh + 1, (W - kw) // sw + 1), {}, {}

    def setup(self):
        self.k, self.s = self.geometry()

    def forward(self, x, train=True):
        """saved: argmax (batch, C, OH, OW), each window's max as a flat index h*W + w;
        in evaluation nothing, and the argmax is neither kept nor written."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        y = np.empty((len(x), *self.out_shape), dtype=self.dtype)
        argmax = np.empty(y.shape if train else (1, 1, 1, 1), dtype=np.int64)
        _pool_kernel(*self.k, *self.s)(x, y, argmax, bool(train))
        return y, (argmax if train else None)

    def backward(self, saved, dy, need_dx=True):
        N, (C, H, W) = len(dy), self.in_shape
        dx = np.empty((N, C, H * W), dtype=self.dtype)
        _unpool(np.ascontiguousarray(dy, dtype=self.dtype), saved, dx)
        return dx.reshape(N, C, H, W)

    def flops(self):
        C, OH, OW = self.out_shape
        return self.k[0] * self.k[1] * C * OH * OW

    def kinks(self, saved):
        return saved.copy()

    def describe(self):
        return f"{self.kind} {self.k[0]}x{self.k[1]} s{shape_text(self.s)}"


@functools.cache
def _pool_kernel(kh: int, kw: int, sh: int, sw: int):
    """The forward kernel for one window size and stride. They are compile-time constants of
    the kernel (a closure, compiled and cached on disk per window), so that LLVM unrolls the
    window loops; with them as run-time arguments the kernel ran about 5x slower."""

    @njit(cache=True, parallel=True)
    def pool(x, y, argmax, keep):
        """x (N, C, H, W) -> y, and where ``keep`` argmax (N, C, OH, OW), the flat index
        h*W + w of each max (else argmax is not touched: any int64 array will do). Strict '>'
        over rows then columns keeps the first maximum in row-major order on ties."""
        N, C, H, W = x.shape
        OH, OW = y.shape[2], y.shape[3]
        for n in prange(N):
            for c in range(C):
                for oh in range(OH):
                    for ow in range(OW):
                        h0, w0 = oh * sh, ow * sw
                        best, at = x[n, c, h0, w0], h0 * W + w0
                        for h in range(h0, h0 + kh):
                            for w in range(w0, w0 + kw):
                                # loaded before the test: selects, not branches that random
                                # data would mispredict half the time
                                v = x[n, c, h, w]
                                better = v > best
                                best = v if better else best
                                at = h * W + w if better else at
                        y[n, c, oh, ow] = best
                        if keep:  # the same branch for the whole call: predicted
                            argmax[n, c, oh, ow] = at

    return pool


@njit(cache=True, parallel=True)
def _unpool(dy, argmax, dx):
    """dy, argmax (N, C, OH, OW) -> dx (N, C, H*W): each dy added at its window's max.

    One thread per sample, adding in a fixed order, so overlapping windows sum the same every run.
    """
    N, C, OH, OW = dy.shape
    for n in prange(N):
        dx[n] = 0
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    dx[n, c, argmax[n, c, oh, ow]] += dy[n, c, oh, ow]
