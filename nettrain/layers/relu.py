"""Rectified linear unit, element-wise: o = max(s, 0); do/ds = 1 where s > 0, else 0.

x: (batch, *shape) -> y: same shape. At s = 0 exactly the gradient is taken as 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

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
        return relu_grad(dy, saved)

    def kinks(self, saved):
        return saved > 0


def relu_grad(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy * (y > 0) in one pass (numpy's two make the same bits: a product by 1 or 0)."""
    out = np.empty(dy.shape, dy.dtype)
    flat = [np.ascontiguousarray(a).reshape(-1) for a in (dy, y, out)]
    _relu_grad(*flat)
    return out


@njit(cache=True, parallel=True)
def _relu_grad(dy, y, out):
    """out = dy * (y > 0), element by element (flat arrays of one length)."""
    for i in prange(len(out)):
        out[i] = dy[i] * (y[i] > 0)
