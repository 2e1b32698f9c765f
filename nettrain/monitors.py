"""The figures a run watches: ``train.checkpoint.monitor`` (which epoch is best.npz) and
``train.early_stopping.monitor`` (when to stop), resolved before training and updated after
every epoch."""

from __future__ import annotations

from dataclasses import dataclass

from nettrain.errors import UserError


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


def watch(metric, mode, min_delta, splits, classes, src, path) -> Watch | None:
    """The Watch a monitor/mode pair resolves to; None for 'auto' with nothing to score."""
    where = src.where(path) if src else ".".join(path)
    if metric == "auto":
        split = next((s for s in ("validation", "test") if splits[s]), None)
        if split is None:
            return None
        metric = f"{split}_accuracy" if classes else f"{split}_loss"
    split, _, figure = metric.partition("_")
    if not splits[split]:
        raise UserError(
            where,
            f"monitor '{metric}' needs a {split} set",
            f"give data.{split}, or monitor another figure",
        )
    if figure == "accuracy" and not classes:
        raise UserError(
            where,
            f"monitor '{metric}' needs class labels; the targets are values",
            f"monitor {split}_loss instead",
        )
    if mode == "auto":
        mode = "max" if figure == "accuracy" else "min"
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
        monitor = es["monitor"]
        if monitor == "auto" and not (splits["validation"] or splits["test"]):
            monitor = "train_loss"  # with nothing held out, the training loss is what there is
        stopping = watch(monitor, es["mode"], es["min_delta"], splits, classes, src, at)
    return best, stopping


def update_monitors(run, row: dict) -> tuple[bool, bool]:
    """(best.npz improved, early stopping due) after an epoch's row; updates run.state."""
    state = run.state
    improved = run.best is not None and run.best.improves(row[run.best.metric], state["best"])
    if improved:
        state["best"] = row[run.best.metric]
    if run.stopping is None:
        return improved, False
    waited, value = state["stopping"], row[run.stopping.metric]
    if run.stopping.improves(value, waited["best"]):
        waited.update(best=value, wait=0)
    else:
        waited["wait"] += 1
    return improved, waited["wait"] >= run.cfg["train"]["early_stopping"]["patience"]
