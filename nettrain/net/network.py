"""A network: the layer list of a config, built with every shape known before data is read.

Each entry of ``model.layers`` becomes one layer, plus a separate activation layer when the entry
says ``activation:`` (activations are layers internally), unless ``FUSIONS`` says the layer
applies that activation in its own kernels; a standalone activation entry that ``FUSIONS`` pairs
with the entry before it (which has no activation of its own) is applied by that layer too.
Every internal layer keeps the index of its YAML entry, so parameters and state are named
``layers.{index}.{name}`` everywhere: optimizer state (parameters only), checkpoints,
``--resume``, ``--weights``, gradcheck tables and logs.

The loss is attached to the net: ``loss_and_backward(x, t)`` runs forward, the loss and backward
in one call, taking the loss through the output activation (``losses.COMBINED``) when the pair
allows it.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.core import streams
from nettrain.core.errors import UserError
from nettrain.layers import ACTIVATIONS, LAYERS, ShapeError
from nettrain.layers.base import defaults
from nettrain.net.losses import COMBINED, LOSSES
from nettrain.runtime import threads

# (layer, activation) pairs that run as ONE layer, the activation applied inside the layer's
# kernels (one pass over the output instead of two or three), and how. Nothing else fuses.
FUSIONS = {
    ("conv2d", "relu"): "max(., 0) written by the conv kernels; dy masked by y > 0 in backward",
    ("dense", "tanh"): "bias and tanh in one pass over the product; dy * (1 - y^2) in backward",
    ("batchnorm", "relu"): "max(., 0) written by the normalising pass, in training and "
    "evaluation; dy masked by y > 0 in backward",
}
# A pair fuses whether the activation is the layer's `activation:` or a standalone entry right
# after a layer with none (`{type: batchnorm}, {type: relu}`): the same results, bit for bit.
# A batchnorm after a conv2d is NOT folded into the conv's weights at evaluation: it would save
# one element-wise pass over the conv's output against the conv's own 2*C*kh*kw FLOPs per value
# (a few percent at most), and evaluation would then round differently from training's graph.

# Layers that pass their input's range through unchanged (max-pooling picks one of its inputs;
# a mean of values in a range stays in it).
RANGE_PRESERVING = ("maxpool2d", "avgpool2d", "global_avgpool2d", "dropout")
ACTIVATION_RANGE = {
    "linear": "(-inf, inf)",
    "relu": "[0, inf)",
    "leaky_relu": "(-inf, inf)",
    "tanh": "(-1, 1)",
    "sigmoid": "(0, 1)",
    "softmax": "(0, 1), summing to 1",
}


def activation_of(layer) -> str:
    """The activation that sets a layer's output range: its own kind or the fused one."""
    return layer.fused or layer.kind


