"""Leaky rectified linear unit, element-wise: o = max(s, 0) + negative_slope * min(s, 0);
do/ds = 1 where s > 0, else negative_slope (at s = 0 exactly: negative_slope, as PyTorch).

x: (batch, *shape) -> y: same shape.
"""

from __future__ import annotations

import numpy as np

from nettrain.core.options import Opt
from nettrain.layers.base import ANY, Layer


class LeakyRelu(Layer):
    kind = "leaky_relu"
    OPTIONS = {
        "negative_slope": Opt("float", 0.01, min=0, doc="slope for inputs below 0"),
    }
    flops_per_value = 2
    OUTPUT_RANGE = ANY
    TORCH = "torch.nn.LeakyReLU"

    def onnx(self, g, x):
        return g.node("LeakyRelu", [x], alpha=float(self.options["negative_slope"]))

    def forward(self, x, train=True):
        """saved: the mask x > 0."""
        positive = x > 0
        y = np.where(positive, x, x * self.dtype.type(self.options["negative_slope"]))
        return y.astype(self.dtype, copy=False), (positive if train else None)

    def backward(self, saved, dy, need_dx=True):
        slope = self.dtype.type(self.options["negative_slope"])
        return np.where(saved, dy, dy * slope).astype(self.dtype, copy=False)

    def kinks(self, saved):
        return saved

    def describe(self):
        slope = self.options["negative_slope"]
        return "leaky_relu" if slope == 0.01 else f"leaky_relu {slope:g}"
