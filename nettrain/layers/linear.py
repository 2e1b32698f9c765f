"""Identity activation: o = s; do/ds = 1. x: (batch, *shape) -> y: the same array."""

from __future__ import annotations

from nettrain.layers.base import ANY, Layer


class Linear(Layer):
    kind = "linear"
    OUTPUT_RANGE = ANY
    TORCH = "torch.nn.Identity"

    def onnx(self, g, x):
        """Nothing."""
        return x

    def forward(self, x, train=True):
        """saved: nothing."""
        return x, None

    def backward(self, saved, dy, need_dx=True):
        return dy