class Network:
    """layers: the internal layer list; x (batch, *input_shape) -> (batch, *output_shape)."""

    def __init__(self, layers, input_shape, dtype, loss: str):
        self.layers = layers
        self.input_shape = tuple(input_shape)
        self.output_shape = layers[-1].out_shape
        self.dtype = np.dtype(dtype)
        self.loss_name = loss
        self.loss = LOSSES[loss]
        last = layers[-1]
        # the combined loss starts from the last layer's input: only for a separate activation
        self.combined = None if last.fused else COMBINED.get((last.kind, loss))

    @property
    def n_outputs(self) -> int:
        return math.prod(self.output_shape)

    # -- parameters and state by name --------------------------------------------------------

    def params(self) -> dict[str, np.ndarray]:
        """{'layers.0.weight': array, ...} in layer order; the arrays are the live parameters."""
        return self._named("params")

    def grads(self) -> dict[str, np.ndarray]:
        """Gradients of the last ``loss_and_backward``, named as ``params()``."""
        return self._named("grads")

    def state(self) -> dict[str, np.ndarray]:
        """{'layers.1.running_mean': array, ...}: the live arrays that are saved and restored
        with the parameters but never trained."""
        return self._named("state")

    def arrays(self) -> dict[str, np.ndarray]:
        """Parameters and state: what a checkpoint holds of the net."""
        return {**self.params(), **self.state()}

    def _named(self, table: str) -> dict[str, np.ndarray]:
        return {
            f"layers.{layer.index}.{name}": a
            for layer in self.layers
            for name, a in getattr(layer, table).items()
        }

    def init_params(self, rng: np.random.Generator) -> None:
        """Draw every parameter from ``rng`` and set the state to its initial values."""
        for layer in self.layers:
            layer.init_params(rng)

    def load_params(self, arrays: dict, where: str) -> None:
        """Copy named arrays (e.g. from a checkpoint) into the parameters and state, checking
        each one.

        Every ``layers.*`` array must match a parameter or state array by name and shape and
        hold finite floating-point values; float16/32/64 are cast to the net's dtype (fine-tuning
        a float32 run from float64 weights is legitimate), integer, complex or text arrays are
        refused.
        """
        params, state = self.params(), self.state()
        targets = {**params, **state}
        hint = "the checkpoint was written for a different model.layers"
        missing = [k for k in targets if k not in arrays]
        if missing:
            what = "parameter" if missing[0] in params else "state (a running statistic)"
            raise UserError(where, f"no array '{missing[0]}' for this net's {what}", hint)
        extra = [k for k in arrays if k.startswith("layers.") and k not in targets]
        if extra:
            raise UserError(where, f"array '{extra[0]}' matches no parameter of this net", hint)
        for name, p in targets.items():
            a = arrays[name]
            if a.shape != p.shape:
                raise UserError(
                    where, f"'{name}' has shape {a.shape}, this net needs {p.shape}", hint
                )
            if a.dtype.kind != "f":
                raise UserError(
                    where, f"'{name}' holds {a.dtype} values; parameters must be floating-point"
                )
            if not np.all(np.isfinite(a)):
                raise UserError(where, f"'{name}' holds NaN or Inf values")
            p[...] = a

    def seed_step(self, seed: int, step: int, rows: tuple | None = None) -> None:
        """Give each stochastic layer the generator of this training step (streams.dropout_rng)
        and ``rows`` (lo, hi, n): this process computes rows lo:hi of a batch of n (a rank of a
        data-parallel run; None: the whole batch), so that it draws the whole batch's masks and
        keeps its rows."""
        for layer in self.layers:
            if layer.stochastic:
                layer.rng = streams.dropout_rng(seed, step, layer.index)
                layer.rows = rows

    def param_count(self) -> int:
        return sum(p.size for p in self.params().values())

    # -- passes ------------------------------------------------------------------------------

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        threads.adapt()  # every pass starts with the cores other jobs leave free
        for layer in self.layers:
            x, _ = layer.forward(x, train)
        return x

    def forward_saving(self, x: np.ndarray, train: bool = True):
        """(input of the last layer, output, [each layer's saved]): a forward pass that keeps
        what backward needs (nothing, in evaluation)."""
        threads.adapt()
        saved = []
        for layer in self.layers:
            s = x
            x, kept = layer.forward(x, train)
            saved.append(kept)
        return s, x, saved

    def loss_of(self, s, out, t, total=None, weights=None):
        """(mean loss, dL/d(output), or dL/d(last layer's input) with a combined loss) on the
        batch, from the last layer's input s and the output; divided by ``total`` samples when
        given (this batch is a share of a larger one), else by the batch's own size; each
        sample's loss times its ``weights`` (batch,) when given (losses.py)."""
        n = len(out)
        if self.combined is not None:
            return self.combined(s.reshape(n, -1), out.reshape(n, -1), t, total, weights)
        return self.loss(out.reshape(n, -1), t, total, weights)

    def loss_and_backward(
        self, x: np.ndarray, t: np.ndarray, input_grad: bool = True, total=None, weights=None
    ):
        """Forward, loss and backward on one batch; gradients land in ``grads()``.

        x (batch, *input_shape), t (batch, K) targets. Returns (mean loss over the batch,
        outputs (batch, K), dL/dx (batch, *input_shape), or None when ``input_grad`` is False:
        training needs no gradient for its data, and skipping it saves the first layer's
        largest product). ``total``: the size of the global batch this one is a share of;
        ``weights``: (batch,) per-sample loss weights (``train.class_weights``).
        """
        n = len(x)
        s, out, saved = self.forward_saving(x, True)
        value, delta = self.loss_of(s, out, t, total, weights)
        stop = len(self.layers) - (self.combined is not None)
        delta = delta.reshape((n, *self.layers[stop - 1].out_shape) if stop else x.shape)
        for i in reversed(range(stop)):
            delta = self.layers[i].backward(saved[i], delta, need_dx=input_grad or i > 0)
        return value, out.reshape(n, -1), delta

    def empty_pass(self, input_grad: bool = False) -> None:
        """A training pass over a share of no samples (a rank of a data-parallel run whose share
        of a short batch is empty): zero gradients, and the sums over the ranks that layers with
        whole-batch statistics (batchnorm) make, in the order a pass makes them."""
        saved = {}
        for i, layer in enumerate(self.layers):
            if getattr(layer, "allsum", None) is not None:
                saved[i] = layer.forward(np.zeros((0, *layer.in_shape), self.dtype), True)[1]
        for i in reversed(saved):
            layer = self.layers[i]
            dy = np.zeros((0, *layer.out_shape), self.dtype)
            layer.backward(saved[i], dy, need_dx=input_grad or i > 0)
        for g in self.grads().values():
            g[...] = 0

    def evaluate(self, x: np.ndarray, t: np.ndarray, train: bool = False):
        """(mean loss, outputs (batch, K)) without touching gradients."""
        s, out, _ = self.forward_saving(x, train)
        value, _ = self.loss_of(s, out, t)
        return value, out.reshape(len(x), -1)


