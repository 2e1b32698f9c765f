"""The layer contract every layer follows.

A layer is made once from its YAML options (and ``fused``, one of its ``FUSABLE`` activations,
which the network builder asks it to apply inside its own kernels), then:

- ``shapes(in_shape) -> (out_shape, {param: shape}, {state: shape})``: the pure shape pass, on
  per-sample shapes (no batch axis). It allocates and changes nothing, and raises ``ShapeError``
  when the layer cannot take that input. Parameters are trained; state (batchnorm's running
  statistics, PyTorch's "buffers") is saved and restored with them but never trained.
- ``build(in_shape, dtype) -> out_shape``: runs the shape pass, then allocates ``params``,
  ``grads`` (same names, shapes and dtype) and ``state``, and ``setup()`` precomputes what the
  kernels need from the shapes. The network names them ``layers.{index}.{name}``: optimizer state
  (parameters only), checkpoints, ``--resume``, ``--weights`` and gradcheck use those names, with
  no code per layer.
- ``init_params(rng)``: draws ``params`` from the run's seeded ``numpy.random.Generator`` and sets
  ``state`` to its initial values.
- ``forward(x, train) -> (y, saved)``: x (batch, *in_shape) -> y (batch, *out_shape). ``saved``
  is exactly what backward needs; evaluation (``train`` False) keeps nothing and gives None.
  In a training run ``train`` is the step (nettrain.core.step.Step, truthy): dropout draws its
  mask from the step's stream, batchnorm sums over the ranks with it; other layers read it as True.
  Training may update ``state`` (batchnorm's running statistics); evaluation reads it.
- ``backward(saved, dy, need_dx=True) -> dx``: dy = dL/dy (batch, *out_shape) -> dL/dx
  (batch, *in_shape), using only ``saved``; writes the parameter gradients into ``grads``. With
  ``need_dx`` False (the first layer, in training) it may skip dx and return None.
  Layers never update their own parameters: the optimizer does.

``forward`` never writes into its ``x`` and ``backward`` never into its ``dy``: the net hands an
output that several layers read to each of them as it is, and a gradient to several inputs as it
is (docs/graphs.md).

Joins (``JOIN = True``: add, concat) are the one extension, for nets as graphs: they read several
outputs, so their ``in_shape`` is the tuple of their inputs' shapes, ``shapes`` and ``build``
take that tuple, ``forward`` takes the list of input arrays, ``backward`` returns the list of
their gradients, one per input in the same order (entries may be the same array), and ``onnx``
takes the list of the inputs' names. Every other
layer reads one input; where an output is read by several layers, the net sums their gradients
(nettrain.net.network), so that no layer needs to know.

Scratch arrays that kernels reuse from batch to batch (``_buffer``) are storage, not state: a
``saved`` may point into one until the next forward.

A layer's facts are on its class, and the net and the exporters read them from there, with no
table per layer elsewhere. Every class in the layer table states the last three itself (not by
inheritance: tests/test_layer_table.py checks), so that a new layer cannot borrow a wrong one:

- ``FUSABLE``: the activations it can apply in its own kernels; the builder fuses exactly these
  pairs (an ``activation:`` of its own, or a standalone activation entry right after it).
- ``OUTPUT_RANGE``: a ``Range``, the values its output takes whatever its input (sigmoid (0, 1),
  softmax a distribution), or None where its input's range passes through (pooling, dropout).
  The loss checks read it.
- ``onnx(g, x) -> name``: appends its evaluation-mode nodes to an ONNX graph under construction
  (``nettrain.export.onnx.Graph``) that reads ``x``; None where nettrain has no ONNX form for it.
- ``TORCH``: the PyTorch module (or function) that computes what it computes, or None where there
  is none. ``torch_arrays()`` gives its parameters and state in that module's layouts; override
  it where nettrain's layout differs (dense's weight is transposed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The activations, usable as `activation:` on dense/conv2d and as standalone layers.
ACTIVATION_NAMES = ("linear", "sigmoid", "tanh", "relu", "softmax", "leaky_relu")
# More values than this in one sample's output (8 GiB in float32) is a typo in a size, not a net.
MAX_OUTPUT_VALUES = 2**31


@dataclass(frozen=True)
class Range:
    """The values a layer's output can take: ``text`` as messages show it, e.g. '[0, inf)'."""

    text: str
    low: float = -math.inf
    high: float = math.inf
    distribution: bool = False  # each sample's values also sum to 1 (softmax)

    def probabilities(self) -> bool:
        """Whether every value lies in [0, 1] (what cross_entropy takes the logs of)."""
        return self.low >= 0 and self.high <= 1


ANY = Range("(-inf, inf)")


