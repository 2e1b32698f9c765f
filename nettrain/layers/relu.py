"""Rectified linear unit, element-wise: o = max(s, 0); do/ds = 1 where s > 0, else 0.

x: (batch, *shape) -> y: same shape. At s = 0 exactly the gradient is taken as 0.
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import Layer, Range


class Relu(Layer):
    kind = "relu"
    flops_per_value = 1
    OUTPUT_RANGE = Range("[0, inf)", low=0)
    TORCH = "torch.nn.ReLU"

    def onnx(self, g, x):
        return g.node("Relu", [x])

    def forward(self, x, train=True):
        """saved: y (the gradient passes where y > 0)."""
        y = np.maximum(x, 0)
        return y, (y if train else None)

    def backward(self, saved, dy, need_dx=True):
        return dy * (saved > 0)

    def kinks(self, saved):
        return saved > 0
