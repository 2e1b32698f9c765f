"""2-D max pooling, NCHW, per channel.

x: (batch, C, H, W) -> y: (batch, C, OH, OW) with y[n, c, oh, ow] = the max of the window
x[n, c, oh*sh : oh*sh + kh, ow*sw : ow*sw + kw]. Output size OH = floor((H - kh) / sh) + 1,
likewise OW: windows never pass the input's edge, so trailing rows and columns that do not fill
a window are dropped. ``stride`` defaults to ``size``.

Backward routes each output's gradient to the input that was its max; on a tie, to the first
maximum in row-major order within the window. Overlapping windows (stride < size) add up.
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
        """saved: argmax (batch, C, OH, OW), where in its window each max is: i*kw + j for
        row i and column j of the window (uint8 for windows of up to 256 values: an eighth of
        the memory traffic of a flat int64 index). Evaluation finds the maxima alone."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        y = np.empty((len(x), *self.out_shape), dtype=self.dtype)
        if not train:
            _max_kernel(*self.k, *self.s)(x, y)
            return y, None
        argmax = np.empty(y.shape, dtype=np.uint8 if self.k[0] * self.k[1] <= 256 else np.int32)
        _pool_kernel(*self.k, *self.s)(x, y, argmax)
        return y, argmax

    def backward(self, saved, dy, need_dx=True):
        N, (C, H, W) = len(dy), self.in_shape
        dx = np.empty((N, C, H, W), dtype=self.dtype)
        _unpool_kernel(*self.k, *self.s)(np.ascontiguousarray(dy, dtype=self.dtype), saved, dx)
        return dx

    def flops(self):
        C, OH, OW = self.out_shape
        return self.k[0] * self.k[1] * C * OH * OW

    def kinks(self, saved):
        return saved.copy()

    def describe(self):
        return f"{self.kind} {self.k[0]}x{self.k[1]} s{shape_text(self.s)}"


@functools.cache
def _pool_kernel(kh: int, kw: int, sh: int, sw: int):
    """The training forward kernel for one window size and stride. They are compile-time
    constants of the kernel (a closure, compiled and cached on disk per window), so that LLVM
    unrolls the window loops; with them as run-time arguments the kernel ran about 5x slower."""

    @njit(cache=True, parallel=True)
    def pool(x, y, argmax):
        """x (N, C, H, W) -> y, argmax (N, C, OH, OW); argmax is i*kw + j for the max at row i,
        column j of its window. Strict '>' over rows then columns keeps the first maximum in
        row-major order on ties."""
        N, C = x.shape[:2]
        OH, OW = y.shape[2], y.shape[3]
        for n in prange(N):
            for c in range(C):
                for oh in range(OH):
                    for ow in range(OW):
                        h0, w0 = oh * sh, ow * sw
                        best, at = x[n, c, h0, w0], 0
                        for i in range(kh):
                            for j in range(kw):
                                # loaded before the test: selects, not branches that random
                                # data would mispredict half the time
                                v = x[n, c, h0 + i, w0 + j]
                                better = v > best
                                best = v if better else best
                                at = i * kw + j if better else at
                        y[n, c, oh, ow] = best
                        argmax[n, c, oh, ow] = at

    return pool


@functools.cache
def _max_kernel(kh: int, kw: int, sh: int, sw: int):
    """_pool_kernel's maxima alone (evaluation), the window unrolled as there; NaN anywhere in
    a window gives NaN."""

    @njit(cache=True, parallel=True)
    def pool(x, y):
        N, C = x.shape[:2]
        OH, OW = y.shape[2], y.shape[3]
        for n in prange(N):
            for c in range(C):
                for oh in range(OH):
                    for ow in range(OW):
                        h0, w0 = oh * sh, ow * sw
                        best = x[n, c, h0, w0]
                        for i in range(kh):
                            for j in range(kw):
                                v = x[n, c, h0 + i, w0 + j]
                                best = v if v > best or v != v else best
                        y[n, c, oh, ow] = best

    return pool


@functools.cache
def _unpool_kernel(kh: int, kw: int, sh: int, sw: int):
    """The backward kernel for one window (its sizes constants, as the forward's)."""

    @njit(cache=True, parallel=True)
    def unpool(dy, argmax, dx):
        """dy, argmax (N, C, OH, OW) -> dx (N, C, H, W): each dy added at its window's max
        (row oh*sh + a // kw, column ow*sw + a % kw for argmax a). Windows that tile the
        plane (stride = size) in rows of 8 or more write each of their values once, dy or 0
        (2x2 windows: 1.0-1.7x faster than zeroing dx and adding; on LeNet's 4x4 outputs of
        3x3 windows, 2-3x slower); the others add into dx zeroed, in a fixed order, one
        thread a sample, so that overlapping windows sum the same every run."""
        N, C, OH, OW = dy.shape
        tiled = sh == kh and sw == kw and OW >= 8
        for n in prange(N):
            for c in range(C):
                d, g, m = dx[n, c], dy[n, c], argmax[n, c]
                if not tiled:
                    d[...] = 0
                    for oh in range(OH):
                        for ow in range(OW):
                            a = m[oh, ow]
                            d[oh * sh + a // kw, ow * sw + a % kw] += g[oh, ow]
                    continue
                d[OH * kh :] = 0  # rows and columns no window reaches
                d[: OH * kh, OW * kw :] = 0
                for oh in range(OH):
                    for i in range(kh):
                        row = d[oh * sh + i]
                        for ow in range(OW):
                            a, v = m[oh, ow] - i * kw, g[oh, ow]
                            for j in range(kw):
                                row[ow * sw + j] = v if a == j else 0

    return unpool
