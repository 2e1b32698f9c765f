"""Direct stride-1 convolution kernels: no im2col matrix, one sample per thread.

Each sample's padded input is one flat array ``x`` (C*Hp*Wp). A tap t = (c, i, j) of the kernel,
numbered in the weight's (c, i, j) order, reads the input at ``offsets[t] = c*Hp*Wp + i*Wp + j``
onwards. Outputs are computed "wide", L = OH*Wp per filter, so that a tap is one contiguous run:
wide column q = oh*Wp + ow is output (oh, ow) for ow < OW, and the other columns are computed and
dropped. Only the first ``run = L - (kw - 1)`` columns are computed at all: the last kw - 1 of a
sample would read past its input and are never outputs. With Wm = weight.reshape(F, C*kh*kw):

    out[f, q] = bias[f] + sum_t Wm[f, t] * x[offsets[t] + q]          (q < run)
    dWm[f, t] = sum_q dout[f, q] * x[offsets[t] + q]

The input gradient is itself such a convolution (see Conv2d._input_grad_direct).
``conv_forward`` runs the kernels that the layer's plan (plan.py) names per block of filters:
register tiles (tile.py, sized for the vector unit) where the run holds a tile (a last tile
overlapping the one before takes the filters its height leaves over), and the kernels below for
runs too short for a tile and for fewer filters than a tile's height.

Each pass over a run handles four taps of eight filters (``_forward8``; ``_forward2`` and
``_forward1`` take pairs and single filters): a run of ``x`` is loaded once for all of them and a
run of ``out`` once per four taps. The weight gradient (wgrad.py) goes four filters by four taps:
sixteen sums held in registers. plan.py has the measurements behind these widths; 256-bit (AVX2)
and 512-bit vectors measured the same. The inner loops are plain unit-stride
loops that LLVM vectorises; ``fastmath`` allows only reassociation and fused multiply-add, so
that sums may be regrouped into vector lanes while NaN and Inf still propagate. Samples run in
parallel; the weight gradient is summed in a fixed number of groups of samples, then the groups
in order, so results do not depend on the thread count.

Compile time (Numba compiles every kernel on a first run and caches it on disk): each filter-block
width has its own kernel, compiled only when a plan names it (a net whose layers have 8, 16, 32
or 64 filters, on images of 48 wide columns or more, compiles none of them for its forward
passes: the tiles take those). Each kernel is a small parallel loop over samples (or groups of
samples) around a serial per-sample function: Numba's parallel passes then work on a one-line
body instead of the whole inlined kernel. Measured on LeNet's second conv, CPU seconds of
compilation: forward 4.9 -> 2.8, weight gradient 5.4 -> 2.6 (the same speed once compiled).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from nettrain.layers.conv2d import tile, vec

VECTOR_MATH = {"reassoc", "contract"}


def tap_offsets(C: int, Hp: int, Wp: int, kh: int, kw: int) -> np.ndarray:
    """offsets[t] for t = (c*kh + i)*kw + j: where tap (c, i, j) starts in a flat sample. A
    copy of the remembered table: the packed layout asks for it every pass (0.1 ms to make)."""
    return _offsets(C, Hp, Wp, kh, kw).copy()


@functools.lru_cache(maxsize=256)
def _offsets(C: int, Hp: int, Wp: int, kh: int, kw: int) -> np.ndarray:
    c, i, j = np.meshgrid(np.arange(C), np.arange(kh), np.arange(kw), indexing="ij")
    return (c * Hp * Wp + i * Wp + j).reshape(-1).astype(np.int64)


@njit(cache=True, inline="always")
def _runs(x, offsets, t, run):
    """The runs of x that taps t, t+1, t+2 and t+3 read: x[offsets[t + k] : + run]."""
    a, b, c, d = offsets[t], offsets[t + 1], offsets[t + 2], offsets[t + 3]
    return x[a : a + run], x[b : b + run], x[c : c + run], x[d : d + run]


@njit(cache=True, inline="always")
def _taps(out, x, offsets, run, t, w):
    """out (run,) += sum_{k<4} w[t + k] * x[offsets[t + k] : + run]: four taps of one filter."""
    s0, s1, s2, s3 = _runs(x, offsets, t, run)
    a0, a1, a2, a3 = w[t], w[t + 1], w[t + 2], w[t + 3]
    for q in range(run):
        out[q] += a0 * s0[q] + a1 * s1[q] + a2 * s2[q] + a3 * s3[q]


@njit(cache=True, inline="always")
def _taps2(o0, o1, x, offsets, run, t, w0, w1):
    """_taps for two filters at once: each run of x is loaded once for both."""
    s0, s1, s2, s3 = _runs(x, offsets, t, run)
    a0, a1, a2, a3 = w0[t], w0[t + 1], w0[t + 2], w0[t + 3]
    b0, b1, b2, b3 = w1[t], w1[t + 1], w1[t + 2], w1[t + 3]
    for q in range(run):
        p0, p1, p2, p3 = s0[q], s1[q], s2[q], s3[q]
        o0[q] += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3
        o1[q] += b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3


@njit(cache=True, inline="always")
def _taps8(acc, x, offsets, run, t, Wm, f):
    """acc[k] (run,) += the four taps t.. of filter f + k, for k < 8: each run of x is loaded
    once for eight filters."""
    s0, s1, s2, s3 = _runs(x, offsets, t, run)
    w = Wm[f : f + 8, t : t + 4]
    a0, a1, a2, a3 = w[0, 0], w[0, 1], w[0, 2], w[0, 3]
    b0, b1, b2, b3 = w[1, 0], w[1, 1], w[1, 2], w[1, 3]
    c0, c1, c2, c3 = w[2, 0], w[2, 1], w[2, 2], w[2, 3]
    d0, d1, d2, d3 = w[3, 0], w[3, 1], w[3, 2], w[3, 3]
    e0, e1, e2, e3 = w[4, 0], w[4, 1], w[4, 2], w[4, 3]
    g0, g1, g2, g3 = w[5, 0], w[5, 1], w[5, 2], w[5, 3]
    h0, h1, h2, h3 = w[6, 0], w[6, 1], w[6, 2], w[6, 3]
    k0, k1, k2, k3 = w[7, 0], w[7, 1], w[7, 2], w[7, 3]
    o0, o1, o2, o3, o4, o5, o6, o7 = acc
    for q in range(run):
        p0, p1, p2, p3 = s0[q], s1[q], s2[q], s3[q]
        o0[q] += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3
        o1[q] += b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3
        o2[q] += c0 * p0 + c1 * p1 + c2 * p2 + c3 * p3
        o3[q] += d0 * p0 + d1 * p1 + d2 * p2 + d3 * p3
        o4[q] += e0 * p0 + e1 * p1 + e2 * p2 + e3 * p3
        o5[q] += g0 * p0 + g1 * p1 + g2 * p2 + g3 * p3
        o6[q] += h0 * p0 + h1 * p1 + h2 * p2 + h3 * p3
        o7[q] += k0 * p0 + k1 * p1 + k2 * p2 + k3 * p3


@njit(cache=True, inline="always")
def _fma1(out, s, w):
    """out += w*s."""
    for q in range(len(out)):
        out[q] += w * s[q]


@njit(cache=True, inline="always")
def _finish(acc, width, x, offsets, run, t, Wm, f, relu, OH, OW, pitch, y):
    """Taps t.. of filters f .. f + width - 1 (the last T % 4), then their outputs into y
    (F, OH, OW), with max(., 0) when ``relu``."""
    for g in range(f, f + width):
        for r in range(t, len(offsets)):
            _fma1(acc[g - f], x[offsets[r] : offsets[r] + run], Wm[g, r])
        for oh in range(OH):
            src, dst = acc[g - f, oh * pitch : oh * pitch + OW], y[g, oh]
            for ow in range(OW):
                dst[ow] = max(src[ow], 0) if relu else src[ow]


@njit(cache=True, fastmath=VECTOR_MATH)
def _sample8(x, Wm, bias, offsets, relu, OH, OW, pitch, run, y, f0, f1):
    """Filters f0 .. f1 - 1 (a multiple of 8) of one sample x (C*Hp*Wp,) into y (F, OH, OW)."""
    acc = np.empty((8, run), dtype=y.dtype)
    for f in range(f0, f1, 8):
        for k in range(8):
            acc[k] = bias[f + k]
        t = 0
        while t + 4 <= len(offsets):
            _taps8(acc, x, offsets, run, t, Wm, f)
            t += 4
        _finish(acc, 8, x, offsets, run, t, Wm, f, relu, OH, OW, pitch, y)


@njit(cache=True, fastmath=VECTOR_MATH)
def _sample2(x, Wm, bias, offsets, relu, OH, OW, pitch, run, y, f0, f1):
    """_sample8 two filters at a time."""
    acc = np.empty((2, run), dtype=y.dtype)
    for f in range(f0, f1, 2):
        acc[0], acc[1] = bias[f], bias[f + 1]
        t = 0
        while t + 4 <= len(offsets):
            _taps2(acc[0], acc[1], x, offsets, run, t, Wm[f], Wm[f + 1])
            t += 4
        _finish(acc, 2, x, offsets, run, t, Wm, f, relu, OH, OW, pitch, y)


@njit(cache=True, fastmath=VECTOR_MATH)
def _sample1(x, Wm, bias, offsets, relu, OH, OW, pitch, run, y, f0, f1):
    """_sample8 one filter at a time."""
    acc = np.empty((1, run), dtype=y.dtype)
    for f in range(f0, f1):
        acc[0] = bias[f]
        t = 0
        while t + 4 <= len(offsets):
            _taps(acc[0], x, offsets, run, t, Wm[f])
            t += 4
        _finish(acc, 1, x, offsets, run, t, Wm, f, relu, OH, OW, pitch, y)


@njit(cache=True, parallel=True)
def _forward8(xp, Wm, bias, offsets, relu, OH, OW, pitch, run, y, f0, f1):
    for n in prange(len(xp)):
        _sample8(xp[n], Wm, bias, offsets, relu, OH, OW, pitch, run, y[n], f0, f1)


@njit(cache=True, parallel=True)
def _forward2(xp, Wm, bias, offsets, relu, OH, OW, pitch, run, y, f0, f1):
    for n in prange(len(xp)):
        _sample2(xp[n], Wm, bias, offsets, relu, OH, OW, pitch, run, y[n], f0, f1)


@njit(cache=True, parallel=True)
def _forward1(xp, Wm, bias, offsets, relu, OH, OW, pitch, run, y, f0, f1):
    for n in prange(len(xp)):
        _sample1(xp[n], Wm, bias, offsets, relu, OH, OW, pitch, run, y[n], f0, f1)


FORWARD = {"direct8": _forward8, "direct2": _forward2, "direct1": _forward1}


def conv_forward(xp, Wm, bias, offsets, relu, OH, OW, pitch, run, y, steps, band=0, chunk=0):
    """xp (N, C*Hp*Wp) padded samples, Wm (F, T), bias (F,) -> y (N, F, OH, OW), with
    max(., 0) when ``relu``; pitch = Wp, run = OH*Wp - (kw - 1). ``steps`` (plan.py's Step)
    name the kernel of each block of filters: one of tile.FORWARD (register tiles, 'tile4x48'
    or 'tile3x32') or one of FORWARD. With a ``band``, xp (1, L) is the whole batch packed
    (packed.py; tiles only), its wide columns ``chunk`` at a time to the threads."""
    Wt = None
    for step in steps:
        if step.kernel in tile.FORWARD or step.kernel in vec.FORWARD:
            Wt = np.ascontiguousarray(Wm.T) if Wt is None else Wt
        if step.kernel in vec.FORWARD:
            assert not band, "vec.py's kernels take one sample a row"
            vec.FORWARD[step.kernel][2](xp, Wt, bias, offsets, relu, OW, pitch, y, step.start,
                                        step.stop)  # fmt: skip
        elif step.kernel in tile.FORWARD:
            packing = (band, chunk) if band else ()  # the kernels' defaults: one sample a row
            tile.FORWARD[step.kernel][2](xp, Wt, bias, offsets, relu, OW, pitch, run, y,
                                         step.start, step.stop, *packing)  # fmt: skip
        else:
            assert not band, "packed batches go through the register tiles only"
            FORWARD[step.kernel](xp, Wm, bias, offsets, relu, OH, OW, pitch, run, y,
                                 step.start, step.stop)  # fmt: skip
