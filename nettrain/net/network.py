"""A network: the layer list of a config, built with every shape known before data is read.

Each entry of ``model.layers`` becomes one layer, plus a separate activation layer when the entry
says ``activation:`` (activations are layers internally), unless the activation is one of the
layer's ``FUSABLE`` (nettrain.layers.base), which it applies in its own kernels: one pass over its
output instead of two or three. A standalone activation entry right after a layer with no
activation of its own, and which that layer can apply, is applied by that layer too: the same
results, bit for bit. Predictions (``predict``, Model.predict, ensembles) fold each
batchnorm after a conv2d into the conv's weights (nettrain.net.fold: one element-wise pass over
the conv's output less); the scores of fit and ``evaluate`` run the net as trained, so that they
round as training's graph does.
Every internal layer keeps the index of its YAML entry, so parameters and state are named
``layers.{index}.{name}`` everywhere: optimizer state (parameters only), checkpoints,
``--resume``, ``--weights``, gradcheck tables and logs.

The net is a graph (docs/graphs.md, nettrain.net.graph): ``sources[k]`` lists the positions in
``layers`` of the outputs layer k reads (-1: the net's input); the list is in an order where
every input exists before its reader. Forward drops each output once its last reader has run;
backward walks the list in reverse, sums the gradients of an output read by several layers
(never writing into a gradient it was given: ``add`` hands the same dy to all its inputs), and
drops each layer's saved arrays and each gradient as soon as it has been used. A standalone
activation is applied by the layer before it only where that layer's output has no other reader.

The loss is attached to the net: ``loss_and_backward(x, t)`` runs forward, the loss and backward
in one call, taking the loss through the output activation (``losses.COMBINED``) when the pair
allows it. A training run passes each pass its step (nettrain.core.step.Step) as ``train``: the
dropout masks' stream, this process's rows of the batch, the sum over the processes.
"""

from __future__ import annotations

import math
import time

import numpy as np

