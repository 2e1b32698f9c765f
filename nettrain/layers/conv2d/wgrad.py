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
from numba import njit

from nettrain.layers.conv2d.direct import VECTOR_MATH, _runs
from nettrain.runtime import native

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
def _masked(dy, y, relu, pitch, f0, f1, d, base):
    """d[f, base + oh*pitch + ow] = dy[f, oh, ow] of one sample, masked by y > 0 when ``relu``,
    for f0 <= f < f1 (the columns ow >= OW are left as they are: zeros)."""
    OH, OW = dy.shape[1], dy.shape[2]
    for f in range(f0, f1):
        for oh in range(OH):
            src, out = dy[f, oh], y[f, oh]
            dst = d[f, base + oh * pitch : base + oh * pitch + OW]
            for ow in range(OW):
                v = src[ow]  # loaded first: a select, not a mispredicted branch
                dst[ow] = v if not relu or out[ow] > 0 else 0


@njit(cache=True, inline="always")
def _padded(d, pitch, f0, f1, OH, OW, count, band, row, last, top, left, plane):
    """plane (F, Hd, Wd) of dpad: rows ``row`` .. (to the end if ``last``) zeroed, then the
    ``count`` samples of d (see _masked) placed ``band`` rows apart from row ``row + top``,
    column ``left`` (parts falling outside are dropped)."""
    Hd, Wd = plane.shape[1], plane.shape[2]
    stop = Hd if last else row + count * band
    for f in range(f0, f1):
        plane[f, row:stop] = 0
        for s in range(count):
            at = row + s * band + top
            r0, r1 = max(0, -at), min(OH, Hd - at)  # rows and columns of dy inside dpad
            c0, c1 = max(0, -left), min(OW, Wd - left)
            for oh in range(r0, r1):
                q = (s * band + oh) * pitch
                src = d[f, q + c0 : q + c1]
                dst = plane[f, at + oh, c0 + left : c1 + left]
                for i in range(c1 - c0):
                    dst[i] = src[i]


