"""The figures a run watches: ``train.checkpoint.monitor`` (which epoch is best.npz) and
``train.early_stopping.monitor`` (when to stop), resolved before training and updated after
every epoch."""

from __future__ import annotations

from dataclasses import dataclass

from nettrain.core.errors import UserError
from nettrain.net import metrics
from nettrain.optim.schedule import plateau_update


@dataclass
class Watch:
    """A monitored figure ('validation_loss', ...), better when lower ('min') or higher ('max')."""

    metric: str
    mode: str
    min_delta: float = 0.0

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return (
            value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta
        )


def watch(metric, mode, min_delta, splits, classes, src, path) -> Watch:
    """The Watch a monitor/mode pair resolves to. 'auto' never selects on the test set: the
    validation accuracy (loss for values) when there is a validation set, else train_loss."""
    where = src.where(path) if src else ".".join(path)
    if metric == "auto":
        if not splits["validation"]:
            metric = "train_loss"
        else:
            metric = "validation_accuracy" if classes else "validation_loss"
    split, _, figure = metric.partition("_")
    if not splits[split]:
        raise UserError(
            where,
            f"monitor '{metric}' needs a {split} set",
            f"give data.{split}, or monitor another figure",
        )
    if figure != "loss" and figure not in metrics.figure_names(classes):
        needs, have = ("class labels", "values") if figure == "accuracy" else ("values", "classes")
        raise UserError(
            where,
            f"monitor '{metric}' needs {needs}; the targets are {have}",
            f"monitor {split}_loss or {split}_{metrics.figure_names(classes)[0]} instead",
        )
    if mode == "auto":
        mode = "max" if figure in metrics.HIGHER_IS_BETTER else "min"
    return Watch(metric, mode, min_delta)


def monitors(cfg: dict, splits: dict, classes: bool, src) -> tuple[Watch | None, Watch | None]:
    """(best, stopping): the Watch of best.npz and that of early stopping (None for none)."""
    tc = cfg["train"]
    ck, es = tc["checkpoint"], tc["early_stopping"]
    at = ("train", "checkpoint", "monitor")
    best = watch(ck["monitor"], ck["mode"], 0.0, splits, classes, src, at)
    stopping = None
    if es is not None:
        at = ("train", "early_stopping", "monitor")
        stopping = watch(es["monitor"], es["mode"], es["min_delta"], splits, classes, src, at)
    return best, stopping


def plateau_watch(cfg: dict, splits: dict, classes: bool, src, best: Watch) -> Watch | None:
    """The Watch of the plateau schedule (None for another schedule); monitor auto: best.npz's."""
    schedule = cfg["train"]["schedule"]
    if schedule["name"] != "plateau":
        return None
    if schedule["monitor"] == "auto":
        return Watch(best.metric, best.mode)
    at = ("train", "schedule", "monitor")
    return watch(schedule["monitor"], "auto", 0.0, splits, classes, src, at)


def update_monitors(run, row: dict) -> tuple[bool, bool]:
    """(best.npz improved, early stopping due) after an epoch's row; updates run.state, the
    plateau schedule's lr among it."""
    state, tc = run.state, run.cfg["train"]
    if run.plateau is not None:
        higher = run.plateau.mode == "max"
        value, lr0 = row[run.plateau.metric], tc["optimizer"]["lr"]
        state.plateau = plateau_update(state.plateau, value, lr0, tc["schedule"], higher)
    improved = run.best is not None and run.best.improves(row[run.best.metric], state.best)
    if improved:
        state.best = row[run.best.metric]
    if run.stopping is None:
        return improved, False
    value = row[run.stopping.metric]
    if run.stopping.improves(value, state.stopping_best):
        state.stopping_best, state.wait = value, 0
    else:
        state.wait += 1
    return improved, state.wait >= run.cfg["train"]["early_stopping"]["patience"]
