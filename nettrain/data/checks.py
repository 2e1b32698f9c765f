"""Checks every data set passes: on its own when read (``checked``), then against the net
(``fit_to_net``). Each error names the file the data came from."""

from __future__ import annotations

import numpy as np

from nettrain.data.dataset import Dataset
from nettrain.errors import UserError


def checked(x: np.ndarray, y: np.ndarray | None, where: str, **fields) -> Dataset:
    """A Dataset after checking types, lengths and values of x and y.

    ``fields`` go to the Dataset as they are (scale, names, classes).
    """
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
        y = checked_targets(y, len(x), where)
    return Dataset(x, y, where, **fields)


def checked_targets(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """y as int64 labels (N,) or finite targets (N, K...), after checking it fits n samples."""
    if y.ndim == 0:
        raise UserError(where, f"y must be labels (N,) or targets (N, K), got a single value {y}")
    if len(y) != n:
        raise UserError(where, f"x has {n} samples but y has {len(y)}")
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
        return y
    if y.ndim >= 2:
        if y.dtype.kind not in "fiub" or not np.all(np.isfinite(y)):
            raise UserError(where, "y targets must be finite numbers")
        return y
    raise UserError(where, f"y must be labels (N,) or targets (N, K), got shape {y.shape}")


def fit_to_net(ds: Dataset, input_shape, n_outputs: int) -> Dataset:
    """The data set seen with the net's input shape, after checking it matches the net."""
    if ds.sample_shape != tuple(input_shape):
        if int(np.prod(ds.sample_shape)) != int(np.prod(input_shape)) or ds.window is not None:
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
