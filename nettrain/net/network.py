"""A network: the layer list of a config, built with every shape known before data is read.

Each entry of ``model.layers`` becomes one layer, plus a separate activation layer when the entry
says ``activation:`` (activations are layers internally), unless the activation is one of the
layer's ``FUSABLE`` (nettrain.layers.base), which it applies in its own kernels: one pass over its
output instead of two or three. A standalone activation entry right after a layer with no
activation of its own, and which that layer can apply, is applied by that layer too: the same
results, bit for bit. A batchnorm after a conv2d is NOT folded into the conv's weights at
evaluation: it would save one element-wise pass over the conv's output against the conv's own
2*C*kh*kw FLOPs per value (a few percent at most), and evaluation would then round differently
from training's graph.
Every internal layer keeps the index of its YAML entry, so parameters and state are named
``layers.{index}.{name}`` everywhere: optimizer state (parameters only), checkpoints,
``--resume``, ``--weights``, gradcheck tables and logs.

The loss is attached to the net: ``loss_and_backward(x, t)`` runs forward, the loss and backward
in one call, taking the loss through the output activation (``losses.COMBINED``) when the pair
allows it. A training run passes each pass its step (nettrain.core.step.Step) as ``train``: the
dropout masks' stream, this process's rows of the batch, the sum over the processes.
"""

from __future__ import annotations

import math

import numpy as np

from nettrain.core.errors import UserError
from nettrain.layers import ACTIVATIONS, LAYERS, ShapeError
from nettrain.layers.base import Range, defaults
from nettrain.net.losses import COMBINED, LOSSES
from nettrain.runtime import threads


def fuses(kind: str, activation: str) -> bool:
    """Whether a layer of ``kind`` applies ``activation`` in its own kernels."""
    return activation in LAYERS[kind].FUSABLE


def unfused(layer) -> list:
    """The layers a built layer stands for: itself, then the activation it applies in its own
    kernels as a layer of its own (built, default options), for the ONNX exporter."""
    if not layer.fused:
        return [layer]
    kind = layer.fused
    activation = ACTIVATIONS[kind](layer.index, **defaults(ACTIVATIONS[kind]))
    activation.build(layer.out_shape, layer.dtype)
    return [layer, activation]


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

    def param_count(self) -> int:
        return sum(p.size for p in self.params().values())

    # -- passes ------------------------------------------------------------------------------

    def forward(self, x: np.ndarray, train=False) -> np.ndarray:
        """Outputs (batch, *output_shape); ``train``: False, True or the training Step."""
        threads.adapt()  # every pass starts with the cores other jobs leave free
        for layer in self.layers:
            x, _ = layer.forward(x, train)
        return x

    def forward_saving(self, x: np.ndarray, train=True):
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
        self,
        x: np.ndarray,
        t: np.ndarray,
        input_grad: bool = True,
        total=None,
        step=None,
        weights=None,
    ):
        """Forward, loss and backward on one batch; gradients land in ``grads()``.

        x (batch, *input_shape), t (batch, K) targets. Returns (mean loss over the batch,
        outputs (batch, K), dL/dx (batch, *input_shape), or None when ``input_grad`` is False:
        training needs no gradient for its data, and skipping it saves the first layer's
        largest product). ``total``: the size of the global batch this one is a share of;
        ``step``: the training Step (None: the layers' own, as for a net used on its own).
        ``weights``: (batch,) per-sample loss weights (``train.class_weights``).
        """
        n = len(x)
        s, out, saved = self.forward_saving(x, step or True)
        value, delta = self.loss_of(s, out, t, total, weights)
        stop = len(self.layers) - (self.combined is not None)
        delta = delta.reshape((n, *self.layers[stop - 1].out_shape) if stop else x.shape)
        for i in reversed(range(stop)):
            delta = self.layers[i].backward(saved[i], delta, need_dx=input_grad or i > 0)
        return value, out.reshape(n, -1), delta

    def empty_pass(self, step, input_grad: bool = False) -> None:
        """A training pass over a share of no samples (a rank of a data-parallel run whose share
        of a short batch is empty) at ``step``: zero gradients, and the sums over the ranks
        (``step.allsum``) that layers with whole-batch statistics (batchnorm) make, in the order
        a pass makes them."""
        saved = {}
        for i, layer in enumerate(self.layers):
            if step.allsum is not None and getattr(layer, "whole_batch", False):
                saved[i] = layer.forward(np.zeros((0, *layer.in_shape), self.dtype), step)[1]
        for i in reversed(saved):
            layer = self.layers[i]
            dy = np.zeros((0, *layer.out_shape), self.dtype)
            layer.backward(saved[i], dy, need_dx=input_grad or i > 0)
        for g in self.grads().values():
            g[...] = 0

    def evaluate(self, x: np.ndarray, t: np.ndarray, train=False):
        """(mean loss, outputs (batch, K)) without touching gradients (``train``: as forward's)."""
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
        fused = activation if fuses(kind, activation) else None
        after = specs[i + 1] if i + 1 < len(specs) else {}
        if activation == "linear" and set(after) == {"type"} and fuses(kind, after["type"]):
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


def range_of(layer) -> Range | None:
    """A built layer's ``OUTPUT_RANGE``: that of the activation it applies in its kernels, if
    any; None where its input's range passes through."""
    return LAYERS[layer.fused or layer.kind].OUTPUT_RANGE


def output_range(net: Network) -> tuple[str, Range, int]:
    """(the activation that sets the range of the net's output, that range, its YAML index),
    from the ``OUTPUT_RANGE`` of the last layer that does not pass its input's range through
    (of the activation applied in its kernels, if any); a layer that is not an activation is
    named linear."""
    for layer in reversed(net.layers):
        kind, values = layer.fused or layer.kind, range_of(layer)
        if values is not None:
            return (kind if kind in ACTIVATIONS else "linear"), values, layer.index
    return "linear", LAYERS["linear"].OUTPUT_RANGE, -1


def check_loss(net: Network, model: dict, src=None) -> None:
    """Refuse a loss that cannot be computed on this net's outputs, saying what to use instead."""
    loss = model["loss"]
    where = src.where(("model", "loss")) if src else "model.loss"
    kind, values, index = output_range(net)
    if loss == "cross_entropy" and not values.probabilities():
        raise UserError(
            where,
            f"cross_entropy needs outputs in (0, 1), but the output of layer {index} is {kind}, "
            f"with values in {values.text}",
            "use activation: sigmoid on the output layer (or squared_error, which takes any "
            "output)",
        )
    last = range_of(net.layers[-1])
    if loss == "multinomial_cross_entropy" and not (last and last.distribution):
        raise UserError(
            where,
            "multinomial_cross_entropy needs a softmax output (a distribution over the units), "
            f"but the last layer is {net.layers[-1].kind}",
            "add '- {type: softmax}' as the last layer (or activation: softmax on it)",
        )
