"""Elementwise sum of two or more inputs of one shape (no broadcasting), added in the order of
``from``: the join of a residual block (docs/graphs.md).

x_j: (batch, *shape) each -> y = x_1 + x_2 + ... + x_k: (batch, *shape); dL/dx_j = dy for every
input.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.layers.base import ANY, Layer, ShapeError, shape_list


class Add(Layer):
    kind = "add"
    JOIN = True
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
        """saved: nothing (the gradient of a sum is dy for each term)."""
        y = np.add(xs[0], xs[1], dtype=self.dtype)
        for x in xs[2:]:
            y += x
        return y, None

    def backward(self, saved, dy, need_dx=True):
        """The same dy for every input: neither layers nor the net write into a gradient."""
        return [dy] * len(self.in_shape)

    def flops(self):
        return (len(self.in_shape) - 1) * math.prod(self.out_shape)
