"""Checks every data set passes: on its own when read (``checked``), then against the net
(``fit_to_net``), where the net and its loss decide what the labels are. Each error names the
file the data came from.

What the labels are (the README's table "What the labels are"):

- integer labels (N,), net with one output and ``squared_error``: values, (N, 1) targets;
- 0/1 integer labels (N,), or 0/1 targets (N, 1), net with one output and ``cross_entropy``:
  binary classes, the target of the one sigmoid unit (accuracy at threshold 0.5);
- integer labels (N,), net with several outputs: classes, one-hot targets;
- float targets (N, K): values (for ``cross_entropy``, K independent 0/1 probabilities).

Anything else with one output (labels beyond 0/1 for cross_entropy, text class names for
squared_error, a softmax over one unit) is an error naming the key that settles it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nettrain.core.errors import UserError
from nettrain.data.dataset import Dataset

CHECK_ROWS = 4096  # samples checked at once


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
    if x.dtype.kind == "f":  # in blocks of rows: a memory-mapped x is never read whole
        for start in range(0, len(x), CHECK_ROWS):
            block = x[start : start + CHECK_ROWS]
            if not np.all(np.isfinite(block)):
                bad = start + int(np.argwhere(~np.isfinite(block.reshape(len(block), -1)))[0][0])
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
            if y.dtype.kind != "f" or not np.all(np.isfinite(y)):
                raise UserError(where, "y must hold integer labels or finite float targets")
            if not np.all(np.mod(y, 1) == 0):
                return y[:, None]  # float targets of one value per sample
            y = y.astype(np.int64)
        y = y.astype(np.int64)
        if y.min() < 0:
            raise UserError(where, f"negative class label {int(y.min())}")
        return y
    if y.ndim >= 2:
        if y.dtype.kind not in "fiub" or not np.all(np.isfinite(y)):
            raise UserError(where, "y targets must be finite numbers")
        return y
    raise UserError(where, f"y must be labels (N,) or targets (N, K), got shape {y.shape}")


def fit_to_net(
    ds: Dataset, input_shape, n_outputs: int, loss: str | None = None, trained: bool = False
) -> Dataset:
    """The data set seen with the net's input shape, its labels as the net's ``loss`` takes them
    (module docstring), after checking it matches the net. ``trained``: the net is a
    checkpoint's, whose input shape the data must take as it is."""
    if ds.sample_shape != tuple(input_shape):
        if int(np.prod(ds.sample_shape)) != int(np.prod(input_shape)) or ds.window is not None:
            hint = "set model.input to the data's shape, or leave it out to take it from the data"
            if trained:
                size = int(np.prod(input_shape))
                hint = f"the trained net takes {size} values per sample: give inputs of that size"
            raise UserError(
                ds.name,
                f"samples have shape {ds.sample_shape}, the net's input is {tuple(input_shape)}",
                hint,
            )
        ds = ds.reshaped(input_shape)
    binary = False
    if ds.y is not None and loss is not None and n_outputs == 1:
        ds = _one_output(ds, loss)
        binary = ds.has_classes  # 0/1 labels of one sigmoid unit
    if ds.y is not None:
        if ds.has_classes and not binary and int(ds.y.max()) >= n_outputs:
            raise UserError(
                ds.name,
                f"class label {int(ds.y.max())} is out of range for a net with {n_outputs} "
                f"outputs (labels must be 0..{n_outputs - 1})",
                "give the last layer of model.layers one unit per class",
            )
        if not ds.has_classes and int(np.prod(ds.y.shape[1:])) != n_outputs:
            raise UserError(
                ds.name,
                f"targets have {int(np.prod(ds.y.shape[1:]))} values per sample, the net has "
                f"{n_outputs} outputs",
            )
    return ds


