"""The layer contract every layer follows.

A layer is built once from its YAML options, then:

- ``build(in_shape, dtype) -> out_shape``: per-sample shapes (no batch axis), known before any
  data is read; allocates ``params`` and ``grads`` (same names, shapes and dtype). Raises
  ``ShapeError`` when the layer cannot take that input.
- ``init_params(rng)``: fills ``params`` from the run's seeded ``numpy.random.Generator``.
- ``forward(x, train) -> y``: x (batch, *in_shape) -> y (batch, *out_shape); caches exactly what
  backward needs.
- ``backward(dy) -> dx``: dy = dL/dy (batch, *out_shape) -> dL/dx (batch, *in_shape); writes the
  parameter gradients into ``grads``. It only uses what forward cached. When
  ``needs_input_grad`` is False (the first layer, in training) it may skip dx and return None.
  Layers never update their own parameters: the optimizer does, through the names
  ``layers.{index}.{param}``.
"""

from __future__ import annotations

import math

import numpy as np

# The activations, usable as `activation:` on dense/conv2d and as standalone layers.
ACTIVATION_NAMES = ("linear", "sigmoid", "tanh", "relu", "softmax")
# More values than this in one sample's output (8 GiB in float32) is a typo in a size, not a net.
MAX_OUTPUT_VALUES = 2**31


class ShapeError(ValueError):
    """A layer cannot be built on the input shape it is given (the message says why)."""


class Layer:
    """Base class; see the module docstring for the contract."""

    kind = "layer"  # the YAML `type`
    OPTIONS: dict = {}
    stochastic = False  # True for layers that draw from ``self.rng`` in training (dropout)

    def __init__(self, index: int, **options):
        self.index = index  # position in model.layers; parameters are named after it
        self.options = options
        self.in_shape: tuple = ()
        self.out_shape: tuple = ()
        self.dtype = np.dtype(np.float32)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.needs_input_grad = True  # False for the first layer in training: backward -> None
        self._buffers: dict[str, np.ndarray] = {}  # scratch arrays reused from batch to batch

    def build(self, in_shape: tuple, dtype) -> tuple:
        self.in_shape = tuple(in_shape)
        self.dtype = np.dtype(dtype)
        self.out_shape = self.output_shape(self.in_shape)
        if math.prod(self.out_shape) > MAX_OUTPUT_VALUES:
            raise ShapeError(
                f"its output of shape {self.out_shape} would hold "
                f"{math.prod(self.out_shape):,} values per sample"
            )
        return self.out_shape

    def output_shape(self, in_shape: tuple) -> tuple:
        return in_shape

    def add_param(self, name: str, shape: tuple) -> None:
        try:
            self.params[name] = np.zeros(shape, dtype=self.dtype)
            self.grads[name] = np.zeros(shape, dtype=self.dtype)
        except (MemoryError, ValueError):  # numpy: "Maximum allowed dimension exceeded"
            raise ShapeError(
                f"its {name} of shape {tuple(shape)} ({math.prod(shape):,} values) does not fit "
                "in memory"
            ) from None

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

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def flops(self) -> int:
        """Forward floating-point operations per sample (a multiply-add counts 2)."""
        return 0

    def kinks(self):
        """For gradcheck: an array that changes when a perturbation crosses a point where this
        layer is not differentiable (a relu input crossing 0, a max-pool switch), else None."""
        return None

    def describe(self) -> str:
        """Short text for the summary table, e.g. 'dense 150'."""
        return self.kind

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))