class ShapeError(ValueError):
    """A layer cannot be built on the input shape it is given (the message says why)."""


class Layer:
    """Base class; see the module docstring for the contract."""

    kind = "layer"  # the YAML `type`
    OPTIONS: dict = {}
    FUSABLE: tuple = ()  # activations this layer can apply in its own kernels
    # stated by every layer class itself (module docstring): OUTPUT_RANGE, onnx, TORCH
    OUTPUT_RANGE: Range | None
    TORCH: str | None
    JOIN = False  # True for layers that read several inputs (the module docstring)
    stochastic = False  # True for layers that draw from ``self.rng`` in training (dropout)
    flops_per_value = 0  # forward FLOPs per output value, for element-wise layers

    def __init__(self, index: int, fused: str | None = None, **options):
        if fused is not None and fused not in self.FUSABLE:
            raise ValueError(f"{self.kind} cannot apply {fused} in its kernels")
        self.index = index  # position in model.layers; parameters are named after it
        self.fused = fused  # the activation applied inside this layer's kernels, or None
        self.options = options
        self.in_shape: tuple = ()
        self.out_shape: tuple = ()
        self.dtype = np.dtype(np.float32)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}  # scratch arrays reused from batch to batch

    def shapes(self, in_shape: tuple) -> tuple[tuple, dict, dict]:
        """(out_shape, {param: shape}, {state: shape}); element-wise layers keep the shape."""
        return tuple(in_shape), {}, {}

    def build(self, in_shape: tuple, dtype) -> tuple:
        out_shape, params, state = self.shapes(tuple(in_shape))
        self.in_shape, self.out_shape, self.dtype = tuple(in_shape), out_shape, np.dtype(dtype)
        for table, shapes in ((self.params, params), (self.state, state)):
            for name, shape in shapes.items():
                table[name] = self._zeros(name, shape)
                if table is self.params:
                    self.grads[name] = self._zeros(name, shape)
        if math.prod(out_shape) > MAX_OUTPUT_VALUES:
            raise ShapeError(
                f"its output of shape {out_shape} would hold "
                f"{math.prod(out_shape):,} values per sample"
            )
        self.setup()
        return out_shape

    def _zeros(self, name: str, shape: tuple) -> np.ndarray:
        try:
            return np.zeros(shape, dtype=self.dtype)
        except (MemoryError, ValueError):  # numpy: "Maximum allowed dimension exceeded"
            raise ShapeError(
                f"its {name} of shape {tuple(shape)} ({math.prod(shape):,} values) does not fit "
                "in memory"
            ) from None

    def setup(self) -> None:
        """After allocation: precompute what the kernels need from the shapes (conv2d's taps)."""

    def _buffer(self, name: str, shape) -> np.ndarray:
        """A C-contiguous scratch array of ``shape``, carved from storage kept between batches,
        so that large work arrays are not allocated anew for every batch."""
        size = int(np.prod(shape))
        store = self._buffers.get(name)
        if store is None or store.size < size:
            store = self._buffers[name] = np.empty(size, dtype=self.dtype)
        return store[:size].reshape(shape)

    def init_params(self, rng: np.random.Generator) -> None:
        """Parameter-free layers have nothing to draw."""

    def forward(self, x: np.ndarray, train: bool = True) -> tuple[np.ndarray, object]:
        raise NotImplementedError

    def backward(self, saved, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def flops(self) -> int:
        """Forward floating-point operations per sample (a multiply-add counts 2)."""
        return self.flops_per_value * math.prod(self.out_shape)

    def kinks(self, saved):
        """For gradcheck, from a training forward's ``saved``: an array that changes when a
        perturbation crosses a point where this layer is not differentiable (a relu input
        crossing 0, a max-pool switch), else None."""
        return None

    def describe(self) -> str:
        """Short text for the summary table, e.g. 'dense 150'."""
        return self.kind

    def label(self) -> str:
        """describe(), with the activation applied in this layer's kernels: 'conv2d ... + relu'."""
        return self.describe() + (f" + {self.fused}" if self.fused else "")

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def torch_arrays(self) -> dict[str, np.ndarray]:
        """Parameters and state by name, in the layouts of the ``TORCH`` module."""
        return {**self.params, **self.state}


def shape_list(shapes) -> str:
    """'(16, 28, 28), (32, 14, 14)': the input shapes of a join, for messages."""
    return ", ".join("(" + ", ".join(map(str, s)) + ")" for s in shapes)


def defaults(layer_cls) -> dict:
    """The layer's options with every default filled in (for activations the builder adds)."""
    return {k: o.default for k, o in layer_cls.OPTIONS.items() if not o.required}
