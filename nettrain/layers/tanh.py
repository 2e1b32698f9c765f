"""Hyperbolic tangent, element-wise: o = tanh(s); do/ds = 1 - o^2.

x: (batch, *shape) -> y: same shape, values in (-1, 1).
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import Layer


class Tanh(Layer):
    kind = "tanh"

    def forward(self, x, train=True):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y * self.y)

    def flops(self):
        return 4 * int(np.prod(self.out_shape))
