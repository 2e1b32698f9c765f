"""Loading the data a config names, and checking it against the net before training.

``load(data_cfg)`` returns (train, test) Datasets (test may be None): from a built-in set
(``data.dataset``: ``mnist``, bundled, pixels scaled to [0, 1], the official 60000/10000 split;
or a generated one, see generated.py), or from files (``data.train``, ``data.test``; formats in
sources.py). ``read_inputs`` reads unlabelled inputs for predict; it and evaluate --data read a
user's file with the training data's options (``sources.user_source``). Stored values are kept
as they are (uint8 pixels stay uint8) and converted one batch at a time (dataset.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from nettrain.core.errors import UserError
from nettrain.core.files import READ_ERRORS
from nettrain.data import generated, preprocess
from nettrain.data.augment import Augment, crop_view
from nettrain.data.checks import checked, fit_to_net, informative
from nettrain.data.class_weights import ClassWeights, class_weights
from nettrain.data.dataset import Dataset
from nettrain.data.idx import idx_shape, read_idx
from nettrain.data.images import read_unlabelled
from nettrain.data.npz import npz_names, read_npz
from nettrain.data.sources import (
    idx_images,
    read,
    resolve,
    user_source,
)
from nettrain.data.tables import LABEL_HINT, read_features

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# the built-in sets and their options (data.dataset: NAME or {name: NAME, ...})
DATASETS = {"mnist": {}, **generated.GENERATED}
CROP_KEY = "data.augment.crop.size"

__all__ = [
    "DATASETS",
    "ClassWeights",
    "Dataset",
    "builtin",
    "check_learnable",
    "checked",
    "class_weights",
    "fit_to_net",
    "load",
    "load_file",
    "mnist",
    "read_inputs",
    "read_npz",
    "resolve",
    "same_classes",
    "user_source",
]
# the key that names the labels of a training file, by format (a single-class error's hint)
LABEL_KEY = {
    "csv": LABEL_HINT,
    "parquet": LABEL_HINT,
    "npz": "data.train.y names the labels array (e.g. {path: FILE, y: NAME})",
    "npy": "data.train.y names the labels file (e.g. {x: X.npy, y: Y.npy})",
    "idx": "data.train.labels names the labels file",
    "images": "data.train must hold one sub-folder per class",
}


def load(data_cfg: dict, fit_rows=None, encoding=None) -> tuple[Dataset, Dataset | None]:
    """(train, test) for a resolved ``data`` section. A table's column encoding is ``encoding``
    (a trained one), else fitted on the training file's rows ``fit_rows(n)`` (the training
    split) and applied to the test file."""
    if data_cfg["dataset"]:
        train, test = builtin(data_cfg["dataset"])
    else:
        train = load_file(data_cfg["train"], data_cfg, encoding=encoding, fit_rows=fit_rows)
        test = None
        if data_cfg["test"]:
            test = load_file(data_cfg["test"], data_cfg, train.classes, train.encoding)
    train = crop_view(data_cfg.get("augment"), train, CROP_KEY)
    if test is not None:
        test = crop_view(data_cfg.get("augment"), test, CROP_KEY)
    return train, test


def check_learnable(train: Dataset, data_cfg: dict) -> None:
    """Refuse a training file whose labels hold a single class or a constant target, naming the
    key that picks the label column."""
    if data_cfg["train"]:
        informative(train, LABEL_KEY[resolve(data_cfg["train"])["format"]])


def load_file(spec, data_cfg: dict | None = None, classes=None, encoding=None, fit_rows=None):
    """The labelled set a source names (a path or a source mapping, see sources.py).

    With ``data_cfg``, seen through its crop window; with ``classes`` (the training set's class
    names), its labels renumbered to match them; a table's columns encoded with ``encoding``
    (the training data's), else with one fitted on its rows ``fit_rows(n)`` (all by default).
    """
    ds = read(spec, encoding, fit_rows)
    if classes is not None:
        ds = same_classes(ds, classes)
    if data_cfg is not None:
        ds = crop_view(data_cfg.get("augment"), ds, CROP_KEY)
    return ds


def same_classes(ds: Dataset, classes: list) -> Dataset:
    """``ds`` with its labels numbered as in ``classes`` (the training set's class names)."""
    if ds.classes is None or ds.classes == classes:
        return ds
    unknown = [c for c in ds.classes if c not in classes]
    if unknown:
        raise UserError(
            ds.name,
            f"class '{unknown[0]}' is not one of the training set's classes ({', '.join(classes)})",
        )
    lookup = np.array([classes.index(c) for c in ds.classes], np.int64)
    return replace(ds, y=lookup[ds.y], classes=list(classes))


def builtin(spec) -> tuple[Dataset, Dataset]:
    """(train, test) of a built-in set: a resolved ``data.dataset`` mapping (or its name)."""
    spec = {"name": spec} if isinstance(spec, str) else spec
    if spec["name"] == "mnist":
        return mnist("train"), mnist("test")
    return generated.make(spec)


def describe_builtin() -> list[dict]:
    """One row per built-in set at its default options: name, train/test shapes, classes."""
    rows = []
    folder = datasets_folder() / "mnist"
    train, test = (idx_shape(folder / MNIST_FILES[s][0]) for s in ("train", "test"))
    rows.append(
        {
            "name": "mnist",
            "train": (train[0], 1, *train[1:]),
            "test": (test[0], 1, *test[1:]),
            "classes": 10,
            "options": "bundled; pixels scaled to [0, 1]",
        }
    )
    for name, options in generated.GENERATED.items():
        spec = {"name": name, **{k: o.default for k, o in options.items()}}
        features, classes, n_test = generated.shapes(spec)
        shown = ", ".join(
            f"{k} {'n/4' if v is None else v}" for k, v in spec.items() if k != "name"
        )
        rows.append(
            {
                "name": name,
                "train": (spec["n"], features),
                "test": (n_test, features),
                "classes": classes,
                "options": shown,
            }
        )
    return rows


def datasets_folder() -> Path:
    """Where the bundled data sets live: $NETTRAIN_DATASETS, else the repository's datasets/."""
    env = os.environ.get("NETTRAIN_DATASETS")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "datasets", Path.cwd() / "datasets"]
    for folder in candidates:
        if (folder / "mnist").is_dir():
            return folder
    raise UserError(
        "dataset mnist",
        "the bundled MNIST files were not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + ")",
        "install nettrain from its repository with 'pip install -e .', or set NETTRAIN_DATASETS "
        "to the folder that holds mnist/",
    )


