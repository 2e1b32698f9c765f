"""Every entry of the layer table, and every fusion of the builder, through the same checks:

- gradcheck in float64 (backward against central differences, every entry of every tensor);
- the fast kernels against a slow numpy reference (tests/references.py) in float32 and float64,
  training (y, dx, parameter gradients, updated state) and evaluation (y);
- thread-count independence: one thread and two give the same bits;
- hand-worked examples (``worked``): outputs and gradients written out by hand;
- the facts on each layer class (nettrain.layers.base) agree with each other and with the table.

A layer (or fusion) without an entry in TABLE fails every one of these tests: adding a layer
means adding its block here (docs/adding-a-layer.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest
import references as ref
from helpers import build, layer_grad_errors

from nettrain.layers import ACTIVATIONS, LAYERS
from nettrain.layers.base import Layer, Range
from nettrain.runtime.threads import configure


def f64(layer, table="params"):
    return {k: v.astype(np.float64) for k, v in getattr(layer, table).items()}


# -- references: (layer, x, dy, train) -> {y, dx, grads, state}, all float64 -------------------


def dense(layer, x, dy, train):
    p = f64(layer)
    x2 = x.reshape(len(x), -1)
    y = x2 @ p["weight"] + p.get("bias", 0)
    grads = {"weight": x2.T @ dy, "bias": dy.sum(axis=0)}
    return dict(y=y, dx=(dy @ p["weight"].T).reshape(x.shape), grads=grads)


def conv2d(layer, x, dy, train):
    p, o = f64(layer), layer.options
    bias = p.get("bias", np.zeros(o["filters"]))
    s, pad = ref.pair(o["stride"]), ref.pads(o["padding"], o["kernel"])
    dx, dW, db = ref.conv_backward(x, p["weight"], dy, s, pad)
    return dict(
        y=ref.conv_forward(x, p["weight"], bias, s, pad), dx=dx, grads={"weight": dW, "bias": db}
    )


def conv1d(layer, x, dy, train):
    """Window by window, as the 1-D formula reads (no conv2d in it)."""
    p, o = f64(layer), layer.options
    weight, stride, (F, _, k) = p["weight"], o["stride"], p["weight"].shape
    pad = {"valid": 0, "same": (k - 1) // 2}.get(o["padding"], o["padding"])
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    OL = (xp.shape[2] - k) // stride + 1
    y, dxp, dW = np.zeros((len(x), F, OL)), np.zeros(xp.shape), np.zeros(weight.shape)
    for ol in range(OL):
        at = slice(ol * stride, ol * stride + k)
        y[:, :, ol] = np.einsum("ncj,fcj->nf", xp[:, :, at], weight) + p.get("bias", 0)
        dxp[:, :, at] += np.einsum("nf,fcj->ncj", dy[:, :, ol], weight)
        dW += np.einsum("nf,ncj->fcj", dy[:, :, ol], xp[:, :, at])
    dx = dxp[:, :, pad : pad + x.shape[2]]
    return dict(y=y, dx=dx, grads={"weight": dW, "bias": dy.sum(axis=(0, 2))})


def pool(function):
    def run(layer, x, dy, train):
        size = ref.pair(layer.options["size"])
        stride = size if layer.options["stride"] is None else ref.pair(layer.options["stride"])
        y, dx = function(x, dy, size, stride)
        return dict(y=y, dx=dx)

    return run


def global_avgpool2d(layer, x, dy, train):
    H, W = x.shape[2:]
    return dict(y=x.mean(axis=(2, 3)), dx=np.broadcast_to(dy[:, :, None, None] / (H * W), x.shape))


def batchnorm(layer, x, dy, train):
    p, s, o = f64(layer), f64(layer, "state"), layer.options
    y, dx, dw, db, rm, rv = ref.batchnorm(
        x,
        dy,
        p["weight"],
        p["bias"],
        s["running_mean"],
        s["running_var"],
        o["momentum"],
        o["eps"],
        train,
    )
    return dict(
        y=y, dx=dx, grads={"weight": dw, "bias": db}, state={"running_mean": rm, "running_var": rv}
    )


def dropout(layer, x, dy, train):
    q = layer.options["drop_prob"]
    if not train or q == 0:
        return dict(y=x, dx=dy)
    keep = np.random.default_rng(SEED).random(x.shape, dtype=layer.dtype) >= q
    mask = keep / (1 - q)
    return dict(y=x * mask, dx=dy * mask)


def activation(name):
    forward, backward = ref.ACTIVATIONS[name]

    def run(layer, x, dy, train):
        y = forward(x, layer.options)
        return dict(y=y, dx=backward(x, y, dy, layer.options))

    return run


def softmax(layer, x, dy, train):
    y, dx = ref.softmax(x, dy)
    return dict(y=y, dx=dx)


class OneInput:
    """A join (add, concat) seen as a one-input layer by the checks below: its inputs are cut
    from one flat (batch, sum of their sizes) array, and its input gradients are given back as
    one such array. Everything else is the join's own."""

    def __init__(self, join):
        self.join = join
        self.sizes = [int(np.prod(s)) for s in join.in_shape]

    def __getattr__(self, name):
        return getattr(self.join, name)

    def split(self, x):
        ends = np.cumsum(self.sizes)[:-1]
        return [
            p.reshape(len(x), *s)
            for p, s in zip(np.split(x, ends, axis=1), self.in_shape, strict=True)
        ]

    def forward(self, x, train=True):
        return self.join.forward(self.split(x), train)

    def backward(self, saved, dy, need_dx=True):
        return np.concatenate([d.reshape(len(d), -1) for d in self.join.backward(saved, dy)], 1)


