"""2-D convolution: the layer (layer.py), the plan of which kernels it runs per layer shape, pass
and vector unit, with the measurements behind each choice (plan.py), and the kernels: direct
stride-1 convolution in register tiles sized for the vector unit, 4 filters x 48 columns on
AVX-512 and 3 x 32 on AVX2 (tile.py), and in blocks of eight, two and one filters (direct.py),
the direct weight gradient (wgrad.py), the phase planes on which strided layers run those
kernels (phases.py), the packed batch on which small 'same' layers run them (packed.py),
im2col + BLAS for the other strided layers and for many filters on small images (lowered.py),
and Winograd F(2x2, 3x3) for 3x3 stride-1 layers, chosen only with
NETTRAIN_CONV=winograd (winograd.py)."""

from nettrain.layers.conv2d.layer import Conv2d

__all__ = ["Conv2d"]
