"""Using a trained checkpoint: rebuild its net, predict on new inputs, evaluate on labelled data.

A checkpoint alone is enough: its ``__meta__`` carries the resolved config and input shape,
its ``preprocess.*`` arrays the statistics of ``data.preprocess``, which every input passes
through here exactly as the training data did. A user's file (predict's INPUT, evaluate --data)
is read with the training data's options (``data.user_source``), its labels taken as the net's
loss takes them (``data.fit_to_net``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace

import numpy as np

from nettrain import checkpoint, data
from nettrain.assemble import has_data, score, split_validation
from nettrain.config import config_from_dict
from nettrain.core.errors import UserError
from nettrain.data import Dataset, preprocess
from nettrain.data.columns import unseen_note
from nettrain.net import metrics
from nettrain.net.fold import folded
from nettrain.net.network import Network, build_network
from nettrain.runtime.memory import MMAP_THRESHOLD


def load_net(path) -> tuple[Network, dict]:
    """(net with the checkpoint's weights, meta); meta gains 'data' (the validated data section)
    and 'preprocess_stats' (the checkpoint's preprocess.* arrays)."""
    arrays, meta = checkpoint.load(path)
    return net_of(arrays, meta, path), meta


def net_of(arrays: dict, meta: dict, path) -> Network:
    """The net of a loaded checkpoint (``checkpoint.load``); adds 'data' and 'preprocess_stats'
    to ``meta`` as load_net says."""
    try:
        cfg, _ = config_from_dict(meta["config"])
    except UserError as exc:
        raise UserError(str(path), f"the checkpoint's config is not valid: {exc}") from None
    net = build_network(cfg["model"], cfg["dtype"], meta["input_shape"])
    net.load_params(arrays, str(path))
    meta["data"] = cfg["data"]
    meta["columns"] = encoding_of(meta, str(path))
    meta["preprocess_stats"] = preprocess.from_checkpoint(
        cfg["data"]["preprocess"], arrays, net.input_shape, str(path)
    )
    return net


def encoding_of(meta: dict, where: str):
    """The column encoding (data.columns.Encoding) of a checkpoint trained on a table, or None."""
    from nettrain.data.columns import Encoding

    record = meta.get("encoding")
    return None if record is None else Encoding.from_json(record, where)


def predict(net: Network, x, batch_size: int = 256) -> np.ndarray:
    """Outputs (N, K) of ``net`` on inputs: x (N, *input_shape), or a Dataset, whose samples are
    converted (scaled, preprocessed) batch by batch; batchnorm folded into the convs before
    it (nettrain.net.fold)."""
    net, n = folded(net), len(x)
    outputs = np.empty((n, net.n_outputs), dtype=net.dtype)
    batch_size = chunk(net, batch_size)
    for start in range(0, n, batch_size):
        idx = slice(start, start + batch_size)
        if isinstance(x, Dataset):
            batch = x.inputs(idx, net.dtype)
        else:
            batch = x[idx].astype(net.dtype, copy=False)
        outputs[idx] = net.forward(batch, train=False).reshape(len(batch), -1)
    return outputs


REUSED_BYTES = MMAP_THRESHOLD * 7 // 8  # room for a padded input's tail and the like


def chunk(net: Network, batch_size: int) -> int:
    """Samples a forward pass of ``predict`` takes at once: ``batch_size``, or fewer where a
    layer's output (or a conv's padded input) for that many samples would be larger than the
    arrays glibc keeps for reuse (nettrain.runtime.memory): each larger one comes as fresh pages
    from the kernel, their page faults paid on every batch (a conv's forward over 256 CIFAR
    images at 32 channels, 33.5 MB, took 62 ms with a fresh output array against 27 ms with a
    reused one). The outputs do not depend on it (each sample's are its own)."""
    largest = 1
    for layer in net.layers:
        largest = max(largest, math.prod(layer.out_shape))
        if layer.kind == "conv2d":
            (C, H, W), (ph, pw) = layer.in_shape, layer.p
            largest = max(largest, C * (H + 2 * ph) * (W + 2 * pw))
    return max(1, min(batch_size, REUSED_BYTES // (largest * net.dtype.itemsize)))


def read_inputs(path: str, net: Network, meta: dict) -> Dataset:
    """The inputs of a file or folder (formats: data.read_inputs), as the net saw its training
    data: checked against its input shape, scaled and preprocessed as in training."""
    ds = data.read_inputs(path, meta["data"], net.input_shape, meta.get("columns"))
    return preprocessed(ds, net, meta)


def read_frame(frame, net: Network, meta: dict, labelled: bool = False) -> Dataset:
    """The raw rows of a table in memory (a pandas DataFrame, a pyarrow Table) as the net saw
    its training table: columns by name, encoded, scaled and preprocessed as in training;
    ``labelled``: with its label column (evaluate), else with or without it (predict)."""
    from nettrain.data import tables

    train = meta["data"].get("train")
    label = data.resolve(train).get("label", "auto") if train else "auto"
    encoding = meta.get("columns")
    if labelled:
        ds = tables.read_labelled(frame, label, encoding=encoding)
        ds = data.same_classes(ds, meta.get("classes")) if meta.get("classes") else ds
    else:
        n = math.prod(net.input_shape)
        x, unseen = tables.read_features(frame, encoding, n, label)
        ds = data.checked(x, None, type(frame).__name__, encoding=encoding, unseen=unseen)
    return preprocessed(ds, net, meta)


def preprocessed(ds: Dataset, net: Network, meta: dict) -> Dataset:
    """``ds`` fitted to the net and seen through the checkpoint's data.preprocess."""
    if ds.unseen:
        print(unseen_note(ds.name, ds.unseen), file=sys.stderr)
    # A net trained on a built-in image set saw pixels/255: integer pixels get the same scaling,
    # float inputs are taken as already scaled.
    scale = meta.get("input_scale", 1.0)
    if scale != 1.0 and ds.scale == 1.0 and ds.x.dtype.kind in "iu":
        ds = replace(ds, scale=scale)
    ds = data.fit_to_net(ds, net.input_shape, net.n_outputs, net.loss_name, trained=True)
    return preprocess.apply(meta["data"]["preprocess"], meta["preprocess_stats"], ds)


def write_predictions(
    outputs: np.ndarray, classes: bool, fmt: str, stream, files=None, class_names=None
) -> None:
    """csv / jsonl rows (index, prediction, p0..) or (index, y0..); npy: the raw (N, K) array.

    A classifier with one output (0/1 labels) has rows (index, prediction, p): prediction 1
    where p, its sigmoid output, is at least 0.5. ``files`` (the inputs' file names) adds a
    ``file`` column after ``index``; ``class_names`` (the training data's class names) a
    ``class`` column after ``prediction``.
    """
    from nettrain.net.metrics import predicted_classes

    if fmt == "npy":
        np.save(stream, outputs)
        return
    prefix = "p" if classes else "y"
    names = [f"{prefix}{k}" for k in range(outputs.shape[1])]
    if classes and outputs.shape[1] == 1:
        names = ["p"]
    predicted = predicted_classes(outputs) if classes else None
    class_names = class_names if classes else None
    header = ["index", *(["file"] if files else [])]
    header += [*(["prediction"] if classes else []), *(["class"] if class_names else []), *names]
    if fmt == "csv":
        stream.write(",".join(header) + "\n")
    for i, row in enumerate(outputs):
        best = int(predicted[i]) if classes else None
        record = {"index": i}
        if files:
            record["file"] = files[i]
        if classes:
            record["prediction"] = best
        if class_names:
            record["class"] = class_names[best]
        record.update(zip(names, row, strict=True))
        if fmt == "csv":
            fields = [_csv_field(record[k]) for k in header]
            stream.write(",".join(fields) + "\n")
        else:
            fields = [f"{json.dumps(k)}: {_json_value(v)}" for k, v in record.items()]
            stream.write("{" + ", ".join(fields) + "}\n")


def number(value) -> str:
    """The shortest text that reads back as the same value in its own precision: '0.1' for a
    float32 0.1 (not the 17 digits of its float64 widening, '0.10000000149011612')."""
    if isinstance(value, np.float32) and np.isfinite(value):
        return str(value)  # numpy's shortest round-trip repr of the float32 (Dragon4, unique)
    return repr(float(value))


def _json_value(value) -> str:
    if isinstance(value, np.floating) and np.isfinite(value):
        return number(value)
    return json.dumps(value.item() if isinstance(value, np.generic) else value)


def _csv_field(value) -> str:
    if isinstance(value, (float, np.floating)):
        return number(value)
    text = str(value)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def evaluation_data(meta: dict, net: Network, path: str | None, split: str = "test"):
    """The labelled set to evaluate on: --data FILE, else the config's test or validation set."""
    if path is not None and not isinstance(path, str):  # a DataFrame with the label column
        return read_frame(path, net, meta, labelled=True)
    if path:
        source = data.user_source(path, meta["data"])
        ds = data.load_file(source, meta["data"], meta.get("classes"), meta.get("columns"))
        return preprocessed(ds, net, meta)
    cfg = {**meta["config"], "data": meta["data"]}
    if not has_data(cfg):
        raise UserError("evaluate", "the checkpoint's config has no data", "give --data FILE.npz")
    train, test = data.load(cfg["data"], encoding=meta.get("columns"))
    if split == "test":
        if test is None:
            raise UserError(
                "evaluate",
                "the checkpoint's config has no test set",
                "give --data FILE.npz, or --split validation",
            )
        return preprocessed(test, net, meta)
    train = data.fit_to_net(train, net.input_shape, net.n_outputs, net.loss_name)
    _, validation = split_validation(train, cfg, net)
    if validation is None:
        raise UserError(
            "evaluate",
            "the checkpoint's config has no data.validation",
            "give --data FILE.npz, or --split test",
        )
    return preprocessed(validation, net, meta)


def evaluate(net: Network, ds, class_names=None) -> dict:
    """{'samples', 'loss', 'accuracy'} of the net on a labelled set, and the figures of its task:
    where the targets are values, 'rmse', 'mae', 'r2'; where they are class labels, per-class
    figures ('classes': precision/recall/F1/support per class, with its 'name' from
    ``class_names`` where the training data had names; 'confusion': rows true, columns
    predicted), and for 0/1 labels of one output the 'precision', 'recall', 'f1' of class 1;
    for two classes 'roc_auc' (None when the set holds one class only)."""
    ds = data.fit_to_net(ds, net.input_shape, net.n_outputs, net.loss_name, trained=True)
    loss, accuracy, outputs = score(net, ds)
    return report(ds, outputs, loss, accuracy, class_names)


def report(ds, outputs: np.ndarray, loss: float, accuracy, class_names=None) -> dict:
    """evaluate's dict from the outputs (N, K) on labelled set ``ds`` and their loss/accuracy."""
    result = {"samples": len(ds), "loss": loss, "accuracy": accuracy}
    if not ds.has_classes:
        return {**result, **metrics.figures(ds.y, outputs)}
    n_outputs = outputs.shape[1]
    k = max(n_outputs, 2)
    m = metrics.confusion(ds.y, metrics.predicted_classes(outputs), k)
    if n_outputs == 1:
        result.update(metrics.binary(m))
    if k == 2:  # a binary classifier: one sigmoid unit, or two softmax units
        result["roc_auc"] = metrics.roc_auc(ds.y, outputs[:, -1])
    result["classes"] = metrics.per_class(m)
    if class_names:
        for row in result["classes"]:
            c = row["class"]
            row["name"] = str(class_names[c]) if c < len(class_names) else str(c)
    result["confusion"] = m.tolist()
    return result