def add(layer, x, dy, train):
    xs = layer.split(x)
    return dict(y=sum(xs[1:], xs[0]), dx=np.concatenate([dy.reshape(len(dy), -1)] * len(xs), 1))


def concat(layer, x, dy, train):
    """Channel by channel: output channel c is channel c - (channels before) of its input."""
    xs, y, dx, c = layer.split(x), np.zeros(dy.shape), [], 0
    for part in xs:
        for k in range(part.shape[1]):
            y[:, c + k] = part[:, k]
        dx.append(dy[:, c : c + part.shape[1]].reshape(len(dy), -1))
        c += part.shape[1]
    return dict(y=y, dx=np.concatenate(dx, 1))


def then(first, name):
    """The reference of a layer followed by activation ``name`` (a fusion)."""
    forward, backward = ref.ACTIVATIONS[name]

    def run(layer, x, dy, train):
        s = first(layer, x, np.zeros(dy.shape), train)["y"]
        y = forward(s, {})
        out = first(layer, x, backward(s, y, dy, {}), train)
        return {**out, "y": y}

    return run


# -- the table ----------------------------------------------------------------------------------


def normal(rng, shape):
    return rng.standard_normal(shape)


def off_zero(rng, shape):
    """Normal values at least 0.05 from 0, the kink of relu and leaky_relu."""
    x = rng.standard_normal(shape)
    x[np.abs(x) < 0.05] = 0.5
    return x


