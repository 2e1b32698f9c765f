"""The figures that fit the task, for the epoch line, metrics.csv, monitors and evaluate.

Classes (integer labels): accuracy; in evaluate also the confusion matrix and per-class
precision, recall and F1. A net with one output takes 0/1 labels and predicts class 1 where its
sigmoid output is at least 0.5; otherwise the predicted class is the argmax of the outputs.
Values (float targets t, outputs o, both (N, K)), over all N * K entries:

    rmse = sqrt(mean (o - t)^2)        mae = mean |o - t|
    r2   = mean over the K columns of 1 - sum (o - t)^2 / sum (t - mean t)^2

(scikit-learn's r2_score: a constant target column scores 1 when predicted exactly, else 0).
"""

from __future__ import annotations

import numpy as np

# figures per kind of targets, after the loss; better when higher: accuracy, r2
FIGURES = {"classes": ("accuracy",), "values": ("rmse", "mae", "r2")}
HIGHER_IS_BETTER = ("accuracy", "r2")


def figure_names(classes: bool) -> tuple:
    """The figures of a set after its loss: ('accuracy',) for classes, else rmse, mae, r2."""
    return FIGURES["classes" if classes else "values"]


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """(N,) predicted classes of outputs (N, K): argmax, or output >= 0.5 for K = 1."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] >= 0.5).astype(np.int64)
    return outputs.argmax(axis=1)


def figures(y: np.ndarray, outputs: np.ndarray) -> dict:
    """{'accuracy'} for class labels y (N,), {'rmse', 'mae', 'r2'} for targets y (N, K)."""
    if y.ndim == 1:
        return {"accuracy": float(np.mean(predicted_classes(outputs) == y))}
    t = y.reshape(len(y), -1).astype(np.float64)
    error = outputs.astype(np.float64) - t
    sums = {"sq": (error**2).sum(axis=0), "abs": np.abs(error).sum(axis=0), "n": len(t)}
    return from_sums(sums, total_squares(t))


def total_squares(t: np.ndarray) -> np.ndarray:
    """(K,) sum over the samples of (t - mean t)^2 per target column: r2's denominator."""
    t = t.reshape(len(t), -1).astype(np.float64)
    return ((t - t.mean(axis=0)) ** 2).sum(axis=0)


def accumulate(sums: dict, y: np.ndarray, outputs: np.ndarray) -> None:
    """Add a batch to running sums (a JSON-able dict, saved mid-epoch): 'correct' for class
    labels y (N,); per-column 'sq' and 'abs' errors for targets y (N, K)."""
    if y.ndim == 1:
        sums["correct"] = sums.get("correct", 0) + int(np.sum(predicted_classes(outputs) == y))
        return
    error = outputs.astype(np.float64) - y.reshape(len(y), -1)
    for key, add in (("sq", (error**2).sum(axis=0)), ("abs", np.abs(error).sum(axis=0))):
        sums[key] = (np.asarray(sums.get(key, 0.0)) + add).tolist()


def from_sums(sums: dict, squares: np.ndarray | None) -> dict:
    """The figures of running sums over n = sums['n'] samples (``squares``: total_squares of
    the targets, for r2; None for class labels)."""
    n = sums["n"]
    if squares is None:
        return {"accuracy": sums.get("correct", 0) / n}
    sq, ab = (np.atleast_1d(np.asarray(sums.get(k, 0.0), np.float64)) for k in ("sq", "abs"))
    exact = np.where(sq == 0, 1.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(squares > 0, 1 - sq / np.where(squares > 0, squares, 1), exact)
    return {
        "rmse": float(np.sqrt(sq.sum() / (n * len(sq)))),
        "mae": float(ab.sum() / (n * len(ab))),
        "r2": float(np.mean(r2)),
    }


def binary(m: np.ndarray) -> dict:
    """{'precision', 'recall', 'f1'} of class 1 from a 2 x 2 confusion matrix."""
    row = per_class(m)[1]
    return {k: row[k] for k in ("precision", "recall", "f1")}


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` (N,) for 0/1 ``labels`` (N,): the probability that
    a random positive scores above a random negative, ties counting one half (the Mann-Whitney
    U over average ranks; scikit-learn's ``roc_auc_score``). None when one class is absent."""
    positive = np.asarray(labels) == 1
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(np.asarray(scores, np.float64), return_inverse=True,
                                   return_counts=True)  # fmt: skip
    rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    u = rank[inverse.ravel()][positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def confusion(labels: np.ndarray, predictions: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: row = true class, column = predicted class."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (labels, predictions), 1)
    return m


def per_class(m: np.ndarray) -> list[dict]:
    """[{'class', 'precision', 'recall', 'f1', 'support'}] from a confusion matrix; a ratio with
    nothing to divide by (no sample of, or no prediction for, a class) is 0."""
    rows = []
    for c in range(len(m)):
        tp, predicted, support = m[c, c], m[:, c].sum(), m[c, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {
                "class": c,
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": int(support),
            }
        )
    return rows


def format_classes(rows: list[dict], m: np.ndarray, names=None) -> str:
    """The per-class table and the confusion matrix as text; ``names``: the class names shown
    instead of the class numbers (the training data's, as predict shows them)."""
    names = [str(n) for n in names or []]
    names += [str(c) for c in range(len(names), len(m))]  # outputs beyond the named classes
    label = max(5, *(len(n) for n in names))
    lines = [f"{'class':>{label}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for r in rows:
        lines.append(
            f"{names[r['class']]:>{label}} {r['precision']:>9.4f} {r['recall']:>7.4f} "
            f"{r['f1']:>7.4f} {r['support']:>8}"
        )
    width = max(5, len(str(int(m.max()))) + 1, *(len(n) + 1 for n in names))
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    lines.append(" " * (label + 1) + "".join(f"{n:>{width}}" for n in names))
    for c, row in enumerate(m):
        lines.append(f"{names[c]:>{label}} " + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
