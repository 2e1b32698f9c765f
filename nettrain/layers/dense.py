"""Fully connected layer: s_i = sum_j o_j w_ji + b_i (docs/maths.md).

x: (batch, *in_shape) -> y: (batch, units). A multi-dimensional input is flattened per sample in
(C, H, W) order. ``weight`` is (in, units), ``bias`` (units,). The YAML ``activation`` becomes a
separate activation layer after this one; here it only chooses the initialiser. With
``fused="tanh"`` (the network builder's choice) the forward pass adds the bias and applies tanh
in one pass over the product, and backward takes dy * (1 - y^2) before the products.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.core.options import Opt
from nettrain.layers import initializers
from nettrain.layers.base import ACTIVATION_NAMES, ANY, Layer, ShapeError
from nettrain.layers.tanh import Tanh, tanh, tanh_grad


class Dense(Layer):
    kind = "dense"
    FUSABLE = ("tanh",)
    OUTPUT_RANGE = ANY
    TORCH = "torch.nn.Linear"  # on the input flattened in (C, H, W) order
    OPTIONS = {
        "units": Opt(
            "int", min=1, doc="output units; a (C, H, W) input is flattened in that order"
        ),
        "activation": Opt(
            "choice", "linear", choices=ACTIVATION_NAMES, doc="activation after the sum"
        ),
        "bias": Opt("bool", True, doc="add a bias per unit"),
        "init": initializers.INIT_OPTION,
    }

    def shapes(self, in_shape):
        units = self.options["units"]
        if units < 1:
            raise ShapeError(f"units must be >= 1, got {units}")
        params = {"weight": (math.prod(in_shape), units)}
        if self.options["bias"]:
            params["bias"] = (units,)
        return (units,), params, {}

    def init_params(self, rng):
        n_in, units = self.params["weight"].shape
        self.params["weight"][...] = initializers.draw(
            self.options["init"],
            self.options["activation"],
            (n_in, units),
            n_in,
            units,
            rng,
            self.dtype,
        )
        if "bias" in self.params:
            self.params["bias"][...] = 0

    def forward(self, x, train=True):
        """saved: (x flattened (batch, in), y when tanh is fused in, else None)."""
        x2 = x.reshape(len(x), -1)
        bias = self.params.get("bias")
        if self.fused:  # the product is only read by the tanh pass: a reused buffer
            s = self._buffer("s", (len(x2), self.out_shape[0]))
            y = tanh(np.matmul(x2, self.params["weight"], out=s), bias)
        else:
            y = x2 @ self.params["weight"]
            if bias is not None:
                y += bias
        return y, ((x2, y if self.fused else None) if train else None)

    def backward(self, saved, dy, need_dx=True):
        x2, y = saved
        if self.fused:
            dy = tanh_grad(dy, y)
        np.dot(x2.T, dy, out=self.grads["weight"])
        if "bias" in self.params:
            np.sum(dy, axis=0, out=self.grads["bias"])
        if not need_dx:
            return None
        return (dy @ self.params["weight"].T).reshape((len(dy), *self.in_shape))

    def flops(self):
        n_in, units = self.params["weight"].shape
        fused = Tanh.flops_per_value * units if self.fused else 0
        return 2 * n_in * units + (units if "bias" in self.params else 0) + fused

    def describe(self):
        return f"dense {self.options['units']}"

    def onnx(self, g, x):
        """Flatten + Gemm, the weight (in, out) as stored (transB 0)."""
        inputs = [g.flat(x, len(self.in_shape)), g.constant("weight", self.params["weight"])]
        if "bias" in self.params:
            inputs.append(g.constant("bias", self.params["bias"]))
        return g.node("Gemm", inputs)

    def torch_arrays(self):
        """The weight transposed to torch.nn.Linear's (out, in)."""
        return {**self.params, "weight": self.params["weight"].T}