@njit(cache=True, inline="always")
def _piece(xp, dy, y, relu, pitch, run, f0, f1, a, b, band, d, db, top, left, dpad):
    """Samples a .. b - 1, consecutive in one pack of xp (P packs of N // P samples, sample n's
    output rows starting at wide row band * (its place in the pack)): their dy masked into d
    (wide, one run), db[f] += its sums, dpad's rows of them written (unless dpad has no
    filters); returns (the pack from the piece's first row, the wide columns to sum over: the
    piece's run rounded up to LANES)."""
    S = len(dy) // len(xp)
    p = a // S
    row = (a - p * S) * band
    for n in range(a, b):
        _masked(dy[n], y[n], relu, pitch, f0, f1, d, (n - a) * band * pitch)
    span = -(-((b - a - 1) * band * pitch + run) // LANES) * LANES
    for f in range(f0, f1):
        db[f] += np.sum(d[f, :span])
    if dpad.shape[1]:
        last = b - p * S == S
        _padded(d, pitch, f0, f1, dy.shape[2], dy.shape[3], b - a, band, row, last, top,
                left, dpad[p])  # fmt: skip
    return xp[p, row * pitch :], span


@njit(cache=True, inline="always")
def _start(xp, dy, pitch, run, f0, f1, dWg, dbg, band, g):
    """Group g: (its samples n0 .. n1 - 1, samples a piece: one, or the group where packs hold
    several; d for one piece; its sums dWg[g] and dbg[g], filters f0 .. f1 - 1 zeroed)."""
    N, G = len(dy), len(dWg)
    n0, n1 = g * N // G, (g + 1) * N // G
    dW, db = dWg[g], dbg[g]
    dW[f0:f1] = 0
    db[f0:f1] = 0
    step = 1 if len(dy) == len(xp) else max(1, n1 - n0)
    width = -(-((step - 1) * band * pitch + run) // LANES) * LANES
    return n0, n1, step, np.zeros((dy.shape[1], width), dtype=dy.dtype), dW, db


@njit(cache=True, inline="always")
def _tail(d, x, offsets, run, t, dW, f, width):
    """The last taps t.. (T % 4 of them) of filters f .. f + width - 1."""
    for h in range(f, f + width):
        for r in range(t, len(offsets)):
            dW[h, r] += _dot1(d[h, :run], x[offsets[r] : offsets[r] + run])


@njit(cache=True, fastmath=VECTOR_MATH)
def _group4(xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad, band,
            g):  # fmt: skip
    """Filters f0 .. f1 - 1 (a multiple of 4) of sample group g (see conv_weight_grad): dWg[g]
    (F, T) and dbg[g] (F,) summed over its samples, and their padded gradients in dpad (see
    _piece)."""
    n0, n1, step, d, dW, db = _start(xp, dy, pitch, run, f0, f1, dWg, dbg, band, g)
    for a in range(n0, n1, step):
        x, span = _piece(xp, dy, y, relu, pitch, run, f0, f1, a, min(a + step, n1), band, d,
                         db, top, left, dpad)  # fmt: skip
        for f in range(f0, f1, 4):
            t = 0
            while t + 4 <= len(offsets):
                _dot_taps4(d, x, offsets, span, t, dW, f)
                t += 4
            _tail(d, x, offsets, span, t, dW, f, 4)


@njit(cache=True, fastmath=VECTOR_MATH)
def _group2(xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad, band,
            g):  # fmt: skip
    """_group4 two filters at a time."""
    n0, n1, step, d, dW, db = _start(xp, dy, pitch, run, f0, f1, dWg, dbg, band, g)
    for a in range(n0, n1, step):
        x, span = _piece(xp, dy, y, relu, pitch, run, f0, f1, a, min(a + step, n1), band, d,
                         db, top, left, dpad)  # fmt: skip
        for f in range(f0, f1, 2):
            t = 0
            while t + 4 <= len(offsets):
                _dot_taps2(d[f], d[f + 1], x, offsets, span, t, dW[f], dW[f + 1])
                t += 4
            _tail(d, x, offsets, span, t, dW, f, 2)


@njit(cache=True, fastmath=VECTOR_MATH)
def _group1(xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad, band,
            g):  # fmt: skip
    """_group4 one filter at a time."""
    n0, n1, step, d, dW, db = _start(xp, dy, pitch, run, f0, f1, dWg, dbg, band, g)
    for a in range(n0, n1, step):
        x, span = _piece(xp, dy, y, relu, pitch, run, f0, f1, a, min(a + step, n1), band, d,
                         db, top, left, dpad)  # fmt: skip
        for f in range(f0, f1):
            t = 0
            while t + 4 <= len(offsets):
                _dot_taps(d[f], x, offsets, span, t, dW[f])
                t += 4
            _tail(d, x, offsets, span, t, dW, f, 1)


@njit(cache=True)
def _groups(table, xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad,
            band):  # fmt: skip
    """One of GRAD's kernels (its table) over the sample groups, in parallel (native.py)."""
    args = (xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad, band)
    return native.parallel(table, args, len(dWg))


def _grad(kernel: native.Kernel):
    """The weight gradient of filters f0 .. f1 - 1 by one of the group kernels."""

    def grad(xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top, left, dpad, band):
        native.run(_groups, kernel, xp, offsets, dy, y, relu, pitch, run, f0, f1, dWg, dbg, top,
                   left, dpad, band)  # fmt: skip

    return grad


GRAD = {"wgrad4": _grad(native.Kernel(_group4)), "wgrad2": _grad(native.Kernel(_group2)),
        "wgrad1": _grad(native.Kernel(_group1))}  # fmt: skip


def conv_weight_grad(xp, offsets, dy, y, relu, pitch, run, dWg, dbg, top, left, dpad, steps,
                     band=1):  # fmt: skip
    """Weight and bias gradients of conv_forward for dy (N, F, OH, OW), masked by y > 0 when
    ``relu``, summed per group of samples: group g of G = len(dWg) holds samples
    g*N//G .. (g+1)*N//G - 1 in dWg[g] (F, T) and dbg[g] (F,); the caller adds the groups. The
    groups depend on N only, so the sums do not depend on the thread count. Unless dpad
    (P, F, Hd, Wd) has no filters (no input gradient), it receives the masked dy placed at
    row ``top`` and column ``left`` of zeros (the input gradient convolves it). xp (N,
    C*Hp*Wp + LANES) holds one sample a row, each followed by LANES zeros; or xp (1, L) packs
    all N samples (packed.py), sample n's output rows from wide row n*band, and dpad (1, F,
    Hd, Wd) likewise from row n*band + top: a group's samples are then one run. ``steps``
    (plan.py's Step) name the kernel of each block of filters, one of GRAD."""
    for s in steps:
        GRAD[s.kernel](xp, offsets, dy, y, relu, pitch, run, s.start, s.stop, dWg, dbg, top,
                       left, dpad, band)  # fmt: skip
