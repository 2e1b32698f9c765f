"""2-D convolution (cross-correlation), NCHW.

x: (batch, C, H, W) -> y: (batch, filters, OH, OW) with
y[n, f, oh, ow] = bias[f] + sum_{c, i, j} weight[f, c, i, j] * xp[n, c, oh*sh + i, ow*sw + j],
where xp is x with ph rows of zeros above and below and pw columns left and right.
``weight`` is (filters, C, kh, kw), ``bias`` (filters,).

Padding: 'valid' = no padding; 'same' = (k - 1) // 2 on each side, odd kernels only, so that
stride 1 keeps H x W; an integer or a pair [ph, pw] = that many zeros on each side.
Output size: OH = floor((H + 2*ph - kh) / sh) + 1 (rows the stride cannot reach are dropped),
likewise OW. The YAML ``activation`` becomes a separate activation layer after this one; here it
only chooses the initialiser.

The kernels, same results up to rounding, chosen per layer shape by ``plan()`` (plan.py, which
has the measurements behind every choice) when the layer is built; ``self.plan`` says what runs:
- stride 1 (nearly every net): direct convolution, one sample per thread, never building an
  im2col matrix. The forward pass goes in register tiles sized for the vector unit (tile.py;
  4 filters x 48 columns on AVX-512, 3 x 32 on AVX2; a last tile overlapping for the filters
  left over) where the output rows hold a tile, small images in direct.py's kernels
  (5x5 layers of 16+ filters on AVX2: vectorised over filters, no padding column, vec.py);
  the input gradient is itself such a convolution, of the padded output gradient, run the same
  way; the weight gradient goes four, two or one filters a pass (wgrad.py), in the same pass
  over dy that pads it for the input gradient. Strided layers (kernel larger than the stride)
  run them on phase planes (phases.py), small 'same' layers on the batch packed (packed.py).
- other strides, and stride 1 with many filters on small images: the whole batch lowered to one
  BLAS matrix product through im2col (lowered.py); the weight gradient is one more product with
  the kept matrix, the input gradient a product scattered back by col2im.
- 3x3 stride 1 where the plan says so: Winograd F(2x2, 3x3) (winograd.py), 16 register-tiled
  products over channels between its transforms, for the forward pass and the input gradient,
  the weight gradient direct (the forward pass keeps x padded for it, as the direct one does);
  with NETTRAIN_CONV=winograd all three passes (x kept, its transform made again).
- 3x3 stride 1 where wino4_plan.py says so: Winograd F(4x4, 3x3) (wino4.py), 36 products a 4x4
  block of outputs, for an evaluation forward (train=False: ``plan.inference``) and on the
  narrower layers for the training forward and input gradient too. A strided layer that
  trains through im2col may infer on phase planes instead (``plan.inference`` again).
With ``fused="relu"`` (the network builder's choice) every kernel applies max(., 0) to the
output and masks the gradient by y > 0 inside its own loops.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.core.options import Opt
from nettrain.layers import initializers
from nettrain.layers.base import ACTIVATION_NAMES, ANY, Layer, ShapeError
from nettrain.layers.conv2d import direct, lowered, packed, phases, pointwise, wgrad, winograd
from nettrain.layers.conv2d.plan import plan
from nettrain.layers.relu import Relu


def as_pair(value, name: str, minimum: int) -> tuple[int, int]:
    """(h, w) from an int or an [h, w] pair, each >= minimum (config lists or Python ints)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise ShapeError(f"{name} must be an integer >= {minimum} or a pair [h, w], got {value}")
    return int(pair[0]), int(pair[1])


def shape_text(pair) -> str:
    """'5' for (5, 5), '5x3' otherwise: sizes as the summary shows them."""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def needs_chw(kind: str, in_shape: tuple) -> ShapeError:
    """The error for a layer given a per-sample shape that is not (C, H, W)."""
    side = math.isqrt(math.prod(in_shape))
    if len(in_shape) == 2:
        example = f"[1, {in_shape[0]}, {in_shape[1]}]"
    elif len(in_shape) == 1 and side * side == in_shape[0]:  # flattened square images
        example = f"[1, {side}, {side}]"
    else:
        example = "[1, 28, 28]"
    return ShapeError(
        f"{kind} needs a (channels, height, width) input, got shape {tuple(in_shape)}; "
        f"set model.input to the image shape, e.g. model.input: {example}"
    )


