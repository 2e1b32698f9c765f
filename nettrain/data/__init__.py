"""Loading the data a config names, and checking it against the net before training.

``load(data_cfg)`` returns (train, test) Datasets (test may be None). Files: ``.npz`` with arrays
``x`` (N, *shape) and ``y`` ((N,) integer labels or (N, K) float targets). Built-in: ``mnist``,
read from the bundled IDX files, pixels scaled to [0, 1], the official 60000/10000 split.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from nettrain.data.dataset import Dataset
from nettrain.data.idx import read_idx
from nettrain.errors import UserError

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def load(data_cfg: dict) -> tuple[Dataset, Dataset | None]:
    """(train, test) for a resolved ``data`` section."""
    if data_cfg["dataset"] == "mnist":
        return mnist("train"), mnist("test")
    train = load_file(data_cfg["train"])
    test = load_file(data_cfg["test"]) if data_cfg["test"] else None
    return train, test


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


def load_file(path) -> Dataset:
    """A labelled .npz file (arrays x and y)."""
    path = str(path)
    arrays = read_npz(path, ("x", "y"))
    x, y = arrays["x"], arrays["y"]
    return checked(x, y, path)


def read_npz(path: str, names) -> dict:
    """The named arrays of an .npz file, never unpickling anything."""
    if not path.endswith(".npz"):
        raise UserError(path, "unsupported data file type (expected .npz with arrays x and y)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [n for n in names if n not in f.files]
            if missing:
                raise UserError(
                    path, f"no array '{missing[0]}' in the file (it has: {', '.join(f.files)})"
                )
            return {n: f[n] for n in names}
    except FileNotFoundError:
        raise UserError(path, "file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(path, f"cannot read the .npz file: {exc}") from None


def checked(x: np.ndarray, y: np.ndarray | None, where: str) -> Dataset:
    """A Dataset after checking types, lengths and values of x and y."""
    if x.dtype.kind not in "fiub" or x.ndim < 2:
        raise UserError(
            where, f"x must be a numeric array (N, features...), got {x.dtype} {x.shape}"
        )
    if len(x) == 0:
        raise UserError(where, "the data set is empty")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])
        raise UserError(where, f"x holds NaN or Inf (first in sample {bad})")
    if y is not None:
        if len(y) != len(x):
            raise UserError(where, f"x has {len(x)} samples but y has {len(y)}")
        if y.ndim == 1:
            if y.dtype.kind not in "iu":
                if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
                    y = y.astype(np.int64)
                else:
                    raise UserError(
                        where,
                        "y of shape (N,) must hold integer class labels; "
                        "give float targets as an (N, K) array",
                    )
            y = y.astype(np.int64)
            if y.min() < 0:
                raise UserError(where, f"negative class label {int(y.min())}")
        elif y.ndim >= 2:
            if y.dtype.kind not in "fiub" or not np.all(np.isfinite(y)):
                raise UserError(where, "y targets must be finite numbers")
        else:
            raise UserError(where, f"y must be labels (N,) or targets (N, K), got shape {y.shape}")
    return Dataset(x, y, where)


def fit_to_net(ds: Dataset, input_shape, n_outputs: int) -> Dataset:
    """The data set seen with the net's input shape, after checking it matches the net."""
    if ds.sample_shape != tuple(input_shape):
        if int(np.prod(ds.sample_shape)) != int(np.prod(input_shape)):
            raise UserError(
                ds.name,
                f"samples have shape {ds.sample_shape}, the net's input is {tuple(input_shape)}",
                "set model.input to the data's shape, or leave it out to take it from the data",
            )
        ds = ds.reshaped(input_shape)
    if ds.y is not None:
        if ds.has_classes and int(ds.y.max()) >= n_outputs:
            raise UserError(
                ds.name,
                f"class label {int(ds.y.max())} is out of range for a net with {n_outputs} "
                f"outputs (labels must be 0..{n_outputs - 1})",
            )
        if not ds.has_classes and int(np.prod(ds.y.shape[1:])) != n_outputs:
            raise UserError(
                ds.name,
                f"targets have {int(np.prod(ds.y.shape[1:]))} values per sample, the net has "
                f"{n_outputs} outputs",
            )
    return ds
