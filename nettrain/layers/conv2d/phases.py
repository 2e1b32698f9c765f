"""Strided convolution as stride-1 convolutions of phase planes (space-to-depth): the layouts and
tap tables that let the direct kernels (tile.py, direct.py, wgrad.py) run a stride (sh, sw).

Phase (p, q) of channel c of the padded input xp (C, Hp, Wp) is the plane

    P[c, p, q, m, n] = xp[c, sh*m + p, sw*n + q]        (m < Hq, n < Wq; zeros past xp)

for p < Ph = min(sh, kh), q < Pw = min(sw, kw): the phases that some tap reads. Tap (c, a, b)
of output (i, j) reads xp[c, sh*i + a, sw*j + b] = P[c, a % sh, b % sw, i + a // sh, j + b // sw],
so with the planes laid out flat in (c, p, q, m, n) order, as one "wide" sample of pitch Wq, the
tap starts at

    offsets[c, a, b] = ((c*Ph + a % sh)*Pw + b % sw)*Hq*Wq + (a // sh)*Wq + b // sw

and the layer is direct.py's stride-1 convolution over that sample, every multiplication useful:
out[f, i*Wq + j] = sum_t Wm[f, t] * P[offsets[t] + i*Wq + j] for run = OH*Wq - (kw - 1) // sw
columns. Hq = OH + (kh - 1) // sh and Wq = OW + (kw - 1) // sw, so no tap reads past its plane
(odd image sizes: every plane is padded with zeros to Hq x Wq). A 1x1 kernel has one phase: the
input subsampled. The weight gradient is wgrad.py's over the same sample and offsets.

The input gradient of plane (p, q) receives w[f, c, a, b] * dy[f, m - a // sh, n - b // sw] from
the taps a = p + sh*u, b = q + sw*v: a stride-1 correlation of dy, padded by Uh - 1 = (kh - 1)
// sh rows and Uw - 1 columns a side (wgrad.py writes it so), with the phase's sub-kernel
w[:, :, p::sh, q::sw] flipped, over taps (f, u', v') for u' >= Uh - ceil((kh - p) / sh). Each
phase is one direct.conv_forward over only the rows m0 .. m1 - 1 and columns j0 .. j1 - 1 of its
plane that hold x (its taps moved by m0*Wd + j0), then copied into dx[:, :, h0::sh, w0::sw]; dx
is zero where no phase reaches (rows and columns that the stride drops).

Splitting and interleaving are serial kernels, a sample a call, run by native.parallel (a sample
a thread), the stride-2 reads and writes as constant-stride loops: cifar-resnet's 16x32x32 batch
of 256 on 2 threads split in 9.4 ms as numpy slice copies (one a phase, value by value), 2.3-2.5
ms so (their compile 1.3 s and 0.7 s; 2.4 and 1.1 s as parallel loops of their own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from nettrain.layers.conv2d import direct
from nettrain.runtime import native

# plan.py's rule for strided layers: the direct kernels on phase planes (the input split
# space-to-depth; stride 1 on the planes, no multiplication wasted) where its kernel is larger
# than its stride on both axes and the planes' run holds a tile and is not one that stride 1
# sends to im2col (DIRECT_MAX_FILTERS); elsewhere im2col + BLAS. Measured (one thread, Zen 4,
# float32, best of 25 interleaved in one process, a busy machine), ms forward + backward (the
# weight gradient), im2col -> phases: cifar-resnet's 16 -> 32 3x3 s2 on 32x32, batch 128,
# 21.9+27.1 (7.2) -> 7.4+25.2 (5.2); 32 -> 32 5x5 s2, 35.2+39.1 -> 15.3+30.5; 1 -> 8 5x5 s2 on
# 28x28, 0.33+0.64 -> 0.18+0.53. Slower: 32 -> 64 3x3 s2 on 16x16 (run 71), 8.3+12.1 (4.6) ->
# 6.3+14.8 (7.1); 64 -> 128 on 8x8, 5.8+8.5 -> 20.2+40.6; 8 -> 16 on 12x12, 0.19+0.30 -> 0.30+0.71;
# 1x1 s2 16 -> 32, 2.1+2.8 -> 2.3+3.1; 3x3 s3, 2.7+4.0 -> 2.6+5.2. Compiled for Haswell (BLAS
# still AVX-512), the 16 -> 32: 12-14+16-17 -> 9.5+20-23, about even: phases there too.
WHY = "forward 3x faster than im2col on cifar-resnet's 16->32 3x3 s2, backward 1.1x"
# For inference alone (``Plan.inference``), where only the many-filters rule sends a layer to
# im2col: its forward on phase planes, the training passes through im2col. Measured with the
# parallel split (2 threads, Zen 4, best of 9 twice, ms evaluation forward / training forward +
# backward, im2col -> phases): 32 -> 64 3x3 s2 on 16x16, batch 128, 7.6 / 12.8 -> 3.3 / 10.5 and
# in another run 5.4 / 12.9 -> 4.2 / 13.4, batch 256 9.8 / 26.0 -> 6.3 / 20.9; 64 -> 128 on 16x16
# 13.4 / 34.1 -> 12.9 / 46.8. Compiled for Haswell: 5.0 / 11.5 -> 3.9 / 13.0, 12.1 / 32.1 -> 13.7
# / 42.5: training through im2col, evaluation through the phases (even at 128 filters).
INFERENCE_WHY = "evaluation 1.3-2.3x im2col's with 64 filters; training stays im2col"


@dataclass(frozen=True)
class Layout:
    """The phase planes of a conv2d over (C, H, W) with a (kh, kw) kernel, (sh, sw) stride and
    (ph, pw) padding; the sizes of the forward (pitch, run) and of the input gradient (dx_pitch,
    dx_run) over the padded dy (Hd, Wd), dy at row ``top`` and column ``left``."""

    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    def __post_init__(self):
        (_, H, W), (kh, kw), (sh, sw), (ph, pw) = (
            self.in_shape, self.kernel, self.stride, self.padding
        )  # fmt: skip
        OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        top, left = (kh - 1) // sh, (kw - 1) // sw  # Uh - 1, Uw - 1
        sizes = dict(
            Ph=min(sh, kh), Pw=min(sw, kw), Hq=OH + top, Wq=OW + left, OH=OH, OW=OW,
            top=top, left=left, Hd=OH + 2 * top, Wd=OW + 2 * left,
        )  # fmt: skip
        for name, value in sizes.items():
            object.__setattr__(self, name, value)
        # every phase's (p, q, m0, m1, h0, j0, j1, w0), as _split reads them: made once
        table = [(p, q, *rows, *cols) for p, q, rows, cols in self._spans(empty=True)]
        object.__setattr__(self, "span_table", np.array(table, dtype=np.int64))

    @property
    def pitch(self) -> int:
        return self.Wq

    @property
    def run(self) -> int:
        return self.OH * self.Wq - self.left

    @property
    def dx_pitch(self) -> int:
        return self.Wd

    @property
    def dx_run(self) -> int:
        """The shortest of the phases' input-gradient runs (each phase computes only the rows
        and columns that are x's: ``_spans``)."""
        return min((self._dx_run(rows, cols) for _, _, rows, cols in self._spans()), default=0)

    def _dx_run(self, rows, cols) -> int:
        return (rows[1] - rows[0] - 1) * self.Wd + cols[1] - cols[0]

    @property
    def count(self) -> int:
        """Phase planes per channel."""
        return self.Ph * self.Pw

    def offsets(self) -> np.ndarray:
        """offsets[t], t = (c*kh + a)*kw + b (the weight's order): where tap (c, a, b) starts in
        a flat phase sample."""
        (C, _, _), (kh, kw), (sh, sw) = self.in_shape, self.kernel, self.stride
        c, a, b = np.meshgrid(np.arange(C), np.arange(kh), np.arange(kw), indexing="ij")
        plane = (c * self.Ph + a % sh) * self.Pw + b % sw
        offsets = plane * self.Hq * self.Wq + (a // sh) * self.Wq + b // sw
        return offsets.reshape(-1).astype(np.int64)

    def dx_taps(self, F: int, p: int, q: int) -> np.ndarray:
        """The offsets of phase (p, q)'s taps (f, u', v') in the padded dy (F, Hd, Wd)."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        ka, kb = -(-(kh - p) // sh), -(-(kw - q) // sw)  # rows and columns of the sub-kernel
        f, u, v = np.meshgrid(np.arange(F), np.arange(ka), np.arange(kb), indexing="ij")
        u, v = u + self.top + 1 - ka, v + self.left + 1 - kb
        return (f * self.Hd * self.Wd + u * self.Wd + v).reshape(-1).astype(np.int64)

    def dx_weight(self, weight: np.ndarray, p: int, q: int) -> np.ndarray:
        """(C, taps) for phase (p, q): the sub-kernel weight[:, :, p::sh, q::sw] flipped, its
        filter and channel axes swapped, in dx_taps' order."""
        (sh, sw), C = self.stride, weight.shape[1]
        sub = weight[:, :, p::sh, q::sw][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        return np.ascontiguousarray(sub).reshape(C, -1)

    def size(self) -> int:
        """Values of a sample's phase planes: C*Ph*Pw*Hq*Wq."""
        return self.in_shape[0] * self.count * self.Hq * self.Wq

    def split(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> out (N, size() + tail): the flat phase samples, each followed by
        ``tail`` zeros (_split, a sample a thread)."""
        x = np.ascontiguousarray(x, dtype=out.dtype)
        native.run(_split, _SPLIT, x, self.span_table, *self.stride, self.Ph, self.Pw, self.Hq,
                   self.Wq, out)  # fmt: skip
        return out

    def _spans(self, empty: bool = False):
        """(p, q, (m0, m1, h0), (j0, j1, w0)) for each phase that holds some of x: its rows m0 ..
        m1 - 1 hold x's rows h0, h0 + sh, ..., its columns j0 .. j1 - 1 x's columns w0, w0 + sw,
        ...; the rest of the plane is padding. With ``empty``, the phases without x too."""
        (_, H, W), (sh, sw), (ph, pw) = self.in_shape, self.stride, self.padding

        def span(p, s, pad, size, planes):
            first = min(planes, max(0, -(-(pad - p) // s)))
            stop = max(first, min(planes, (size - 1 + pad - p) // s + 1))
            return first, stop, s * first + p - pad

        for p in range(self.Ph):
            for q in range(self.Pw):
                rows, cols = span(p, sh, ph, H, self.Hq), span(q, sw, pw, W, self.Wq)
                if empty or (rows[1] > rows[0] and cols[1] > cols[0]):
                    yield p, q, rows, cols

    def input_grad(self, dpad, weight, run_by, buffer) -> np.ndarray:
        """dx (N, C, H, W) from the padded dy (N, F, Hd, Wd) (wgrad.py's dpad): each phase a
        stride-1 convolution by the steps of ``run_by`` (plan.py's Pass) over the rows and
        columns of the plane that are x's, into scratch from ``buffer(name, shape)`` (the
        layer's), then interleaved into dx."""
        (N, F), (C, H, W), (sh, sw) = dpad.shape[:2], self.in_shape, self.stride
        spans = list(self._spans())
        sizes = [N * C * (m1 - m0) * (j1 - j0) for _, _, (m0, m1, _), (j0, j1, _) in spans]
        scratch = buffer("dx_phases", (sum(sizes),))
        flat, zeros = dpad.reshape(N, -1), np.zeros(C, dtype=dpad.dtype)
        # zeros where no phase reaches: rows and columns of x that no tap reads
        dx = (np.empty if sum(sizes) == N * C * H * W else np.zeros)((N, C, H, W), dpad.dtype)
        start = 0
        for (p, q, (m0, m1, h0), (j0, j1, w0)), size in zip(spans, sizes, strict=True):
            part = scratch[start : start + size].reshape(N, C, m1 - m0, j1 - j0)
            offsets = self.dx_taps(F, p, q) + m0 * self.Wd + j0
            run = self._dx_run((m0, m1), (j0, j1))
            direct.conv_forward(flat, self.dx_weight(weight, p, q), zeros, offsets, False,
                                m1 - m0, j1 - j0, self.Wd, run, part, run_by.steps)  # fmt: skip
            native.run(_interleave, _INTERLEAVE, part, h0, w0, sh, sw, dx)
            start += size
        return dx


@njit(cache=True)
def _split_sample(x, spans, sh, sw, Ph, Pw, Hq, Wq, out, n):
    """out[n] = sample n's phase planes (Layout.split), zeros where they hold no x and past them:
    spans[k] = (p, q, m0, m1, h0, j0, j1, w0), every phase's (Layout._spans). Indexed, not
    sliced: a slice a row of 17 values cost more than its copy."""
    C = x.shape[1]
    o, xn, size = out[n], x[n], C * Ph * Pw * Hq * Wq
    for c in range(C):
        for k in range(len(spans)):
            p, q, m0, m1, h0, j0, j1, w0 = spans[k]
            base = ((c * Ph + p) * Pw + q) * Hq * Wq
            for m in range(Hq):
                at = base + m * Wq
                if m < m0 or m >= m1 or j1 <= j0:
                    for j in range(Wq):
                        o[at + j] = 0
                    continue
                h = h0 + (m - m0) * sh
                for j in range(j0):
                    o[at + j] = 0
                if sw == 2:  # a constant stride: vector loads
                    for j in range(j1 - j0):
                        o[at + j0 + j] = xn[c, h, w0 + 2 * j]
                else:
                    for j in range(j1 - j0):
                        o[at + j0 + j] = xn[c, h, w0 + sw * j]
                for j in range(j1, Wq):
                    o[at + j] = 0
    for i in range(size, len(o)):
        o[i] = 0


@njit(cache=True)
def _interleave_sample(part, h0, w0, sh, sw, dx, n):
    """dx[n, :, h0 + sh*m, w0 + sw*j] = part[n, :, m, j]: a phase's input gradient into its rows
    and columns of dx."""
    C, M, J = part.shape[1:]
    src, dst = part[n], dx[n]
    for c in range(C):
        for m in range(M):
            h = h0 + sh * m
            if sw == 2:
                for j in range(J):
                    dst[c, h, w0 + 2 * j] = src[c, m, j]
            else:
                for j in range(J):
                    dst[c, h, w0 + sw * j] = src[c, m, j]


@njit(cache=True)
def _split(table, x, spans, sh, sw, Ph, Pw, Hq, Wq, out):
    """_split_sample (its table) over the samples, a thread each (native.py)."""
    return native.parallel(table, (x, spans, sh, sw, Ph, Pw, Hq, Wq, out), len(x))


@njit(cache=True)
def _interleave(table, part, h0, w0, sh, sw, dx):
    """_interleave_sample (its table) over the samples, a thread each (native.py)."""
    return native.parallel(table, (part, h0, w0, sh, sw, dx), len(part))


_SPLIT, _INTERLEAVE = native.Kernel(_split_sample), native.Kernel(_interleave_sample)
