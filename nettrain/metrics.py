"""Classification figures of `nettrain evaluate`: confusion matrix and per-class precision,
recall and F1."""

from __future__ import annotations

import numpy as np


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


def format_classes(rows: list[dict], m: np.ndarray) -> str:
    """The per-class table and the confusion matrix as text."""
    lines = [f"{'class':>5} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for r in rows:
        lines.append(
            f"{r['class']:>5} {r['precision']:>9.4f} {r['recall']:>7.4f} "
            f"{r['f1']:>7.4f} {r['support']:>8}"
        )
    width = max(5, len(str(int(m.max()))) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    lines.append(" " * 6 + "".join(f"{c:>{width}}" for c in range(len(m))))
    for c, row in enumerate(m):
        lines.append(f"{c:>5} " + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
