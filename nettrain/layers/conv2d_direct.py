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

Each pass over a run handles four taps of two filters: a run of ``x`` is loaded once for both
filters and a run of ``out`` once per four taps. The inner loops are plain unit-stride loops that
LLVM vectorises; ``fastmath`` allows only reassociation and fused multiply-add, so that sums may
be regrouped into vector lanes while NaN and Inf still propagate. Samples run in parallel; the
weight gradient is summed in a fixed number of groups of samples, then the groups in order, so
results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

VECTOR_MATH = {"reassoc", "contract"}
# Sample groups of the weight gradient: enough to keep 32 threads busy, few enough that their
# partial sums (GROUPS x the weight's size) stay small beside the activations.
GROUPS = 32


def tap_offsets(C: int, Hp: int, Wp: int, kh: int, kw: int) -> np.ndarray:
    """offsets[t] for t = (c*kh + i)*kw + j: where tap (c, i, j) starts in a flat sample."""
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
def _fma1(out, s, w):
    """out += w*s."""
    for q in range(len(out)):
        out[q] += w * s[q]


@njit(cache=True, inline="always")
def _dot_taps(d, x, offsets, run, t, grad):
    """grad[t + k] += d . x[offsets[t + k] : + run] for k < 4, for the taps t.. of one filter."""
    s0, s1, s2, s3 = _runs(x, offsets, t, run)
    a0 = a1 = a2 = a3 = grad.dtype.type(0)
    for q in range(run):
        a0 += d[q] * s0[q]
        a1 += d[q] * s1[q]
        a2 += d[q] * s2[q]
        a3 += d[q] * s3[q]
    grad[t] += a0
    grad[t + 1] += a1
    grad[t + 2] += a2
    grad[t + 3] += a3


@njit(cache=True, inline="always")
def _dot_taps2(d0, d1, x, offsets, run, t, g0, g1):
    """_dot_taps for two filters at once: each run of x is loaded once for both."""
    s0, s1, s2, s3 = _runs(x, offsets, t, run)
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = g0.dtype.type(0)
    for q in range(run):
        u, v = d0[q], d1[q]
        p0, p1, p2, p3 = s0[q], s1[q], s2[q], s3[q]
        a0 += u * p0
        a1 += u * p1
        a2 += u * p2
        a3 += u * p3
        b0 += v * p0
        b1 += v * p1
        b2 += v * p2
        b3 += v * p3
    g0[t] += a0
    g0[t + 1] += a1
    g0[t + 2] += a2
    g0[t + 3] += a3
    g1[t] += b0
    g1[t + 1] += b1
    g1[t + 2] += b2
    g1[t + 3] += b3


@njit(cache=True, inline="always")
def _dot1(d, s):
    """d . s."""
    a = d.dtype.type(0)
    for q in range(len(d)):
        a += d[q] * s[q]
    return a


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def conv_forward(xp, Wm, bias, offsets, relu, OH, OW, pitch, run, y):
    """xp (N, C*Hp*Wp) padded samples, Wm (F, T), bias (F,) -> y (N, F, OH, OW), with
    max(., 0) when ``relu``; pitch = Wp, run = OH*Wp - (kw - 1). Filters go in pairs."""
    N, F = xp.shape[0], Wm.shape[0]
    T = len(offsets)
    for n in prange(N):
        acc = np.empty((2, run), dtype=y.dtype)
        x, o0, o1 = xp[n], acc[0], acc[1]
        for f in range(0, F, 2):
            pair = f + 1 < F
            o0[:] = bias[f]
            o1[:] = bias[f + 1] if pair else 0
            t = 0
            while t + 4 <= T:
                if pair:
                    _taps2(o0, o1, x, offsets, run, t, Wm[f], Wm[f + 1])
                else:
                    _taps(o0, x, offsets, run, t, Wm[f])
                t += 4
            for g in range(f, f + 1 + pair):
                for r in range(t, T):
                    _fma1(acc[g - f], x[offsets[r] : offsets[r] + run], Wm[g, r])
                for oh in range(OH):
                    src, dst = acc[g - f, oh * pitch : oh * pitch + OW], y[n, g, oh]
                    for ow in range(OW):
                        dst[ow] = max(src[ow], 0) if relu else src[ow]


@njit(cache=True, parallel=True, fastmath=VECTOR_MATH)
def conv_weight_grad(xp, offsets, dy, y, relu, pitch, run, dWg, dbg):
    """Weight and bias gradients of conv_forward for dy (N, F, OH, OW), masked by y > 0 when
    ``relu``, summed per group of samples: group g of G = len(dWg) holds samples
    g*N//G .. (g+1)*N//G - 1 in dWg[g] (F, T) and dbg[g] (F,); the caller adds the groups. The
    groups depend on N only, so the sums do not depend on the thread count."""
    N, F, OH, OW = dy.shape
    G, T = len(dWg), len(offsets)
    for g in prange(G):
        dW, db = dWg[g], dbg[g]
        dW[:] = 0
        db[:] = 0
        d = np.zeros((F, run), dtype=dy.dtype)  # dy of one sample, wide and masked
        for n in range(g * N // G, (g + 1) * N // G):
            for f in range(F):
                for oh in range(OH):
                    src, out = dy[n, f, oh], y[n, f, oh]
                    dst = d[f, oh * pitch : oh * pitch + OW]
                    for ow in range(OW):
                        v = src[ow]  # loaded first: a select, not a mispredicted branch
                        dst[ow] = v if not relu or out[ow] > 0 else 0
                db[f] += np.sum(d[f])
            x = xp[n]
            for f in range(0, F, 2):
                pair = f + 1 < F
                t = 0
                while t + 4 <= T:
                    if pair:
                        _dot_taps2(d[f], d[f + 1], x, offsets, run, t, dW[f], dW[f + 1])
                    else:
                        _dot_taps(d[f], x, offsets, run, t, dW[f])
                    t += 4
                for h in range(f, f + 1 + pair):
                    for r in range(t, T):
                        dW[h, r] += _dot1(d[h], x[offsets[r] : offsets[r] + run])


@njit(cache=True, parallel=True)
def pad_gradient(dy, y, relu, top, left, dpad):
    """dpad (N, F, Hd, Wd) = zeros with dy (N, F, OH, OW), masked by y > 0 when ``relu``,
    placed at row ``top`` and column ``left``; parts falling outside (negative offsets) are
    dropped. The input gradient is then a stride-1 convolution of dpad (see Conv2d)."""
    N, F, OH, OW = dy.shape
    Hd, Wd = dpad.shape[2], dpad.shape[3]
    r0, r1 = max(0, -top), min(OH, Hd - top)  # the rows and columns of dy that land in dpad
    c0, c1 = max(0, -left), min(OW, Wd - left)
    for n in prange(N):
        dpad[n].reshape(F * Hd * Wd)[:] = 0
        for f in range(F):
            for oh in range(r0, r1):
                src, out = dy[n, f, oh, c0:c1], y[n, f, oh, c0:c1]
                dst = dpad[n, f, oh + top, c0 + left : c1 + left]
                for q in range(c1 - c0):
                    v = src[q]  # loaded first: a select, not a mispredicted branch
                    dst[q] = v if not relu or out[q] > 0 else 0
