"""`nettrain plot RUN`: learning curves from a run's metrics.csv, as a PNG in the run folder.

matplotlib is an optional extra (pip install 'nettrain[plot]').
"""

from __future__ import annotations

import csv
from pathlib import Path

from nettrain.core.errors import UserError
from nettrain.core.files import atomic_write

SPLITS = ("train", "validation", "test")


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise UserError(str(run_dir), "no metrics.csv here: is this a nettrain run folder?")
    with open(path, newline="") as f:
        try:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as exc:
            raise UserError(str(path), f"not a metrics file nettrain wrote: {exc}") from None
    if not rows:
        raise UserError(str(path), "no epoch has finished yet: nothing to plot")
    return rows


def plot_run(run_dir, output=None) -> Path:
    """Write loss (and accuracy, where measured) per epoch, each split a line; return the PNG."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)  # a wrong folder is reported before a missing extra
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(
            "plot",
            "matplotlib is not installed",
            "install the plot extra: pip install 'nettrain[plot]'",
        ) from None
    epochs = [r["epoch"] for r in rows]
    panels = [m for m in ("loss", "accuracy") if f"train_{m}" in rows[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, metric in zip(axes[0], panels, strict=True):
        for split in SPLITS:
            key = f"{split}_{metric}"
            if key in rows[0]:
                ax.plot(epochs, [r[key] for r in rows], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    out = Path(output) if output else run_dir / "curves.png"
    try:
        atomic_write(out, lambda f: fig.savefig(f, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return out
