"""ONNX export (docs/formats.md, "ONNX"): a checkpoint's net, or the mean of several, as one
graph that onnxruntime runs.

The graph takes ``input``, float32 (N, *input_shape) with N dynamic, holding what ``nettrain
predict`` receives as float inputs (already on the scale the net was trained on: predict scales
only integer pixels), and gives ``output`` (N, K). It holds, per net:

- ``data.preprocess`` as ``x * a + b`` (Mul, Add) with the checkpoint's statistics, the float32
  constants nettrain applies;
- each internal layer in evaluation mode, as its own ``onnx`` method writes it (in its file
  under nettrain/layers/), reading the outputs the net's graph gives it (a join: a list), then
  the activation it applies in its kernels, if any, as that activation's layer writes it; a
  layer whose ``onnx`` is None is refused, never skipped;
- a final Flatten to (N, K).
A net trained on a table (CSV, .parquet) takes its encoded float features (docs/csv.md): the
model's metadata_props hold the encoding (``nettrain_columns``, the JSON the checkpoint keeps)
and the name of each input feature (``nettrain_features``).
Several nets: each its own subgraph (names prefixed ``net{k}/``), then Mean. Everything is
computed in float32 (onnxruntime has no float64 Conv or pooling on CPU): a float64 checkpoint
is exported with its weights rounded to float32.
"""

from __future__ import annotations

import json

import numpy as np

from nettrain import __version__
from nettrain.core.errors import UserError
from nettrain.net.network import unfused

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over a chosen axis (opset 13's semantics) and Mean of any count


def onnx_module():
    """The onnx package, or a UserError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise UserError(
            "export", "--format onnx needs the onnx package", "pip install 'nettrain[onnx]'"
        ) from None
    return onnx


class Graph:
    """Nodes and constants of a graph under construction; names made unique by a prefix. A
    layer's ``onnx(g, x)`` writes its nodes with ``node``, ``constant``, ``shape`` and ``flat``."""

    def __init__(self, onnx, prefix: str):
        self.onnx, self.prefix = onnx, prefix
        self.nodes, self.constants, self.count = [], [], 0

    def name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}{what}_{self.count}"

    def constant(self, what: str, value) -> str:
        name = self.name(what)
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        self.constants.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def shape(self, what: str, dims) -> str:
        name = self.name(what)
        array = np.asarray(dims, dtype=np.int64)
        self.constants.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs, **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def flat(self, x: str, rank: int) -> str:
        """x as (N, features): Flatten when it has more than one axis per sample."""
        return self.node("Flatten", [x], axis=1) if rank > 1 else x


def net_nodes(g: Graph, net, meta: dict, where: str, x: str) -> str:
    """Append the nodes of one net (preprocessing, layers, flatten) reading x; its output."""
    from nettrain.data import preprocess

    spec = meta["data"]["preprocess"]
    if spec is not None:
        a, b = preprocess.affine(spec, meta["preprocess_stats"], net.input_shape)
        a, b = (v.astype(net.dtype).astype(np.float32) for v in (a, b))
        if np.any(a != 1):
            x = g.node("Mul", [x, g.constant("preprocess_a", a)])
        if np.any(b != 0):
            x = g.node("Add", [x, g.constant("preprocess_b", b)])
    outs = {-1: x}  # the name of each layer's output, along the net's graph
    for k, built in enumerate(net.layers):
        xs = [outs[s] for s in net.sources[k]]
        y = xs if built.JOIN else xs[0]
        for layer in unfused(built):
            if getattr(layer, "onnx", None) is None:
                raise UserError(
                    f"{where}: layer {layer.index} ({layer.kind})",
                    "cannot be exported to ONNX: nettrain has no ONNX form for it",
                    "export the net with --format safetensors, or leave the layer out",
                )
            y = layer.onnx(g, y)
        outs[k] = y
    return g.flat(outs[len(net.layers) - 1], len(net.output_shape))


def check_opset(onnx, opset: int) -> None:
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UserError(
            "--opset",
            f"opset {opset} is not supported: choose {MIN_OPSET} to {newest}",
            f"the default, {DEFAULT_OPSET}, loads in onnxruntime 1.12 and later",
        )


def to_onnx(models: list, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialized ONNX model of ``models`` [(net, meta, where)]: one net, or the mean of
    several; checked with ``onnx.checker.check_model(full_check=True)``."""
    onnx = onnx_module()
    check_opset(onnx, opset)
    helper, TP = onnx.helper, onnx.TensorProto
    net0 = models[0][0]
    g = Graph(onnx, "")
    outputs = []
    for k, (net, meta, where) in enumerate(models):
        g.prefix = f"net{k}/" if len(models) > 1 else ""
        outputs.append(net_nodes(g, net, meta, where, "input"))
    g.prefix = ""
    last = g.node("Mean", outputs) if len(outputs) > 1 else outputs[0]
    g.nodes.append(helper.make_node("Identity", [last], ["output"], name="output"))
    graph = helper.make_graph(
        g.nodes,
        "nettrain",
        [helper.make_tensor_value_info("input", TP.FLOAT, ["N", *net0.input_shape])],
        [helper.make_tensor_value_info("output", TP.FLOAT, ["N", net0.n_outputs])],
        g.constants,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="nettrain",
        producer_version=__version__,
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    configs = [meta["config"] for _, meta, _ in models]
    props = {
        "nettrain_version": __version__,
        "nettrain_config": json.dumps(configs[0] if len(configs) == 1 else configs),
        "nettrain_input_scale": json.dumps([meta.get("input_scale", 1.0) for _, meta, _ in models]),
    }
    props.update(columns_props(models))
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def columns_props(models: list) -> dict:
    """The metadata of a table's encoding: {} for nets trained on other data; the members of an
    ensemble must encode their tables alike (the graph has one input)."""
    encodings = [meta.get("encoding") for _, meta, _ in models]
    if encodings[0] is None:
        return {}
    for (_, _, where), enc in zip(models[1:], encodings[1:], strict=True):
        if enc != encodings[0]:
            raise UserError(
                where,
                f"its table's columns are encoded unlike those of {models[0][2]}",
                "an ensemble's ONNX graph takes one input: export the nets one by one",
            )
    from nettrain.data.columns import Encoding

    names = Encoding.from_json(encodings[0], models[0][2]).feature_names()
    return {"nettrain_columns": json.dumps(encodings[0]), "nettrain_features": json.dumps(names)}
