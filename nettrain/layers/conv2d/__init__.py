"""2-D convolution: the layer (layer.py) and its kernels: direct, register tiles (tile.py),
im2col + BLAS (lowered.py) and the weight gradient (wgrad.py)."""

from nettrain.layers.conv2d.layer import Conv2d

__all__ = ["Conv2d"]