def mnist(split: str) -> Dataset:
    """MNIST ``split`` ('train' or 'test'): x uint8 (N, 1, 28, 28) seen as x/255, y uint8 (N,)."""
    folder = datasets_folder() / "mnist"
    images, labels = (folder / name for name in MNIST_FILES[split])
    x = read_idx(images)
    y = read_idx(labels).astype(np.int64)
    if x.ndim != 3 or len(x) != len(y):
        raise UserError(str(images), f"unexpected MNIST shapes {x.shape} and {y.shape}")
    return Dataset(x[:, None, :, :], y, f"mnist/{split}", scale=1.0 / 255.0)


def read_inputs(path, data_cfg: dict, input_shape, encoding=None) -> Dataset:
    """Unlabelled inputs for predict: an .npz, .npy, CSV, IDX images file, image or folder.

    Options of the training data (array name, label column, delimiter, image size) apply where
    the input has the training data's format; a table's columns are encoded with ``encoding``
    (the training data's column encoding). ``names`` holds each sample's file name for images.
    The set is seen through the crop window of the config, not yet fitted to the net.
    """
    path = str(path)
    if not Path(path).exists():
        raise UserError(path, "file not found")
    like = user_source(path, data_cfg)
    fmt = like["format"]
    names = unseen = None
    if fmt == "npy":
        try:
            x = np.load(path, allow_pickle=False)
        except READ_ERRORS as exc:
            raise UserError(path, f"cannot read the .npy file: {exc}") from None
        if not isinstance(x, np.ndarray):  # np.load opens a zip archive whatever its name
            x.close()
            raise UserError(path, "an .npz archive named .npy", "rename it to .npz")
    elif fmt == "npz":
        x = read_npz(path, [_input_array(path, like["x"])])
        x = next(iter(x.values()))
    elif fmt in ("csv", "parquet"):
        x, unseen = read_features(
            path,
            encoding,
            math.prod(input_shape),
            like["label"],
            like.get("header", "auto"),
            like.get("delimiter", "auto"),
        )
    elif fmt == "idx":
        x = idx_images(path)
    elif fmt in ("image", "images"):
        color = "rgb" if len(input_shape) == 3 and input_shape[0] == 3 else "gray"
        x, names = read_unlabelled(path, like.get("size"), color)
    else:
        raise UserError(
            path,
            "cannot tell the input format from the name",
            "give .npz (array x), .npy, .csv/.tsv, .parquet, an IDX images file, an image or a "
            "folder",
        )
    ds = checked(x, None, path, names=names, encoding=encoding, unseen=unseen)
    return crop_view(data_cfg.get("augment"), ds, CROP_KEY)


def _input_array(path: str, preferred: str) -> str:
    """The inputs array of an .npz: the training data's name for it, 'x', or the only array."""
    names = npz_names(path)
    for name in (preferred, "x"):
        if name in names:
            return name
    if len(names) == 1:
        return names[0]
    raise UserError(path, f"no array '{preferred}' in the file (it has: {', '.join(names)})")


def for_training(data_cfg: dict, input_shape, sets, src=None):
    """(statistics, sets, augment) for training: ``sets`` (train, validation, test; None where
    absent) seen through ``data.preprocess`` with statistics from the first, the training split
    alone; the ``data.augment`` of its batches (None for none)."""

    def where(key):
        return src.where(("data", key)) if src else f"data.{key}"

    spec = data_cfg["preprocess"]
    stats = preprocess.fit(spec, sets[0], where("preprocess"))
    sets = tuple(ds if ds is None else preprocess.apply(spec, stats, ds) for ds in sets)
    augment = Augment.from_config(data_cfg["augment"], input_shape, where("augment"))
    return stats, sets, augment
