"""Weight gradient of the direct stride-1 convolution (direct.py), and the padded output
gradient that its input gradient convolves, in one pass over dy.

With Wm = weight.reshape(F, C*kh*kw), each sample's dy is laid out "wide" like the forward's
outputs (d[f, oh*Wp + ow], zeros where ow >= OW), masked by y > 0 when relu is fused, and

    dWm[f, t] = sum_q d[f, q] * x[offsets[t] + q],    dbias[f] = sum_q d[f, q],

four filters by four taps at a time (sixteen sums held in registers), then pairs, then one, each
width by its own kernel, compiled only when a layer's plan (plan.py) names it. Samples are summed
in a fixed number of groups (GROUPS), each group in order by one thread, and the caller adds the
groups in order, so results do not depend on the thread count. The same pass writes dy, masked,
into the zero-padded array whose stride-1 convolution is the input gradient (Conv2d).

The sums run over the wide columns rounded up to a multiple of LANES (d is zero past ``run``),
so that LLVM's vector loop leaves no scalar remainder: 16x16 images have run = 286 = 17 x 16 +
14, and their weight gradient went from 123-128 to 151-155 GFLOP/s (2 threads, AMD EPYC Zen 4;
32x32 images, 169 -> 183). Each sample is therefore followed by LANES zeros in ``xp``
(Conv2d._padded's tail), so that nothing is read past it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from nettrain.layers.conv2d.direct import VECTOR_MATH, _runs

# Columns the sums are rounded up to: a 512-bit vector of float32 (a multiple of any narrower).
LANES = 16
# Sample groups of the weight gradient: enough to keep 32 threads busy, few enough that their
# partial sums (GROUPS x the weight's size) stay small beside the activations.
GROUPS = 32


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


@njit(cache=True, inline="always")
def _masked(dy, y, relu, pitch, f0, f1, d, db, top, left, dpad):
    """d[f] (wide) = dy[f] of one sample masked by y > 0 when ``relu``, for f0 <= f < f1;
    db[f] += its sum; and, unless dpad (F, Hd, Wd) has no filters, dpad[f] = zeros with the masked
    dy at row ``top`` and column ``left`` (parts falling outside are dropped)."""
    OH, OW = dy.shape[1], dy.shape[2]
    for f in range(f0, f1):
        for oh in range(OH):
            src, out = dy[f, oh], y[f, oh]
            dst = d[f, oh * pitch : oh * pitch + OW]
            for ow in range(OW):
                v = src[ow]  # loaded first: a select, not a mispredicted branch
                dst[ow] = v if not relu or out[ow] > 0 else 0
        db[f] += np.sum(d[f])
        if len(dpad):
            Hd, Wd = dpad.shape[1], dpad.shape[2]
            r0, r1 = max(0, -top), min(OH, Hd - top)  # rows and columns of dy inside dpad
            c0, c1 = max(0, -left), min(OW, Wd - left)
            plane = dpad[f]
            plane[:] = 0
            for oh in range(r0, r1):
                src = d[f, oh * pitch + c0 : oh * pitch + c1]
                dst = plane[oh + top, c0 + left : c1 + left]
                for q in range(c1 - c0):
                    dst[q] = src[q]


@njit(cache=True, inline="always")
def _tail(d, x, offsets, run, t, dW, f, width):
    """The last taps t.. (T % 4 of them) of filters f .. f + width - 1."""
    for h in range(f, f + width):
        for r in range(t, len(offsets)):
            dW[h, r] += _dot1(d[h], x[offsets[r] : offsets[r] + run])


@njit(cache=True, fastmath=VECTOR_MATH)
def _group4(xp, offsets, dy, y, relu, pitch, run, f0, f1, n0, n1, dW, db, top, left, dpad):
    """Filters f0 .. f1 - 1 (a multiple of 4) of samples n0 .. n1 - 1: dW (F, T) and db (F,)
    summed over them, and their padded gradients dpad[n] (see _masked)."""
    d = np.zeros((dy.shape[1], run), dtype=dy.dtype)  # dy of one sample, wide and masked
    dW[f0:f1] = 0
    db[f0:f1] = 0
    for n in range(n0, n1):
        _masked(dy[n], y[n], relu, pitch, f0, f1, d, db, top, left, dpad[n])
        x = xp[n]
        for f in range(f0, f1, 4):
            t = 0
            while t + 4 <= len(offsets):
                _dot_taps4(d, x, offsets, run, t, dW, f)
                t += 4
            _tail(d, x, offsets, run, t, dW, f, 4)


@njit(cache=True, fastmath=VECTOR_MATH)
def _group2(xp, offsets, dy, y, relu, pitch, run, f0, f1, n0, n1, dW, db, top, left, dpad):
    """_group4 two filters at a time."""
    d = np.zeros((dy.shape[1], run), dtype=dy.dtype)
    dW[f0:f1] = 0
    db[f0:f1] = 0
    for n in range(n0, n1):
        _masked(dy[n], y[n], relu, pitch, f0, f1, d, db, top, left, dpad[n])
        x = xp[n]
        for f in range(f0, f1, 2):
            t = 0
            while t + 4 <= len(offsets):
                _dot_taps2(d[f], d[f + 1], x, offsets, run, t, dW[f], dW[f + 1])
                t += 4
            _tail(d, x, offsets, run, t, dW, f, 2)


@njit(cache=True, fastmath=VECTOR_MATH)
def _group1(xp, offsets, dy, y, relu, pitch, run, f0, f1, n0, n1, dW, db, top, left, dpad):
    """_group4 one filter at a time."""
    d = np.zeros((dy.shape[1], run), dtype=dy.dtype)
    dW[f0:f1] = 0
    db[f0:f1] = 0
    for n in range(n0, n1):
        _masked(dy[n], y[n], relu, pitch, f0, f1, d, db, top, left, dpad[n])
        x = xp[n]
        for f in range(f0, f1):
            t = 0
            while t + 4 <= len(offsets):
                _dot_taps(d[f], x, offsets, run, t, dW[f])
                t += 4
            _tail(d, x, offsets, run, t, dW, f, 1)


@njit(cache=True, parallel=True)
def _grad4(xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad):
    N, G = len(dy), len(dWg)
    for g in prange(G):
        n0, n1 = g * N // G, (g + 1) * N // G
        _group4(xp, offsets, dy, y, relu, pitch, run, f0, f1, n0, n1, dWg[g], dbg[g], top,
                 left, dpad)  # fmt: skip


@njit(cache=True, parallel=True)
def _grad2(xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad):
    N, G = len(dy), len(dWg)
    for g in prange(G):
        n0, n1 = g * N // G, (g + 1) * N // G
        _group2(xp, offsets, dy, y, relu, pitch, run, f0, f1, n0, n1, dWg[g], dbg[g], top,
                 left, dpad)  # fmt: skip


@njit(cache=True, parallel=True)
def _grad1(xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad):
    N, G = len(dy), len(dWg)
    for g in prange(G):
        n0, n1 = g * N // G, (g + 1) * N // G
        _group1(xp, offsets, dy, y, relu, pitch, run, f0, f1, n0, n1, dWg[g], dbg[g], top,
                 left, dpad)  # fmt: skip


GRAD = {"wgrad4": _grad4, "wgrad2": _grad2, "wgrad1": _grad1}


def conv_weight_grad(xp, offsets, dy, y, relu, pitch, run, dWg, dbg, top, left, dpad, steps):
    """Weight and bias gradients of conv_forward for dy (N, F, OH, OW), masked by y > 0 when
    ``relu``, summed per group of samples: group g of G = len(dWg) holds samples
    g*N//G .. (g+1)*N//G - 1 in dWg[g] (F, T) and dbg[g] (F,); the caller adds the groups. The
    groups depend on N only, so the sums do not depend on the thread count. Unless dpad
    (N, F, Hd, Wd) is (N, 0, 1, 1) (no input gradient), it receives the masked dy placed at
    row ``top`` and column ``left`` of zeros (the input gradient convolves it). Each sample of
    xp (N, C*Hp*Wp + LANES) ends in LANES zeros. ``steps`` (plan.py's Step) name the kernel of
    each block of filters, one of GRAD."""
    span = -(-run // LANES) * LANES  # xp's samples are followed by LANES zeros
    for s in steps:
        GRAD[s.kernel](xp, offsets, dy, y, relu, pitch, span, s.start, s.stop, dWg, dbg, top,
                       left, dpad)  # fmt: skip
