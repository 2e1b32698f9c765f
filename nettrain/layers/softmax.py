"""Softmax over the units of each sample: o_i = exp(s_i - max s) / sum_k exp(s_k - max s).

x: (batch, *shape) -> y: same shape; each sample's units (all of them, flattened) sum to 1.
Backward applies the full Jacobian do_i/ds_j = o_i (delta_ij - o_j):
dL/ds_j = o_j (dL/do_j - sum_i dL/do_i o_i).
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import Layer, Range


def softmax(s: np.ndarray) -> np.ndarray:
    """Row-wise softmax of s (batch, K), stable for any magnitude of s."""
    e = np.exp(s - s.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def log_softmax(s: np.ndarray) -> np.ndarray:
    """Row-wise log of the softmax of s (batch, K), finite wherever s is."""
    shifted = s - s.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class Softmax(Layer):
    kind = "softmax"
    flops_per_value = 5
    OUTPUT_RANGE = Range("(0, 1), summing to 1", low=0, high=1, distribution=True)
    TORCH = "torch.nn.Softmax"  # over all units of a sample: on x.flatten(1), dim 1

    def onnx(self, g, x):
        """Over all units of a sample: Flatten, Softmax on axis 1, Reshape back."""
        y = g.node("Softmax", [g.flat(x, len(self.in_shape))], axis=1)
        if len(self.in_shape) > 1:
            y = g.node("Reshape", [y, g.shape("shape", [-1, *self.in_shape])])
        return y

    def forward(self, x, train=True):
        """saved: y."""
        y = softmax(x.reshape(len(x), -1)).reshape(x.shape)
        return y, (y if train else None)

    def backward(self, saved, dy, need_dx=True):
        o = saved.reshape(len(dy), -1)
        g = dy.reshape(len(dy), -1)
        dx = o * (g - (g * o).sum(axis=1, keepdims=True))
        return dx.reshape(dy.shape)
