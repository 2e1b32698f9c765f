"""Rectified linear unit, element-wise: o = max(s, 0); do/ds = 1 where s > 0, else 0.

x: (batch, *shape) -> y: same shape. At s = 0 exactly the gradient is taken as 0.
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import Layer


class Relu(Layer):
    kind = "relu"
    fused = False  # True when the layer before applies max(., 0) and its mask (conv2d)

    def forward(self, x, train=True):
        self.y = x if self.fused else np.maximum(x, 0)
        return self.y

    def backward(self, dy):
        return dy if self.fused else dy * (self.y > 0)

    def flops(self):
        return int(np.prod(self.out_shape))

    def kinks(self):
        return self.y > 0
