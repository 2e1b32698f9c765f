"""The config schema: every key nettrain reads, its type, range and default.

``validate(src)`` checks a loaded ``ConfigSource`` against it and returns the resolved config: a
plain dict with every default filled in and every path absolute. Nothing is built or read before
the whole config has passed. Layer, optimizer and schedule options come from their own tables
(each layer class's, optimizer class's ``OPTIONS``; ``schedule.SCHEDULES``).
"""

from __future__ import annotations

from nettrain.config.source import ConfigSource
from nettrain.core.errors import UserError, did_you_mean
from nettrain.core.options import KEY_LOCATORS, Opt, _shown, check_mapping, check_named, key_hint
from nettrain.data import DATASETS, ClassWeights, generated
from nettrain.data.augment import AUGMENT, CROP
from nettrain.data.preprocess import PREPROCESS
from nettrain.data.sources import check_source
from nettrain.net import graph, losses
from nettrain.net.losses import LOSSES
from nettrain.optim import OPTIMIZERS, average, clip
from nettrain.optim.schedule import COMMON, SCHEDULES

MONITORS = ("auto",) + tuple(
    f"{split}_{figure}"
    for split in ("train", "validation", "test")
    for figure in ("loss", "accuracy", "rmse", "mae", "r2")
)

TOP = {
    "seed": Opt(
        "int",
        0,
        min=0,
        doc="seed of every random draw: initial weights, shuffling, dropout, augmentation",
    ),
    "dtype": Opt(
        "choice",
        "float32",
        choices=("float32", "float64"),
        doc="floating-point type of the weights and the computation",
    ),
}
# The data keys, each checked by _data against the tables of nettrain.data; all default to none.
DATA = {
    "dataset": "a built-in set with its own train and test split: a name, or a mapping {name: ..., "
    "options}, e.g. {name: spirals, n: 1000, classes: 3, noise: 0.2}",
    "train": "training data: a file or folder, its format told by its name, or a mapping of format "
    "options",
    "test": "test data, scored after every epoch; as train",
    "validation": "a seeded hold-out of the training set (0.1: 10%, 5000: that many samples), or "
    "labelled data in the forms of train; selects best.npz",
    "preprocess": "scale, standardize or minmax of the inputs, fitted on the training split: a "
    "name or a mapping",
    "augment": "random views of the training images (translate, crop, flip, rotate, scale): a "
    "mapping",
}
MODEL = {
    "input": Opt(
        "shape",
        None,
        doc="per-sample input shape, e.g. [1, 28, 28]; null: taken from the data, and data of the "
        "same size is reshaped to it",
    ),
    "loss": Opt(
        "choice",
        choices=tuple(LOSSES),
        doc="the loss, summed over a sample's outputs and averaged over the batch",
    ),
}


TRAIN = {
    "epochs": Opt("int", 10, min=1, doc="passes over the training set"),
    "batch_size": Opt(
        "int",
        32,
        min=1,
        doc="samples per gradient step (under MPI, the global batch); the last batch of an "
        "epoch may be smaller",
    ),
    "shuffle": Opt("bool", True, doc="a new seeded order of the training set every epoch"),
    "class_weights": ClassWeights(
        default=None, doc="per-class loss weights: balanced or {CLASS: w}"
    ),
    "clip_grad_norm": clip.OPTION,
    "ema": average.OPTION,
    "label_smoothing": losses.SMOOTHING,
}
CHECKPOINT = {
    "every_steps": Opt("int", 0, min=0, doc="also write last.npz every N steps (0: off)"),
    "every_minutes": Opt("float", 0.0, min=0, doc="also write last.npz every M minutes (0: off)"),
    "keep": Opt("bool", False, doc="keep every epoch's checkpoint as epoch-NNN.npz"),
    "monitor": Opt(
        "choice",
        "auto",
        choices=MONITORS,
        doc="the figure best.npz is chosen by; auto: validation accuracy (loss for regression), "
        "else train_loss: never the test set",
    ),
    "mode": Opt(
        "choice",
        "auto",
        choices=("auto", "min", "max"),
        doc="lower or higher is better; auto: max for accuracy and r2, min for loss, rmse, mae",
    ),
}
EARLY_STOPPING = {
    "monitor": Opt(
        "choice",
        "auto",
        choices=MONITORS,
        doc="the figure watched; auto as for train.checkpoint.monitor",
    ),
    "patience": Opt("int", 5, min=1, doc="epochs without improvement before stopping"),
    "min_delta": Opt("float", 0.0, min=0, doc="smallest change that counts as improvement"),
    "mode": Opt(
        "choice", "auto", choices=("auto", "min", "max"), doc="as for train.checkpoint.mode"
    ),
}


def sections() -> dict:
    """Where each key can be given: dotted section ("" for the top level) -> its keys (the
    layer, optimizer and schedule options of every kind; not their "type" or "name")."""
    from nettrain.layers import LAYERS
    from nettrain.optim import OPTIMIZERS
    from nettrain.optim.schedule import COMMON, SCHEDULES

    def union(tables):
        return {k for t in tables for k in (t if isinstance(t, dict) else t.OPTIONS)}

    return {
        "": {*TOP, "data", "model", "train"},
        "data": set(DATA),
        "model": {*MODEL, "layers"},
        "model.layers.N": union(LAYERS.values()) | set(graph.KEYS),
        "train": {*TRAIN, "optimizer", "schedule", "checkpoint", "early_stopping"},
        "train.optimizer": union(OPTIMIZERS.values()),
        "train.schedule": union(SCHEDULES.values()) | set(COMMON),
        "train.checkpoint": set(CHECKPOINT),
        "train.early_stopping": set(EARLY_STOPPING),
    }


