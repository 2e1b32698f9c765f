"""What the output of a built net can be, and the loss checks that read it: each layer's
``OUTPUT_RANGE`` (nettrain.layers.base), followed back from the last layer through the layers
whose range is their input's (pooling, dropout), along the graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nettrain.core.errors import UserError
from nettrain.layers import ACTIVATIONS, LAYERS
from nettrain.layers.base import Range

if TYPE_CHECKING:
    from nettrain.net.network import Network


def range_of(layer) -> Range | None:
    """A built layer's ``OUTPUT_RANGE``: that of the activation it applies in its kernels, if
    any; None where its input's range passes through."""
    return LAYERS[layer.fused or layer.kind].OUTPUT_RANGE


def output_range(net: Network) -> tuple[str, Range, int]:
    """(the activation that sets the range of the net's output, that range, its YAML index),
    from the ``OUTPUT_RANGE`` of the last layer that does not pass its input's range through
    (of the activation applied in its kernels, if any); a layer that is not an activation is
    named linear."""
    k = len(net.layers) - 1
    while k >= 0:  # a layer whose range is None reads one input: its range is that one's
        layer = net.layers[k]
        kind, values = layer.fused or layer.kind, range_of(layer)
        if values is not None:
            return (kind if kind in ACTIVATIONS else "linear"), values, layer.index
        k = net.sources[k][0]
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
