"""Preprocessing (``data.preprocess``): one affine map of the inputs, fixed by the training split.

- scale:       x * factor
- standardize: (x - mean) / std; a std of 0 counts as 1 (a constant input is only centred)
- minmax:      low + (x - min) (high - low) / (max - min); a constant input maps to low

Statistics are taken ``per: feature`` (each input value of a sample on its own) or
``per: channel`` (axis 0 of a (C, H, W) sample, over all its pixels). They are computed once, in
float64, from the training split only (after the validation hold-out), on the values the net
would see without preprocessing, and saved in every checkpoint as float64 arrays
``preprocess.mean`` and ``preprocess.std`` (standardize) or ``preprocess.min`` and
``preprocess.max`` (minmax), shaped like one input sample per feature, (C,) per channel.
``predict`` and ``evaluate`` read them from there. The map is applied to every batch as
``x * a + b`` in the run's dtype.

The features of a table (columns.py) are mapped on its number columns only: one-hot and
missing-indicator features keep their 0/1, their statistics stored as the identity (mean 0 and
std 1; min ``low`` and max ``high``; for scale, a per-feature ``preprocess.factor`` of 1).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from nettrain.core.errors import UserError
from nettrain.core.options import Opt

PER = Opt(
    "choice",
    "feature",
    choices=("feature", "channel"),
    doc="feature: a statistic per input value; channel: per channel of (C, H, W), over its pixels",
)
PREPROCESS = {
    "scale": {"factor": Opt("float", doc="multiplies every input, e.g. 0.00392156862745098")},
    "standardize": {"per": PER},
    "minmax": {
        "per": PER,
        "low": Opt("float", 0.0, doc="value the minimum maps to"),
        "high": Opt("float", 1.0, doc="value the maximum maps to"),
    },
}
STATS = {"scale": (), "standardize": ("mean", "std"), "minmax": ("min", "max")}
IDENTITY = {"mean": 0.0, "std": 1.0}  # minmax: low and high
PREFIX = "preprocess."
CHUNK = 4096  # samples converted to float64 at a time (MNIST in float64 would take 376 MB)


def fit(spec: dict | None, ds, where: str) -> dict[str, np.ndarray]:
    """The statistics ``spec`` needs, from data set ``ds``: {'preprocess.mean': ..., ...}; for
    a table's features, the identity where a feature is not a number column's (docstring)."""
    stats = _fit(spec, ds, where)
    keep = getattr(ds.encoding, "number_mask", None)
    if spec is None or keep is None or keep().all():
        return stats
    keep = keep()
    if spec["name"] == "scale":
        return {PREFIX + "factor": np.where(keep, spec["factor"], 1.0)}
    identity = {**IDENTITY, "min": spec.get("low"), "max": spec.get("high")}
    return {k: np.where(keep, v, identity[k.removeprefix(PREFIX)]) for k, v in stats.items()}


def _fit(spec: dict | None, ds, where: str) -> dict[str, np.ndarray]:
    if spec is None or not STATS[spec["name"]]:
        return {}
    shape = ds.sample_shape
    if spec["per"] == "channel" and len(shape) < 2:
        raise UserError(
            where,
            f"per: channel needs samples of shape (C, H, W), these are {shape}",
            "use per: feature",
        )
    # reduced axes of a batch (batch, *shape): the batch alone, or also all but the channel
    axes = (0,) if spec["per"] == "feature" else (0, *range(2, len(shape) + 1))
    count = len(ds) * math.prod(shape) // math.prod(_stat_shape(spec, shape))

    def chunks():
        for start in range(0, len(ds), CHUNK):
            yield ds.inputs(slice(start, start + CHUNK), np.float64)

    if spec["name"] == "standardize":
        mean = sum(b.sum(axis=axes) for b in chunks()) / count
        m = _broadcast(spec, mean, shape)
        var = sum(((b - m) ** 2).sum(axis=axes) for b in chunks()) / count
        return {PREFIX + "mean": mean, PREFIX + "std": np.sqrt(var)}
    lo = np.min([b.min(axis=axes) for b in chunks()], axis=0)
    hi = np.max([b.max(axis=axes) for b in chunks()], axis=0)
    return {PREFIX + "min": lo, PREFIX + "max": hi}


def affine(spec: dict, stats: dict, shape) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), float64, broadcasting against one sample of ``shape``: the map is x * a + b."""
    name = spec["name"]
    if name == "scale":
        factor = stats.get(PREFIX + "factor", np.array(spec["factor"]))
        return _broadcast(spec, factor, shape), np.array(0.0)
    if name == "standardize":
        mean, std = stats[PREFIX + "mean"], stats[PREFIX + "std"]
        a = 1.0 / np.where(std > 0, std, 1.0)
        b = -mean * a
    else:
        lo, hi = stats[PREFIX + "min"], stats[PREFIX + "max"]
        span = hi - lo
        a = np.where(span > 0, (spec["high"] - spec["low"]) / np.where(span > 0, span, 1.0), 0.0)
        b = spec["low"] - lo * a
    return _broadcast(spec, a, shape), _broadcast(spec, b, shape)


def apply(spec: dict | None, stats: dict, ds):
    """``ds`` seen through the preprocessing (no copy of the data)."""
    if spec is None:
        return ds
    return replace(ds, transform=affine(spec, stats, ds.sample_shape))


def from_checkpoint(spec: dict | None, arrays: dict, shape, where: str) -> dict:
    """The statistics saved in a checkpoint, checked against what ``spec`` needs."""
    if spec is None:
        return {}
    stats = {}
    if spec["name"] == "scale" and PREFIX + "factor" in arrays:
        return {PREFIX + "factor": arrays[PREFIX + "factor"]}
    for stat in STATS[spec["name"]]:
        key = PREFIX + stat
        if key not in arrays:
            raise UserError(
                where,
                f"no array '{key}': the checkpoint does not hold the statistics of its "
                f"data.preprocess ({spec['name']})",
            )
        if arrays[key].shape != _stat_shape(spec, shape):
            raise UserError(
                where,
                f"'{key}' has shape {arrays[key].shape}, the net's input needs "
                f"{_stat_shape(spec, shape)}",
            )
        stats[key] = arrays[key]
    return stats


def _stat_shape(spec, shape) -> tuple:
    return tuple(shape) if spec["per"] == "feature" else (shape[0],)


def _broadcast(spec, stat: np.ndarray, shape) -> np.ndarray:
    """A per-channel statistic (C,) as (C, 1, 1) against a (C, H, W) sample."""
    if spec.get("per") == "channel":
        return stat.reshape((len(stat),) + (1,) * (len(shape) - 1))
    return stat
