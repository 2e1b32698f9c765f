"""conv2d's kernel plan (nettrain/layers/conv2d/plan.py): the kernels plan() picks per layer shape,
that the layer runs exactly those, and that `nettrain bench` prints them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import build, invoke

from nettrain.assemble import net_for_config
from nettrain.layers.conv2d import direct, lowered, tile, vec, wgrad, wino4
from nettrain.layers.conv2d.layer import Conv2d
from nettrain.layers.conv2d.plan import plan
from nettrain.runtime import vectors

REPO = Path(__file__).resolve().parent.parent

# Every conv2d layer of the shipped configs (configs/*.yaml, benchmarks/configs/*.yaml), then
# edge cases: CxHxW filters@kernel, stride, padding, dtype | the forward pass's kernels | the input
# gradient's | the weight gradient's | samples per im2col chunk, as planned for AVX-512. A direct
# pass is its kernels in order with the output channels each computes (tile4x48:60 direct2:2
# direct1:1 = channels 0-59 in register tiles, 60-61 by direct2, 62 by direct1); im2col = im2col
# + BLAS for all three passes.
# Recorded from the code before plan.py existed (commit 1e29493, where the choice was spread over
# layer.py, direct.py and wgrad.py): each layer was run with every kernel replaced by a stub that
# logged its name and output channels, and its _chunk() read. Strided layers went through im2col
# then; "phases K" rows (the direct kernels K on phase planes, phases.py) are phases.py's WHY,
# measured: the seed-softmax and cifar-resnet rows changed with it, the rows after 1x28x28 f64
# were added with it. "packed K" rows run the whole batch packed into one run (packed.py; its
# choose() has the measurements): 'same' layers of small images, before one run a sample or
# im2col. "pointwise" rows: 1x1 kernels without padding, a BLAS product a sample (pointwise.py);
# the edge cases of tile leftovers that were 1x1 kernels before it are 1x2 kernels now, with
# runs of the same lengths about a tile's 48 columns and DIRECT_MIN_RUN. "winograd" passes: the
# forward pass and input gradient through Winograd F(2x2, 3x3), the weight gradient direct, where
# plan.py measured them faster (WINOGRAD_UNITS, _MIN_CHANNELS, _MIN_SIDE); "wino4" passes through
# F(4x4, 3x3), where wino4_plan.py measured them faster still.
TABLE = """
1x28x28 8@5x5 s1 p2 f32    | tile4x48:8 | direct1:1 | wgrad4:8 | 53                     # mnist-lenet
8x14x14 16@5x5 s1 p2 f32   | packed tile4x48:16 | packed tile4x48:8 | packed wgrad4:16 | 26  # mnist-lenet
1x28x28 16@3x3 s1 p1 f32   | tile4x48:16 | direct1:1 | wgrad4:16 | 148                 # mnist-bn-cnn
16x28x28 16@3x3 s1 p1 f32  | wino4 | wino4 | wgrad4:16 | 9                              # mnist-bn-cnn
16x14x14 32@3x3 s1 p1 f32  | packed tile4x48:32 | packed tile4x48:16 | packed wgrad4:32 | 37  # mnist-bn-cnn
32x14x14 32@3x3 s1 p1 f32  | winograd | winograd | packed wgrad4:32 | 18  # mnist-bn-cnn
32x7x7 64@3x3 s1 p1 f32    | packed tile4x48:64 | packed tile4x48:32 | packed wgrad4:64 | 74  # mnist-bn-cnn
1x28x28 8@5x5 s2 p0 f32    | phases tile4x48:8 | phases direct1:1 | phases wgrad4:8 | 291  # seed-softmax-*
8x12x12 16@3x3 s2 p0 f32   | im2col | im2col | im2col | 582                      # seed-softmax-*
3x32x32 32@3x3 s1 p1 f32   | tile4x48:32 | direct2:2 direct1:1 | wgrad4:32 | 37       # cifar, cifar-bn
32x32x32 32@3x3 s1 p1 f32  | wino4 | wino4 | wgrad4:32 | 3  # cifar, cifar-bn
32x16x16 64@3x3 s1 p1 f32  | winograd | winograd | wgrad4:64 | 14  # cifar, cifar-bn
64x16x16 64@3x3 s1 p1 f32  | winograd | winograd | wgrad4:64 | 7  # cifar, cifar-bn
16x14x14 32@1x1 s1 p0 f32  | pointwise | pointwise | pointwise | 334         # mnist-resnet (by plan.py)
64x7x7 64@3x3 s1 p1 f32    | packed tile4x48:64 | packed tile4x48:64 | packed wgrad4:64 | 37  # mnist-resnet
32x7x7 64@1x1 s1 p0 f32    | pointwise | pointwise | pointwise | 668            # mnist-resnet
3x32x32 16@3x3 s1 p1 f32   | tile4x48:16 | direct2:2 direct1:1 | wgrad4:16 | 37  # cifar-resnet (by plan.py)
16x32x32 16@3x3 s1 p1 f32  | wino4 | wino4 | wgrad4:16 | 7                       # cifar-resnet
16x32x32 32@3x3 s2 p1 f32  | phases tile4x48:32 | phases tile4x48:16 | phases wgrad4:32 | 28  # cifar-resnet
32x16x16 32@3x3 s1 p1 f32  | wino4 | wino4 | wgrad4:32 | 14  # cifar-resnet
16x32x32 32@1x1 s2 p0 f32  | pointwise | pointwise | pointwise | 256            # cifar-resnet
32x16x16 64@1x1 s2 p0 f32  | pointwise | pointwise | pointwise | 512            # cifar-resnet
2x5x5 3@3x3 s1 p1 f64      | direct2:2 direct1:1 | direct2:2 | wgrad2:2 wgrad1:1 | 1165
1x3x3 1@2x2 s1 p0 f64      | direct1:1 | direct1:1 | wgrad1:1 | 32768
3x7x6 4@3x3 s2 p1 f64      | im2col | im2col | im2col | 1618
2x8x8 3@3x2 s2x1 p1x2 f64  | im2col | im2col | im2col | 992
2x6x9 5@5x5 s1 p2 f64      | tile4x48:5 | direct2:2 | wgrad4:4 wgrad1:1 | 194
3x4x4 64@3x3 s1 p1 f64     | im2col | im2col | im2col | 1213
8x9x7 6@3x3 s1 p1 f64      | packed tile4x48:6 | packed tile4x48:8 | packed wgrad4:4 wgrad2:2 | 115
16x7x8 9@3x3 s1 p1x0 f64   | tile4x48:9 | tile4x48:16 | wgrad4:8 wgrad1:1 | 86
64x8x8 128@3x3 s1 p1 f32   | winograd | winograd | packed wgrad4:128 | 28
64x8x8 63@3x3 s1 p1 f32    | winograd | winograd | packed wgrad4:60 wgrad2:2 wgrad1:1 | 28
64x8x8 64@3x3 s1 p1 f32    | winograd | winograd | packed wgrad4:64 | 28
8x14x8 64@3x3 s1 p0 f32    | im2col | im2col | im2col | 202
8x18x9 64@1x2 s1 p0 f32    | tile4x48:64 | tile4x48:8 | wgrad4:64 | 455
8x3x43 64@1x2 s1 p0 f32    | tile4x48:64 | tile4x48:8 | wgrad4:64 | 520
8x15x9 64@3x3 s1 p0 f32    | im2col | im2col | im2col | 160
4x7x7 13@1x2 s1 p0 f32     | tile4x48:13 | tile4x48:4 | wgrad4:12 wgrad1:1 | 3120
4x5x10 13@1x2 s1 p0 f32    | tile4x48:13 | tile4x48:4 | wgrad4:12 wgrad1:1 | 2912
4x4x11 13@1x2 s1 p0 f32    | direct8:8 direct2:4 direct1:1 | direct2:4 | wgrad4:12 wgrad1:1 | 3276
5x6x6 11@3x3 s1 p1 f32     | direct8:8 direct2:2 direct1:1 | direct2:4 direct1:1 | wgrad4:8 wgrad2:2 wgrad1:1 | 647
3x32x32 1@3x3 s1 p1 f32    | direct1:1 | direct2:2 direct1:1 | wgrad1:1 | 37
3x9x9 4@3x3 s2 p0 f32      | im2col | im2col | im2col | 2427
3x9x9 4@3x3 s1x2 p0 f32    | im2col | im2col | im2col | 1387
3x9x9 4@3x3 s2x1 p0 f32    | im2col | im2col | im2col | 1387
32x16x16 64@3x3 s2 p1 f32  | im2col | im2col | im2col | 56
1x28x28 8@5x5 s2 p0 f64    | phases tile4x48:8 | phases direct1:1 | phases wgrad4:8 | 145
5x21x19 7@3x3 s2 p1 f64    | phases tile4x48:7 | phases tile4x48:5 | phases wgrad4:4 wgrad2:2 wgrad1:1 | 105
6x26x23 9@5x5 s3 p2 f32    | phases tile4x48:9 | phases tile4x48:6 | phases wgrad4:8 wgrad1:1 | 97
3x17x30 5@3x3 s1x2 p1 f32  | phases tile4x48:5 | phases direct2:2 direct1:1 | phases wgrad4:4 wgrad1:1 | 152
4x40x40 8@4x4 s2 p1 f32    | phases tile4x48:8 | phases tile4x48:4 | phases wgrad4:8 | 40
32x32x32 32@5x5 s2 p2 f32  | phases tile4x48:32 | phases tile4x48:32 | phases wgrad4:32 | 5
16x33x33 32@3x3 s3 p1 f32  | im2col | im2col | im2col | 60
7x10x12 10@3x5 s1 p1x2 f32 | packed tile4x48:10 | packed tile4x48:7 | packed wgrad4:8 wgrad2:2 | 83
128x4x4 256@1x1 s1 p0 f32  | pointwise | pointwise | pointwise | 512
"""  # noqa: E501


def pair(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w or h)


def parse(line: str):
    """(in_shape, filters, kernel, stride, padding, dtype), ([forward, input grad, weight grad],
    chunk) of a TABLE line."""
    cells = [cell.strip() for cell in line.split("#")[0].split("|")]
    shape, layer, stride, padding, dtype = cells[0].split()
    filters, _, kernel = layer.partition("@")
    key = (
        tuple(int(v) for v in shape.split("x")),
        int(filters),
        pair(kernel),
        pair(stride[1:]),
        pair(padding[1:]),
        {"f32": "float32", "f64": "float64"}[dtype],
    )
    return key, (cells[1:4], int(cells[4]))


ROWS = [parse(line) for line in TABLE.strip().splitlines()]


def steps_text(p, plan=None) -> str:
    """A pass's steps as in TABLE, checking that they cover its channels in order from 0; with
    'phases ' or 'packed ' before them where the ``plan`` says so."""
    if plan and plan.pointwise:
        return "pointwise"
    if not p.steps:
        if plan and plan.winograd:  # F(4x4, 3x3) or F(2x2, 3x3)
            return "wino4" if p.kernel.startswith("wino4:") else "winograd"
        return "im2col"
    assert [s.start for s in p.steps] == [0] + [s.stop for s in p.steps[:-1]]
    prefix = "phases " if plan and plan.phases else "packed " if plan and plan.packed else ""
    return prefix + " ".join(f"{s.kernel}:{s.stop - s.start}" for s in p.steps)


@pytest.mark.parametrize("key, expected", ROWS)
def test_plan_picks_the_kernels_the_code_before_it_picked(key, expected):
    p = plan(*key, unit=vectors.AVX512)
    passes = [p.forward, p.input_grad, p.weight_grad]
    assert ([steps_text(q, p) for q in passes], p.chunk) == expected
    assert p.direct == (expected[0][0] not in ("im2col", "pointwise"))
    assert p.pointwise == (expected[0][0] == "pointwise")
    assert p.phases == expected[0][0].startswith("phases")
    names = [q.kernel for q in passes]
    if p.direct:
        prefix = "phases:" if p.phases else ""
        kernels = [prefix + "+".join(s.kernel for s in q.steps) for q in passes]
        if p.winograd:  # forward and input gradient through Winograd (plan.py, wino4_plan.py)
            assert p.forward.kernel in ("wino8x32", "wino4:wino8x32")
            kernels[:2] = [p.forward.kernel, p.forward.kernel]
        assert names == kernels
    elif p.pointwise:
        assert names == ["BLAS", "BLAS", "BLAS"]
    else:
        assert names == ["im2col+BLAS", "BLAS+col2im", "BLAS"]
    assert all(q.reason for q in passes)


# The same layers planned for AVX2 (16 vector registers): 3x32 tiles where the run holds 32
# columns, the direct kernels for the filters left over and elsewhere; the weight gradient two
# filters a pass (four spilled its sums), im2col as for AVX-512.
AVX2_TABLE = """
1x28x28 8@5x5 s1 p2 f32    | tile3x32:8 | direct1:1 | wgrad2:8 | 53
8x14x14 16@5x5 s1 p2 f32   | vec16x4:16 | tile3x32:8 | wgrad2:16 | 26
8x14x14 15@5x5 s1 p2 f32   | tile3x32:15 | tile3x32:8 | wgrad2:14 wgrad1:1 | 26
16x12x12 24@5x5 s1 p0 f32  | vec16x4:24 | tile3x32:16 | wgrad2:24 | 40
3x32x32 32@3x3 s1 p1 f32   | tile3x32:32 | tile3x32:3 | wgrad2:32 | 37
32x32x32 32@3x3 s1 p1 f32  | wino4 | wino4 | wgrad2:32 | 3
32x16x16 64@3x3 s1 p1 f32  | winograd | winograd | wgrad2:64 | 14
64x16x16 64@3x3 s1 p1 f32  | winograd | winograd | wgrad2:64 | 7
64x8x8 63@3x3 s1 p1 f32    | winograd | winograd | packed wgrad2:62 wgrad1:1 | 28
5x6x6 11@3x3 s1 p1 f32     | packed tile3x32:11 | packed tile3x32:5 | packed wgrad2:10 wgrad1:1 | 647
32x7x7 64@3x3 s1 p1 f32    | im2col | im2col | im2col | 74
16x32x32 32@3x3 s2 p1 f32  | phases tile3x32:32 | phases tile3x32:16 | phases wgrad2:32 | 28
4x40x40 8@4x4 s2 p1 f32    | phases tile3x32:8 | phases tile3x32:4 | phases wgrad2:8 | 40
"""  # noqa: E501


@pytest.mark.parametrize("key, expected", [parse(line) for line in AVX2_TABLE.strip().splitlines()])
def test_plan_picks_the_avx2_tiles_for_avx2(key, expected):
    p = plan(*key, unit=vectors.AVX2)
    passes = (p.forward, p.input_grad, p.weight_grad)
    assert ([steps_text(q, p) for q in passes], p.chunk) == expected
    assert "AVX2" in p.forward.reason or not p.direct or p.winograd


def test_plan_follows_the_target_numba_compiles_for(monkeypatch):
    """A faked target: NUMBA_CPU_FEATURES without AVX-512 (as Numba reads it) gives the AVX2
    tiles; with it, the AVX-512 tiles. No kernel is compiled."""
    key = ((3, 32, 32), 16, (3, 3), (1, 1), (1, 1), "float32")
    for features, unit, name in (
        ("+avx,+avx2,+fma,-avx512f", vectors.AVX2, "tile3x32"),
        ("+avx,+avx2,+fma,+avx512f,-prefer-256-bit", vectors.AVX512, "tile4x48"),
        ("+sse4.2", vectors.OTHER, "tile3x32"),
    ):
        monkeypatch.setenv("NUMBA_CPU_FEATURES", features)
        vectors.unit.cache_clear()
        try:
            assert vectors.unit() == unit
            assert plan(*key).forward.steps[0].kernel == name
        finally:
            vectors.unit.cache_clear()


def test_the_table_holds_every_conv2d_layer_of_the_shipped_configs():
    keys = {key for key, _ in ROWS}
    configs = sorted([*(REPO / "configs").glob("*.yaml"), *(REPO / "benchmarks/configs").glob("*")])
    found = 0
    for config in configs:
        if config.name == "seed-tanh-cross-entropy.yaml":  # refused by design
            continue
        net, _ = net_for_config(config)
        for layer in net.layers:
            if isinstance(layer, Conv2d):
                found += 1
                key = (layer.in_shape, layer.out_shape[0], layer.k, layer.s, layer.p)
                assert (*key, layer.dtype.name) in keys, (config.name, key)
                assert layer.plan == plan(*key, layer.dtype)
    assert found >= 19


def stub_kernels(monkeypatch) -> list:
    """Every conv2d kernel replaced by a stub that logs (name, first, last channel + 1), or for
    the im2col kernels (name, samples); returns the log."""
    calls = []

    def logger(name):
        def stub(*args):
            if name in ("im2col", "col2im"):
                calls.append((name, len(args[0] if name == "im2col" else args[-1])))
            elif name.startswith("tile"):  # (..., y, f0, f1[, band, chunk])
                calls.append((name, args[9], args[10]))
            elif name.startswith("vec"):  # (..., pitch, y, f0, f1)
                calls.append((name, args[8], args[9]))
            elif name.startswith("direct"):
                calls.append((name, args[-2], args[-1]))
            elif name.startswith("wgrad"):
                calls.append((name, args[7], args[8]))

        return stub

    for table in (tile.FORWARD, vec.FORWARD):
        for name, (rows, columns, _) in table.items():
            monkeypatch.setitem(table, name, (rows, columns, logger(name)))
    for table in (direct.FORWARD, wgrad.GRAD):
        for name in table:
            monkeypatch.setitem(table, name, logger(name))
    for name in ("im2col", "col2im", "gemm_to_nchw", "nchw_to_gemm"):
        monkeypatch.setattr(lowered, name, logger(name))

    def convolve(x, weight, bias, relu, padding, out_hw, *args):
        calls.append(("wino4", len(weight)))
        return np.zeros((len(x), len(weight), *out_hw), x.dtype)

    monkeypatch.setattr(wino4, "convolve", convolve)
    return calls


@pytest.mark.parametrize("key, expected", ROWS)
def test_the_layer_runs_what_its_plan_says(key, expected, monkeypatch):
    """Forward (training and evaluation) and backward with the kernels stubbed: the layer calls
    the plan's kernels on the plan's channels, and im2col goes a chunk of samples at a time where
    nothing keeps its matrix."""
    (C, H, W), F, kernel, stride, padding, dtype = key
    layer = build(Conv2d, (C, H, W), dtype=dtype, filters=F, kernel=kernel, stride=stride,
                  padding=padding)  # fmt: skip
    p = layer.plan
    assert p == plan(*key) and layer.direct == p.direct
    calls = stub_kernels(monkeypatch)
    N = p.chunk + 1 if not p.direct else 2
    with np.errstate(all="ignore"):  # the stubs leave the work arrays as they were
        y, saved = layer.forward(np.zeros((N, C, H, W), dtype), train=True)
        trained = list(calls)
        calls.clear()
        layer.forward(np.zeros((N, C, H, W), dtype), train=False)
        evaluated = list(calls)
        calls.clear()
        layer.backward(saved, np.zeros_like(y), need_dx=True)
    if p.direct:

        def logged(q, channels):
            if q.kernel.startswith("wino4:"):  # F(4x4, 3x3) into so many channels
                return [("wino4", channels)]
            return [(s.kernel, s.start, s.stop) for s in q.steps]

        assert trained == logged(p.forward, F)
        assert evaluated == (logged(p.inference, F) if p.inference else trained)
        phases = len(list(layer.phases._spans())) if p.phases else 1  # an input gradient each
        assert calls == logged(p.weight_grad, F) + logged(p.input_grad, C) * phases
    elif p.pointwise:  # numpy's BLAS products: none of the kernels
        assert trained == evaluated == calls == []
    else:
        assert trained == [("im2col", N)]
        if p.inference:  # the direct kernels on phase planes, for inference alone
            assert p.inference.kernel.startswith("phases:")
            assert evaluated == [(s.kernel, s.start, s.stop) for s in p.inference.steps]
        else:
            assert evaluated == [("im2col", p.chunk), ("im2col", 1)]
        assert [c for c in calls if c[0] == "col2im"] == [("col2im", p.chunk), ("col2im", 1)]


BENCH = """
model:
  input: [1, 8, 8]
  layers:
    - {type: conv2d, filters: 4, kernel: 3, padding: same, activation: relu}
    - {type: conv2d, filters: 8, kernel: 3, padding: same, activation: relu}
    - {type: conv2d, filters: 4, kernel: 3, stride: 2}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train: {batch_size: 8}
