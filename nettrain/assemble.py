"""From a resolved config to a built net and its data (the training set, a validation hold-out,
the test set), shared by fit, gradcheck and evaluate."""

from __future__ import annotations

import numpy as np

from nettrain import data
from nettrain.config import load_config
from nettrain.core import streams
from nettrain.core.errors import UserError
from nettrain.net.metrics import predicted_classes
from nettrain.net.network import Network, build_network


def assemble(cfg: dict, src=None, dtype=None, with_data: bool = True, sets=None):
    """(net, train, test): the net built before any data is read when model.input is given.

    train/test are None when ``with_data`` is False; then model.input must be set. ``sets``:
    (train, test) Datasets to use instead of the config's data (the Python API's arrays).
    """
    dtype = np.dtype(dtype or cfg["dtype"])
    model = cfg["model"]
    net = build_network(model, dtype, model["input"], src) if model["input"] else None
    train = test = None
    if with_data:
        if sets is None and not has_data(cfg):
            raise UserError(
                src.file if src else "config",
                "no training data: the config has neither data.dataset nor data.train",
                "give data.dataset (e.g. mnist) or data.train (a file)",
            )
        if sets is None:  # a table's column encoding is fitted on the training split alone
            train, test = data.load(cfg["data"], lambda n: training_rows(cfg, n))
        else:
            train, test = sets
        if net is None:
            net = build_network(model, dtype, train.sample_shape, src)
        train = data.fit_to_net(train, net.input_shape, net.n_outputs, net.loss_name)
        if test is not None:
            test = data.fit_to_net(test, net.input_shape, net.n_outputs, net.loss_name)
    return net, train, test


def score(net: Network, ds, batch_size: int = 256):
    """(mean loss, accuracy or None, outputs (N, K)) of ``net`` on a labelled data set.

    Training scores at its own batch size, so that the layers' work buffers do not grow.
    """
    n = len(ds)
    outputs = np.empty((n, net.n_outputs), dtype=net.dtype)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = slice(start, min(start + batch_size, n))
        x = ds.inputs(idx, net.dtype)
        t = ds.targets(idx, net.n_outputs, net.dtype)
        loss, out = net.evaluate(x, t)
        total += loss * len(x)
        outputs[idx] = out
    accuracy = float(np.mean(predicted_classes(outputs) == ds.y)) if ds.has_classes else None
    return total / n, accuracy, outputs


def has_data(cfg: dict) -> bool:
    return bool(cfg["data"]["dataset"] or cfg["data"]["train"])


def require_input_shape(cfg: dict, src) -> None:
    """A net needs its input shape: from model.input, or from the data."""
    if not cfg["model"]["input"] and not has_data(cfg):
        raise UserError(src.where(("model",)), "no input shape: give model.input or data")


def net_for_config(config, sets=(), dtype=None):
    """(net, cfg) of a config file, reading the data only when model.input is not given."""
    cfg, src = load_config(config, sets)
    require_input_shape(cfg, src)
    net, _, _ = assemble(cfg, src, dtype, with_data=not cfg["model"]["input"])
    return net, cfg


def split_validation(train, cfg: dict, net):
    """(train, validation): data.validation as a seeded hold-out of the training set or a file."""
    spec = cfg["data"]["validation"]
    if spec is None:
        return train, None
    if isinstance(spec, (str, dict)):
        held = data.load_file(spec, cfg["data"], train.classes, train.encoding)
        return train, data.fit_to_net(held, net.input_shape, net.n_outputs, net.loss_name)
    n = len(train)
    count = holdout_count(spec, n)
    if not 1 <= count < n:
        raise UserError(
            "data.validation",
            f"holding out {count} of {n} training samples leaves no training or no validation set",
        )
    order = streams.holdout_order(cfg["seed"], n)
    return train.subset(np.sort(order[count:])), train.subset(np.sort(order[:count]))


def holdout_count(spec, n: int) -> int:
    """How many of n training samples a data.validation fraction or count holds out."""
    return round(spec * n) if isinstance(spec, float) else spec


def training_rows(cfg: dict, n: int):
    """The rows of a training file of n samples that split_validation keeps for training
    (None: all of them), to fit a table's column encoding on."""
    spec = cfg["data"]["validation"]
    if spec is None or isinstance(spec, (str, dict)) or not 1 <= holdout_count(spec, n) < n:
        return None
    return np.sort(streams.holdout_order(cfg["seed"], n)[holdout_count(spec, n) :])