def _one_output(ds: Dataset, loss: str) -> Dataset:
    """The labels of ``ds`` as a net with one output and ``loss`` takes them: values for
    squared_error, 0/1 classes for cross_entropy (module docstring)."""
    y = ds.y
    settle = (
        "model.loss settles it: squared_error takes the labels as values, cross_entropy with "
        "one sigmoid unit as 0/1 classes; for K classes give the last layer K units"
    )
    if loss == "squared_error":
        if ds.classes is not None:
            raise UserError(
                ds.name,
                f"the labels are class names ({', '.join(map(str, ds.classes[:4]))}"
                f"{', ...' if len(ds.classes) > 4 else ''}), not values for one "
                "squared_error output",
                settle,
            )
        return replace(ds, y=y[:, None].astype(np.float64)) if y.ndim == 1 else ds
    if loss == "cross_entropy":
        if y.ndim == 2 and y.shape[1] == 1 and np.all((y == 0) | (y == 1)):
            return replace(ds, y=y[:, 0].astype(np.int64))  # 0/1 targets: binary classes
        if y.ndim == 1 and int(y.max()) > 1:
            shown = f"class '{ds.classes[int(y.max())]}'" if ds.classes else f"{int(y.max())}"
            raise UserError(
                ds.name,
                f"label {shown} with one cross_entropy output, which takes 0/1 labels",
                settle,
            )
        return ds
    if y.ndim == 1:  # multinomial_cross_entropy: a softmax over one unit is always 1
        raise UserError(
            ds.name,
            "class labels for a net with one output and multinomial_cross_entropy (a softmax "
            "over one unit is always 1)",
            settle,
        )
    return ds


def informative(ds: Dataset, hint: str) -> None:
    """Refuse training labels that hold a single class, or a target column that is constant:
    nothing to learn, and the sign of a wrong label column. ``hint`` names the key that
    settles it."""
    if ds.y is None or len(ds) < 2:
        return
    y = ds.y.reshape(len(ds.y), -1)
    constant = np.flatnonzero(np.all(y == y[0], axis=0))
    if len(constant) == 0:
        return
    k = int(constant[0])
    value = y[0, k]
    if ds.y.ndim == 1:
        shown = f"'{ds.classes[int(value)]}'" if ds.classes else f"{value}"
        what = f"every label is {shown}: a single class (or a constant target)"
    else:
        what = f"target column {k} holds {value:g} in every sample"
    if ds.label_note:
        what += f" ({ds.label_note})"
    raise UserError(ds.name, f"{what}: nothing to learn", hint)


def class_weights(spec, ds: Dataset, n_outputs: int, where: str) -> np.ndarray | None:
    """(K,) loss weight per class of ``train.class_weights`` (None: unweighted): ``balanced``
    gives class k N / (K N_k) over the training split ``ds`` (a class it lacks: 1); a mapping
    {CLASS: weight} names classes by name or index, the others weigh 1."""
    if spec is None:
        return None
    if not ds.has_classes:
        raise UserError(where, "class weights need class labels; these targets are values")
    k = max(n_outputs, 2)
    if spec == "balanced":
        counts = np.bincount(ds.y, minlength=k).astype(np.float64)
        return np.where(counts > 0, len(ds.y) / (k * np.maximum(counts, 1)), 1.0)
    weights = np.ones(k)
    names = [str(c) for c in ds.classes] if ds.classes else []
    for key, weight in spec.items():
        text = str(key)
        if isinstance(key, bool):  # YAML 1.1 reads yes/no/true/false keys as booleans
            spelled = ("yes", "true", "on") if key else ("no", "false", "off")
            text = next((n for n in names if n.lower() in spelled), str(int(key)))
        if text in names:
            weights[names.index(text)] = weight
        elif text.lstrip("-").isdigit() and 0 <= int(text) < k:
            weights[int(text)] = weight
        else:
            known = ", ".join(names) if names else f"0..{k - 1}"
            raise UserError(where, f"no class '{key}' (the classes: {known})")
    return weights
