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

Each pass over a run handles four taps of eight filters (forward; then pairs, then one, for the
filters left over): a run of ``x`` is loaded once for all of them and a run of ``out`` once per
four taps. The weight gradient goes four filters by four taps: sixteen sums held in registers.
At 32 and 64 filters, eight filters per pass ran 15-25% faster than two (about 70-78 GFLOP/s on
one core of a 102 GFLOP/s AMD EPYC), and four filters of weight gradient 15% faster than two;
256-bit (AVX2) and 512-bit vectors measured the same. The inner loops are plain unit-stride
loops that LLVM vectorises; ``fastmath`` allows only reassociation and fused multiply-add, so
that sums may be regrouped into vector lanes while NaN and Inf still propagate. Samples run in
parallel; the weight gradient is summed in a fixed number of groups of samples, then the groups
in order, so results do not depend on the thread count.
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
def _dot_taps4(d, x, offsets, run, t, dW, f):
    """dW[f + k, t + j] += d[f + k] . x[offsets[t + j] : + run] for k, j < 4: sixteen sums."""
    s0, s1, s2, s3 = _runs(x, offsets, t, run)
    d0, d1, d2, d3 = d[f], d[f + 1], d[f + 2], d[f + 3]
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = dW.dtype.type(0)
    for q in range(run):
        p0, p1, p2, p3 = s0[q], s1[q], s2[q], s3[q]
        u, v, w, r = d0[q], d1[q], d2[q], d3[q]
        a0, a1, a2, a3 = a0 + u * p0, a1 + u * p1, a2 + u * p2, a3 + u * p3
        b0, b1, b2, b3 = b0 + v * p0, b1 + v * p1, b2 + v * p2, b3 + v * p3
        c0, c1, c2, c3 = c0 + w * p0, c1 + w * p1, c2 + w * p2, c3 + w * p3
        e0, e1, e2, e3 = e0 + r * p0, e1 + r * p1, e2 + r * p2, e3 + r * p3
    g = dW[f : f + 4, t : t + 4]
    g[0, 0], g[0, 1], g[0, 2], g[0, 3] = g[0, 0] + a0, g[0, 1] + a1, g[0, 2] + a2, g[0, 3] + a3
    g[1, 0], g[1, 1], g[1, 2], g[1, 3] = g[1, 0] + b0, g[1, 1] + b1, g[1, 2] + b2, g[1, 3] + b3
    g[2, 0], g[2, 1], g[2, 2], g[2, 3] = g[2, 0] + c0, g[2, 1] + c1, g[2, 2] + c2, g[2, 3] + c3
    g[3, 0], g[3, 1], g[3, 2], g[3, 3] = g[3, 0] + e0, g[3, 1] + e1, g[3, 2] + e2, g[3, 3] + e3


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
    max(., 0) when ``relu``; pitch = Wp, run = OH*Wp - (kw - 1). Filters go eight at a time,
    then in pairs, then one."""
    N, F = xp.shape[0], Wm.shape[0]
    T = len(offsets)
    for n in prange(N):
        acc = np.empty((8, run), dtype=y.dtype)
        x, f = xp[n], 0
        while f < F:
            width = 8 if f + 8 <= F else (2 if f + 2 <= F else 1)
            for k in range(width):
                acc[k] = bias[f + k]
            t = 0
            while t + 4 <= T:
                if width == 8:
                    _taps8(acc, x, offsets, run, t, Wm, f)
                elif width == 2:
                    _taps2(acc[0], acc[1], x, offsets, run, t, Wm[f], Wm[f + 1])
                else:
                    _taps(acc[0], x, offsets, run, t, Wm[f])
                t += 4
            for g in range(f, f + width):
                for r in range(t, T):
                    _fma1(acc[g - f], x[offsets[r] : offsets[r] + run], Wm[g, r])
                for oh in range(OH):
                    src, dst = acc[g - f, oh * pitch : oh * pitch + OW], y[n, g, oh]
                    for ow in range(OW):
                        dst[ow] = max(src[ow], 0) if relu else src[ow]
            f += width


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
            x, f = xp[n], 0
            while f < F:
                width = 4 if f + 4 <= F else (2 if f + 2 <= F else 1)
                t = 0
                while t + 4 <= T:
                    if width == 4:
                        _dot_taps4(d, x, offsets, run, t, dW, f)
                    elif width == 2:
                        _dot_taps2(d[f], d[f + 1], x, offsets, run, t, dW[f], dW[f + 1])
                    else:
                        _dot_taps(d[f], x, offsets, run, t, dW[f])
                    t += 4
                for h in range(f, f + width):
                    for r in range(t, T):
                        dW[h, r] += _dot1(d[h], x[offsets[r] : offsets[r] + run])
                f += width


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