def elsewhere(key, path) -> list[str]:
    """The other sections that have ``key``, as the dotted keys to use ('dtype (top level)')."""
    here = ".".join("N" if isinstance(p, int) else str(p) for p in path)
    if here.startswith("model.layers.N"):
        here = "model.layers.N"
    return [
        f"'{key}' (top level)" if not section else f"'{section}.{key}'"
        for section, keys in sections().items()
        if section != here and key in keys
    ]


KEY_LOCATORS.append(elsewhere)


def validate(src: ConfigSource) -> dict:
    """The resolved config, or a UserError naming file, line, key, expected and given."""
    tree = src.tree
    known = {**TOP, "data": None, "model": None, "train": None}
    for key in tree:
        if key not in known:
            raise UserError(src.where((key,)), f"unknown key '{key}': {key_hint(key, known, ())}")
    cfg = {
        key: opt.check(tree[key], src, (key,)) if tree.get(key) is not None else opt.default
        for key, opt in TOP.items()
    }
    cfg["data"] = _data(tree.get("data"), src)
    cfg["model"] = _model(tree.get("model"), src)
    cfg["train"] = _train(tree.get("train"), src)
    return cfg


def _data(value, src):
    check_mapping(value, {}, src, ("data",), nested=tuple(DATA))
    given = value or {}

    def section(key, check):
        return None if given.get(key) is None else check(given[key], src, ("data", key))

    data = {
        "dataset": section(
            "dataset", lambda v, s, p: generated.resolved(check_named(v, DATASETS, s, p, "name"))
        ),
        "train": section("train", check_source),
        "test": section("test", check_source),
        "validation": _holdout(given.get("validation"), src),
        "preprocess": section(
            "preprocess", lambda v, s, p: check_named(v, PREPROCESS, s, p, "name")
        ),
        "augment": section("augment", _augment),
    }
    if value is None:  # allowed for gradcheck and summary with model.input; fit refuses it
        return data
    if data["dataset"] and data["train"]:
        raise UserError(
            src.where(("data", "train")), "give either data.dataset or data.train, not both"
        )
    # No data.dataset nor data.train: the Python API's fit(x, y) brings arrays; fit without
    # them refuses the config (assemble.py).
    if data["dataset"] and data["test"]:
        raise UserError(
            src.where(("data", "test")),
            f"data.dataset '{data['dataset']['name']}' brings its own test set; drop data.test",
        )
    spec = data["preprocess"]
    if spec and spec["name"] == "minmax" and spec["low"] >= spec["high"]:
        raise UserError(
            src.where(("data", "preprocess", "high")),
            f"high ({spec['high']}) must be greater than low ({spec['low']})",
        )
    return data


def _augment(value, src, path):
    """data.augment: translate, flip, rotate, scale, and a crop mapping."""
    augment = check_mapping(value, AUGMENT, src, path, nested=("crop",))
    crop = value.get("crop")
    augment["crop"] = None if crop is None else check_mapping(crop, CROP, src, (*path, "crop"))
    return augment


def _holdout(value, src):
    """data.validation: a fraction in (0, 1) or a count of training samples, or a data source."""
    path = ("data", "validation")
    if value is None:
        return None
    if isinstance(value, (str, dict)):
        return check_source(value, src, path)
    if isinstance(value, float) and 0 < value < 1:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise UserError(
        src.where(path),
        f"expected a fraction in (0, 1), a sample count >= 1 or a file path, got {_shown(value)}",
    )


def _model(value, src):
    if value is None:
        raise UserError(src.file, "missing section 'model' (model.layers and model.loss)")
    model = check_mapping(value, MODEL, src, ("model",), nested=("layers",))
    layers = value.get("layers")
    if not isinstance(layers, list) or not layers:
        raise UserError(
            src.where(("model", "layers")),
            f"expected a non-empty list of layers, got {_shown(layers)}",
        )
    model["layers"] = [
        graph.checked_entry(spec, src, ("model", "layers", i)) for i, spec in enumerate(layers)
    ]
    return {"input": model["input"], "layers": model["layers"], "loss": model["loss"]}


def _train(value, src):
    sections = ("optimizer", "schedule", "checkpoint", "early_stopping")
    train = check_mapping(value, TRAIN, src, ("train",), nested=sections)
    value = value or {}
    train["optimizer"] = check_named(
        value.get("optimizer"), OPTIMIZERS, src, ("train", "optimizer"), "name", default="sgd"
    )
    train["schedule"] = check_named(
        value.get("schedule"),
        SCHEDULES,
        src,
        ("train", "schedule"),
        "name",
        default="constant",
        common=COMMON,
    )
    monitor = train["schedule"].get("monitor")
    if monitor is not None and monitor not in MONITORS:
        raise UserError(
            src.where(("train", "schedule", "monitor")),
            f"unknown monitor '{monitor}': {did_you_mean(monitor, MONITORS)}",
        )
    train["checkpoint"] = check_mapping(
        value.get("checkpoint"), CHECKPOINT, src, ("train", "checkpoint")
    )
    stopping = value.get("early_stopping")
    train["early_stopping"] = (
        None
        if stopping is None
        else check_mapping(stopping, EARLY_STOPPING, src, ("train", "early_stopping"))
    )
    if train["optimizer"].get("nesterov") and not train["optimizer"].get("momentum"):
        raise UserError(
            src.where(("train", "optimizer", "nesterov")), "nesterov needs momentum > 0"
        )
    return train
