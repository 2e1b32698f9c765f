"""1-D convolution (cross-correlation), NCL.

x: (batch, C, L) -> y: (batch, filters, OL) with
y[n, f, ol] = bias[f] + sum_{c, j} weight[f, c, j] * xp[n, c, ol*s + j],
where xp is x with p zeros at each end. ``weight`` is (filters, C, k), torch.nn.Conv1d's layout,
``bias`` (filters,).

Padding: 'valid' = none; 'same' = (k - 1) // 2 at each end, odd kernels only, so that stride 1
keeps L; an integer = that many zeros at each end. Output length OL = floor((L + 2p - k) / s) + 1
(positions the stride cannot reach are dropped). The YAML ``activation`` becomes a separate
activation layer after this one; here it only chooses the initialiser.

Computed by conv2d's kernels, each sample taken as a (C, 1, L) image and the kernel as (1, k):
a conv2d of height 1 is the sum above term for term, so conv1d is exactly as fast and as exact
as conv2d on such images (direct kernels at stride 1, im2col otherwise), with no kernels of its
own to keep. The conv2d's weight and gradient are views of this layer's (filters, C, 1, k) ->
(filters, C, k): the optimizer, checkpoints and exports see only these. With ``fused="relu"``
the conv2d applies max(., 0) in its kernels.
"""

from __future__ import annotations

import math

from nettrain.core.options import Opt
from nettrain.layers import initializers
from nettrain.layers.base import ACTIVATION_NAMES, ANY, Layer, ShapeError, defaults
from nettrain.layers.conv2d.layer import Conv2d


class Conv1d(Layer):
    kind = "conv1d"
    FUSABLE = ("relu",)  # applied by the conv2d kernels
    OUTPUT_RANGE = ANY
    TORCH = "torch.nn.Conv1d"  # weight (filters, C, k) as stored
    OPTIONS = {
        "filters": Opt("int", min=1, doc="number of output channels"),
        "kernel": Opt("int", min=1, doc="kernel length"),
        "stride": Opt("int", 1, min=1, doc="step between windows"),
        "padding": Opt(
            "padding",
            "valid",
            extra={"axes": 1},
            doc="'valid', 'same' (odd kernels) or zeros at each end",
        ),
        "activation": Opt(
            "choice", "linear", choices=ACTIVATION_NAMES, doc="activation applied to the output"
        ),
        "bias": Opt("bool", True, doc="add a bias per filter"),
        "init": initializers.INIT_OPTION,
    }

    def geometry(self) -> tuple[int, int, int]:
        """(kernel, stride, padding at each end), from the options."""
        k, s, padding = self.options["kernel"], self.options["stride"], self.options["padding"]
        if padding == "same":
            if k % 2 == 0:
                raise ShapeError(
                    f"padding 'same' needs an odd kernel, got kernel {k}; give an explicit "
                    f"integer padding instead, e.g. padding: {k // 2}"
                )
            return k, s, (k - 1) // 2
        return k, s, (0 if padding == "valid" else int(padding))

    def shapes(self, in_shape):
        if len(in_shape) != 2:
            raise ShapeError(
                f"conv1d needs a (channels, length) input, got shape {tuple(in_shape)}; set "
                f"model.input to the sequence shape, e.g. model.input: [1, {math.prod(in_shape)}]"
            )
        filters = self.options["filters"]
        if filters < 1:
            raise ShapeError(f"filters must be >= 1, got {filters}")
        C, L = in_shape
        k, s, p = self.geometry()
        if k > L + 2 * p:
            raise ShapeError(
                f"conv1d kernel {k} is longer than its padded input {L + 2 * p} (input {L}, "
                f"padding {p}); use a shorter kernel or more padding"
            )
        params = {"weight": (filters, C, k)}
        if self.options["bias"]:
            params["bias"] = (filters,)
        return (filters, (L + 2 * p - k) // s + 1), params, {}

    def setup(self):
        """The conv2d that computes this layer on (C, 1, L) images, its arrays views of ours."""
        (C, L), (k, s, p) = self.in_shape, self.geometry()
        options = {**defaults(Conv2d), **self.options}
        options.update(kernel=[1, k], stride=[1, s], padding=[0, p])
        self.conv = Conv2d(self.index, fused=self.fused, **options)
        self.conv.build((C, 1, L), self.dtype)
        for mine, its in ((self.params, self.conv.params), (self.grads, self.conv.grads)):
            for name, a in mine.items():
                its[name] = a.reshape(its[name].shape)

    def init_params(self, rng):
        """conv2d's draw, into our arrays: fan-in C*k, fan-out filters*k."""
        self.conv.init_params(rng)

    def forward(self, x, train=True):
        """saved: the conv2d's (its padded input or im2col matrix, y when relu is fused in)."""
        (C, L), (F, OL) = self.in_shape, self.out_shape
        y, saved = self.conv.forward(x.reshape(len(x), C, 1, L), train)
        return y.reshape(len(x), F, OL), saved

    def backward(self, saved, dy, need_dx=True):
        (C, L), (F, OL) = self.in_shape, self.out_shape
        dx = self.conv.backward(saved, dy.reshape(len(dy), F, 1, OL), need_dx)
        return None if dx is None else dx.reshape(len(dy), C, L)

    def flops(self):
        return self.conv.flops()

    def kinks(self, saved):
        return self.conv.kinks(saved)

    def describe(self):
        k, s, p = self.geometry()
        return f"conv1d {self.options['filters']}@{k} s{s} p{p}"

    def onnx(self, g, x):
        """Conv with a 1-D kernel: the same weight layout, p zeros at each end."""
        k, s, p = self.geometry()
        inputs = [x, g.constant("weight", self.params["weight"])]
        if "bias" in self.params:
            inputs.append(g.constant("bias", self.params["bias"]))
        return g.node("Conv", inputs, kernel_shape=[k], strides=[s], pads=[p, p])
