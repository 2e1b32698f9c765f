"""Using a trained checkpoint: rebuild its net, predict on new inputs, evaluate on labelled data.

A checkpoint alone is enough: its ``__meta__`` carries the resolved config and input shape.
"""

from __future__ import annotations

import json

import numpy as np

from nettrain import checkpoint, data
from nettrain.assemble import score
from nettrain.config import config_from_dict
from nettrain.errors import UserError
from nettrain.network import Network, build_network


def load_net(path) -> tuple[Network, dict]:
    """(net with the checkpoint's weights, meta)."""
    arrays, meta = checkpoint.load(path)
    try:
        cfg, _ = config_from_dict(meta["config"])
    except UserError as exc:
        raise UserError(str(path), f"the checkpoint's config is not valid: {exc}") from None
    net = build_network(cfg["model"], cfg["dtype"], meta["input_shape"])
    net.load_params(arrays, str(path))
    return net, meta


def predict(net: Network, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Outputs (N, K) of ``net`` on inputs x (N, *input_shape) in the net's dtype."""
    n = len(x)
    outputs = np.empty((n, net.n_outputs), dtype=net.dtype)
    for start in range(0, n, batch_size):
        batch = x[start : start + batch_size].astype(net.dtype, copy=False)
        outputs[start : start + batch_size] = net.forward(batch, train=False).reshape(
            len(batch), -1
        )
    return outputs


def read_inputs(path: str, net: Network, meta: dict) -> np.ndarray:
    """Array ``x`` of an .npz file (or a .npy array), checked against the net's input shape."""
    if path.endswith(".npy"):
        try:
            x = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise UserError(path, "file not found") from None
        except (OSError, ValueError) as exc:
            raise UserError(path, f"cannot read the .npy file: {exc}") from None
    else:
        x = data.read_npz(path, ("x",))["x"]
    ds = data.fit_to_net(data.checked(x, None, path), net.input_shape, net.n_outputs)
    # A net trained on a built-in image set saw pixels/255: integer pixels get the same scaling,
    # float inputs are taken as already scaled.
    scale = meta.get("input_scale", 1.0)
    return ds.x * scale if scale != 1.0 and ds.x.dtype.kind in "iu" else ds.x


def write_predictions(outputs: np.ndarray, classes: bool, fmt: str, stream) -> None:
    """csv / jsonl rows (index, prediction, p0..) or (index, y0..); npy: the raw (N, K) array."""
    if fmt == "npy":
        np.save(stream, outputs)
        return
    prefix = "p" if classes else "y"
    names = [f"{prefix}{k}" for k in range(outputs.shape[1])]
    header = ["index", "prediction", *names] if classes else ["index", *names]
    if fmt == "csv":
        stream.write(",".join(header) + "\n")
    for i, row in enumerate(outputs):
        values = [repr(float(v)) for v in row]
        fields = [str(i), *([str(int(np.argmax(row)))] if classes else []), *values]
        if fmt == "csv":
            stream.write(",".join(fields) + "\n")
        else:
            record = {"index": i}
            if classes:
                record["prediction"] = int(np.argmax(row))
            record.update({n: float(v) for n, v in zip(names, row, strict=True)})
            stream.write(json.dumps(record) + "\n")


def evaluation_data(meta: dict, net: Network, path: str | None, split: str = "test"):
    """The labelled set to evaluate on: --data FILE, else the config's test or validation set."""
    if path:
        return data.load_file(path)
    cfg = meta["config"]
    if not (cfg["data"]["dataset"] or cfg["data"]["train"]):
        raise UserError("evaluate", "the checkpoint's config has no data", "give --data FILE.npz")
    train, test = data.load(cfg["data"])
    if split == "test":
        if test is None:
            raise UserError(
                "evaluate",
                "the checkpoint's config has no test set",
                "give --data FILE.npz, or --split validation",
            )
        return test
    from nettrain.train import split_validation

    train = data.fit_to_net(train, net.input_shape, net.n_outputs)
    _, validation = split_validation(train, cfg, net)
    if validation is None:
        raise UserError(
            "evaluate",
            "the checkpoint's config has no data.validation",
            "give --data FILE.npz, or --split test",
        )
    return validation


def evaluate(net: Network, ds) -> dict:
    """{'samples', 'loss', 'accuracy'} of the net on a labelled set, plus per-class figures
    ('classes': precision/recall/F1/support per class, 'confusion': rows true, columns predicted)
    where the targets are class labels."""
    from nettrain import metrics

    ds = data.fit_to_net(ds, net.input_shape, net.n_outputs)
    loss, accuracy, outputs = score(net, ds)
    result = {"samples": len(ds), "loss": loss, "accuracy": accuracy}
    if ds.has_classes:
        m = metrics.confusion(ds.y, outputs.argmax(axis=1), net.n_outputs)
        result["classes"] = metrics.per_class(m)
        result["confusion"] = m.tolist()
    return result