def distinct(rng, shape):
    """Values 0.01 apart: a step of 1e-6 never changes which input is a window's max."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1


@dataclass
class Entry:
    cases: list  # (per-sample input shape, options)
    reference: object
    inputs: object = normal
    fused: str | None = None
    h: float = 1e-6  # finite-difference step; layers linear in each tensor take a larger one
    tolerance: float = 1e-6  # of gradcheck's relative error
    draw: object = None  # rng -> (in_shape, options): one more case of random shape
    extra: dict = field(default_factory=dict)
    worked: list = field(default_factory=list)  # Worked examples, computed by hand


@dataclass
class Worked:
    """One sample through a layer, worked out by hand: ``y`` for input ``x`` with ``params``,
    and ``dx`` for dL/dy = ``dy``."""

    in_shape: tuple
    options: dict
    params: dict
    x: list
    y: list
    dy: list
    dx: list
    grads: dict = field(default_factory=dict)


def chw(rng, low=3, high=8):
    return (int(rng.integers(1, 4)), int(rng.integers(low, high)), int(rng.integers(low, high)))


def vector(rng):
    return (int(rng.integers(1, 7)),)


DENSE_CASES = [((3,), dict(units=2)), ((2, 3, 2), dict(units=5, bias=False)), ((1,), dict(units=1))]
CONV_CASES = [
    ((1, 5, 5), dict(filters=1, kernel=3, stride=1, padding="valid")),
    ((3, 7, 6), dict(filters=4, kernel=3, stride=2, padding="same")),
    ((2, 8, 8), dict(filters=3, kernel=[3, 2], stride=[2, 1], padding=[1, 2])),
    ((2, 6, 9), dict(filters=5, kernel=5, stride=1, padding=2)),
    ((4, 4, 4), dict(filters=2, kernel=1, stride=1, padding="valid")),
    ((1, 9, 7), dict(filters=2, kernel=[2, 4], stride=3, padding=0)),
    ((2, 3, 3), dict(filters=3, kernel=3, stride=[1, 2], padding=[3, 0])),
    ((2, 4, 5), dict(filters=3, kernel=2, stride=1, padding=[2, 3])),  # outputs of zeros only
    ((1, 6, 6), dict(filters=5, kernel=3, stride=1, padding="same")),  # odd filter count
    ((1, 4, 4), dict(filters=64, kernel=3, stride=1, padding="same")),  # stride 1 via im2col
    ((2, 5, 6), dict(filters=11, kernel=3, stride=1, padding="same")),  # 8 + 2 + 1 filters a pass
    ((9, 5, 4), dict(filters=3, kernel=[3, 2], stride=1, padding=1)),  # dx: 8 + 1 channels
]
CONV1D_CASES = [
    ((1, 5), dict(filters=1, kernel=3, stride=1, padding="valid")),
    ((3, 11), dict(filters=4, kernel=3, stride=2, padding="same")),
    ((2, 9), dict(filters=3, kernel=4, stride=1, padding=2, bias=False)),  # an even kernel
    ((2, 8), dict(filters=5, kernel=5, stride=3, padding=1)),  # the stride drops the last input
    ((4, 6), dict(filters=2, kernel=1, stride=1, padding="valid")),
    ((1, 4), dict(filters=64, kernel=3, stride=1, padding="same")),  # stride 1 via im2col
    ((9, 3), dict(filters=3, kernel=2, stride=1, padding=3)),  # outputs of zeros only at the ends
]
POOL_CASES = [
    ((1, 4, 4), dict(size=2, stride=None)),
    ((3, 7, 5), dict(size=2, stride=None)),  # the last row and column fill no window
    ((2, 9, 9), dict(size=3, stride=2)),  # overlapping windows
    ((1, 6, 8), dict(size=[2, 3], stride=[1, 2])),
    ((2, 4, 4), dict(size=4, stride=None)),  # one window over the whole plane
]
ELEMENTWISE = [((5,), {}), ((2, 3, 3), {})]
BATCHNORM_CASES = [
    ((4,), {}),
    ((3, 4, 4), dict(momentum=0.3, eps=1e-3)),
    ((2, 3, 5), {}),
    ((2, 1, 1), dict(momentum=1.0)),
]


def conv_draw(rng):
    k = int(rng.integers(1, 4))
    return chw(rng, 4, 8), dict(
        filters=int(rng.integers(1, 5)), kernel=k, stride=int(rng.integers(1, 3)), padding="valid"
    )


def conv1d_draw(rng):
    shape = (int(rng.integers(1, 4)), int(rng.integers(4, 12)))
    return shape, dict(
        filters=int(rng.integers(1, 5)),
        kernel=int(rng.integers(1, 4)),
        stride=int(rng.integers(1, 3)),
        padding="valid",
    )


def pool_draw(rng):
    return chw(rng, 4, 9), dict(size=int(rng.integers(1, 4)), stride=None)


TABLE = {
    "dense": Entry(
        DENSE_CASES,
        dense,
        h=1e-4,
        draw=lambda r: (vector(r), dict(units=3)),
        # y_j = sum_i x_i w_ij + b_j = [1 + 0 + 0, 0 + 2 + 0.5, 2 - 2 + 1]; dx_i = sum_j w_ij dy_j
        worked=[
            Worked(
                (2,),
                dict(units=3),
                dict(weight=[[1, 0, 2], [0, 1, -1]], bias=[0, 0.5, 1]),
                x=[1, 2],
                y=[1, 2.5, 1],
                dy=[1, 0, 1],
                dx=[3, -1],
                grads=dict(weight=[[1, 0, 1], [2, 0, 2]], bias=[1, 0, 1]),
            )
        ],
    ),
    "conv1d": Entry(
        CONV1D_CASES,
        conv1d,
        h=1e-4,
        draw=conv1d_draw,
        # xp = [0 1 2 3 4 0], [0 0 1 0 -1 0]; windows at 0, 2, 4: y = w . window + 0.5
        # = [(0 - 1) + 0, (2 - 3) + 2, (4 - 0) - 2] + 0.5; dx: each dy[ol] * w added at 2 ol,
        # the padding cut off; dW[c, j] = sum_ol dy[ol] xp[c, 2 ol + j]; db = sum dy
        worked=[
            Worked(
                (2, 4),
                dict(filters=1, kernel=2, stride=2, padding=1),
                dict(weight=[[[1, -1], [2, 0]]], bias=[0.5]),
                x=[[1, 2, 3, 4], [0, 1, 0, -1]],
                y=[[-0.5, 1.5, 2.5]],
                dy=[[1, 2, -1]],
                dx=[[-1, 2, -2, -1], [0, 4, 0, -2]],
                grads=dict(weight=[[[0, 7], [3, 0]]], bias=[2]),
            )
        ],
    ),
    "conv2d": Entry(CONV_CASES, conv2d, h=1e-4, draw=conv_draw),
    "maxpool2d": Entry(POOL_CASES, pool(ref.maxpool), distinct, h=1e-4, draw=pool_draw),
    "avgpool2d": Entry(POOL_CASES, pool(ref.avgpool), h=1e-4, draw=pool_draw),
    "global_avgpool2d": Entry(
        [((2, 3, 4), {}), ((1, 5, 5), {}), ((3, 1, 7), {})],
        global_avgpool2d,
        h=1e-4,
        draw=lambda r: (chw(r, 1, 6), {}),
    ),
    "batchnorm": Entry(BATCHNORM_CASES, batchnorm, h=1e-5, draw=lambda r: (chw(r, 1, 4), {})),
    "dropout": Entry(
        [((5,), dict(drop_prob=0.5)), ((2, 3, 3), dict(drop_prob=0.2)), ((4,), dict(drop_prob=0))],
        dropout,
        h=1e-4,
        draw=lambda r: (chw(r), dict(drop_prob=0.3)),
    ),
    # joins: the in_shape of a case is the tuple of their inputs' shapes (OneInput)
    "add": Entry(
        [(((5,), (5,)), {}), (((2, 3, 3), (2, 3, 3), (2, 3, 3)), {})],
        add,
        h=1e-4,
        draw=lambda r: (((s := chw(r)), s), {}),
    ),
    "concat": Entry(
        [(((2,), (3,)), {}), (((1, 3, 2), (3, 3, 2), (1, 3, 2)), {}), (((2, 4), (1, 4)), {})],
        concat,
        h=1e-4,
        draw=lambda r: (((s := chw(r)), (int(r.integers(1, 4)), *s[1:])), {}),
    ),
    "linear": Entry(ELEMENTWISE, activation("linear"), h=1e-4),
    "sigmoid": Entry(ELEMENTWISE, activation("sigmoid")),
    "tanh": Entry(ELEMENTWISE, activation("tanh")),
    "relu": Entry(ELEMENTWISE, activation("relu"), off_zero, h=1e-4),
    "leaky_relu": Entry(
        [*ELEMENTWISE, ((3, 2, 2), dict(negative_slope=0.2))],
        activation("leaky_relu"),
        off_zero,
        h=1e-4,
    ),
    "softmax": Entry(ELEMENTWISE, softmax),
    # fusions (each layer's FUSABLE): the pair's reference is the two references in a row
    # h 1e-5: a draw with one filter tap has a small input gradient whose difference quotient
    # is all rounding at 1e-6 (1.7e-6 relative; 8e-8 at 1e-5), its nearest kink 0.0065 away
    "conv1d+relu": Entry(
        CONV1D_CASES, then(conv1d, "relu"), fused="relu", h=1e-5, draw=conv1d_draw
    ),
    "conv2d+relu": Entry(CONV_CASES, then(conv2d, "relu"), fused="relu", draw=conv_draw),
    "batchnorm+relu": Entry(
        BATCHNORM_CASES,
        then(batchnorm, "relu"),
        fused="relu",
        h=1e-5,
        draw=lambda r: (chw(r, 1, 4), {}),
    ),
    "add+relu": Entry(
        [(((5,), (5,)), {}), (((2, 3, 3), (2, 3, 3), (2, 3, 3)), {})],
        then(add, "relu"),
        fused="relu",
        h=1e-5,
        draw=lambda r: (((s := chw(r)), s), {}),
    ),
    "dense+tanh": Entry(
        DENSE_CASES, then(dense, "tanh"), fused="tanh", draw=lambda r: (vector(r), dict(units=3))
    ),
}
FUSIONS = [(kind, a) for kind, cls in LAYERS.items() for a in cls.FUSABLE]
KINDS = sorted({*LAYERS, *(f"{kind}+{a}" for kind, a in FUSIONS)})
SEED = 9
BATCH = 3


def cases(kind):
    """(kind, case number) for every fixed case and two random draws of the kind's entry; a
    kind missing from TABLE gets one case, which fails."""
    entry = TABLE.get(kind)
    count = len(entry.cases) + 2 * (entry.draw is not None) if entry else 1
    return [(kind, i) for i in range(count)]


CASES = [c for kind in KINDS for c in cases(kind)]


def make(kind, number, dtype, batch=BATCH):
    """(entry, layer, x, dy) of one case; parameters and state off their initial values."""
    entry = TABLE[kind]  # a KeyError here: the layer has no block in TABLE
    if number < len(entry.cases):
        in_shape, options = entry.cases[number]
    else:
        in_shape, options = entry.draw(np.random.default_rng([SEED, number]))
    layer_kind = kind.partition("+")[0]
    layer = build(LAYERS[layer_kind], in_shape, dtype=dtype, fused=entry.fused, **options)
    if layer.JOIN:  # its inputs as one array
        layer, in_shape = OneInput(layer), (sum(int(np.prod(s)) for s in in_shape),)
    rng = np.random.default_rng([SEED, number, 1])
    for name, p in layer.params.items():
        if name != "weight":  # biases: off 0, so that relus do not all sit on their kink
            p[...] = rng.uniform(-0.5, 0.5, p.shape)
        elif layer_kind == "batchnorm":
            p[...] = rng.uniform(0.5, 1.5, p.shape)
    for a in layer.state.values():
        a[...] = rng.uniform(0.5, 1.5, a.shape)
    x = entry.inputs(rng, (batch, *in_shape))
    dy = rng.standard_normal((batch, *layer.out_shape))
    return entry, layer, x, dy


def forward(layer, x, train=True):
    if layer.stochastic:
        layer.rng = np.random.default_rng(SEED)
    return layer.forward(x, train)


def test_every_layer_and_fusion_has_an_entry():
    assert set(ACTIVATIONS) <= set(LAYERS)
    assert [k for k in KINDS if k not in TABLE] == []


@pytest.mark.parametrize("kind,number", CASES)
def test_gradcheck_float64(kind, number):
    entry, layer, x, _ = make(kind, number, np.float64)
    errors = layer_grad_errors(layer, x, np.random.default_rng(number), h=entry.h)
    assert set(errors) == {"input", *layer.params}
    assert max(errors.values()) < entry.tolerance, errors


TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-4)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,number", CASES)
def test_fast_kernels_match_the_reference(kind, number, dtype):
    entry, layer, x64, dy64 = make(kind, number, dtype)
    x, dy = x64.astype(dtype), dy64.astype(dtype)
    expected = entry.reference(layer, x.astype(np.float64), dy.astype(np.float64), True)
    evaluation = entry.reference(layer, x.astype(np.float64), dy.astype(np.float64), False)
    tol = TOLERANCE[dtype]
    before = {name: a.copy() for name, a in layer.state.items()}

    y, saved = forward(layer, x)
    dx = layer.backward(saved, dy)
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, expected["y"], **tol)
    np.testing.assert_allclose(dx, expected["dx"], **tol)
    for name, g in layer.grads.items():
        assert g.dtype == dtype
        np.testing.assert_allclose(g, expected["grads"][name], **tol, err_msg=name)
    for name, a in layer.state.items():
        assert a.dtype == dtype
        np.testing.assert_allclose(a, expected["state"][name], **tol, err_msg=name)

    for name, a in layer.state.items():  # evaluation reads the state as it was before
        a[...] = before[name]
    y_eval, kept = forward(layer, x, train=False)
    assert kept is None  # evaluation keeps nothing for backward
    np.testing.assert_allclose(y_eval, evaluation["y"], **tol)


@pytest.mark.parametrize("kind", KINDS)
def test_results_do_not_depend_on_the_thread_count(kind):
    """float32, 16 samples, the first case's shapes: forward (training and evaluation),
    backward, gradients and state with one thread and with two, bit for bit."""
    threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None
    results = []
    for count in (1, 2):
        _, layer, x, dy = make(kind, 0, np.float32, batch=16)
        x, dy = x.astype(np.float32), dy.astype(np.float32)
        configure(count)
        try:
            y, saved = forward(layer, x)
            dx = layer.backward(saved, dy)
            evaluation, _ = forward(layer, x, train=False)
        finally:
            configure(threads)
        tensors = [*layer.grads.values(), *layer.state.values()]
        results.append([y, dx, evaluation, *(t.copy() for t in tensors)])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


WORKED = [(kind, i) for kind in KINDS if kind in TABLE for i in range(len(TABLE[kind].worked))]


@pytest.mark.parametrize("kind,number", WORKED)
def test_hand_worked_examples(kind, number):
    entry = TABLE[kind]
    case = entry.worked[number]
    layer = build(LAYERS[kind.partition("+")[0]], case.in_shape, fused=entry.fused, **case.options)
    for name, value in case.params.items():
        layer.params[name][...] = value
    y, saved = layer.forward(np.array([case.x], dtype=np.float64))
    np.testing.assert_allclose(y[0], case.y, rtol=0, atol=1e-12)
    dx = layer.backward(saved, np.array([case.dy], dtype=np.float64))
    np.testing.assert_allclose(dx[0], case.dx, rtol=0, atol=1e-12)
    for name, value in case.grads.items():
        np.testing.assert_allclose(layer.grads[name], value, rtol=0, atol=1e-12, err_msg=name)


# -- the facts on each layer class --------------------------------------------------------------

STATED = ("OUTPUT_RANGE", "onnx", "TORCH")


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_every_layer_states_its_facts_itself(kind):
    """Its own range, ONNX and PyTorch forms (or None, explicitly), never inherited: a layer
    made from another (avgpool2d from maxpool2d) must not export as that one."""
    cls = LAYERS[kind]
    assert cls.kind == kind
    missing = [fact for fact in STATED if fact not in vars(cls)]
    assert missing == [], f"{kind} does not state {missing} (nettrain.layers.base)"
    assert cls.OUTPUT_RANGE is None or isinstance(cls.OUTPUT_RANGE, Range)
    assert cls.onnx is None or callable(cls.onnx)
    assert set(cls.FUSABLE) <= set(ACTIVATIONS)
    assert not hasattr(Layer, "onnx") and not hasattr(Layer, "TORCH")


@pytest.mark.parametrize("kind,activation", FUSIONS)
def test_every_fusion_is_exported_wherever_its_layer_is(kind, activation):
    """A fused pair is exported as the layer, then the activation: both need a form."""
    cls, act = LAYERS[kind], ACTIVATIONS[activation]
    assert cls.onnx is None or act.onnx is not None
    assert cls.TORCH is None or act.TORCH is not None
    assert act.OUTPUT_RANGE is not None  # the range of the pair's output is the activation's


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_torch_arrays_are_the_parameters_and_state_reshaped_at_most(kind):
    """torch_arrays gives every parameter and state array once, the same values in a layout of
    the same size; a layer with arrays has a PyTorch module to hold them."""
    _, layer, _, _ = make(kind, 0, np.float64)
    arrays = {**layer.params, **layer.state}
    torch = layer.torch_arrays()
    assert set(torch) == set(arrays)
    for name, a in arrays.items():
        assert torch[name].size == a.size and np.array_equal(np.sort(torch[name], None),
                                                             np.sort(a, None)), name  # fmt: skip
    assert not arrays or layer.TORCH is not None
