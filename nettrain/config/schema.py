"""The config schema: every key nettrain reads, its type, range and default.

``validate(src)`` checks a loaded ``ConfigSource`` against it and returns the resolved config: a
plain dict with every default filled in and every path absolute. Nothing is built or read before
the whole config has passed. Layer options come from each layer class's ``OPTIONS``.
"""

from __future__ import annotations

from pathlib import Path

from nettrain.config.options import Opt, _shown, check_mapping
from nettrain.config.source import ConfigSource
from nettrain.errors import UserError, did_you_mean
from nettrain.losses import LOSSES

DATASETS = ("mnist",)
OPTIMIZERS = ("sgd",)

TOP = {
    "seed": Opt("int", 0, min=0, doc="seed of every random draw (init, shuffling)"),
    "dtype": Opt("choice", "float32", choices=("float32", "float64"), doc="floating-point type"),
}
DATA = {
    "dataset": Opt("choice", None, choices=DATASETS, doc="a built-in data set (train and test)"),
    "train": Opt("path", None, doc="training data file (.npz with arrays x, y)"),
    "test": Opt("path", None, doc="test data file, scored after every epoch"),
}
MODEL = {
    "input": Opt("shape", None, doc="per-sample input shape; default: taken from the data"),
    "loss": Opt("choice", choices=tuple(LOSSES), doc="the loss"),
}
TRAIN = {
    "epochs": Opt("int", 10, min=1, doc="passes over the training set"),
    "batch_size": Opt("int", 32, min=1, doc="samples per gradient step"),
    "shuffle": Opt("bool", True, doc="reshuffle the training set every epoch"),
}
OPTIMIZER = {
    "name": Opt("choice", "sgd", choices=OPTIMIZERS, doc="the optimizer"),
    "lr": Opt("float", 0.01, min=0, exclusive_min=True, doc="learning rate"),
    "momentum": Opt("float", 0.0, min=0, max=1, exclusive_max=True, doc="heavy-ball momentum"),
}
SECTIONS = {"data": DATA, "model": MODEL, "train": TRAIN}


def validate(src: ConfigSource) -> dict:
    """The resolved config, or a UserError naming file, line, key, expected and given."""
    tree = src.tree
    known = {**TOP, **SECTIONS}
    for key in tree:
        if key not in known:
            raise UserError(src.where((key,)), f"unknown key '{key}': {did_you_mean(key, known)}")
    cfg = {key: opt.check(tree[key], src, (key,)) if key in tree else opt.default
           for key, opt in TOP.items()}
    cfg["data"] = _data(tree.get("data"), src)
    cfg["model"] = _model(tree.get("model"), src)
    cfg["train"] = _train(tree.get("train"), src)
    return cfg


def _data(value, src):
    data = check_mapping(value, DATA, src, ("data",))
    if value is None:  # allowed for gradcheck and summary with model.input; fit refuses it
        return data
    if data["dataset"] and data["train"]:
        raise UserError(src.where(("data", "train")),
                        "give either data.dataset or data.train, not both")
    if not data["dataset"] and not data["train"]:
        raise UserError(src.where(("data",)),
                        "no training data: give data.dataset (e.g. mnist) or data.train (a file)")
    if data["dataset"] and data["test"]:
        raise UserError(src.where(("data", "test")),
                        f"data.dataset '{data['dataset']}' brings its own test set; drop data.test")
    for key in ("train", "test"):
        if data[key] and not Path(data[key]).is_file():
            raise UserError(src.where(("data", key)), f"file not found: {data[key]}")
    return data


def _model(value, src):
    from nettrain.layers import LAYERS

    if value is None:
        raise UserError(src.file, "missing section 'model' (model.layers and model.loss)")
    model = check_mapping(value, MODEL, src, ("model",), nested=("layers",))
    layers = value.get("layers")
    if not isinstance(layers, list) or not layers:
        raise UserError(src.where(("model", "layers")),
                        f"expected a non-empty list of layers, got {_shown(layers)}")
    model["layers"] = [_layer(spec, i, src, LAYERS) for i, spec in enumerate(layers)]
    return {"input": model["input"], "layers": model["layers"], "loss": model["loss"]}


def _layer(spec, i, src, table):
    path = ("model", "layers", i)
    if isinstance(spec, str):  # "- softmax" is as good as "- {type: softmax}"
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise UserError(src.where(path), f"expected a layer mapping with a 'type', got {_shown(spec)}")
    kind = spec.get("type")
    if kind is None:
        raise UserError(src.where(path), "layer has no 'type' (one of: " + ", ".join(table) + ")")
    if kind not in table:
        raise UserError(src.where((*path, "type")),
                        f"unknown layer type '{kind}': {did_you_mean(kind, table)}")
    options = {k: v for k, v in spec.items() if k != "type"}
    return {"type": kind, **check_mapping(options, table[kind].OPTIONS, src, path)}


def _train(value, src):
    train = check_mapping(value, TRAIN, src, ("train",), nested=("optimizer",))
    optimizer = (value or {}).get("optimizer")
    train["optimizer"] = check_mapping(optimizer, OPTIMIZER, src, ("train", "optimizer"))
    return train
