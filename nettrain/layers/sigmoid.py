"""Logistic sigmoid, element-wise: o = 1 / (1 + exp(-s)); do/ds = o (1 - o).

x: (batch, *shape) -> y: same shape, values in (0, 1). Computed without overflow for large |s|.
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import Layer, Range


def sigmoid(s: np.ndarray) -> np.ndarray:
    """exp is only ever taken of -|s|, so nothing overflows."""
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(s.dtype, copy=False)


class Sigmoid(Layer):
    kind = "sigmoid"
    flops_per_value = 4
    OUTPUT_RANGE = Range("(0, 1)", low=0, high=1)
    TORCH = "torch.nn.Sigmoid"

    def onnx(self, g, x):
        return g.node("Sigmoid", [x])

    def forward(self, x, train=True):
        """saved: y."""
        y = sigmoid(x)
        return y, (y if train else None)

    def backward(self, saved, dy, need_dx=True):
        return dy * saved * (1 - saved)
