"""Which kernels a conv2d layer runs: ``plan()``, decided once per layer shape and vector unit,
and the measured reasons for every choice beside the constants that make it. A pass (forward,
input gradient, weight gradient) runs either

- the direct stride-1 kernels (direct.py, tile.py, wgrad.py): no im2col matrix, one sample per
  thread; the forward pass and the input gradient (itself a stride-1 convolution) in register
  tiles sized for the vector unit the kernels are compiled for (TILES; runtime/vectors.py's
  unit() says which; a last tile overlapping the one before for the channels left over), runs
  too short for a tile in the direct kernels of eight, two and one filters (direct.py), or for
  5x5 layers on AVX2 a kernel vectorised over filters (vec_plan.py); the weight gradient four,
  two or one filters a pass (wgrad.py). A ``Step`` names the kernel that computes a block of
  output channels. Strided layers run them too, on phase planes (phases.py), where its WHY says;
  small 'same' layers on the packed batch (packed.py);
- im2col + BLAS (lowered.py): the whole batch lowered to one matrix product, for the other
  strided layers and for many filters on small images;
- Winograd F(2x2, 3x3) (winograd.py) for 3x3 stride-1 layers: the forward pass and the input
  gradient where it beats the register tiles (WINOGRAD_UNITS, _MIN_CHANNELS, _MIN_SIDE), with
  the direct weight gradient; all three passes where NETTRAIN_CONV=winograd asks for it;
  NETTRAIN_CONV=no-winograd rules it out; or
- one BLAS product a sample (pointwise.py) for 1x1 kernels without padding, any stride.

The layer (layer.py) runs the steps that ``plan()`` names, and ``nettrain bench`` prints them
with their reasons. A tile's shape is compiled into its kernel in tile.py (Numba's disk cache
keeps a global's value from compile time); wgrad.py's LANES and GROUPS set how it sums.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from nettrain.layers.conv2d import packed, phases, tile, vec_plan, wino4_plan
from nettrain.layers.conv2d.passes import Pass, Plan, Step, blocks, count_text
from nettrain.runtime import vectors

# Stride 1 goes the direct way unless the layer has many filters and small images: then the
# im2col product is large enough for BLAS to win, and the direct kernels' runs are short.
# Measured (forward + backward, 2 threads): 64 filters on 4x4 and 128 on 8x8 images ran 1.3-2.5x
# faster through im2col; 32 filters on 8x8, or 64 on 16x16, 1.1-1.8x faster direct. Strides:
# phases.py (its WHY).
DIRECT_MAX_FILTERS = 64  # fewer filters: direct, whatever the image size
DIRECT_MIN_RUN = 128  # more: direct only from a run (``Plan.run``) of this many wide columns

# Register tiles (tile.py) take the filters in blocks of the tile's height wherever the run
# holds a whole tile (run >= its columns; a sample's last tile starts at run - columns), first
# layers too. The tile's sums must fit the vector registers, so its shape depends on the vector
# unit the kernels are compiled for (runtime/vectors.py's unit()): TILES, with why.
#
# AVX-512 (32 registers): 4 filters x 48 columns, 192 float32 sums in 12 zmm registers. Measured
# on 2 threads of an AMD EPYC (Zen 4, 203 GFLOP/s GEMM peak), forward of a batch of 64, direct
# 8-filter kernel -> tile, GFLOP/s: 32 -> 32 filters 3x3 on 32x32, 155-160 -> 170-176; 64 -> 64
# on 16x16, 140 -> 173-182; 32 -> 64 on 16x16, 136-140 -> 160-179; LeNet's 8 -> 16 5x5, 72 -> 130.
# First layers of 1 or 3 channels (25 or 27 taps) slow down, 115-119 -> 61-78, too few taps to
# amortise the tile's store, and use it all the same: they take under 3% of a step (LeNet's conv
# 8@5x5, 0.24 -> 0.40 ms a batch of 128), while compiling the direct kernel for them too cost
# LeNet's cold start 2.8 s (11.2 s instead of 7.3 s). 4 x 48 was the fastest tile tried there.
#
# AVX2 (16 registers): the same 4 x 48 sums take 24 ymm registers, and LLVM spills 8 of them to
# the stack and back on every tap (its compiled inner loop, NUMBA_CPU_NAME=haswell with the
# AVX-512 features off: 24 FMAs, 12 loads and 12 stores of spilled sums a tap); an AMD EPYC Zen 2
# ran the CIFAR net's 32 -> 32 conv at 46 GFLOP/s, 25% of its peak. 3 filters x 32 columns keep
# 96 sums in 12 ymm registers, with 3 broadcast weights and 1 input: all 16, nothing spilled (12
# FMAs, 4 input loads a tap). Measured on the Zen 4 compiled for Haswell (AVX2 code; one thread,
# batch 8, best of 30, kernels interleaved in one process; a shared machine), GFLOP/s of 4x48 ->
# 3x32: 32 -> 32 on 32x32, 38-49 -> 77-79; 32 -> 64 and 64 -> 64 on 16x16, 37-49 -> 81-83; the
# input gradients 64 -> 32 on 16x16, 38-49 -> 78-79, and LeNet's 16 -> 8 5x5 on 14x14, 28-38 ->
# 63; LeNet's 8 -> 16, 28-37 -> 66; first layers 3 -> 32 and 1 -> 8, 23-31 -> 33-37. The other
# candidates, same runs: 1x96 (12 sums, no spill, but a load per FMA) 35-48; 2x48 64-66; 2x40
# 50-61; 4x24 and 6x16 27-41. Filters left over from the threes (2 of 32, 1 of 64) go to a
# last overlapping tile (below). The AVX-512 tile, compiled as it is for AVX-512 (one loop order for
# both), ran as before: 91-96 GFLOP/s on the CIFAR layers; 8x32 measured the same there. Other
# vector units (SSE, NEON) get the AVX2 tile.
TILES = {
    vectors.AVX512: (
        "tile4x48",
        "AVX-512, 32 registers: 4x48 tiles, 192 sums in 12; Zen 4: 170-176 GFLOP/s on 32->32@32x32",
    ),
    vectors.AVX2: (
        "tile3x32",
        "AVX2, 16 registers: 3x32 tiles, 96 sums in 12; 4x48 spills, 38-49 -> 77-79 GFLOP/s on "
        "32->32@32x32 (one core, Zen 4 compiled for Haswell)",
    ),
    vectors.OTHER: ("tile3x32", "no AVX2: the AVX2 tiles, 3x32"),
}

# Channels left over from the tile's height (32 filters in 3x32 tiles) go to a last tile that
# overlaps the one before (tile.py; its channels computed twice get the same values), not to the
# direct kernels, whose compilation the first run then skips: LeNet's first run compiled direct.py's
# two-filter kernel for its 2 of 8 channels in 3.4 + 1.6 s of its 17 s (AMD EPYC Zen 3, AVX2; 7.5 s
# in all on a Zen 4). Measured on the Zen 3, batch 64-128, 2 threads, best of 27 interleaved, ms
# tiles + direct -> overlapping tiles: LeNet's 1 -> 8 forward 0.58 -> 0.57, its 16 -> 8 input
# gradient (in the 5x5 layer's backward) 3.12 -> 3.06; the CIFAR net's 3 -> 32 1.71 -> 1.83 (the
# medians 2.52 both); lenet 8 -> 16 (before vec.py) 1.76 -> 1.80.
# The direct forward kernels (direct.py) compute this many filters a pass, then pairs, then one:
# each run of the input is loaded once for all of them. At 32 and 64 filters, eight a pass ran
# 15-25% faster than two (about 70-78 GFLOP/s on one core of a 102 GFLOP/s AMD EPYC); with the
# weight gradient's four below (both against two), CIFAR training went from 236 to 302 samples/s
# on one core, LeNet from 5,990 to 6,960 (direct.FORWARD: 8, 2, 1, each compiled where named).
DIRECT_WIDEST = 8
# The weight-gradient kernels (wgrad.py) go this many filters by four taps a pass, then pairs,
# then one (wgrad.GRAD has 4, 2 and 1), per vector unit. AVX-512: four filters, sixteen sums
# held in registers, ran 15% faster than two. AVX2: LLVM vectorises each of the sixteen sums
# over ymm registers, more than the 16 there are, and spilled them (167 loads and stores of the
# stack among _group4's 56 FMAs, against 46 among _group2's 28; NUMBA_CPU_NAME=haswell, AVX-512
# off). Measured compiled so on the Zen 4 (2 threads, best of 5, ms four -> two a pass):
# cifar-resnet's 16 -> 16 on 32x32 (batch 128) 7.1-9.2 -> 5.3-5.5, 32 -> 32 on 16x16 6.7-8.3 ->
# 4.2-6.2; the CIFAR net's 32 -> 32 on 32x32 (batch 64) 12.1-13.6 -> 7.3-9.5, 64 -> 64 on 16x16
# 14.4 -> 11.2; LeNet's 8 -> 16 5x5, 1.21 -> 1.02. For AVX-512: 4.4-6.8 -> 5.0-5.2, 5.2-7.0 ->
# 6.1-7.9, 12.7 -> 14.4, 13.8 -> 15.5, 0.87 -> 1.01.
WGRAD_WIDEST = {vectors.AVX512: 4, vectors.AVX2: 2, vectors.OTHER: 2}
# Winograd F(2x2, 3x3) (winograd.py), 3x3 stride 1, padding <= 2, 4+ channels in and out:
# NETTRAIN_CONV = 'auto' (the default: forward pass and input gradient where they beat the tiles,
# the direct weight gradient), 'winograd' (all three passes, every such layer), 'no-winograd'.
# 2.25x fewer multiplications, in products over C channels between transforms. Against the direct
# kernels (batch 128, or 64 for the CIFAR net's and MNIST's layers, 2 threads, Zen 4, best of 9
# interleaved), ms forward / input gradient / weight gradient, direct -> Winograd: 32 -> 32 on
# 32x32 7.1 / 6.8 / 6.9 -> 5.6 / 5.6 / 9.5; 64 -> 64 on 16x16 7.0 / 6.8 / 8.3 -> 5.3 / 5.3 / 11.3;
# 32 -> 64 on 16x16 3.6 / 3.6 / 4.3 -> 3.1 / 3.3 / 6.3; 32 -> 32 on 16x16 3.9 / 3.8 / 4.2 -> 3.3 /
# 3.3 / 6.0; packed (packed.py) 32 -> 32 on 14x14 1.8 / 1.4 / 1.6 -> 1.5 / 1.4 / 2.5, 64 -> 64 on
# 8x8 4.2 / 3.8 / 4.2 -> 3.5 / 3.4 / 8.1. Slower with 16 channels (on 32x32 4.3 / 4.4 -> 4.2 /
# 4.3, on 28x28 1.7 / 1.7 -> 1.8 / 1.7) and on 7x7 (64 -> 64, 1.7 / 1.6 -> 2.3 / 2.1: its 4x4
# tiles waste a quarter of their work). Compiled for Haswell (AVX2, 3x32 products; best of 9, the
# same layers): 32 -> 32 on 32x32 12.8 / 11.4 -> 8.1 / 8.4, 64 -> 64 on 16x16 8.2 / 9.2 -> 6.0 /
# 6.2, 32 -> 64 on 16x16 4.5 / 4.8 -> 3.7 / 3.8, 32 -> 32 on 16x16 6.6 / 6.8 -> 4.9 / 4.9, 64 ->
# 64 on 8x8 7.3 / 7.1 -> 4.9 / 4.9, 32 -> 32 on 14x14 2.6 / 2.4 -> 2.1 / 2.0; 16 channels even (on
# 32x32 6.9 / 6.9 -> 6.6 / 6.7, 28x28 2.7 / 2.8 -> 2.7 / 2.7).
# phases: every strided layer (phases.py); wino4: F(4x4, 3x3) in training too (wino4_plan.py)
CONV_MODES = ("auto", "winograd", "no-winograd", "phases", "wino4")
WINOGRAD_UNITS = (vectors.AVX512, vectors.AVX2)  # where 'auto' uses it (measured)
WINOGRAD_MIN_CHANNELS = 32  # in and out
WINOGRAD_MIN_SIDE = 8  # output rows and columns
WINOGRAD_WHY = "32+ channels, 8x8+: forward and input gradient 1.0-1.6x the tiles"

# 1x1 kernels without padding (any stride) go through pointwise.py: one BLAS product a sample, no
# im2col matrix (at stride 1 the input is the matrix), where a register tile has only C taps to
# amortise its stores over. Measured against the plan before it (2 threads, Zen 4, float32, best
# of 35, two runs), ms forward/backward: the ResNets' projections, 64 x 16x14x14 -> 32 (tiles)
# 0.52-0.60/0.80-0.90 -> 0.14/0.29; 64 x 32x7x7 -> 64 (im2col) 0.23-0.36/0.37-0.57 -> 0.13/0.35;
# 128 x 16x32x32 -> 32 s2 1.7-4.0/2.4-3.6 -> 1.0-1.1/2.0-2.1; 128 x 32x16x16 -> 64 s2
# 1.0-2.9/1.3-2.1 -> 0.5-0.7/1.2-1.3; 128 x 16x32x32 -> 16 (tiles) 2.25/3.1-3.3 -> 1.7-1.9/3.0-3.7.
# Wider layers even or a little slower backward, whose per-sample products sum over only the
# OH*OW positions: 64 x 128x4x4 -> 256 0.74/1.14 -> 0.60/1.56-1.62, 128 x 64x16x16 -> 128 s2
# 2.5/3.6 -> 1.8-2.0/4.2-4.4 (one product over the batch instead: the transposes cost the gain).
POINTWISE_WHY = "1x1 projections 1.5-4x faster forward than tiles or im2col, backward 1-3x"

# Bytes of im2col matrix made at a time where nothing needs to keep it (evaluation, the input
# gradient): a chunk of samples whose matrix stays in cache between its two passes, and predict
# or evaluate never hold a whole batch's matrix. Training's forward lowers the whole batch at
# once: its matrix is kept for the weight gradient.
CHUNK_BYTES = 4 << 20


def _convolution(count: int, run: int, word: str, why: str, unit: str) -> Pass:
    """A stride-1 convolution into ``count`` channels (``word``s) over ``run`` wide columns:
    register tiles (TILES[unit]) for the channels in blocks of the tile's height where the run
    holds a tile, the rest in the direct kernels of DIRECT_WIDEST, two and one channels; ``why``
    it goes this way."""
    name, tile_why = TILES[unit]
    rows, columns = tile.shape(name)
    tiled = count if run >= columns and count >= rows else 0  # the last tile may overlap
    steps = [Step(name, 0, tiled)] if tiled else []
    steps += [Step(f"direct{w}", f0, f1) for w, f0, f1 in blocks(count, DIRECT_WIDEST, tiled)]
    if run < columns:
        why += f"; run {run} < {columns}: too short for a register tile ({tile_why})"
    elif not tiled:
        why += f"; {count_text(count, word)}: fewer than a register tile's {rows} ({tile_why})"
    else:
        why += f"; run {run} >= {columns}: register tiles for {count_text(tiled, word)}"
        why += ", the last block overlapping" if tiled % rows else ""
        why += f" ({tile_why})"
    return Pass("+".join(s.kernel for s in steps), why, tuple(steps))


def plan(
    in_shape, filters: int, kernel, stride, padding, dtype, unit: str | None = None,
    conv: str | None = None,
) -> Plan:  # fmt: skip
    """The kernels of a conv2d layer over (C, H, W) inputs with ``filters`` filters and a
    (kh, kw) kernel, (sh, sw) stride and (ph, pw) padding, in ``dtype``, for the vector ``unit``
    (vectors.AVX512, AVX2 or OTHER; by default the one this process compiles for) and the
    Winograd setting ``conv`` (CONV_MODES; by default NETTRAIN_CONV's, else 'auto'): the
    training passes, and F(4x4, 3x3) where wino4_plan.py says."""
    unit = vectors.unit() if unit is None else unit
    conv = os.environ.get("NETTRAIN_CONV", "auto") if conv is None else conv
    if conv not in CONV_MODES:
        raise ValueError(f"NETTRAIN_CONV must be one of {', '.join(CONV_MODES)}, got {conv!r}")
    p = _training(in_shape, filters, kernel, stride, padding, dtype, unit, conv)
    return wino4_plan.with_wino4(p, in_shape, filters, kernel, stride, padding, unit, conv)


def _training(in_shape, filters, kernel, stride, padding, dtype, unit, conv) -> Plan:
    """plan()'s passes, but for F(4x4, 3x3)'s (wino4_plan.py)."""
    (C, H, W), F, (kh, kw), (sh, sw), (ph, pw) = in_shape, filters, kernel, stride, padding
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    # the input gradient convolves dy padded by kh - 1 - ph rows and kw - 1 - pw columns a side
    pitch, dx_pitch = W + 2 * pw, W + kw - 1
    run, dx_run = OH * pitch - (kw - 1), H * dx_pitch - (kw - 1)
    chunk = max(1, CHUNK_BYTES // (C * kh * kw * OH * OW * np.dtype(dtype).itemsize))
    sizes = dict(pitch=pitch, run=run, dx_pitch=dx_pitch, dx_run=dx_run, chunk=chunk)
    if (kh, kw) == (1, 1) and (ph, pw) == (0, 0):
        stride = f"every {sh}x{sw}-th input, then " if (sh, sw) != (1, 1) else ""
        return Plan(
            direct=False,
            forward=Pass("BLAS", f"1x1: {stride}weight @ x[n] a sample ({POINTWISE_WHY})"),
            input_grad=Pass("BLAS", "weight.T @ dy[n]"),
            weight_grad=Pass("BLAS", "dy[n] @ x[n].T, summed over the batch in order"),
            pointwise=True,
            **sizes,
        )
    winograd = (kh, kw) == (3, 3) and (sh, sw) == (1, 1) and max(ph, pw) <= 2 and min(C, F) >= 4
    gemm = "wino8x32" if unit == vectors.AVX512 else "wino3x32"  # the sums fit the registers
    pays = conv == "auto" and unit in WINOGRAD_UNITS and min(C, F) >= WINOGRAD_MIN_CHANNELS
    pays = winograd and pays and min(OH, OW) >= WINOGRAD_MIN_SIDE  # forward, input gradient
    if winograd and conv == "winograd":
        return Plan(
            direct=False,
            forward=Pass(gemm, "3x3 stride 1: Winograd F(2x2, 3x3), NETTRAIN_CONV=winograd"),
            input_grad=Pass(gemm, "the padded dy, flipped filters, through the same"),
            weight_grad=Pass("wgemm", "dM @ V.T, V made again from x"),
            winograd=True,
            **sizes,
        )
    strided, many, inference = (sh, sw) != (1, 1), F >= DIRECT_MAX_FILTERS, None
    if strided:
        lay = phases.Layout(in_shape, kernel, stride, padding)
        columns = tile.shape(TILES[unit][0])[1]
        short = f"< {columns}" if lay.run < columns else f"< {DIRECT_MIN_RUN} for {F} filters"
        if conv != "phases" and (kh <= sh or kw <= sw):
            im2col_why = f"kernel {kh}x{kw} no larger than the stride (one tap a filter a phase)"
        elif conv != "phases" and (lay.run < columns or (many and lay.run < DIRECT_MIN_RUN)):
            im2col_why = f"its phase planes' run {lay.run} {short}"
            if lay.run >= columns:  # many filters: phases for inference alone (phases.py)
                why = f"inference: {lay.count} phase planes a channel ({phases.INFERENCE_WHY})"
                q = _convolution(F, lay.run, "filter", why, unit)
                inference = replace(q, kernel=f"phases:{q.kernel}")
        else:
            why = f"stride {sh}x{sw}: {lay.count} phase planes a channel, stride 1 "
            why += "(NETTRAIN_CONV=phases)" if conv == "phases" else f"({phases.WHY})"
            sizes.update(pitch=lay.pitch, run=lay.run, dx_pitch=lay.dx_pitch, dx_run=lay.dx_run)
            dx_why = f"{lay.count} phases, each the padded dy by its sub-kernel"
            return _direct(C, F, sizes, why, dx_why, unit, phased=True)
    if not strided:  # instead of im2col only on AVX-512: for AVX2 it measured slower
        lowered = many and run < DIRECT_MIN_RUN and unit == vectors.AVX512
        if why := packed.choose(in_shape, F, kernel, padding, run, TILES[unit][0], lowered):
            p = _direct(C, F, sizes, why, "the packed dy convolved", unit, packing=True)
            return _winograd(p, gemm) if pays else p
    if strided or (many and run < DIRECT_MIN_RUN):
        if strided:
            why = f"stride {sh}x{sw}, {im2col_why}: im2col"
        else:
            why = f"{F} filters >= {DIRECT_MAX_FILTERS} on a run of {run} < {DIRECT_MIN_RUN}"
        why += f"; training: the whole batch, evaluation: {chunk} samples a product"
        return Plan(
            direct=False,
            forward=Pass("im2col+BLAS", why),
            input_grad=Pass("BLAS+col2im", f"weight.T @ dY, scattered {chunk} samples at a time"),
            weight_grad=Pass("BLAS", "dY @ cols.T, the forward pass's im2col matrix"),
            inference=inference,
            **sizes,
        )
    why = (f"stride 1, run {run} >= {DIRECT_MIN_RUN}" if many
           else f"stride 1, {F} < {DIRECT_MAX_FILTERS} filters") + ": direct"  # fmt: skip
    p = _direct(C, F, sizes, why, "the padded dy convolved", unit)
    return _winograd(p, gemm) if pays else vec_plan.over_filters(p, kh * kw, F, unit, why)


def _winograd(p: Plan, gemm: str) -> Plan:
    """The direct plan ``p`` with its forward pass and input gradient through Winograd."""
    forward = Pass(gemm, f"3x3 stride 1: Winograd F(2x2, 3x3) ({WINOGRAD_WHY})")
    dx = Pass(gemm, "the padded dy, flipped filters, through Winograd")
    return replace(p, forward=forward, input_grad=dx, winograd=True)


def _direct(C, F, sizes, why, dx_why, unit, phased=False, packing=False) -> Plan:
    """The direct kernels over ``sizes``' runs: stride 1, on phase planes (``phased``) or on the
    packed batch (``packing``: tiles for all channels)."""
    widest = WGRAD_WIDEST[unit]
    wsteps = tuple(Step(f"wgrad{w}", f0, f1) for w, f0, f1 in blocks(F, widest))
    wwhy = f"{widest} filters x 4 taps a pass"
    wwhy += " (AVX2: 4 spilled the sums)" if unit == vectors.AVX2 else ""
    wwhy = wwhy if widest <= F else f"{count_text(F, 'filter')}: pairs, then one"
    wwhy += f", {F % widest} left over" if widest < F and F % widest else ""
    passes = [
        _convolution(F, sizes["run"], "filter", why, unit),
        _convolution(C, sizes["dx_run"], "channel", dx_why, unit),
        Pass("+".join(s.kernel for s in wsteps), wwhy, wsteps),
    ]
    if phased:
        passes = [replace(p, kernel=f"phases:{p.kernel}") for p in passes]
    if packing:
        name, tile_why = TILES[unit]
        passes[:2] = [Pass(name, f"{why}; tiles for all {n} ({tile_why})", (Step(name, 0, n),))
                      for n, why in ((F, why), (C, dx_why))]  # fmt: skip
    return Plan(True, *passes, phases=phased, packed=packing, **sizes)
