"""``train.class_weights``: each sample's loss weighted by its class's weight, the batch loss the
mean of the weighted losses (Keras' ``class_weight``; docs/csv.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nettrain.core.errors import UserError
from nettrain.core.options import Opt, _shown
from nettrain.data.dataset import Dataset


@dataclass
class ClassWeights(Opt):
    """``balanced`` or ``{CLASS: weight}`` (a class name or index, a weight >= 0)."""

    kind: str = "class_weights"

    def describe(self) -> str:
        return "balanced or a mapping {CLASS: weight} (class name or index, weight >= 0)"

    def check(self, value, src, path):
        if value == "balanced":
            return value
        if not isinstance(value, dict) or not value:
            raise UserError(src.where(path), f"expected {self.describe()}, got {_shown(value)}")
        for key, weight in value.items():
            Opt("float", min=0).check(weight, src, (*path, key))
        return {k: float(v) for k, v in value.items()}


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
