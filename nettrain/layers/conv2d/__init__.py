"""2-D convolution: the layer (layer.py), the plan of which kernels it runs per layer shape and
pass, with the measurements behind each choice (plan.py), and the kernels: direct stride-1
convolution in register tiles of four filters (tile.py) and in blocks of eight, two and one filters
(direct.py), the direct weight gradient (wgrad.py), and im2col + BLAS for other strides and for
many filters on small images (lowered.py)."""

from nettrain.layers.conv2d.layer import Conv2d

__all__ = ["Conv2d"]
