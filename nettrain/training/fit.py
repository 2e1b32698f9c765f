"""One fit: ``nettrain fit``, ``nettrain.Model.fit`` and the tests all train through ``fit``, in one
process or as one rank of ``mpirun -np N`` (nettrain.training.mpi), where only rank 0 checks the
run folder and writes to the streams."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from nettrain import checkpoint
from nettrain.core.errors import UserError
from nettrain.runtime import compiling
from nettrain.training.interrupt import Interrupted
from nettrain.training.loop import train
from nettrain.training.mpi import world
from nettrain.training.prepare import Run, prepare
from nettrain.training.resume import check_resume
from nettrain.training.run_folder import check_run_dir
from nettrain.training.state import TrainState


@dataclass
class Fitted:
    """A finished fit: the trained run (net, data, optimizer, state), its run folder (None when
    nothing was written) and the metrics rows, one per epoch (metrics.csv's)."""

    run: Run
    folder: Path | None
    rows: list[dict]

    @property
    def last(self) -> Path | None:
        """last.npz, the checkpoint of the end of the run."""
        return None if self.folder is None else self.folder / "last.npz"

    @property
    def best(self) -> Path | None:
        """best.npz, the checkpoint of the best epoch (train.checkpoint.monitor), if written."""
        path = None if self.folder is None else self.folder / "best.npz"
        return path if path is not None and path.exists() else None


def fit(
    cfg: dict,
    src=None,
    *,
    weights=None,
    resume=None,
    sets=None,
    folder=None,
    overwrite: bool = False,
    progress: bool = False,
    output=None,
    messages=None,
    on_epoch=None,
) -> Fitted:
    """Train the net of the resolved config ``cfg`` (``src``: its ConfigSource, whose YAML lines
    errors point at); the fit. Raises Interrupted (exit code 130, the checkpoint written) when
    Ctrl-C or SIGTERM stops it.

    ``weights``: a checkpoint (or weights file) path, or (arrays, where), to start from.
    ``resume``: a checkpoint path to continue exactly; the keys ``cfg`` changes are told, the
    ones that would make it another run refused. ``sets``: (train, test) Datasets in place of the
    config's data. ``folder``: the run folder written (None: nothing is written); one that holds
    another run is refused unless ``overwrite`` (a resumed run writes into its own).
    ``progress``: a bar per epoch on stderr. ``output``: the text stream of the epoch lines;
    ``messages``: of what the run tells (the resumed keys, the run folder, notes, kernels
    compiling); None for silence. ``on_epoch(row)`` after every epoch; returning False stops.
    """
    w = world()
    output, messages = (output, messages) if w.root else (None, None)  # rank 0 tells
    one_start(resume, weights)
    if resume is not None:
        where = str(resume)
        arrays, meta = checkpoint.load(resume)
        state = TrainState.from_meta(meta, where)
        check_resume(cfg, meta["config"], state, where, messages)
        run = prepare(cfg, src, resume=(arrays, state, where), sets=sets)
    else:
        if isinstance(weights, (str, Path)):
            weights = (checkpoint.load_weights(weights), str(weights))
        run = prepare(cfg, src, weights=weights, sets=sets)
    if folder is not None:
        folder = Path(folder)
        w.on_root(lambda: check_run_dir(folder, overwrite or resume is not None))
    told = ([f"run folder: {folder}"] if folder is not None else []) + run.notes
    for line in told if messages is not None else ():
        print(line, file=messages)
    out = io.StringIO() if output is None else output  # the rows only go to metrics.csv
    try:
        with compiling.notice(messages):
            rows = train(run, folder, progress and w.root, out, on_epoch)
    except Interrupted as exc:
        exc.fitted = Fitted(run, folder, run.state.metrics)
        raise
    return Fitted(run, folder, rows)


def one_start(resume, weights) -> None:
    """A run starts from a checkpoint's state (resume) or its weights, not both."""
    if resume is not None and weights is not None:
        raise UserError(
            "fit",
            "--resume and --weights exclude each other",
            "--resume continues a run; --weights starts a new one from its weights",
        )