def build_network(model: dict, dtype, input_shape, src=None) -> Network:
    """The network of a resolved ``model`` section on per-sample ``input_shape``.

    Raises UserError naming the layer's index and YAML line when a layer cannot be built, or
    when the loss cannot be computed on the net's output.
    """
    layers = []
    shape = tuple(input_shape)
    specs, absorbed = model["layers"], set()
    for i, spec in enumerate(specs):
        if i in absorbed:  # a standalone activation applied by the layer before it
            continue
        kind, options = spec["type"], {k: v for k, v in spec.items() if k != "type"}
        activation = options.get("activation", "linear")
        fused = activation if (kind, activation) in FUSIONS else None
        after = specs[i + 1] if i + 1 < len(specs) else {}
        if activation == "linear" and set(after) == {"type"} and (kind, after["type"]) in FUSIONS:
            fused = after["type"]
            absorbed.add(i + 1)
        stage = [LAYERS[kind](i, fused=fused, **options)]
        if activation != "linear" and fused is None:
            stage.append(ACTIVATIONS[activation](i, **defaults(ACTIVATIONS[activation])))
        for layer in stage:
            try:
                shape = layer.build(shape, dtype)
            except ShapeError as exc:
                where = src.where(("model", "layers", i)) if src else f"model.layers.{i}"
                raise UserError(where, f"{kind} layer {i} cannot be built: {exc}") from None
            layers.append(layer)
    net = Network(layers, input_shape, dtype, model["loss"])
    check_loss(net, model, src)
    return net


def output_activation(net: Network) -> tuple[str, int]:
    """(kind of the activation that sets the output range, its YAML index)."""
    for layer in reversed(net.layers):
        if layer.kind in RANGE_PRESERVING:
            continue
        kind = activation_of(layer)
        return (kind if kind in ACTIVATIONS else "linear"), layer.index
    return "linear", -1


def check_loss(net: Network, model: dict, src=None) -> None:
    """Refuse a loss that cannot be computed on this net's outputs, saying what to use instead."""
    loss = model["loss"]
    where = src.where(("model", "loss")) if src else "model.loss"
    kind, index = output_activation(net)
    if loss == "cross_entropy" and kind not in ("sigmoid", "softmax"):
        raise UserError(
            where,
            f"cross_entropy needs outputs in (0, 1), but the output of layer {index} is {kind}, "
            f"with values in {ACTIVATION_RANGE[kind]}",
            "use activation: sigmoid on the output layer (or squared_error, which takes any "
            "output)",
        )
    if loss == "multinomial_cross_entropy" and net.layers[-1].kind != "softmax":
        raise UserError(
            where,
            "multinomial_cross_entropy needs a softmax output (a distribution over the units), "
            f"but the last layer is {net.layers[-1].kind}",
            "add '- {type: softmax}' as the last layer (or activation: softmax on it)",
        )