from nettrain.core.errors import UserError
from nettrain.layers import ACTIVATIONS, LAYERS, ShapeError
from nettrain.layers.base import defaults
from nettrain.net import graph
from nettrain.net.arrays import load_checked
from nettrain.net.losses import COMBINED, LOSSES
from nettrain.net.outputs import check_loss, output_range  # noqa: F401 (its old home)
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

    def __init__(self, layers, input_shape, dtype, loss: str, sources=None, entries=None):
        self.layers = layers
        # sources[k]: the positions of the outputs layer k reads (-1: the input); a chain if None
        self.sources = sources or [(k - 1,) for k in range(len(layers))]
        # per YAML entry, the entries it reads and its name (summary); a chain if None
        self.entries = entries
        self.input_shape = tuple(input_shape)
        self.output_shape = layers[-1].out_shape
        self.dtype = np.dtype(dtype)
        self.loss_name = loss
        self.loss = LOSSES[loss]
        last = layers[-1]
        # the combined loss starts from the last layer's input: only for a separate activation
        self.combined = None if last.fused else COMBINED.get((last.kind, loss))
        # after layer k, the outputs nothing later reads; whether layer k reads an output at all
        last_reader = {s: k for k, refs in enumerate(self.sources) for s in refs}
        self.frees = [[s for s in set(refs) if last_reader[s] == k] for k, refs in
                      enumerate(self.sources)]  # fmt: skip
        self.inner = [any(s >= 0 for s in refs) for refs in self.sources]

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
        each one (nettrain.net.arrays)."""
        load_checked(self.params(), self.state(), arrays, where)

    def param_count(self) -> int:
        return sum(p.size for p in self.params().values())

    # -- passes ------------------------------------------------------------------------------

    def forward(self, x: np.ndarray, train=False) -> np.ndarray:
        """Outputs (batch, *output_shape); ``train``: False, True or the training Step."""
        return self.forward_saving(x, train, keep=False)[1]

    def forward_saving(self, x: np.ndarray, train=True, keep=True, times=None):
        """(input of the last layer, output, [each layer's saved]): a forward pass that keeps
        what backward needs (nothing, in evaluation, or without ``keep``); ``times``: an array
        to add each layer's seconds to (bench)."""
        threads.adapt()  # every pass starts with the cores other jobs leave free
        outs, saved = {-1: x}, []
        for k, layer in enumerate(self.layers):
            xs = [outs[s] for s in self.sources[k]]
            start = time.perf_counter() if times is not None else 0.0
            y, kept = layer.forward(xs if layer.JOIN else xs[0], train)
            if times is not None:
                times[k] += time.perf_counter() - start
            saved.append(kept if keep else None)
            outs[k] = y
            for s in self.frees[k]:  # nothing later reads it
                del outs[s]
        return (xs if self.layers[-1].JOIN else xs[0]), y, saved

    def backward(self, saved, node: int, delta, input_grad=True, times=None):
        """dL/dx (batch, *input_shape), or None without ``input_grad``, from ``delta`` = dL/d(the
        output of layer ``node``), through the layers at or before it, in reverse; parameter
        gradients land in ``grads()``. ``saved[k]`` is dropped once layer k's backward ran."""
        grads = {node: delta}
        for k in range(node, -1, -1):
            dy = grads.pop(k, None)
            if dy is None:  # no path to the loss (dead branches are refused by the builder)
                continue
            layer = self.layers[k]
            start = time.perf_counter() if times is not None else 0.0
            dx = layer.backward(saved[k], dy, need_dx=input_grad or self.inner[k])
            if times is not None:
                times[k] += time.perf_counter() - start
            saved[k] = dy = None  # backward no longer needs them
            for s, d in zip(self.sources[k], dx if layer.JOIN else (dx,), strict=True):
                if d is None or (s < 0 and not input_grad):
                    continue
                # a new array: the one given may be another input's gradient too (add)
                grads[s] = d if s not in grads else grads[s] + d
        return grads.get(-1)

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
        # with a combined loss, delta is the gradient of the last layer's input
        node = self.sources[-1][0] if self.combined is not None else len(self.layers) - 1
        shape = self.input_shape if node < 0 else self.layers[node].out_shape
        dx = self.backward(saved, node, delta.reshape(n, *shape), input_grad)
        return value, out.reshape(n, -1), dx

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
            layer.backward(saved[i], dy, need_dx=input_grad or self.inner[i])
        for g in self.grads().values():
            g[...] = 0

    def evaluate(self, x: np.ndarray, t: np.ndarray, train=False):
        """(mean loss, outputs (batch, K)) without touching gradients (``train``: as forward's)."""
        s, out, _ = self.forward_saving(x, train)
        value, _ = self.loss_of(s, out, t)
        return value, out.reshape(len(x), -1)


def absorbs_next(specs: list, reads: list, readers: list, i: int) -> bool:
    """Whether entry i applies the standalone activation entry after it in its own kernels:
    one it can apply, with no options, reading entry i alone, and nothing else reading entry i
    (its output before the activation then need not exist)."""
    after = specs[i + 1] if i + 1 < len(specs) else {}
    return (
        set(after) - {"name", "from"} == {"type"}
        and fuses(specs[i]["type"], after["type"])
        and reads[i + 1] == (i,)
        and readers[i] == 1
    )


def build_network(model: dict, dtype, input_shape, src=None) -> Network:
    """The network of a resolved ``model`` section on per-sample ``input_shape``.

    Raises UserError naming the layer's index and YAML line when a reference cannot be resolved
    (nettrain.net.graph), when a layer cannot be built on its inputs (a join names each input's
    shape), or when the loss cannot be computed on the net's output.
    """

    def where(i, *key):
        path = ("model", "layers", i, *key)
        return src.where(path) if src else ".".join(map(str, path))

    specs = model["layers"]
    reads = graph.entry_sources(specs, where)
    readers = [sum(refs.count(i) for refs in reads) for i in range(len(specs))]
    layers, sources, shapes = [], [], {-1: tuple(input_shape)}
    out_of = {-1: -1}  # entry -> the position of the layer whose output is the entry's
    for i, spec in enumerate(specs):
        if i in out_of:  # a standalone activation applied by the layer before it
            continue
        kind = spec["type"]
        options = {k: v for k, v in spec.items() if k != "type" and k not in graph.KEYS}
        activation = options.get("activation", "linear")
        fused = activation if fuses(kind, activation) else None
        absorbs = activation == "linear" and absorbs_next(specs, reads, readers, i)
        if absorbs:
            fused = specs[i + 1]["type"]
        stage = [LAYERS[kind](i, fused=fused, **options)]
        if activation != "linear" and fused is None:
            stage.append(ACTIVATIONS[activation](i, **defaults(ACTIVATIONS[activation])))
        inputs = tuple(out_of[j] for j in reads[i])
        for layer in stage:
            given = tuple(shapes[p] for p in inputs)
            try:
                shape = layer.build(given if layer.JOIN else given[0], dtype)
            except ShapeError as exc:
                text = f"{kind} layer {i} cannot be built: {exc}"
                if layer.JOIN:
                    text += "; its inputs: " + ", ".join(
                        graph.source_text(j, specs, shapes[out_of[j]]) for j in reads[i]
                    )
                raise UserError(where(i), text) from None
            layers.append(layer)
            sources.append(inputs)
            inputs = (len(layers) - 1,)
            shapes[inputs[0]] = shape
        out_of[i] = inputs[0]
        if absorbs:  # the activation entry's output is this layer's
            out_of[i + 1] = inputs[0]
    entries = [(refs, spec.get("name")) for refs, spec in zip(reads, specs, strict=True)]
    net = Network(layers, input_shape, dtype, model["loss"], sources, entries)
    check_loss(net, model, src)
    return net
