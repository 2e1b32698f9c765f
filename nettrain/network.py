"""A network: the layer list of a config, built with every shape known before data is read.

Each entry of ``model.layers`` becomes one layer, plus a separate activation layer when the entry
says ``activation:`` (activations are layers internally). Every internal layer keeps the index of
its YAML entry, so parameters are named ``layers.{index}.{weight|bias}`` everywhere: optimizer
state, checkpoints, gradcheck tables and logs.

The loss is attached to the net: ``loss_and_backward(x, t)`` runs forward, the loss and backward
in one call, using the fused sigmoid/softmax + cross-entropy gradient when the output allows it.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.errors import UserError
from nettrain.layers import ACTIVATIONS, LAYERS, ShapeError
from nettrain.losses import FUSED, LOSSES

# Layers that pass their input's range through unchanged (max-pooling picks one of its inputs).
RANGE_PRESERVING = ("maxpool2d", "dropout")
ACTIVATION_RANGE = {
    "linear": "(-inf, inf)",
    "relu": "[0, inf)",
    "tanh": "(-1, 1)",
    "sigmoid": "(0, 1)",
    "softmax": "(0, 1), summing to 1",
}


class Network:
    """layers: the internal layer list; x (batch, *input_shape) -> (batch, *output_shape)."""

    def __init__(self, layers, input_shape, dtype, loss: str):
        self.layers = layers
        self.input_shape = tuple(input_shape)
        self.output_shape = layers[-1].out_shape if layers else self.input_shape
        self.dtype = np.dtype(dtype)
        self.loss_name = loss
        self.loss = LOSSES[loss]
        last = layers[-1].kind if layers else "linear"
        self.fused = FUSED.get((last, loss))

    @property
    def n_outputs(self) -> int:
        return math.prod(self.output_shape)

    # -- parameters by name ------------------------------------------------------------------

    def params(self) -> dict[str, np.ndarray]:
        """{'layers.0.weight': array, ...} in layer order; the arrays are the live parameters."""
        return {
            f"layers.{layer.index}.{name}": p
            for layer in self.layers
            for name, p in layer.params.items()
        }

    def grads(self) -> dict[str, np.ndarray]:
        """Gradients of the last ``loss_and_backward``, named as ``params()``."""
        return {
            f"layers.{layer.index}.{name}": g
            for layer in self.layers
            for name, g in layer.grads.items()
        }

    def init_params(self, rng: np.random.Generator) -> None:
        for layer in self.layers:
            layer.init_params(rng)

    def load_params(self, arrays: dict, where: str) -> None:
        """Copy named arrays (e.g. from a checkpoint) into the parameters, checking each one.

        Every ``layers.*`` array must match a parameter by name and shape and hold finite
        floating-point values; float16/32/64 are cast to the net's dtype (fine-tuning a float32
        run from float64 weights is legitimate), integer, complex or text arrays are refused.
        """
        params = self.params()
        hint = "the checkpoint was written for a different model.layers"
        missing = [k for k in params if k not in arrays]
        if missing:
            raise UserError(where, f"no array '{missing[0]}' for this net's parameter", hint)
        extra = [k for k in arrays if k.startswith("layers.") and k not in params]
        if extra:
            raise UserError(where, f"array '{extra[0]}' matches no parameter of this net", hint)
        for name, p in params.items():
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

    def seed_step(self, seed: int, step: int) -> None:
        """Give each stochastic layer the generator of this training step: [seed, 2, step, i]."""
        for layer in self.layers:
            if layer.stochastic:
                layer.rng = np.random.default_rng([seed, 2, step, layer.index])

    def param_count(self) -> int:
        return sum(p.size for p in self.params().values())

    # -- passes ------------------------------------------------------------------------------

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def loss_and_backward(self, x: np.ndarray, t: np.ndarray, input_grad: bool = True):
        """Forward, loss and backward on one batch; gradients land in ``grads()``.

        x (batch, *input_shape), t (batch, K) targets. Returns (mean loss over the batch,
        outputs (batch, K), dL/dx (batch, *input_shape), or None when ``input_grad`` is False:
        training needs no gradient for its data, and skipping it saves the first layer's
        largest product).
        """
        n = len(x)
        if self.layers:
            self.layers[0].needs_input_grad = input_grad
        if self.fused is not None:
            s = x
            for layer in self.layers[:-1]:
                s = layer.forward(s, True)
            out = self.layers[-1].forward(s, True)
            value, delta = self.fused(s.reshape(n, -1), out.reshape(n, -1), t)
            layers = self.layers[:-1]
        else:
            out = self.forward(x, train=True)
            value, delta = self.loss(out.reshape(n, -1), t)
            layers = self.layers
        delta = delta.reshape((n, *layers[-1].out_shape) if layers else x.shape)
        for layer in reversed(layers):
            delta = layer.backward(delta)
        return value, out.reshape(n, -1), delta

    def evaluate(self, x: np.ndarray, t: np.ndarray, train: bool = False):
        """(mean loss, outputs (batch, K)) without touching gradients."""
        n = len(x)
        if self.fused is not None:
            s = x
            for layer in self.layers[:-1]:
                s = layer.forward(s, train)
            out = self.layers[-1].forward(s, train)
            value, _ = self.fused(s.reshape(n, -1), out.reshape(n, -1), t)
        else:
            out = self.forward(x, train=train)
            value, _ = self.loss(out.reshape(n, -1), t)
        return value, out.reshape(n, -1)


def build_network(model: dict, dtype, input_shape, src=None) -> Network:
    """The network of a resolved ``model`` section on per-sample ``input_shape``.

    Raises UserError naming the layer's index and YAML line when a layer cannot be built, or
    when the loss cannot be computed on the net's output.
    """
    layers = []
    shape = tuple(input_shape)
    for i, spec in enumerate(model["layers"]):
        options = {k: v for k, v in spec.items() if k != "type"}
        stage = [LAYERS[spec["type"]](i, **options)]
        activation = options.get("activation", "linear")
        if "activation" in options and activation != "linear":
            stage.append(ACTIVATIONS[activation](i))
            fused = f"fused_{activation}"  # conv2d + relu, dense + tanh: one pass, not three
            if hasattr(stage[0], fused):
                setattr(stage[0], fused, True)
                stage[1].fused = True
        for layer in stage:
            try:
                shape = layer.build(shape, dtype)
            except ShapeError as exc:
                where = src.where(("model", "layers", i)) if src else f"model.layers.{i}"
                raise UserError(where, f"{spec['type']} layer {i} cannot be built: {exc}") from None
            layers.append(layer)
    net = Network(layers, input_shape, dtype, model["loss"])
    check_loss(net, model, src)
    return net


def output_activation(net: Network) -> tuple[str, int]:
    """(kind of the activation that sets the output range, its YAML index)."""
    for layer in reversed(net.layers):
        if layer.kind in RANGE_PRESERVING:
            continue
        return (layer.kind if layer.kind in ACTIVATIONS else "linear"), layer.index
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
