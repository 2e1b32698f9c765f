"""The run folder: config.yaml, environment.yaml, metrics.csv and the checkpoints of a run.

``check_run_dir`` refuses a folder before training; ``RunFolder`` writes it while training:
every file atomically (nettrain.core.files), every checkpoint with the metadata a resume needs.
In a data-parallel run only rank 0 writes: the others keep an ``Unwritten`` one (``run_folder``).
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from pathlib import Path

import yaml

from nettrain import checkpoint
from nettrain.core import streams
from nettrain.core.errors import UserError
from nettrain.core.files import write_text
from nettrain.runtime import environment
from nettrain.training.history import write_metrics


class RunFolder:
    """The files of ``run`` in folder ``path``; metrics.csv holds the rows of ``columns``.
    With ``path`` None (the Python API's fit without ``out``) nothing is written."""

    def __init__(self, path: Path | None, run, columns):
        self.path = None if path is None else Path(path)
        self.run, self.columns = run, columns
        self.last = None if path is None else self.path / "last.npz"  # the resumable checkpoint
        self.env = None
        self.last_save = time.monotonic()

    def start(self) -> None:
        """config.yaml, environment.yaml and the metrics rows so far (none, or the resumed ones)."""
        if self.path is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(".*.tmp"):  # half-written files of a run that was killed
            stale.unlink(missing_ok=True)
        write_text(self.path / "config.yaml", yaml.safe_dump(self.run.cfg, sort_keys=False))
        env = yaml.safe_dump(environment.describe(), sort_keys=False)
        write_text(self.path / "environment.yaml", env)
        self.write_metrics()
        self.env = environment.describe()
        self.last_save = time.monotonic()

    def write_metrics(self) -> None:
        if self.path is None:
            return
        write_metrics(self.path / "metrics.csv", self.columns, self.run.state.metrics)

    def save(self, name: str) -> None:
        """Checkpoint ``name`` (last.npz, best.npz, epoch-NNN.npz) of the run as it stands."""
        if self.path is None:
            return
        save_checkpoint(self.run, self.path / name, self.env)
        if name == "last.npz":
            self.last_save = time.monotonic()

    def checkpoint_due(self, step: int) -> bool:
        """train.checkpoint.every_steps / every_minutes: is a mid-epoch last.npz due?"""
        ck = self.run.cfg["train"]["checkpoint"]
        by_steps = ck["every_steps"] and step % ck["every_steps"] == 0
        by_time = (
            ck["every_minutes"] and time.monotonic() - self.last_save >= 60 * ck["every_minutes"]
        )
        return bool(by_steps or by_time)

    def end_epoch(self, epoch: int, improved: bool) -> None:
        """metrics.csv, last.npz, best.npz when the monitored figure improved, epoch-NNN.npz."""
        self.write_metrics()
        self.save("last.npz")
        if improved:
            self.save("best.npz")
        if self.run.cfg["train"]["checkpoint"]["keep"]:
            self.save(f"epoch-{epoch + 1:03d}.npz")


class Unwritten(RunFolder):
    """The run folder as ranks other than 0 see it: the same decisions, no file written."""

    def start(self) -> None:
        self.env = {}

    def write_metrics(self) -> None:
        pass

    def save(self, name: str) -> None:
        pass


def run_folder(root: bool, path: Path | None, run, columns) -> RunFolder:
    """The run folder ``path`` of ``run``: written by the root process (rank 0) only."""
    return (RunFolder if root else Unwritten)(path, run, columns)


def save_checkpoint(run, path: Path, env: dict) -> None:
    """Parameters, optimizer state, preprocessing statistics and everything resume needs."""
    net, data = run.net, run.train
    meta = {
        "config": run.cfg,
        "input_shape": list(net.input_shape),
        "n_outputs": net.n_outputs,
        "input_scale": data.scale,
        "targets": "classes" if data.has_classes else "values",
        "classes": data.classes,
        "encoding": data.encoding and data.encoding.to_json(),
        "rng": {"seed": run.cfg["seed"], "streams": streams.DESCRIPTION},
        "environment": env,
        **run.state.to_meta(),
    }
    weights = net.arrays() if run.average is None else run.average.checkpoint_arrays(net)
    arrays = {**weights, **run.optimizer.state_arrays(), **run.preprocess}
    checkpoint.save(path, arrays, meta)


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Fail before training when the folder is another run's or cannot be written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(str(run_dir), "the output path exists and is not a folder")
    taken = [n for n in ("config.yaml", "metrics.csv", "last.npz") if (run_dir / n).exists()]
    if taken and not overwrite:
        raise UserError(
            str(run_dir),
            "the folder already holds a run",
            "continue it with --resume RUN/last.npz, choose another --out, or pass --overwrite",
        )
    created = not run_dir.exists()
    probe = run_dir / ".write-test"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if created:  # a refused run leaves no folder behind
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
                run_dir.rmdir()
        raise UserError(str(run_dir), f"cannot write the run folder: {exc.strerror}") from None


def default_run_dir(config) -> Path:
    """runs/<config name>-<date>-<time>, with -2, -3, ... when that folder exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{Path(config).stem}-{stamp}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir
