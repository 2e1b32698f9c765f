"""2-D convolution (cross-correlation), NCHW.

x: (batch, C, H, W) -> y: (batch, filters, OH, OW) with
y[n, f, oh, ow] = bias[f] + sum_{c, i, j} weight[f, c, i, j] * xp[n, c, oh*sh + i, ow*sw + j],
where xp is x with ph rows of zeros above and below and pw columns left and right.
``weight`` is (filters, C, kh, kw), ``bias`` (filters,).

Padding: 'valid' = no padding; 'same' = (k - 1) // 2 on each side, odd kernels only, so that
stride 1 keeps H x W; an integer or a pair [ph, pw] = that many zeros on each side.
Output size: OH = floor((H + 2*ph - kh) / sh) + 1 (rows the stride cannot reach are dropped),
likewise OW. The YAML ``activation`` becomes a separate activation layer after this one; here it
only chooses the initialiser.

Forward lowers the whole batch to one GEMM: the im2col matrix ``cols`` (C*kh*kw, batch*OH*OW)
holds each output position's receptive field as a column, rows in the weight's (c, i, j) order,
so y = weight (filters, C*kh*kw) @ cols. Backward reuses cols for dW and scatters
dcols = weight.T @ dy back onto the padded input (col2im).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from nettrain import init
from nettrain.config.options import Opt
from nettrain.layers.base import ACTIVATION_NAMES, Layer, ShapeError

# Bytes of im2col matrix made at a time where nothing needs to keep it (evaluation, the input
# gradient): a chunk of samples whose matrix stays in cache between its two passes.
CHUNK_BYTES = 4 << 20


def as_pair(value, name: str, minimum: int) -> tuple[int, int]:
    """(h, w) from an int or an [h, w] pair, each >= minimum (config lists or Python ints)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise ShapeError(f"{name} must be an integer >= {minimum} or a pair [h, w], got {value}")
    return int(pair[0]), int(pair[1])


def shape_text(pair) -> str:
    """'5' for (5, 5), '5x3' otherwise: sizes as the summary shows them."""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def needs_chw(kind: str, in_shape: tuple) -> ShapeError:
    """The error for a layer given a per-sample shape that is not (C, H, W)."""
    side = math.isqrt(math.prod(in_shape))
    if len(in_shape) == 2:
        example = f"[1, {in_shape[0]}, {in_shape[1]}]"
    elif len(in_shape) == 1 and side * side == in_shape[0]:  # flattened square images
        example = f"[1, {side}, {side}]"
    else:
        example = "[1, 28, 28]"
    return ShapeError(
        f"{kind} needs a (channels, height, width) input, got shape {tuple(in_shape)}; "
        f"set model.input to the image shape, e.g. model.input: {example}"
    )


