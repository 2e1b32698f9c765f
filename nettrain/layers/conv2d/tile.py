"""Register-tiled stride-1 convolution: the forward kernel for filters in blocks of a tile's
height wherever the run holds a tile (plan.py decides which tile shape, per vector unit, and has
the measurements against direct.py's kernels); it also computes input gradients, which are such
convolutions.

Same flat "wide" layout and notation as direct.py: for a sample x (C*Hp*Wp,),

    out[f, q] = bias[f] + sum_t Wm[f, t] * x[offsets[t] + q]          (q < run)

A tile is F filters by Q consecutive wide columns. Its F*Q sums stay in vector registers for the
whole sum over the T taps (they live in a small array on the stack, which LLVM promotes to
registers): each tap loads Q inputs, each once, into all F filters' sums, with F broadcast weights,
and the sums are written once, at the end, where direct.py's kernels load and store their sums in
memory every four taps. At the end the tile goes to a second stack array in whole vectors, and from
there each piece of a wide row holding outputs (ow < OW) is copied to y in one loop, with max(., 0)
when relu is fused: written column by column from the registers (a branch and four lane extractions
a column), the store had cost 6-25% of the forward pass (best of 4, 2 threads, Zen 4: 16 -> 16 on
28x28 2.07 -> 1.56 ms, 64 -> 64 on 7x7 packed 1.78 -> 1.63, 32 -> 32 on 16x16 4.28 -> 3.74). A
sample's last tile starts at run - Q, overlapping the one before (the columns computed twice get
the same values), so that nothing is read past the sample; runs shorter than a tile use direct.py's
kernels. The same kernels take a batch packed into one run (packed.py), its wide rows mapped to
samples ``band`` rows apart, in pieces of columns across the threads. Tiles go column block by
column block, the filters inside, so that the inputs a column block reads stay in the L1 cache
while every filter uses them.

The sums must fit the vector registers, or they are spilled to the stack on every tap: 4 x 48
float32 sums are 12 of AVX-512's 32 zmm registers, but 24 of AVX2's 16 ymm; 3 x 32 are 12 ymm,
with 3 broadcast weights and 1 input: all 16. So there is one kernel per tile shape (FORWARD,
named 'tile{F}x{Q}'), each compiled with its F and Q as constants, only when a plan names it;
plan.py picks the shape per vector unit, with the measurements. The shapes are constants of
separately compiled kernels, not globals read at run time: Numba's on-disk cache keeps a
global's value from compile time and checks only this file. The loop over a tap's columns holds
the loop over filters (each input loaded once for all of them): with the filters outside, LLVM
compiled tiles of fewer than 48 columns to scalar code (it unrolls a short column loop fully and
does not vectorise it again), and loaded a tap's whole run of inputs before using it, which
spilled sums on AVX2. A tap's inputs and weights are views made from pointers (_pointer), not
slices: a slice compiled to a sign test, two clamps and reloads of spilled addresses, 37
instructions a tap around the 12 FMAs instead of 25 (AVX2; AMD EPYC Zen 3, one thread, batch 64,
best of 45, ms: LeNet's 8 -> 16 5x5 1.53 -> 1.44, the CIFAR net's 3 -> 32 3x3 3.10 -> 2.77).
"""

from __future__ import annotations

import numba
from numba import njit, types
from numba.core import cgutils, errors
from numba.extending import intrinsic

from nettrain.runtime import native


@intrinsic
def _stack_array(typingctx, size, dtype):
    """A pointer to ``size`` (a constant) uninitialised values of ``dtype`` on the stack of the
    calling function: unlike np.empty, LLVM can keep such an array in registers."""
    if not isinstance(size, types.IntegerLiteral):
        raise errors.RequireLiteralValue(size)

    def codegen(context, builder, signature, args):
        value_type = context.get_value_type(dtype.dtype)
        return cgutils.alloca_once(builder, value_type, size=size.literal_value)

    return types.CPointer(dtype.dtype)(size, dtype), codegen


@intrinsic
def _pointer(typingctx, array, index):
    """A pointer to value ``index`` of the C-contiguous ``array`` counted flat, with no bounds
    check and no wraparound of negative indices: numba.carray(_pointer(x, i), n) is the view
    x.flat[i : i + n] without the clamping and sign tests that a slice compiles to."""
    if array.layout != "C":  # typed contiguous: flat counting is the array's own
        raise errors.TypingError(f"_pointer needs a C-contiguous array, got {array}")

    def codegen(context, builder, signature, args):
        data = context.make_array(array)(context, builder, value=args[0]).data
        return builder.gep(data, [args[1]])

    return types.CPointer(array.dtype)(array, index), codegen


