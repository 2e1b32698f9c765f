"""Losses, as docs/maths.md derives them (docs/maths.md, "Conventions").

Every loss is summed over the output units of a sample and averaged over the samples of a batch.
o (batch, K) are the net's outputs, t (batch, K) the targets (class labels arrive one-hot).

- squared_error:             E = sum_i 1/2 (o_i - t_i)^2                    dE/do_i = o_i - t_i
- cross_entropy (binary):    E = -sum_i [t_i log o_i + (1 - t_i) log(1 - o_i)]
                                                         dE/do_i = (o_i - t_i) / (o_i (1 - o_i))
- multinomial_cross_entropy: E = -sum_i t_i log o_i                         dE/do_i = -t_i / o_i

``value_and_grad`` returns (batch loss, dL/do) with L the batch mean, so dL/do carries a 1/batch.
``n``, when given, is the batch size to divide by instead of len(o): a rank of a data-parallel
run computes its share of a global batch of n samples (nettrain.training.mpi). ``w``, when
given, (batch,) per-sample weights (``train.class_weights``): each sample's loss, and its row of
dL/do, is multiplied by its weight, and the batch loss is the mean of the weighted losses
(sum_n w_n E_n / batch, Keras' ``class_weight``), so that dL/do is still the gradient of L.
Where the output activation and the loss simplify together (sigmoid + cross_entropy, softmax +
multinomial_cross_entropy) the combined functions below (``COMBINED``) give dL/ds = (o - t) / batch
directly from the pre-activation s: no division by o(1 - o), no log of 0.
"""

from __future__ import annotations

import numpy as np

from nettrain.core.errors import UserError
from nettrain.core.options import Opt
from nettrain.layers.softmax import log_softmax

SMOOTHING = Opt(  # train.label_smoothing
    "float",
    0.0,
    min=0,
    max=1,
    exclusive_max=True,
    doc="train on the class targets (1 - e) t + e/K (K classes; e/2 for one sigmoid unit), "
    "as PyTorch's CrossEntropyLoss(label_smoothing=e); validation and test losses use t",
)


def check_smoothing(cfg: dict, classes: bool, src=None) -> None:
    """The config's train.label_smoothing needs class labels (``classes``) and a cross-entropy
    loss; an error names its line in ``src`` (a ConfigSource) when given."""
    e, loss = cfg["train"]["label_smoothing"], cfg["model"]["loss"]
    where = src.where(("train", "label_smoothing")) if src and e else "train.label_smoothing"
    if e and not classes:
        raise UserError(where, "label smoothing needs class labels; these targets are values")
    if e and loss not in ("multinomial_cross_entropy", "cross_entropy"):
        raise UserError(where, f"label smoothing needs a cross-entropy loss, not {loss}")


def smoothed(t: np.ndarray, e: float) -> np.ndarray:
    """Class targets t (batch, K), one-hot (or 0/1 for one sigmoid unit), smoothed by e:
    (1 - e) t + e / K, the K classes sharing e evenly (two classes for one unit: e / 2);
    PyTorch's CrossEntropyLoss(label_smoothing=e), Keras' label_smoothing."""
    classes = 2 if t.shape[1] == 1 else t.shape[1]
    return t * (1 - e) + e / classes


def _clip(o):
    """Keep o inside (0, 1) for the logs and divisions of the plain cross-entropies."""
    tiny = np.finfo(o.dtype).tiny
    return np.clip(o, tiny, 1 - np.finfo(o.dtype).epsneg)


def _weighted(per_unit, grad, w):
    """(per-unit losses, gradient) with each sample's row times its weight w (batch,)."""
    if w is None:
        return per_unit, grad
    w = w.reshape(-1, 1).astype(grad.dtype, copy=False)
    return per_unit * w, grad * w


def squared_error(o, t, n=None, w=None):
    n = n or len(o)
    diff = o - t
    per_unit, grad = _weighted(diff * diff, diff / n, w)
    return 0.5 * float(np.sum(per_unit, dtype=np.float64)) / n, grad


def cross_entropy(o, t, n=None, w=None):
    n = n or len(o)
    c = _clip(o)
    per_unit = -(t * np.log(c) + (1 - t) * np.log1p(-c))
    per_unit, grad = _weighted(per_unit, (c - t) / (c * (1 - c)) / n, w)
    return float(np.sum(per_unit, dtype=np.float64) / n), grad


def multinomial_cross_entropy(o, t, n=None, w=None):
    n = n or len(o)
    c = _clip(o)
    per_unit, grad = _weighted(-t * np.log(c), -t / c / n, w)
    return float(np.sum(per_unit, dtype=np.float64) / n), grad


LOSSES = {
    "squared_error": squared_error,
    "cross_entropy": cross_entropy,
    "multinomial_cross_entropy": multinomial_cross_entropy,
}


def sigmoid_cross_entropy(s, o, t, n=None, w=None):
    """Combined sigmoid + cross_entropy from s (batch, K) and o = sigmoid(s).

    E per unit = softplus(s) - t s = max(s, 0) - t s + log(1 + exp(-|s|)); dL/ds = (o - t) / batch.
    """
    n = n or len(s)
    per_unit = np.maximum(s, 0) - t * s + np.log1p(np.exp(-np.abs(s)))
    per_unit, grad = _weighted(per_unit, (o - t) / n, w)
    return float(np.sum(per_unit, dtype=np.float64) / n), grad


def softmax_multinomial_cross_entropy(s, o, t, n=None, w=None):
    """Combined softmax + multinomial_cross_entropy from s (batch, K) and o = softmax(s).

    E = -sum_i t_i log_softmax(s)_i; dL/ds = (o - t) / batch.
    """
    n = n or len(s)
    per_unit, grad = _weighted(-t * log_softmax(s), (o - t) / n, w)
    return float(np.sum(per_unit, dtype=np.float64) / n), grad


# (output activation, loss) -> the loss taken through the activation: (s, o, t) -> (value, dL/ds)
COMBINED = {
    ("sigmoid", "cross_entropy"): sigmoid_cross_entropy,
    ("softmax", "multinomial_cross_entropy"): softmax_multinomial_cross_entropy,
}
