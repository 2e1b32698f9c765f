"""Rectified linear unit, element-wise: o = max(s, 0); do/ds = 1 where s > 0, else 0.

x: (batch, *shape) -> y: same shape. At s = 0 exactly the gradient is taken as 0.
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import Layer


class Relu(Layer):
    kind = "relu"
    flops_per_value = 1

    def forward(self, x, train=True):
        """saved: y (the gradient passes where y > 0)."""
        y = np.maximum(x, 0)
        return y, (y if train else None)

    def backward(self, saved, dy, need_dx=True):
        return dy * (saved > 0)

    def kinks(self, saved):
        return saved > 0
