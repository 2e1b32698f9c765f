"""Concatenation of two or more inputs along the channel axis (docs/graphs.md): the C of
(C, H, W), the features of (F,), the first axis of a sample whatever its rank.

x_j: (batch, C_j, *rest) each, ``rest`` equal -> y: (batch, C_1 + ... + C_k, *rest), the inputs'
channels in the order of ``from``; dL/dx_j is dy's slice of x_j's channels.
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import ANY, Layer, ShapeError, shape_list


class Concat(Layer):
    kind = "concat"
    JOIN = True
    OUTPUT_RANGE = ANY  # the union of its inputs' ranges; any, for the loss checks' sake
    TORCH = "torch.cat"  # torch.cat(xs, 1): no weights

    def onnx(self, g, xs):
        """Concat over axis 1."""
        return g.node("Concat", list(xs), axis=1)

    def shapes(self, in_shape):
        first = in_shape[0]
        if any(len(s) != len(first) or s[1:] != first[1:] for s in in_shape) or not first:
            raise ShapeError(
                "concat joins along the channel axis, so every other axis must be equal, got "
                + shape_list(in_shape)
            )
        return (sum(s[0] for s in in_shape), *first[1:]), {}, {}

    def forward(self, xs, train=True):
        """saved: nothing (backward needs only the channel counts)."""
        return np.concatenate(xs, axis=1, dtype=self.dtype), None

    def backward(self, saved, dy, need_dx=True):
        ends = np.cumsum([s[0] for s in self.in_shape])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(dy, ends, axis=1)]
