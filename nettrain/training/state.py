"""Where a run stands: the training state a checkpoint records beside its arrays, and all that
``--resume`` restores of it (the parameters and the optimizer's slots are arrays: checkpoint.py).

On disk it is seven entries of the checkpoint's ``__meta__`` record, as written since format 1:
``epoch, batch, step, metrics, partial, best, stopping: {best, wait}``, and an eighth,
``plateau: {lr, best, bad_epochs}``, in the runs of the plateau schedule. ``to_meta`` writes them
and ``from_meta`` reads them back, so a checkpoint written by any nettrain resumes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nettrain.core.errors import UserError


@dataclass
class TrainState:
    """A run's position and its monitors' values; updated in place as the run trains."""

    epoch: int = 0  # the epoch under way (0-based): epochs finished
    batch: int = 0  # batches of that epoch done (nonzero in a checkpoint written mid-epoch)
    step: int = 0  # optimizer steps taken: the random streams and the learning rate key on it
    metrics: list[dict] = field(default_factory=list)  # one row per finished epoch
    # The running sums of the epoch under way (loss x samples, samples, seconds, and the
    # figures' sums: correct, or abs and sq; nettrain.net.metrics), None between epochs.
    partial: dict | None = None
    best: float | None = None  # the best value of train.checkpoint.monitor so far (best.npz)
    stopping_best: float | None = None  # the best value of train.early_stopping.monitor
    wait: int = 0  # epochs since that value last improved
    # train.schedule plateau's {lr, best, bad_epochs} (optim/schedule.py); None before its first
    # epoch and for the other schedules, whose lr is a function of the step alone
    plateau: dict | None = None

    def to_meta(self) -> dict:
        """The ``__meta__`` entries of this state."""
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "metrics": self.metrics,
            "partial": self.partial,
            "best": self.best,
            "stopping": {"best": self.stopping_best, "wait": self.wait},
            **({"plateau": self.plateau} if self.plateau is not None else {}),
        }

    @classmethod
    def from_meta(cls, meta: dict, where: str) -> TrainState:
        """The state a checkpoint's ``meta`` records; a file of weights only (no epoch or
        step) cannot be resumed."""
        if "epoch" not in meta or "step" not in meta:
            raise UserError(
                where,
                "this checkpoint holds weights only; it cannot be resumed",
                "start a new run from it with --weights instead",
            )
        stopping = meta.get("stopping") or {}
        return cls(
            epoch=meta["epoch"],
            batch=meta.get("batch", 0),
            step=meta["step"],
            metrics=list(meta.get("metrics", [])),
            partial=meta.get("partial"),
            best=meta.get("best"),
            stopping_best=stopping.get("best"),
            wait=stopping.get("wait", 0),
            plateau=meta.get("plateau"),
        )

    def new_epoch(self) -> dict:
        """The running sums of the epoch under way: the saved ones when resuming mid-epoch."""
        return self.partial or {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
