"""The figures of every epoch: the columns and rows of metrics.csv, and the line printed per epoch.

metrics.csv has a header, then one row per epoch: ``epoch, train_loss, train_accuracy,
validation_loss, validation_accuracy, test_loss, test_accuracy, lr, seconds``; accuracies where
the targets are classes (or binary), ``rmse, mae, r2`` in their place where they are values;
validation and test figures only where those sets exist. Floats are
written with ``repr`` so that a row read back is the value the run saw.
"""

from __future__ import annotations

from pathlib import Path

from nettrain.core.files import write_text
from nettrain.net import metrics


def metric_columns(classes: bool, has_validation: bool, has_test: bool) -> list[str]:
    """epoch, then per set its loss and figures (accuracy; or rmse, mae, r2), lr, seconds."""
    columns = ["epoch"]
    for split, present in (("train", True), ("validation", has_validation), ("test", has_test)):
        if present:
            columns += [f"{split}_{f}" for f in ("loss", *metrics.figure_names(classes))]
    return columns + ["lr", "seconds"]


def write_metrics(path: Path, columns, rows) -> None:
    lines = [",".join(columns)]
    lines += [",".join(_csv_value(row[c]) for c in columns) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def _csv_value(v) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def format_row(row: dict, epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for split, short in (("train", "train"), ("validation", "val"), ("test", "test")):
        if f"{split}_loss" in row:
            parts.append(f"{short}_loss {row[f'{split}_loss']:.4f}")
        if row.get(f"{split}_accuracy") is not None:
            parts.append(f"{short}_acc {100 * row[f'{split}_accuracy']:.2f}%")
        for figure in ("rmse", "mae", "r2"):
            if f"{split}_{figure}" in row:
                parts.append(f"{short}_{figure} {row[f'{split}_{figure}']:.4g}")
    parts += [f"lr {row['lr']:.3g}", f"{row['seconds']:.1f}s"]
    return "  ".join(parts)