def _padding(padding, kernel) -> tuple[int, int]:
    """(ph, pw) of the padding option for a (kh, kw) kernel."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        kh, kw = kernel
        if kh % 2 == 0 or kw % 2 == 0:
            raise ShapeError(
                f"padding 'same' needs an odd kernel, got kernel {kh}x{kw}; give an explicit "
                f"integer padding instead, e.g. padding: {kh // 2} (or a pair [ph, pw])"
            )
        return ((kh - 1) // 2, (kw - 1) // 2)
    return as_pair(padding, "padding", 0)


class Conv2d(Layer):
    kind = "conv2d"
    FUSABLE = ("relu",)
    OUTPUT_RANGE = ANY
    TORCH = "torch.nn.Conv2d"  # weight (filters, C, kh, kw) as stored
    OPTIONS = {
        "filters": Opt("int", min=1, doc="number of output channels"),
        "kernel": Opt("size", doc="kernel height and width: an integer or [h, w]"),
        "stride": Opt("size", 1, doc="step between windows: an integer or [h, w]"),
        "padding": Opt("padding", "valid", doc="'valid', 'same' (odd kernels) or zeros per side"),
        "activation": Opt(
            "choice", "linear", choices=ACTIVATION_NAMES, doc="activation applied to the output"
        ),
        "bias": Opt("bool", True, doc="add a bias per filter"),
        "init": initializers.INIT_OPTION,
    }

    def geometry(self):
        """(kernel, stride, padding) as (h, w) pairs, from the options."""
        k = as_pair(self.options["kernel"], "kernel", 1)
        stride = as_pair(self.options["stride"], "stride", 1)
        return k, stride, _padding(self.options["padding"], k)

    def shapes(self, in_shape):
        if len(in_shape) != 3:
            raise needs_chw(self.kind, in_shape)
        filters = self.options["filters"]
        if filters < 1:
            raise ShapeError(f"filters must be >= 1, got {filters}")
        C, H, W = in_shape
        (kh, kw), (sh, sw), (ph, pw) = self.geometry()
        if kh > H + 2 * ph or kw > W + 2 * pw:
            raise ShapeError(
                f"conv2d kernel {kh}x{kw} is larger than its padded input "
                f"{H + 2 * ph}x{W + 2 * pw} (input {H}x{W}, padding {ph}x{pw}); "
                f"use a smaller kernel or more padding"
            )
        params = {"weight": (filters, C, kh, kw)}
        if self.options["bias"]:
            params["bias"] = (filters,)
        return (filters, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1), params, {}

    def setup(self):
        self.k, self.s, self.p = self.geometry()
        self.plan = plan(self.in_shape, self.out_shape[0], self.k, self.s, self.p, self.dtype)
        self.direct = self.plan.direct
        inference = self.plan.inference.kernel if self.plan.inference else ""
        if self.plan.phases or inference.startswith("phases:"):  # where each tap starts in a
            # sample's phase planes (strided; the training passes or inference alone)
            self.phases = phases.Layout(self.in_shape, self.k, self.s, self.p)
            self.offsets = self.phases.offsets()
        elif self.direct:  # where each tap starts in a padded sample, and in a padded gradient
            (C, H, W), F, (kh, kw), (ph, pw) = self.in_shape, self.out_shape[0], self.k, self.p
            self.offsets = direct.tap_offsets(C, H + 2 * ph, W + 2 * pw, kh, kw)
            self.dx_offsets = direct.tap_offsets(F, H + kh - 1, W + kw - 1, kh, kw)

    def init_params(self, rng):
        F, C, kh, kw = self.params["weight"].shape
        self.params["weight"][...] = initializers.draw(
            self.options["init"], self.options["activation"], (F, C, kh, kw),
            C * kh * kw, F * kh * kw, rng, self.dtype,
        )  # fmt: skip
        if "bias" in self.params:
            self.params["bias"][...] = 0

    def forward(self, x, train=True):
        """saved: (padded input or phase planes, im2col matrix or Winograd's input; y if relu)."""
        N, (F, OH, OW), relu = len(x), self.out_shape, self.fused is not None
        bias = self.params.get("bias", np.zeros(F, dtype=self.dtype))
        if self.plan.inference and not train:  # F(4x4, 3x3) or phase planes: nothing kept
            x, kernel = np.ascontiguousarray(x, self.dtype), self.plan.inference.kernel
            if not kernel.startswith("phases:"):
                return winograd.forward(x, self.params["weight"], bias, self.p, relu, kernel), None
            y = np.empty((N, F, OH, OW), dtype=self.dtype)
            self._phased(x, bias, relu, self.plan.inference.steps, False, y)
            return y, None
        if self.plan.winograd:  # kept: x, or what the direct weight gradient reads
            x, gemm = np.ascontiguousarray(x, self.dtype), self.plan.forward.kernel
            y = winograd.forward(x, self.params["weight"], bias, self.p, relu, gemm)
            if self.direct and train:
                packing = self.plan.packed
                x = packed.pack(x, self.p, self.dtype) if packing else self._padded(x, wgrad.LANES)
            return y, ((x, y if relu else None) if train else None)
        y = np.empty((N, F, OH, OW), dtype=self.dtype)
        if self.plan.pointwise:  # 1x1: a BLAS product a sample (pointwise.py)
            kept = pointwise.forward(x, self._weight_matrix(), bias, self.s, relu, y)
        elif self.plan.packed:  # the whole batch as one run (packed.py)
            kept = packed.forward(x, self._weight_matrix(), bias, relu, self.p, self.plan, y)
        elif self.plan.phases:
            kept = self._phased(x, bias, relu, self.plan.forward.steps, train, y)
        elif self.direct:  # flat samples, with the zeros the weight gradient's vectors read past
            kept, kp = self._padded(x, tail=wgrad.LANES), self.plan
            direct.conv_forward(kept, self._weight_matrix(), bias, self.offsets, relu,
                                OH, OW, kp.pitch, kp.run, y, kp.forward.steps)  # fmt: skip
        else:
            kept = lowered.forward(self, self._padded(x), bias, train, y)
        return y, ((kept, y if relu else None) if train else None)

    def _phased(self, x, bias, relu, steps, train, y):
        """y from the direct kernels' ``steps`` over x's phase planes (phases.py); returns the
        planes, in kept storage for a training forward."""
        N, (_, OH, OW), lay = len(x), self.out_shape, self.phases
        shape = (N, lay.size() + wgrad.LANES)  # the zeros the weight gradient's vectors read past
        xp = lay.split(x, self._buffer("phases", shape) if train else np.empty(shape, self.dtype))
        direct.conv_forward(xp, self._weight_matrix(), bias, self.offsets, relu, OH, OW,
                            lay.pitch, lay.run, y, steps)  # fmt: skip
        return xp

    def backward(self, saved, dy, need_dx=True):
        kept, y = saved
        relu = y is not None
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        y = y if relu else dy  # the kernels read y only with relu; any array of its type will do
        if (self.plan.winograd and not self.direct) or self.plan.pointwise:  # kept: x
            module = winograd if self.plan.winograd else pointwise
            return module.backward(self, kept, dy, y, relu, need_dx)
        if not self.direct:
            return lowered.backward(self, kept, y, relu, dy, need_dx)
        (N, F), (_, H, W), (kh, kw), (ph, pw) = dy.shape[:2], self.in_shape, self.k, self.p
        Wm, kp = self._weight_matrix(), self.plan
        groups = packed.groups(N, H, W, ph, pw) if kp.packed else min(N, wgrad.GROUPS)
        dWg, dbg = self._buffer("dWg", (groups, *Wm.shape)), self._buffer("dbg", (groups, F))
        # dx: a stride-1 convolution of dy (masked) padded kh - 1 - ph rows, kw - 1 - pw columns
        Hd, Wd, top, left = H + kh - 1, W + kw - 1, kh - 1 - ph, kw - 1 - pw
        if kp.phases:  # dy padded for the phases' correlations (phases.py)
            Hd, Wd, top, left = self.phases.Hd, self.phases.Wd, self.phases.top, self.phases.left
        direct_dx = need_dx and not kp.winograd  # Winograd's input gradient reads dy itself
        if kp.packed:  # both gradients over the packed batch (packed.py)
            dx = packed.backward(self, kept, dy, y, relu, dWg, dbg, direct_dx)
        else:
            dpad = self._buffer("dpad", (N, F, Hd, Wd) if direct_dx else (N, 0, 1, 1))
            wgrad.conv_weight_grad(kept, self.offsets, dy, y, relu, kp.pitch, kp.run, dWg, dbg,
                                   top, left, dpad, kp.weight_grad.steps)  # fmt: skip
            dx = self._input_grad_direct(dpad) if direct_dx else None
        if need_dx and kp.winograd:
            dx = winograd.input_grad(self.params["weight"], dy, y, relu, self.p, (H, W),
                                     kp.input_grad.kernel)  # fmt: skip
        np.sum(dWg, axis=0, out=self.grads["weight"].reshape(Wm.shape))
        if "bias" in self.params:
            np.sum(dbg, axis=0, out=self.grads["bias"])
        return dx

    def _input_grad_direct(self, dpad):
        """dx as a stride-1 convolution of dpad (the masked dy, padded), with the weight flipped
        in space and its filter and channel axes swapped:
        dx[n, c, h, w] = sum_{f,i,j} weight[f, c, kh-1-i, kw-1-j] * dpad[n, f, h+i, w+j].
        Each output is summed in place, unlike scattering dy back window by window."""
        N, (C, H, W), kp = len(dpad), self.in_shape, self.plan
        if kp.phases:  # one such convolution a phase plane (phases.py)
            return self.phases.input_grad(dpad, self.params["weight"], kp.input_grad, self._buffer)
        flipped = self.params["weight"][:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        dx = np.empty((N, C, H, W), dtype=self.dtype)
        direct.conv_forward(dpad.reshape(N, -1), np.ascontiguousarray(flipped).reshape(C, -1),
                            np.zeros(C, dtype=self.dtype), self.dx_offsets, False, H, W,
                            kp.dx_pitch, kp.dx_run, dx, kp.input_grad.steps)  # fmt: skip
        return dx

    def _padded(self, x, tail: int = 0) -> np.ndarray:
        """x (N, C, H, W) with the zero padding added, contiguous, in the layer's dtype; with a
        ``tail``, as flat samples (N, C*Hp*Wp + tail), each followed by that many zeros."""
        (ph, pw), (C, H, W) = self.p, self.in_shape
        if ph == pw == tail == 0:
            return np.ascontiguousarray(x, dtype=self.dtype)
        N, Hp, Wp = len(x), H + 2 * ph, W + 2 * pw
        flat = np.zeros((N, C * Hp * Wp + tail), dtype=self.dtype)
        flat[:, : C * Hp * Wp].reshape(N, C, Hp, Wp)[:, :, ph : ph + H, pw : pw + W] = x
        return flat if tail else flat.reshape(N, C, Hp, Wp)

    def _weight_matrix(self) -> np.ndarray:
        """weight as (filters, C*kh*kw), a view in the same (c, i, j) order as ``cols``."""
        return self.params["weight"].reshape(self.out_shape[0], -1)

    def flops(self):
        F, OH, OW = self.out_shape
        per_output = 2 * self.in_shape[0] * self.k[0] * self.k[1] + ("bias" in self.params)
        return (per_output + (Relu.flops_per_value if self.fused else 0)) * F * OH * OW

    def kinks(self, saved):
        return None if saved[1] is None else saved[1] > 0

    def describe(self):
        k, s, p = self.k, self.s, self.p
        return f"conv2d {self.options['filters']}@{k[0]}x{k[1]} s{shape_text(s)} p{shape_text(p)}"

    def onnx(self, g, x):
        """Conv: the same weight layout, pads on both sides of each axis."""
        (kh, kw), (sh, sw), (ph, pw) = self.geometry()
        inputs = [x, g.constant("weight", self.params["weight"])]
        if "bias" in self.params:
            inputs.append(g.constant("bias", self.params["bias"]))
        return g.node("Conv", inputs, kernel_shape=[kh, kw], strides=[sh, sw],
                      pads=[ph, pw, ph, pw])  # fmt: skip