class Conv2d(Layer):
    kind = "conv2d"
    fused_relu = False  # set by the network builder when a relu follows: applied in the kernels
    OPTIONS = {
        "filters": Opt("int", min=1, doc="number of output channels"),
        "kernel": Opt("size", doc="kernel height and width: an integer or [h, w]"),
        "stride": Opt("size", 1, doc="step between windows: an integer or [h, w]"),
        "padding": Opt("padding", "valid", doc="'valid', 'same' (odd kernels) or zeros per side"),
        "activation": Opt(
            "choice", "linear", choices=ACTIVATION_NAMES, doc="activation applied to the output"
        ),
        "bias": Opt("bool", True, doc="add a bias per filter"),
        "init": init.INIT_OPTION,
    }

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise needs_chw(self.kind, in_shape)
        filters = self.options["filters"]
        if filters < 1:
            raise ShapeError(f"filters must be >= 1, got {filters}")
        C, H, W = in_shape
        self.k = as_pair(self.options["kernel"], "kernel", 1)
        self.s = as_pair(self.options["stride"], "stride", 1)
        self.p = self._padding(self.options["padding"])
        (kh, kw), (ph, pw), (sh, sw) = self.k, self.p, self.s
        if kh > H + 2 * ph or kw > W + 2 * pw:
            raise ShapeError(
                f"conv2d kernel {kh}x{kw} is larger than its padded input "
                f"{H + 2 * ph}x{W + 2 * pw} (input {H}x{W}, padding {ph}x{pw}); "
                f"use a smaller kernel or more padding"
            )
        self.add_param("weight", (filters, C, kh, kw))
        if self.options["bias"]:
            self.add_param("bias", (filters,))
        return (filters, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)

    def _padding(self, padding) -> tuple[int, int]:
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            kh, kw = self.k
            if kh % 2 == 0 or kw % 2 == 0:
                raise ShapeError(
                    f"padding 'same' needs an odd kernel, got kernel {kh}x{kw}; give an explicit "
                    f"integer padding instead, e.g. padding: {kh // 2} (or a pair [ph, pw])"
                )
            return ((kh - 1) // 2, (kw - 1) // 2)
        return as_pair(padding, "padding", 0)

    def init_params(self, rng):
        F, C, kh, kw = self.params["weight"].shape
        self.params["weight"][...] = init.draw(
            self.options["init"], self.options["activation"], (F, C, kh, kw),
            C * kh * kw, F * kh * kw, rng, self.dtype,
        )  # fmt: skip
        if "bias" in self.params:
            self.params["bias"][...] = 0

    def forward(self, x, train=True):
        N, (F, OH, OW) = len(x), self.out_shape
        xp = self._padded(x)
        Wm = self._weight_matrix()
        bias = self.params.get("bias", np.zeros(F, dtype=self.dtype))
        y = np.empty((N, F, OH * OW), dtype=self.dtype)
        pitch = self._pitch()
        # Training lowers the whole batch at once and keeps the im2col matrix for backward;
        # evaluation needs nothing back, so it goes a cache-sized chunk of samples at a time.
        step = N if train else self._chunk()
        for start in range(0, N, step):
            stop = min(start + step, N)
            cols = self._buffer("cols", (self._rows(), (stop - start) * OH * pitch))
            self._lower(xp[start:stop], cols)
            Y = np.dot(Wm, cols, out=self._buffer("Y", (F, cols.shape[1])))
            _gemm_to_nchw(Y, bias, self.fused_relu, OW, pitch, y[start:stop])  # relu, NCHW
        self.cols = cols if train else None
        self.y = y
        return y.reshape(N, F, OH, OW)

    def backward(self, dy):
        N, (F, OH, OW) = len(dy), self.out_shape
        pitch = self._pitch()
        dY = self._buffer("dY", (F, N * OH * pitch))
        dy = np.ascontiguousarray(dy, dtype=self.dtype).reshape(N, F, OH * OW)
        _nchw_to_gemm(dy, self.y, self.fused_relu, OW, pitch, dY)
        np.dot(dY, self.cols.T, out=self.grads["weight"].reshape(F, -1))
        if "bias" in self.params:
            np.sum(dY, axis=1, out=self.grads["bias"])
        if not self.needs_input_grad:
            return None
        (ph, pw), (C, H, W) = self.p, self.in_shape
        dxp = np.empty((N, C, H + 2 * ph, W + 2 * pw), dtype=self.dtype)
        Wt = self._weight_matrix().T
        step = self._chunk()  # dcols is scattered while it is still in cache
        for start in range(0, N, step):
            stop = min(start + step, N)
            part = dY[:, start * OH * pitch : stop * OH * pitch]
            dcols = np.dot(Wt, part, out=self._buffer("dcols", (self._rows(), part.shape[1])))
            self._raise(dcols, dxp[start:stop])
        return np.ascontiguousarray(dxp[:, :, ph : ph + H, pw : pw + W])

    def _pitch(self) -> int:
        """Columns of the im2col matrix per output row. With stride 1 they are the padded
        input's width Wp, not OW: each (c, i, j) row of a sample is then one contiguous run of
        the padded input, copied in one loop instead of OH short ones; the Wp - OW extra
        outputs of each row are computed and dropped."""
        wide = self.s == (1, 1)
        return self.in_shape[2] + 2 * self.p[1] if wide else self.out_shape[2]

    def _lower(self, xp, cols) -> None:
        """im2col of padded samples xp into cols (C*kh*kw, len(xp)*OH*pitch)."""
        _, OH, OW = self.out_shape
        if self.s == (1, 1):
            _im2col_wide(xp, *self.k, OH, cols)
        else:
            _im2col(xp, *self.k, *self.s, OH, OW, cols)

    def _raise(self, dcols, dxp) -> None:
        """The adjoint of _lower: dxp (padded) from dcols, summed over windows."""
        _, OH, OW = self.out_shape
        if self.s == (1, 1):
            _col2im_wide(dcols, *self.k, OH, dxp)
        else:
            _col2im(dcols, *self.k, *self.s, OH, OW, dxp)

    def _chunk(self) -> int:
        """Samples whose im2col matrix fits in CHUNK_BYTES (at least one)."""
        per_sample = self._rows() * self.out_shape[1] * self._pitch() * self.dtype.itemsize
        return max(1, CHUNK_BYTES // per_sample)

    def _rows(self) -> int:
        """Rows of the im2col matrix: C*kh*kw, in the weight's (c, i, j) order."""
        return self.in_shape[0] * self.k[0] * self.k[1]

    def _padded(self, x) -> np.ndarray:
        """x (N, C, H, W) with the zero padding added, contiguous, in the layer's dtype."""
        (ph, pw), (C, H, W) = self.p, self.in_shape
        if ph == pw == 0:
            return np.ascontiguousarray(x, dtype=self.dtype)
        xp = np.zeros((len(x), C, H + 2 * ph, W + 2 * pw), dtype=self.dtype)
        xp[:, :, ph : ph + H, pw : pw + W] = x
        return xp

    def _weight_matrix(self) -> np.ndarray:
        """weight as (filters, C*kh*kw), a view in the same (c, i, j) order as ``cols``."""
        return self.params["weight"].reshape(self.out_shape[0], -1)

    def flops(self):
        F, OH, OW = self.out_shape
        per_output = 2 * self.in_shape[0] * self.k[0] * self.k[1] + ("bias" in self.params)
        return per_output * F * OH * OW

    def describe(self):
        k, s, p = self.k, self.s, self.p
        return f"conv2d {self.options['filters']}@{k[0]}x{k[1]} s{shape_text(s)} p{shape_text(p)}"


@njit(cache=True, parallel=True)
def _im2col(xp, kh, kw, sh, sw, OH, OW, cols):
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
def _col2im(dcols, kh, kw, sh, sw, OH, OW, dxp):
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
def _im2col_wide(xp, kh, kw, OH, cols):
    """Stride-1 im2col with rows as wide as the padded input: xp (N, C, Hp, Wp) -> cols
    (C*kh*kw, N*OH*Wp), cols[(c*kh + i)*kw + j, n*OH*Wp + q] = xp[n, c].flat[i*Wp + j + q].

    Column q = oh*Wp + ow is output (oh, ow) for ow < OW; the other columns hold real inputs
    whose outputs are dropped, except the last kw - 1 of a sample, which would read past the
    plane and are zero.
    """
    N, C, Hp, Wp = xp.shape
    L = OH * Wp
    run = L - (kw - 1)
    for n in prange(N):
        k = 0
        for c in range(C):
            plane = xp[n, c].reshape(Hp * Wp)
            for i in range(kh):
                for j in range(kw):
                    # slices first: indices from range() need no negative-index checks, so
                    # the copy vectorises
                    dst = cols[k, n * L : (n + 1) * L]
                    src = plane[i * Wp + j : i * Wp + j + run]
                    for q in range(run):
                        dst[q] = src[q]
                    for q in range(run, L):
                        dst[q] = 0
                    k += 1


@njit(cache=True, parallel=True)
def _col2im_wide(dcols, kh, kw, OH, dxp):
    """The adjoint of _im2col_wide: dxp (N, C, Hp, Wp) = dcols summed over windows.

    Each sample is summed by one thread in a fixed order, so the result is the same every run.
    """
    N, C, Hp, Wp = dxp.shape
    L = OH * Wp
    run = L - (kw - 1)
    for n in prange(N):
        k = 0
        for c in range(C):
            plane = dxp[n, c].reshape(Hp * Wp)
            plane[:] = 0
            for i in range(kh):
                for j in range(kw):
                    src = dcols[k, n * L : n * L + run]
                    dst = plane[i * Wp + j : i * Wp + j + run]
                    for q in range(run):
                        dst[q] += src[q]
                    k += 1


@njit(cache=True, parallel=True)
def _gemm_to_nchw(Y, bias, relu, OW, pitch, y):
    """Y (F, N*OH*pitch) + bias -> y (N, F, OH*OW), dropping the columns ow >= OW of each
    output row; with ``relu``, max(., 0) on the way."""
    N, F, P = y.shape
    OH = P // OW
    for n in prange(N):
        for f in range(F):
            b = bias[f]
            for oh in range(OH):
                row = (n * OH + oh) * pitch
                src, dst = Y[f, row : row + OW], y[n, f, oh * OW : (oh + 1) * OW]
                for ow in range(OW):
                    v = src[ow] + b
                    dst[ow] = max(v, 0) if relu else v


@njit(cache=True, parallel=True)
def _nchw_to_gemm(dy, y, relu, OW, pitch, dY):
    """dy (N, F, OH*OW) -> dY (F, N*OH*pitch), the forward GEMM's layout, zero in the dropped
    columns; with ``relu``, only where y > 0."""
    N, F, P = dy.shape
    OH = P // OW
    for n in prange(N):
        for f in range(F):
            for oh in range(OH):
                row = (n * OH + oh) * pitch
                dst = dY[f, row : row + pitch]
                g, out = dy[n, f, oh * OW : (oh + 1) * OW], y[n, f, oh * OW : (oh + 1) * OW]
                for ow in range(OW):
                    dst[ow] = g[ow] if not relu or out[ow] > 0 else 0
                for ow in range(OW, pitch):
                    dst[ow] = 0
