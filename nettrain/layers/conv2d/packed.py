"""The packed layout of a batch for 'same' stride-1 convolutions (kh = 2*ph + 1, kw = 2*pw + 1):
all N samples laid end to end in one flat array per channel, so that the register tiles (tile.py)
and the weight gradient (wgrad.py) run over the whole batch, or a whole group of samples, as one
wide run, instead of one short run per sample.

A padded row's right padding is the next row's left padding, and a padded sample's bottom
padding the next sample's top padding, so one set of zeros serves both:

    row r of channel c: [pw zeros][W values]               pitch = W + pw
    rows of a channel:  ph zero rows, then per sample its H rows and ph zero rows:
                        sample n's row h is row ph + n*band + h, band = H + ph

Tap (c, i, j) of output (n, oh, ow) reads x[offsets[t] + q] at wide column
q = (n*band + oh)*pitch + ow, offsets as direct.tap_offsets with Hp = the channel's rows: a
sample's padded window is its rows and columns above, and past a row's end the next row's first
pw zeros. Output rows oh >= OH of a band and columns ow >= OW of a row are computed and dropped;
run = ((N - 1)*band + OH - 1)*pitch + OW columns in all. On 7x7 images a sample takes 8x8 = 64
wide columns for its 49 outputs, where alone it took two tiles of 48 (96 columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from nettrain.layers.conv2d import direct, tile, wgrad

# plan() asks choose() (the plan's measured rule for the packed layout; here for plan.py's size):
# 'same' stride-1 layers of 3x3 kernels or more go packed where it saves PACKED_SAVING of the
# wide columns of one run a sample, or instead of im2col (``lowered``; AVX-512 only: compiled for
# Haswell the 3x32 tiles lost to an AVX-512 BLAS, 64->64 on 7x7 5.39/7.69 -> 4.46/9.94 ms), and a
# batch of one fills a tile. 1 thread, Zen 4, best of 30 interleaved, ms forward/backward (more in
# docs/speed.md): 64->64 on 7x7, im2col 4.41/7.22 -> 3.31/6.45; 64->64 on 8x8 11.17/18.28 ->
# 8.06/16.08; 32->32 on 14x14 (240 -> 225 columns a sample) 3.08/6.99 -> 3.39/6.22; not 16->16 on
# 28x28 (864 -> 841) 3.46/6.65 -> 3.87/6.61; 1x1 kernels slower (0.30/0.48 -> 0.40/0.73).
PACKED_SAVING = 1.05


def choose(in_shape, F, kernel, padding, run, tile_name, lowered) -> str | None:
    """Why a stride-1 conv2d over (C, H, W) with F filters goes packed, or None: its one-sample
    ``run``, the tile kernel it would use, and whether it would otherwise go to im2col."""
    (C, H, W), (kh, kw), (ph, pw) = in_shape, kernel, padding
    if not fits(kernel, (1, 1), padding) or kh * kw < 9:
        return None
    rows, Q = tile.shape(tile_name)
    alone, together = -(-run // Q) * Q, (H + ph) * (W + pw)  # wide columns a sample computes
    if (H - 1) * (W + pw) + W < Q or min(C, F) < rows:
        return None  # a batch of one must fill a tile, and the channels a tile's filters
    if not lowered and alone < PACKED_SAVING * together:
        return None
    why = f"'same' stride 1: the batch packed, {together} wide columns a sample"
    return why + (f" ({F} filters: not im2col)" if lowered else f" against {alone} alone")


def fits(kernel, stride, padding) -> bool:
    """Whether a conv2d of this (kh, kw) kernel, stride and padding can run packed: stride 1
    and 'same' padding of an odd kernel."""
    (kh, kw), (ph, pw) = kernel, padding
    return tuple(stride) == (1, 1) and kh == 2 * ph + 1 and kw == 2 * pw + 1


@dataclass(frozen=True)
class Packing:
    """A batch of N samples of C x H x W packed for a (2*ph + 1, 2*pw + 1) kernel: ``rows`` a
    channel (+ ``spare`` zero rows at the end of an array of gradients), ``pitch``, ``band``,
    the wide ``run`` of the whole batch and ``sample_run`` of one sample."""

    N: int
    H: int
    W: int
    ph: int
    pw: int

    @property
    def pitch(self) -> int:
        return self.W + self.pw

    @property
    def band(self) -> int:
        return self.H + self.ph

    @property
    def rows(self) -> int:
        return self.ph + self.N * self.band

    @property
    def sample_run(self) -> int:
        return (self.H - 1) * self.pitch + self.W

    @property
    def run(self) -> int:
        return (self.N - 1) * self.band * self.pitch + self.sample_run

    def offsets(self, C: int, spare: int = 0) -> np.ndarray:
        """Tap offsets of a (2*ph + 1, 2*pw + 1) kernel over C packed channels of rows + spare."""
        return direct.tap_offsets(C, self.rows + spare, self.pitch, 2 * self.ph + 1,
                                  2 * self.pw + 1)  # fmt: skip

    def pack(self, x: np.ndarray, dtype, tail: int) -> np.ndarray:
        """x (N, C, H, W) -> (1, C*rows*pitch + tail): packed, then ``tail`` zeros (the last
        row's right padding, and what the weight gradient's vectors read past)."""
        C, (N, H, ph, pw) = x.shape[1], (self.N, self.H, self.ph, self.pw)
        flat = np.zeros((1, C * self.rows * self.pitch + tail), dtype=dtype)
        planes = flat[0, : C * self.rows * self.pitch].reshape(C, self.rows, self.pitch)
        samples = planes[:, ph:].reshape(C, N, self.band, self.pitch)
        samples[:, :, :H, pw:] = x.transpose(1, 0, 2, 3)
        return flat


# Wide columns that a group of samples of the weight gradient should span at least: each pass
# of four filters by four taps over a group ends in sixteen sums across vector lanes, which a
# short run does not amortise. (Measured below, with the plan's choices.)
PIECE = 1024


def groups(N: int, H: int, W: int, ph: int, pw: int) -> int:
    """Groups of samples whose weight gradients are summed apart (wgrad.py): at most GROUPS,
    each of PIECE wide columns or more; a function of the shape only, as the sums must not
    depend on the thread count."""
    p = Packing(N, H, W, ph, pw)
    return max(1, min(N, wgrad.GROUPS, N * p.band * p.pitch // PIECE))


def _chunk(run: int, columns: int) -> int:
    """Wide columns a thread takes at a time: whole tiles, about four pieces a thread (the
    results do not depend on it: each column's sum is the same whichever tile computes it)."""
    tiles = -(-run // columns)
    return columns * max(1, -(-tiles // (4 * numba.get_num_threads())))


def pack(x, padding, dtype) -> np.ndarray:
    """x (N, C, H, W) packed with (ph, pw) ``padding`` (Packing.pack), with the tail of zeros
    the weight gradient reads past."""
    (N, _, H, W), (ph, pw) = x.shape, padding
    return Packing(N, H, W, ph, pw).pack(x, dtype, tail=pw + wgrad.LANES)


def forward(x, Wm, bias, relu, padding, plan, y):
    """Conv2d's forward pass over the packed batch: x (N, C, H, W), Wm (F, T) -> y (N, F, H, W);
    returns the packed input (what the weight gradient reads)."""
    (N, C, H, W), (ph, pw), steps, dtype = x.shape, padding, plan.forward.steps, y.dtype
    p, xq = Packing(N, H, W, ph, pw), pack(x, padding, dtype)
    chunk = _chunk(p.run, tile.shape(steps[0].kernel)[1])
    direct.conv_forward(xq, Wm, bias, p.offsets(C), relu, H, W, p.pitch, p.run, y, steps,
                        band=p.band, chunk=chunk)  # fmt: skip
    return xq


def backward(layer, xq, dy, y, relu, dWg, dbg, need_dx):
    """A conv2d ``layer``'s weight and bias gradients (per group, into dWg, dbg) and its input
    gradient (returned, or None without ``need_dx``) from the packed input xq and dy (N, F, H,
    W); the masked dy is packed as x was (plus a zero row) and convolved with the flipped
    weight, in the layer's kept memory."""
    weight, plan, buffer = layer.params["weight"], layer.plan, layer._buffer
    (N, F, H, W), (ph, pw), C = dy.shape, layer.p, weight.shape[1]
    p = Packing(N, H, W, ph, pw)
    dpad = buffer("dpad", (1, F, p.rows + 1, p.pitch) if need_dx else (1, 0, 1, 1))
    wgrad.conv_weight_grad(xq, p.offsets(C), dy, y, relu, p.pitch, p.sample_run, dWg, dbg, ph,
                           pw, dpad, plan.weight_grad.steps, band=p.band)  # fmt: skip
    if not need_dx:
        return None
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    dx = np.empty((N, C, H, W), dtype=dy.dtype)
    steps = plan.input_grad.steps
    chunk = _chunk(p.run, tile.shape(steps[0].kernel)[1])
    direct.conv_forward(dpad.reshape(1, -1), flipped.reshape(C, -1), np.zeros(C, dy.dtype),
                        p.offsets(F, spare=1), False, H, W, p.pitch, p.run, dx, steps,
                        band=p.band, chunk=chunk)  # fmt: skip
    return dx
