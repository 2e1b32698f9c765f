"""Elementwise sum of two or more inputs of one shape (no broadcasting), added in the order of
``from``: the join of a residual block (docs/graphs.md).

x_j: (batch, *shape) each -> y = x_1 + x_2 + ... + x_k: (batch, *shape); dL/dx_j = dy for every
input. With ``fused="relu"`` (a relu right after the add, as every residual block ends) the sum
and max(., 0) are one pass, and the backward pass hands every input dy * (y > 0): the same bits
as the separate relu layer, in one pass over memory instead of three.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from nettrain.layers.base import ANY, Layer, ShapeError, shape_list
from nettrain.layers.relu import Relu, relu_grad


class Add(Layer):
    kind = "add"
    JOIN = True
    FUSABLE = ("relu",)
    OUTPUT_RANGE = ANY  # a sum of values in a range can leave it: (0, 1) + (0, 1)
    TORCH = "torch.add"  # x_1 + x_2 + ...: no weights

    def onnx(self, g, xs):
        """Add, pairwise in the order of ``from``."""
        y = xs[0]
        for x in xs[1:]:
            y = g.node("Add", [y, x])
        return y

    def shapes(self, in_shape):
        if any(s != in_shape[0] for s in in_shape):
            raise ShapeError(
                f"add needs inputs of one shape (no broadcasting), got {shape_list(in_shape)}"
            )
        return tuple(in_shape[0]), {}, {}

    def forward(self, xs, train=True):
        """saved: y when relu is fused in, else nothing (the gradient of a sum is dy for each
        term)."""
        relu = self.fused is not None
        if len(xs) == 2 and relu:
            y = np.empty(xs[0].shape, self.dtype)
            flat = [np.ascontiguousarray(a, self.dtype).reshape(-1) for a in (*xs, y)]
            _add_relu(*flat)
        else:
            y = np.add(xs[0], xs[1], dtype=self.dtype)
            for x in xs[2:]:
                y += x
            if relu:
                np.maximum(y, 0, out=y)
        return y, (y if relu and train else None)

    def backward(self, saved, dy, need_dx=True):
        """The same gradient for every input: neither layers nor the net write into one."""
        return [dy if saved is None else relu_grad(dy, saved)] * len(self.in_shape)

    def flops(self):
        return (len(self.in_shape) - 1 + (Relu.flops_per_value if self.fused else 0)) * math.prod(
            self.out_shape
        )

    def kinks(self, saved):
        return None if saved is None else saved > 0


@njit(cache=True, parallel=True)
def _add_relu(a, b, y):
    """y = max(a + b, 0), element by element (flat arrays of one length)."""
    for i in prange(len(y)):
        y[i] = max(a[i] + b[i], 0)
