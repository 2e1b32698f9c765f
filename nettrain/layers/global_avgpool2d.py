"""Global average pooling, NCHW: the mean of each channel's plane.

x: (batch, C, H, W) -> y: (batch, C) with y[n, c] = sum_{h, w} x[n, c, h, w] / (H W);
backward spreads dy[n, c] / (H W) over the plane.
"""

from __future__ import annotations

import numpy as np

from nettrain.layers.base import Layer
from nettrain.layers.conv2d.layer import needs_chw


class GlobalAvgPool2d(Layer):
    kind = "global_avgpool2d"
    OUTPUT_RANGE = None  # its input's: a mean of values in a range stays in it
    TORCH = "torch.nn.AdaptiveAvgPool2d(1)"  # then flattened to (batch, C)

    def onnx(self, g, x):
        """GlobalAveragePool, then Flatten to (N, C)."""
        return g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)

    def shapes(self, in_shape):
        if len(in_shape) != 3:
            raise needs_chw(self.kind, in_shape)
        return (in_shape[0],), {}, {}

    def forward(self, x, train=True):
        """saved: nothing (backward needs only the shapes)."""
        N, C = len(x), self.in_shape[0]
        y = np.mean(x.reshape(N, C, -1), axis=2, dtype=self.dtype)
        return y, None

    def backward(self, saved, dy, need_dx=True):
        N, (C, H, W) = len(dy), self.in_shape
        dx = np.empty((N, C, H * W), dtype=self.dtype)
        dx[...] = (dy / self.dtype.type(H * W))[:, :, None]
        return dx.reshape(N, C, H, W)

    def flops(self):
        return int(np.prod(self.in_shape))