"""


def test_bench_prints_each_conv2d_layers_plan(tmp_path):
    (tmp_path / "c.yaml").write_text(BENCH)
    out = invoke("--threads", "1", "bench", tmp_path / "c.yaml", "--repeats", "1").stdout
    # under each conv2d row, one line a pass: its kernels and why
    expected = [
        r"  0  conv2d 4@3x3 s1 p1 \+ relu .*%",
        r"forward +\S+ +stride 1, 4 < 64 filters: direct; run 78 ",
        r"input grad +- +not computed: the net.s input",
        r"weight grad +wgrad\d +\d filters x 4 taps a pass",  # 4 for AVX-512, 2 for AVX2
        r"  1  conv2d 8@3x3 s1 p1 \+ relu .*%",
        r"forward +\S+ +'same' stride 1: the batch packed, 81 wide columns a sample against 96",
        r"input grad +\S+ +the packed dy convolved; tiles for all 4",
        r"weight grad +wgrad\d ",
        r"  2  conv2d 4@3x3 s2 p0 .*%",
        r"forward +im2col\+BLAS +stride 2x2, its phase planes' run 11 < \d+: im2col",
        r"input grad +BLAS\+col2im ",
        r"weight grad +BLAS ",
        r"  3  dense 3 .*%",
    ]
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  0  conv2d"))
    assert len(lines) - start > len(expected)
    for pattern, line in zip(expected, lines[start:], strict=False):
        assert re.match(r"\s*" + pattern, line), (pattern, line)
