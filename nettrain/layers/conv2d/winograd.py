"""Winograd F(2x2, 3x3) (Lavin & Gray, 2016) for 3x3 stride-1 convolutions: all three passes of
training with 16 products over channels in place of the 36 multiplications a 2x2 block of
outputs takes directly, 2.25x fewer.

The zero-padded input is cut into 4x4 tiles d at stride 2, one per 2x2 block of outputs (P =
th*tw tiles a sample), and with B, G, A the transforms below,

    V = B^T d B   (16 values a tile and channel),   U = G g G^T   (16 a filter and channel),
    M[k] = U[k] @ V[k]   (k < 16: (F, C) @ (C, tiles)),   y = A^T M A   (a tile's 2x2 outputs).

Backward: the input gradient is a 3x3 stride-1 convolution of the output gradient (masked by
y > 0 with a fused relu) padded by 2 - p, with the flipped filters, their two channel axes
swapped: the same kernel. The weight gradient is the adjoint in g: dU[k] = sum dM[k] @ V[k].T
over the tiles, dM = A dY A^T (dY a tile's 2x2 of the masked output gradient), dW = G^T dU G.

Work goes in units of a few samples (a thread a unit), whose tiles lie side by side in chunks
of CHUNK tile columns (wino_transforms.py has the layout; the columns past the unit's tiles are
zeros): the transformed input V and the products M of a unit stay in the core's cache between
the transforms and the products, so nothing of 16/4 the activations' size goes through memory,
and nothing is kept for the backward pass but x itself (V is made again there). The products
are wino_gemm.py's register tiles; the weight gradient's per-unit sums are added in unit order,
and units depend on the layer's shape alone: the same bits for any thread count. plan.py says
where this runs and why; docs/speed.md has the measured speed and float32 error. ``forward`` and
``input_grad`` are also the way into wino4.py's F(4x4, 3x3): a kernel name starting with 'wino4:'
(F44) goes there.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from nettrain.layers.conv2d import wino4
from nettrain.layers.conv2d.wino_gemm import GEMMS, wgemm
from nettrain.layers.conv2d.wino_transforms import (
    CHUNK,
    ROWS,
    transform_grad,
    transform_in,
    transform_out,
)
from nettrain.layers.conv2d.wino_units import scratch, units
from nettrain.runtime import native

# G (4x3): U = G g G^T. B^T and A^T are written out in the kernels (wino_transforms.py):
# B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], A^T = [[1, 1, 1, 0],
# [0, 1, -1, -1]].
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
# Tile columns a unit holds at most (wino_units.py): a few samples of a few hundred kB while the
# products run; the weight gradient's units are larger, since each of its 4 x 4 blocks of sums is
# added across its lanes once a unit (wino_gemm.wgemm).
UNIT_COLUMNS, WGRAD_COLUMNS = 320, 1024
F44 = "wino4:"  # a kernel name's prefix for F(4x4, 3x3): wino4.py, the product kernel after it


def tiles(OH: int, OW: int) -> tuple[int, int]:
    """(th, tw): 2x2 output blocks down and across."""
    return (OH + 1) // 2, (OW + 1) // 2


@njit(cache=True)
def _conv_slot(x, mask, masked, Ut, bias, relu, ph, pw, group, wide, Vs, Ms, y, slot):
    """y of x, the units slot, slot + len(Vs), ...: each unit of ``group`` samples transformed,
    multiplied (``wide``: the 8 x 32 tiles, else 3 x 32) and transformed back. Both product
    kernels are module globals called by name: a kernel passed in or closed over would enter
    Numba's cache key, which changes from process to process."""
    (N, C), F, (th, tw) = x.shape[:2], y.shape[1], ((y.shape[2] + 1) // 2, (y.shape[3] + 1) // 2)
    units, slots, chunks = -(-N // group), len(Vs), Vs.shape[1]
    V4 = Vs[slot].reshape(chunks, C, ROWS, CHUNK)  # (wino_gemm.py)
    M = Ms[slot][: chunks * 16 * (F + 1) * CHUNK].reshape(chunks, 16, F + 1, CHUNK)
    for u in range(slot, units, slots):
        n0, n1 = u * group, min(N, u * group + group)
        transform_in(x, mask, masked, ph, pw, th, tw, n0, n1, Vs[slot])
        if wide:
            _gemm8x32(Ut, V4, M)
        else:
            _gemm3x32(Ut, V4, M)
        transform_out(M, bias, relu, th, tw, n0, n1, y)


@njit(cache=True)
def _wgrad_slot(x, dy, y, relu, ph, pw, group, Vs, dMs, dU, slot):
    """dU[u] (16, F, C) for the units u = slot, slot + len(Vs), ...: each unit's sum of
    dM @ V.T (wino_gemm.wgemm)."""
    (N, C), F, (th, tw) = x.shape[:2], dy.shape[1], ((dy.shape[2] + 1) // 2, (dy.shape[3] + 1) // 2)
    slots, chunks = len(Vs), Vs.shape[1]
    V4 = Vs[slot].reshape(chunks, C, ROWS, CHUNK)  # views made once
    dM4 = dMs[slot][: chunks * F * ROWS * CHUNK].reshape(chunks, F, ROWS, CHUNK)
    dM = dM4.reshape(chunks, F, ROWS * CHUNK)
    for u in range(slot, len(dU), slots):
        n0, n1 = u * group, min(N, u * group + group)
        transform_in(x, x, False, ph, pw, th, tw, n0, n1, Vs[slot])
        transform_grad(dy, y, relu, th, tw, n0, n1, dM)
        wgemm(dM4, V4, dU[u])


@njit(cache=True)
def _conv(table, x, mask, masked, Ut, bias, relu, ph, pw, group, wide, Vs, Ms, y):
    """_conv_slot (its table) over the slots, a thread each (native.py)."""
    args = (x, mask, masked, Ut, bias, relu, ph, pw, group, wide, Vs, Ms, y)
    return native.parallel(table, args, len(Vs))


@njit(cache=True)
def _wgrad(table, x, dy, y, relu, ph, pw, group, Vs, dMs, dU):
    """_wgrad_slot (its table) over the slots, a thread each (native.py)."""
    args = (x, dy, y, relu, ph, pw, group, Vs, dMs, dU)
    return native.parallel(table, args, len(Vs))


_gemm8x32, _gemm3x32 = GEMMS["wino8x32"][1], GEMMS["wino3x32"][1]
_CONV, _WGRAD = native.Kernel(_conv_slot), native.Kernel(_wgrad_slot)


def filter_transform(weight) -> np.ndarray:
    """weight (F, C, 3, 3) -> Ut (16, C, F) = G g G^T, channels before filters (the products
    broadcast a row of filters), contiguous, in the weight's dtype."""
    g = G.astype(weight.dtype)
    F, C = weight.shape[:2]
    return np.ascontiguousarray(np.einsum("ai,fcij,bj->abcf", g, weight, g).reshape(16, C, F))


def convolve(x, Ut, bias, relu, padding, out_hw, gemm, mask=None):
    """y (N, F, OH, OW) of x (N, C, H, W) zero-padded by ``padding`` (each at most 2) and the
    transformed filters Ut (16, C, F), times mask > 0 first where a mask is given."""
    N, F = len(x), Ut.shape[2]
    gemm = gemm if GEMMS[gemm][0] <= F else "wino3x32"  # fewer filters than its tile
    group, chunks = units(N, *tiles(*out_hw), UNIT_COLUMNS)
    y = np.empty((N, F, *out_hw), dtype=x.dtype)
    masked = mask is not None
    Vs, Ms = scratch(min(numba.get_num_threads(), -(-N // group)), chunks, x.shape[1], F, x.dtype)
    wide = gemm == "wino8x32"
    native.run(_conv, _CONV, x, mask if masked else x, masked, Ut, bias, relu, *padding, group,
               wide, Vs, Ms, y)  # fmt: skip
    return y


def forward(x, weight, bias, padding, relu, kernel):
    """y (N, F, H + 2ph - 2, W + 2pw - 2) of x (N, C, H, W) with 3x3 ``weight`` (F, C, 3, 3),
    ``bias`` (F,) and (ph, pw) ``padding``; ``kernel`` names the product kernel (GEMMS), after
    'wino4:' for F(4x4, 3x3) (wino4.py)."""
    (H, W), (ph, pw) = x.shape[2:], padding
    out_hw = (H + 2 * ph - 2, W + 2 * pw - 2)
    if kernel.startswith(F44):
        return wino4.convolve(x, weight, bias, relu, padding, out_hw, kernel[len(F44) :])
    return convolve(x, filter_transform(weight), bias, relu, padding, out_hw, kernel)


def weight_grad(x, weight, dy, y, relu, padding) -> np.ndarray:
    """dW (F, C, 3, 3) of forward's y for the output gradient dy (N, F, OH, OW), masked by y > 0
    when ``relu``."""
    (N, F, OH, OW), C = dy.shape, x.shape[1]
    group, chunks = units(N, *tiles(OH, OW), WGRAD_COLUMNS)
    dU = np.empty((-(-N // group), 16, F, C), dtype=weight.dtype)
    Vs, dMs = scratch(min(numba.get_num_threads(), len(dU)), chunks, C, F, weight.dtype)
    native.run(_wgrad, _WGRAD, x, dy, y, relu, *padding, group, Vs, dMs, dU)
    g = G.astype(weight.dtype)
    return np.einsum("ai,abfc,bj->fcij", g, dU.sum(axis=0).reshape(4, 4, F, C), g)


def input_grad(weight, dy, y, relu, padding, in_hw, kernel) -> np.ndarray:
    """dx (N, C, H, W): dy (masked by y > 0 when ``relu``) padded by 2 - p, convolved with the
    flipped filters, their two channel axes swapped (``kernel`` as in forward)."""
    flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    zeros = np.zeros(weight.shape[1], dtype=weight.dtype)
    pad, mask = (2 - padding[0], 2 - padding[1]), y if relu else None
    if kernel.startswith(F44):
        return wino4.convolve(dy, flipped, zeros, False, pad, in_hw, kernel[len(F44) :], mask)
    return convolve(dy, filter_transform(flipped), zeros, False, pad, in_hw, kernel, mask)


def backward(layer, x, dy, y, relu, need_dx):
    """A Conv2d ``layer``'s gradients into layer.grads, dx (or None) returned: its forward's
    input x, output y (read for the mask when ``relu``) and output gradient dy."""
    W, gemm = layer.params["weight"], layer.plan.forward.kernel
    layer.grads["weight"][...] = weight_grad(x, W, dy, y, relu, layer.p)
    if "bias" in layer.params:
        layer.grads["bias"][...] = (dy * (y > 0) if relu else dy).sum(axis=(0, 2, 3))
    return input_grad(W, dy, y, relu, layer.p, layer.in_shape[1:], gemm) if need_dx else None
