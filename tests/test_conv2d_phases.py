"""Strided conv2d on phase planes (nettrain/layers/conv2d/phases.py), forced onto every strided
layer by NETTRAIN_CONV=phases: the planes and tap offsets by their definition, then forward,
input and weight gradients against the slow references (tests/references.py) in float64 and
float32, with and without a fused relu, finite differences, and the same bits on one thread and
two."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import build, layer_grad_errors
from references import conv_backward, conv_forward, pads, pair

from nettrain.layers.conv2d import phases
from nettrain.layers.conv2d.layer import Conv2d
from nettrain.runtime.threads import configure

# (C, H, W, filters, kernel, stride, padding): strides 2 and 3 and one axis only, kernels 1, 3,
# 5 and rectangular ones, paddings per axis and 'same', odd sizes, channel counts that are not
# multiples of a tile's 4 (or AVX2's 3) filters, runs long enough for register tiles
CASES = [
    (5, 21, 19, 7, 3, 2, 1),  # tiles and the direct kernels, in both convolutions
    (3, 17, 30, 5, 3, [1, 2], [1, 0]),  # stride 2 across only, padding per axis
    (6, 26, 23, 9, 5, 3, 2),  # stride 3, 5x5: three phases an axis, taps 2 + 2 + 1
    (5, 15, 15, 6, 5, 2, "same"),
    (4, 11, 13, 6, [1, 3], 2, 0),  # 1x3: no tap on odd rows (1x1 goes pointwise), dx zero there
    (3, 10, 12, 5, 3, 3, 1),  # stride = kernel: one tap a phase
    (2, 9, 8, 3, [2, 4], [3, 2], [0, 1]),  # an even, rectangular kernel
    (13, 16, 16, 13, 3, 2, 1),  # 13 channels, 13 filters: tiles of 4 and 1 left over
    (2, 1, 3, 3, 5, 2, 2),  # a phase that holds no row of x
    (2, 1, 1, 2, 1, 2, 3),  # no tap reads x: y is the bias, dx zero
]


@pytest.fixture
def forced(monkeypatch):
    monkeypatch.setenv("NETTRAIN_CONV", "phases")


def layer_for(case, dtype=np.float64, fused=None):
    C, H, W, F, kernel, stride, padding = case
    layer = build(Conv2d, (C, H, W), dtype=dtype, filters=F, kernel=kernel, stride=stride,
                  padding=padding, fused=fused)  # fmt: skip
    assert layer.plan.phases and layer.plan.forward.kernel.startswith("phases:")
    return layer


@pytest.mark.parametrize("case", CASES)
def test_the_planes_and_offsets_are_the_padded_input_by_definition(case, forced):
    """planes[offsets[t] + i*pitch + j] is xp[c, sh*i + a, sw*j + b] for every tap t = (c, a, b)
    and output (i, j), and the planes hold xp[c, sh*m + p, sw*n + q] (zeros past it)."""
    layer = layer_for(case)
    lay, (C, H, W) = layer.phases, case[:3]
    (kh, kw), (sh, sw), (ph, pw) = layer.k, layer.s, layer.p
    x = np.random.default_rng(3).standard_normal((2, C, H, W))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + sh * lay.Hq), (pw, pw + sw * lay.Wq)))
    out = lay.split(x, np.full((2, lay.size() + 5), np.nan))
    assert np.all(out[:, lay.size() :] == 0)  # the tail the weight gradient reads past
    planes = out[:, : lay.size()].reshape(2, C, lay.Ph, lay.Pw, lay.Hq, lay.Wq)
    for p in range(lay.Ph):
        for q in range(lay.Pw):
            want = xp[:, :, p::sh, q::sw][:, :, : lay.Hq, : lay.Wq]
            np.testing.assert_array_equal(planes[:, :, p, q], want)
    offsets = lay.offsets().reshape(C, kh, kw)
    OH, OW = layer.out_shape[1:]
    i, j = np.meshgrid(np.arange(OH), np.arange(OW), indexing="ij")
    for c, a, b in np.ndindex(C, kh, kw):
        read = out[:, offsets[c, a, b] + i * lay.pitch + j]
        np.testing.assert_array_equal(read, xp[:, c, sh * i + a, sw * j + b])
    last = (OH - 1) * lay.pitch + OW  # wide columns up to the last output
    assert last <= lay.run and offsets.max() + last <= lay.size()  # inside the sample


@pytest.mark.parametrize("fused", [None, "relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES)
def test_phases_match_the_reference(case, dtype, fused, forced):
    """y (training and evaluation), dx, dW and db of the layer on phase planes."""
    layer = layer_for(case, dtype, fused)
    C, H, W, F, kernel, stride, padding = case
    rng = np.random.default_rng(7)
    layer.params["bias"][...] = rng.uniform(-0.5, 0.5, F)
    x = rng.standard_normal((3, C, H, W)).astype(dtype)
    dy = rng.standard_normal((3, *layer.out_shape)).astype(dtype)
    w, b = layer.params["weight"].astype(np.float64), layer.params["bias"].astype(np.float64)
    s, p = pair(stride), pads(padding, kernel)
    ref = conv_forward(x.astype(np.float64), w, b, s, p)
    mask = ref > 0 if fused else np.ones(ref.shape, bool)
    ref_dx, ref_dW, ref_db = conv_backward(x.astype(np.float64), w, dy * mask, s, p)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    y, saved = layer.forward(x, train=True)
    dx = layer.backward(saved, dy)
    assert y.dtype == dx.dtype == layer.grads["weight"].dtype == dtype
    np.testing.assert_allclose(y, np.maximum(ref, 0) if fused else ref, **tol)
    np.testing.assert_allclose(dx, ref_dx, **tol)
    np.testing.assert_allclose(layer.grads["weight"], ref_dW, **tol)
    np.testing.assert_allclose(layer.grads["bias"], ref_db, **tol)
    y_eval, kept = layer.forward(x, train=False)
    assert kept is None
    np.testing.assert_array_equal(y_eval, y)


def test_the_cases_run_register_tiles_and_the_direct_kernels(forced):
    """The cases above reach both kinds of kernel in both convolutions."""
    kernels = {"forward": set(), "input grad": set()}
    for case in CASES:
        plan = layer_for(case).plan
        kernels["forward"] |= {s.kernel for s in plan.forward.steps}
        kernels["input grad"] |= {s.kernel for s in plan.input_grad.steps}
    for found in kernels.values():
        assert {"tile4x48", "direct2", "direct1"} <= found or {"tile3x32", "direct1"} <= found


@pytest.mark.parametrize("case", [(2, 7, 6, 3, 3, 2, 1), (3, 8, 7, 2, [3, 2], [3, 2], [1, 0])])
def test_phases_gradcheck(case, forced):
    """Finite differences on small float64 layers on phase planes (no relu: no kinks)."""
    layer = layer_for(case)
    layer.params["bias"][...] = 0.1
    x = np.random.default_rng(1).standard_normal((2, *case[:3]))
    errors = layer_grad_errors(layer, x, np.random.default_rng(2), h=1e-5)
    assert set(errors) == {"input", "weight", "bias"}
    assert max(errors.values()) < 1e-7, errors


def test_phases_give_the_same_bits_on_one_thread_and_two(forced):
    """float32, 16 samples, relu fused: forward, dx and the gradients, bit for bit."""
    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, *CASES[0][:3])).astype(np.float32)
    results = []
    for count in (1, 2):
        layer = layer_for(CASES[0], np.float32, "relu")
        dy = np.random.default_rng(6).standard_normal((16, *layer.out_shape)).astype(np.float32)
        configure(count)
        try:
            y, saved = layer.forward(x)
            dx = layer.backward(saved, dy)
        finally:
            configure(threads)
        results.append([y, dx, layer.grads["weight"].copy(), layer.grads["bias"].copy()])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_plan_sends_strided_layers_by_their_shape():
    """Without NETTRAIN_CONV: phases where the kernel is larger than the stride and the planes'
    run holds a tile; 1x1 projections pointwise (pointwise.py), im2col for stride = kernel and
    short runs."""
    assert build(Conv2d, (16, 32, 32), filters=32, kernel=3, stride=2, padding=1).plan.phases
    for C, H, F, kernel, stride in ((16, 32, 32, 1, 2), (16, 33, 32, 3, 3), (8, 12, 16, 3, 2)):
        layer = build(Conv2d, (C, H, H), filters=F, kernel=kernel, stride=stride)
        assert not layer.plan.phases and not layer.direct
        assert layer.plan.pointwise == (kernel == 1)
    assert phases.Layout((1, 1, 1), (1, 1), (2, 2), (3, 3)).dx_run == 0  # nothing reads x


def test_an_evaluation_between_forward_and_backward_leaves_the_saved_planes(forced):
    """The phase planes a training forward saves live in the layer's kept storage; an evaluation
    forward of other inputs before the backward pass (a validation pass, a finite difference)
    must not write over them."""
    layer = layer_for(CASES[0])
    rng = np.random.default_rng(3)
    x, other = rng.standard_normal((2, 3, *layer.in_shape))
    dy = rng.standard_normal((3, *layer.out_shape))
    _, saved = layer.forward(x, train=True)
    expected = layer.backward(saved, dy), layer.grads["weight"].copy()
    _, saved = layer.forward(x, train=True)
    layer.forward(other, train=False)
    np.testing.assert_array_equal(layer.backward(saved, dy), expected[0])
    np.testing.assert_array_equal(layer.grads["weight"], expected[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_many_filters_infer_on_phase_planes_and_train_through_im2col(dtype):
    """cifar-resnet's 32 -> 64 3x3 s2 on 16x16 (run 71 < 128 for 64 filters): im2col for the
    training passes, the phase planes for an evaluation forward; the same outputs."""
    layer = build(Conv2d, (32, 16, 16), dtype=dtype, filters=64, kernel=3, stride=2, padding=1,
                  fused="relu")  # fmt: skip
    p = layer.plan
    assert not p.direct and p.inference.kernel == "phases:" + "+".join(
        s.kernel for s in p.inference.steps
    )
    x = np.random.default_rng(4).standard_normal((3, *layer.in_shape)).astype(dtype)
    y_eval, saved = layer.forward(x, train=False)
    y_train, _ = layer.forward(x, train=True)
    assert saved is None
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y_eval, y_train, rtol=tol, atol=tol)
    w, b = layer.params["weight"].astype(np.float64), layer.params["bias"].astype(np.float64)
    ref = np.maximum(conv_forward(x.astype(np.float64), w, b, (2, 2), (1, 1)), 0)
    np.testing.assert_allclose(y_eval, ref, rtol=tol, atol=tol)