def _tile_span(FILTERS: int, COLUMNS: int):
    """The serial kernel of FILTERS x COLUMNS tiles: both constants of the compiled code
    (closure variables are frozen at compile time, and they are part of Numba's cache key)."""
    SIZE = FILTERS * COLUMNS

    @njit(cache=True, fastmath={"contract"})
    def span(xp, Wt, bias, offsets, relu, OW, pitch, run, y, f0, f1, band, chunk, block):
        """Filters f0 .. f1 - 1 (at least FILTERS) of one block of pieces (see _blocks) of the
        packs xp (P, L) of samples into y (N, F, OH, OW). Pack p holds samples p*S ..
        (p+1)*S - 1 (S = N // P), its wide columns cut in pieces of ``chunk``; wide row r of a
        pack is row r % band of its sample r // band (rows from OH to band - 1 are dropped;
        band 0: one sample). Wt is Wm transposed, (T, F). Filters that a last block computes
        again get the same values. Only contraction into fused multiply-add is allowed: each
        column's sum goes over the taps in order, and nothing needs regrouping to be
        vectorised."""
        sums = _stack_array(SIZE, y.dtype)
        acc, flat = numba.carray(sums, (FILTERS, COLUMNS)), numba.carray(sums, SIZE)
        out = numba.carray(_stack_array(SIZE, y.dtype), SIZE)
        OH = y.shape[2]
        band = band if band else OH
        pieces = -(-run // chunk)
        first, last = _blocks(len(xp) * pieces, block)
        for piece_index in range(first, last):
            p = piece_index // pieces
            x, n0 = xp[p], p * (len(y) // len(xp))
            q0 = (piece_index - p * pieces) * chunk
            c1 = min(run, q0 + chunk)
            while q0 < c1:
                q0 = min(q0, run - COLUMNS)
                for g in range(f0, f1, FILTERS):
                    f = min(g, f1 - FILTERS)  # a last block overlaps the one before, like q0
                    for k in range(FILTERS):
                        b = bias[f + k]
                        for q in range(COLUMNS):
                            acc[k, q] = b
                    for t in range(len(offsets)):
                        xs = numba.carray(_pointer(x, offsets[t] + q0), COLUMNS)
                        ws = numba.carray(_pointer(Wt, t * Wt.shape[1] + f), FILTERS)
                        for q in range(COLUMNS):  # each input once, into every filter's sums
                            v = xs[q]
                            for k in range(FILTERS):
                                acc[k, q] += ws[k] * v
                    for i in range(SIZE):  # the sums out of their registers, whole vectors
                        out[i] = flat[i]
                    r = q0 // pitch  # wide row r: row oh of sample n0 + s
                    ow, s = q0 - r * pitch, r // band
                    oh, q = r - s * band, 0
                    while q < COLUMNS:  # a piece of a wide row a pass: its outputs ow < OW
                        piece = min(COLUMNS - q, pitch - ow)
                        count = min(piece, OW - ow)
                        if count > 0 and oh < OH:
                            for k in range(FILTERS):
                                src = out[k * COLUMNS + q : k * COLUMNS + q + count]
                                dst = y[n0 + s, f + k, oh, ow : ow + count]
                                for i in range(count):
                                    v = src[i]
                                    dst[i] = max(v, 0) if relu else v
                        q, oh, ow = q + piece, oh + 1, 0
                        if oh == band:
                            s, oh = s + 1, 0
                q0 += COLUMNS

    return span


# The pieces go to the threads in at most BLOCKS blocks of consecutive pieces: a call through
# an address per piece (a sample, for 28x28 images) made LeNet's first conv 5% slower.
BLOCKS = 32


@njit(cache=True, inline="always")
def _blocks(pieces, block):
    """(first, last + 1) piece of ``block`` of the min(pieces, BLOCKS) blocks."""
    blocks = min(pieces, BLOCKS)
    return block * pieces // blocks, (block + 1) * pieces // blocks


@njit(cache=True)
def _spans(table, xp, Wt, bias, offsets, relu, OW, pitch, run, y, f0, f1, band, chunk):
    """One of the tile kernels (its table) over the blocks of the packs' pieces of ``chunk``
    columns, a block per thread at a time (native.py)."""
    args = (xp, Wt, bias, offsets, relu, OW, pitch, run, y, f0, f1, band, chunk)
    return native.parallel(table, args, min(len(xp) * -(-run // chunk), BLOCKS))


def _tiles(kernel: native.Kernel):
    """The forward function of a tile kernel: xp (P, L) holds P packs of len(y) // P samples
    each; the wide columns of each go ``chunk`` at a time (all at once by default)."""

    def forward(xp, Wt, bias, offsets, relu, OW, pitch, run, y, f0, f1, band=0, chunk=0):
        native.run(_spans, kernel, xp, Wt, bias, offsets, relu, OW, pitch, run, y, f0, f1, band,
                   chunk or run)  # fmt: skip

    return forward


# name -> (filters, columns, kernel). A kernel: xp (N, C*Hp*Wp) padded samples, Wt (T, F),
# bias (F,) -> filters f0 .. f1 - 1 of y (N, F, OH, OW), run >= its columns; one sample per
# thread. f1 - f0 >= its filters, not always a multiple: a last block then starts at f1 - its
# filters (the plan's way with the filters left over from its blocks).
# Strictly extended by ``band`` and ``chunk``: xp (1, L) then packs all N samples, sample n's
# output rows starting at wide row n*band (packed.py), and the wide columns go ``chunk`` at a
# time to the threads.
FORWARD = {
    "tile4x48": (4, 48, _tiles(native.Kernel(_tile_span(4, 48)))),
    "tile3x32": (3, 32, _tiles(native.Kernel(_tile_span(3, 32)))),
}


def shape(name: str) -> tuple[int, int]:
    """(filters, columns) of tile kernel ``name``."""
    return FORWARD[name][0], FORWARD[name][1]
