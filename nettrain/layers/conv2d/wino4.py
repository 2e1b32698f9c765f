"""Winograd F(4x4, 3x3) (Lavin & Gray, 2016) for 3x3 stride-1 convolutions: 36 products over
channels for a 4x4 block of outputs, where a direct convolution takes 144 multiplications and
F(2x2, 3x3) (winograd.py) 64: 4x fewer than direct, and each input value transformed into 36/16
= 2.25 values instead of F(2x2)'s 4.

The zero-padded input is cut into 6x6 tiles d at stride 4, one per 4x4 block of outputs, and

    V = B^T d B   (36 values a tile and channel),   U = G g G^T   (36 a filter and channel),
    M[k] = U[k] @ V[k]   (k < 36: (F, C) @ (C, tiles)),   y = A^T M A   (a tile's 4x4 outputs),

with the interpolation points 0, 1, -1, 2, -2 (B, G, A below). Its float32 error is larger than
F(2x2)'s (the transforms' entries go to 8 and 1/24): docs/speed.md has it measured per layer
shape. wino4_plan.py says where it runs: the forward of inference, and on the narrower layers the
forward and the input gradient of training (the output gradient masked by y > 0 with a fused
relu, through the flipped filters: ``convolve``'s mask); the weight gradient stays direct.

The same scheme as winograd.py: units of a few samples a thread, their tiles side by side in
chunks of CHUNK tile columns, tile column g = s*S + i*P + j for tile (i, j) of the unit's sample
s (P = tw + 1, S = th*P); V (chunks, C, ROWS4*CHUNK) and M (chunks, 36, F + 1, CHUNK) of a unit
stay in the core's cache between the transforms and the products (wino_gemm.py's register tiles,
the same kernels). The input's rows are split by column modulo 4 (A[4a + s, g] = padded row 4i +
a, column 4j + s of tile column g's tile), so that every value a tile reads is at its own column
g or at g + 1, and a transform runs over whole chunks in unit-stride vector loops, in two passes
(rows, then columns) through a stack array.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from nettrain.layers.conv2d.tile import _stack_array
from nettrain.layers.conv2d.wino_gemm import GEMMS
from nettrain.layers.conv2d.wino_transforms import CHUNK
from nettrain.layers.conv2d.wino_units import scratch, units
from nettrain.runtime import native

# U = G g G^T; B^T and A^T are written out in the kernels below:
# B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
#        [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
# A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]].
G = np.array(
    [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
     [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
)  # fmt: skip
K = 36  # transformed values a tile
# Rows of CHUNK values a block of V takes: 36 and one unused (winograd.py's ROWS says why).
ROWS4 = 37
# Tile columns a unit holds at most: its V and M (37 and 36 rows of CHUNK a column) in a core's
# L2 cache for 32 channels and filters.
UNIT_COLUMNS = 288


def tiles(OH: int, OW: int) -> tuple[int, int]:
    """(th, tw): 4x4 output blocks down and across."""
    return (OH + 3) // 4, (OW + 3) // 4


@njit(cache=True, inline="always")
def _split4(src, count, d0, d1, d2, d3):
    """d0[m], d1[m], d2[m], d3[m] = src[4m], .. src[4m + 3] for m < count."""
    for m in range(count):
        d0[m], d1[m], d2[m], d3[m] = src[4 * m], src[4 * m + 1], src[4 * m + 2], src[4 * m + 3]


@njit(cache=True, inline="always")
def _bt(k, v0, v1, v2, v3, v4, v5):
    """B^T (v0 .. v5): six values; k = (2, 4, 5, 8) in their dtype (a literal would make them
    float64)."""
    a, b = v4 - k[1] * v2, v3 - k[1] * v1
    c, e = v4 - v2, k[0] * (v3 - v1)
    return k[1] * v0 - k[2] * v2 + v4, a + b, a - b, c + e, c - e, k[1] * v1 - k[2] * v3 + v5


@njit(cache=True, inline="always")
def _at(k, m0, m1, m2, m3, m4, m5):
    """A^T (m0 .. m5): four values; k as in _bt."""
    a, b, c, e = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + a + c, b + k[0] * e, a + k[1] * c, b + k[3] * e + m5


@njit(cache=True, inline="always")
def _constants(dtype):
    """(2, 4, 5, 8) as values of ``dtype``."""
    k = np.empty(4, dtype=dtype)
    k[0], k[1], k[2], k[3] = 2, 4, 5, 8
    return k[0], k[1], k[2], k[3]


@njit(cache=True, inline="always")
def _columns_in(k, A, g0, out, t):
    """out[k*CHUNK + q] = (B^T d B)[k] of tile column g0 + q (k = 6r + c: row r, column c),
    d[a, b] = A[4a + b % 4, g0 + q + b // 4]; t: a stack array of 36*CHUNK values."""
    for a in range(6):  # rows of d times B
        r0, r1, r2, r3 = A[4 * a, g0:], A[4 * a + 1, g0:], A[4 * a + 2, g0:], A[4 * a + 3, g0:]
        for q in range(CHUNK):
            w0, w1, w2, w3, w4, w5 = _bt(k, r0[q], r1[q], r2[q], r3[q], r0[q + 1], r1[q + 1])
            _store6(t, 6 * a, 1, q, w0, w1, w2, w3, w4, w5)
    for c in range(6):  # then B^T times the columns
        for q in range(CHUNK):
            v0, v1, v2, v3, v4, v5 = _bt(
                k, t[c * CHUNK + q], t[(6 + c) * CHUNK + q], t[(12 + c) * CHUNK + q],
                t[(18 + c) * CHUNK + q], t[(24 + c) * CHUNK + q], t[(30 + c) * CHUNK + q],
            )  # fmt: skip
            _store6(out, c, 6, q, v0, v1, v2, v3, v4, v5)


@njit(cache=True, inline="always")
def _store6(t, first, step, q, v0, v1, v2, v3, v4, v5):
    """t[(first + i*step)*CHUNK + q] = v_i, i < 6."""
    t[first * CHUNK + q] = v0
    t[(first + step) * CHUNK + q] = v1
    t[(first + 2 * step) * CHUNK + q] = v2
    t[(first + 3 * step) * CHUNK + q] = v3
    t[(first + 4 * step) * CHUNK + q] = v4
    t[(first + 5 * step) * CHUNK + q] = v5


@njit(cache=True)
def transform_in(x, mask, masked, ph, pw, th, tw, n0, n1, V):
    """V (chunks, C, ROWS4*CHUNK) = B^T d B of the 6x6 tiles of samples n0 .. n1 - 1 of x (N,
    C, H, W) zero-padded by ph, pw (times mask > 0 first when ``masked``). Each plane goes into
    ``pad``, its padded rows R apart by R % 4 (rows of 4P): tile row i's rows 4i + a are then
    row i + a // 4 of part a % 4, and one loop a part splits a whole plane into its four column
    phases at the sample's tile columns."""
    (C, H, W), G, P = x.shape[1:], n1 - n0, tw + 1
    S, part = th * P, (th + 1) * 4 * P
    pad = np.zeros(4 * part, dtype=V.dtype)  # the rows and columns tiles reach
    A = np.zeros((24, (len(V) + 1) * CHUNK), dtype=V.dtype)
    t = numba.carray(_stack_array(1152, V.dtype), (K * CHUNK,))  # 36 * CHUNK
    k = _constants(V.dtype)
    for c in range(C):
        for s in range(G):
            for h in range(H):
                R = ph + h
                src, m = x[n0 + s, c, h], mask[n0 + s, c, h]
                dst = pad[R % 4 * part + R // 4 * 4 * P + pw :]
                for w in range(W):
                    v = src[w]  # loaded first: a select, not a branch
                    dst[w] = v if not masked or m[w] > 0 else 0
            for a in range(6):
                src, b = pad[a % 4 * part + a // 4 * 4 * P :], 4 * a
                _split4(src, S, A[b, s * S :], A[b + 1, s * S :], A[b + 2, s * S :],
                        A[b + 3, s * S :])  # fmt: skip
        for ch in range(len(V)):
            _columns_in(k, A, ch * CHUNK, V[ch, c], t)


@njit(cache=True, inline="always")
def _chunk_out(k, M, ch, f, bf, relu, z, o):
    """o[4u + v, ch*CHUNK + q] = (A^T m A)[u, v] + bf (max(., 0) with relu) of chunk ch's tile
    column q, m = M[ch, :, f, q]; z: a stack array of 24*CHUNK values."""
    for r in range(6):  # rows of m times A
        m0, m1, m2 = M[ch, 6 * r, f], M[ch, 6 * r + 1, f], M[ch, 6 * r + 2, f]
        m3, m4, m5 = M[ch, 6 * r + 3, f], M[ch, 6 * r + 4, f], M[ch, 6 * r + 5, f]
        for q in range(CHUNK):
            w0, w1, w2, w3 = _at(k, m0[q], m1[q], m2[q], m3[q], m4[q], m5[q])
            z[4 * r * CHUNK + q], z[(4 * r + 1) * CHUNK + q] = w0, w1
            z[(4 * r + 2) * CHUNK + q], z[(4 * r + 3) * CHUNK + q] = w2, w3
    for v in range(4):  # then A^T times the columns
        g = ch * CHUNK
        o0, o1, o2, o3 = o[v, g:], o[4 + v, g:], o[8 + v, g:], o[12 + v, g:]
        for q in range(CHUNK):
            u0, u1, u2, u3 = _at(
                k, z[v * CHUNK + q], z[(4 + v) * CHUNK + q], z[(8 + v) * CHUNK + q],
                z[(12 + v) * CHUNK + q], z[(16 + v) * CHUNK + q], z[(20 + v) * CHUNK + q],
            )  # fmt: skip
            y0, y1, y2, y3 = u0 + bf, u1 + bf, u2 + bf, u3 + bf
            o0[q] = max(y0, 0) if relu else y0
            o1[q] = max(y1, 0) if relu else y1
            o2[q] = max(y2, 0) if relu else y2
            o3[q] = max(y3, 0) if relu else y3


@njit(cache=True)
def transform_out(M, bias, relu, th, tw, n0, n1, y):
    """y (N, F, OH, OW), samples n0 .. n1 - 1, = A^T M A + bias per tile (max(., 0) with
    relu), M (chunks, 36, >= F, CHUNK); the outputs past OH, OW are dropped."""
    F, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    G, P, J = n1 - n0, tw + 1, OW // 4
    o = np.empty((16, len(M) * CHUNK), dtype=y.dtype)  # the tiles' 16 output phases
    z = numba.carray(_stack_array(768, y.dtype), (24 * CHUNK,))  # 24 * CHUNK
    k = _constants(y.dtype)
    for f in range(F):
        for ch in range(len(M)):
            _chunk_out(k, M, ch, f, bias[f], relu, z, o)
        for s in range(G):  # the phases interleaved into the rows
            for h in range(OH):
                at, u, dst = s * th * P + h // 4 * P, 4 * (h % 4), y[n0 + s, f, h]
                p0, p1, p2, p3 = o[u, at:], o[u + 1, at:], o[u + 2, at:], o[u + 3, at:]
                for j in range(J):
                    dst[4 * j], dst[4 * j + 1], dst[4 * j + 2], dst[4 * j + 3] = (
                        p0[j], p1[j], p2[j], p3[j]
                    )  # fmt: skip
                for w in range(4 * J, OW):
                    dst[w] = o[u + w % 4, at + J]


@njit(cache=True)
def _conv_slot(x, mask, masked, Ut, bias, relu, ph, pw, group, wide, Vs, Ms, y, slot):
    """y of x, the units slot, slot + len(Vs), ...: each unit of ``group`` samples transformed,
    multiplied (``wide``: the 8 x 32 tiles, else 3 x 32) and transformed back. winograd.py's loop
    with this file's transforms and sizes: a transform passed in (or closed over) would enter
    Numba's cache key, which changes from process to process."""
    (N, C), F, (th, tw) = x.shape[:2], y.shape[1], ((y.shape[2] + 3) // 4, (y.shape[3] + 3) // 4)
    units, slots, chunks = -(-N // group), len(Vs), Vs.shape[1]
    V4 = Vs[slot].reshape(chunks, C, ROWS4, CHUNK)
    M = Ms[slot][: chunks * K * (F + 1) * CHUNK].reshape(chunks, K, F + 1, CHUNK)
    for u in range(slot, units, slots):
        n0, n1 = u * group, min(N, u * group + group)
        transform_in(x, mask, masked, ph, pw, th, tw, n0, n1, Vs[slot])
        if wide:
            _gemm8x32(Ut, V4, M)
        else:
            _gemm3x32(Ut, V4, M)
        transform_out(M, bias, relu, th, tw, n0, n1, y)


@njit(cache=True)
def _conv(table, x, mask, masked, Ut, bias, relu, ph, pw, group, wide, Vs, Ms, y):
    """_conv_slot (its table) over the slots, a thread each (native.py)."""
    args = (x, mask, masked, Ut, bias, relu, ph, pw, group, wide, Vs, Ms, y)
    return native.parallel(table, args, len(Vs))


_gemm8x32, _gemm3x32 = GEMMS["wino8x32"][1], GEMMS["wino3x32"][1]
_CONV = native.Kernel(_conv_slot)


def filter_transform(weight) -> np.ndarray:
    """weight (F, C, 3, 3) -> Ut (36, C, F) = G g G^T (computed in float64), channels before
    filters, contiguous, in the weight's dtype."""
    F, C = weight.shape[:2]
    U = np.einsum("ai,fcij,bj->abcf", G, weight.astype(np.float64), G)
    return np.ascontiguousarray(U.reshape(K, C, F), dtype=weight.dtype)


def convolve(x, weight, bias, relu, padding, out_hw, gemm, mask=None):
    """y (N, F, *out_hw) of x (N, C, H, W) zero-padded by ``padding`` (each at most 2) with 3x3
    ``weight`` (F, C, 3, 3) and ``bias`` (F,), max(., 0) with ``relu``, x times mask > 0 first
    where a mask is given; ``gemm`` names the product kernel (wino_gemm.GEMMS)."""
    (N, C), F, masked = x.shape[:2], len(weight), mask is not None
    gemm = gemm if GEMMS[gemm][0] <= F else "wino3x32"  # fewer filters than its tile
    group, chunks = units(N, *tiles(*out_hw), UNIT_COLUMNS)
    y = np.empty((N, F, *out_hw), dtype=x.dtype)
    slots = min(numba.get_num_threads(), -(-N // group))
    Vs, Ms = scratch(slots, chunks, C, F, x.dtype, K, ROWS4)
    x = np.ascontiguousarray(x)
    native.run(_conv, _CONV, x, mask if masked else x, masked, filter_transform(weight), bias,
               relu, *padding, group, gemm == "wino8x32", Vs, Ms, y)  # fmt: skip
    return y


def forward(x, weight, bias, padding, relu, gemm):
    """y (N, F, H + 2ph - 2, W + 2pw - 2) of x (N, C, H, W) with 3x3 ``weight`` (F, C, 3, 3),
    ``bias`` (F,) and (ph, pw) ``padding`` (each at most 2), max(., 0) with ``relu``; ``gemm``
    names the product kernel (wino_gemm.GEMMS)."""
    (H, W), (ph, pw) = x.shape[2:], padding
    return convolve(x, weight, bias, relu, padding, (H + 2 * ph - 2, W + 2 * pw - 2), gemm)
