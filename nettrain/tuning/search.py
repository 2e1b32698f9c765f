"""`nettrain tune CONFIG --space SPACE`: a hyperparameter search, each trial one `nettrain fit`.

Trials are scored on the validation set only (the config's ``train.checkpoint.monitor``, which
must be a validation figure; ``auto`` is validation accuracy for classes, validation loss for
values), never on the test set. A config without ``data.validation`` has 0.1 of its training set
held out for every trial (said on stderr). The score of a trial is its best epoch's figure, the
one its best.npz holds; every epoch's figure is reported to the pruner as it is written.

``jobs`` trials run at once, each a child process; on one machine they share its cores, each
``cores // jobs`` threads. Several `nettrain tune` processes, on one machine or many, share a
study through ``--storage``: every process stops once the study holds ``trials`` finished
trials. See study.py for sampling, pruning, storage and counting, trial.py for one trial.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nettrain.assemble import assemble
from nettrain.config import load_config
from nettrain.core.errors import UserError
from nettrain.net.metrics import HIGHER_IS_BETTER
from nettrain.runtime import launcher as mpi_launcher
from nettrain.runtime import threads as cores
from nettrain.tuning import study as studies
from nettrain.tuning.report import drop_runs, format_table, trial_rows, write_reports
from nettrain.tuning.space import read_space, set_items
from nettrain.tuning.trial import fit_command, run_trial

HOLDOUT = 0.1  # the share of the training set held out when the config has no validation set


@dataclass
class Search:
    """A search's settings, resolved before any trial runs."""

    config: Path
    sets: list  # the user's --set items, plus the hold-out when the config had no validation
    dims: list
    monitor: str
    direction: str
    out: Path
    trials: int
    jobs: int = 1
    keep_runs: bool = True
    launcher: str | None = None
    threads: int | None = None
    notes: list = field(default_factory=list)


def prepare_search(config, space, sets=(), trials=20, storage=None, study_name=None, jobs=1,
                   out=None, keep_runs=True, launcher=None, threads=None):  # fmt: skip
    """(Search, study): the config, space and folder checked, the study opened."""
    studies.optuna_module()  # a missing extra is said before anything else
    sets = list(sets)
    cfg, src = load_config(config, sets)
    notes = []
    if cfg["data"]["validation"] is None:
        sets.append(f"data.validation={HOLDOUT}")
        cfg, src = load_config(config, sets)
        notes.append(
            f"note: {config} has no validation set; every trial holds out data.validation="
            f"{HOLDOUT} of the training set and is scored on it (never on the test set); "
            "--set data.validation=... chooses another"
        )
    monitor, direction = scored_figure(cfg, src)
    dims = read_space(space, config, sets)
    name = study_name or Path(config).stem
    if out is None:
        stamp = "" if storage else datetime.now().strftime("-%Y%m%d-%H%M%S")
        out = Path("runs") / f"{name}-tune{stamp}"
    out = Path(out)
    if storage is None and any(out.glob("trial-*")):
        raise UserError(
            str(out),
            "the folder holds the trials of another search",
            "choose another --out, or give --storage to go on with a stored study",
        )
    out.mkdir(parents=True, exist_ok=True)
    study = studies.open_study(name, storage, direction, cfg["seed"], trials)
    # The machine's cores shared by this process's trials and those of the other search
    # processes an MPI launcher started on it (`mpirun -np N nettrain tune`)
    sharing = jobs * mpi_launcher.local_size()
    if threads is None and launcher is None and sharing > 1:
        threads = max(1, cores.cpu_count() // sharing)
    search = Search(
        Path(config), sets, dims, monitor, direction, out, trials, jobs, keep_runs, launcher,
        threads, notes,
    )  # fmt: skip
    return search, study


def scored_figure(cfg: dict, src) -> tuple[str, str]:
    """(monitor, 'maximize' or 'minimize'): the validation figure trials are scored on."""
    ck = cfg["train"]["checkpoint"]
    monitor = ck["monitor"]
    if monitor == "auto":
        _, train, _ = assemble(cfg, src)  # whether the targets are classes
        monitor = "validation_accuracy" if train.has_classes else "validation_loss"
    if not monitor.startswith("validation_"):
        raise UserError(
            src.where(("train", "checkpoint", "monitor")),
            f"trials are scored on the validation set, not on {monitor}",
            "leave train.checkpoint.monitor at auto, or name a validation figure",
        )
    mode = ck["mode"]
    if mode == "auto":
        mode = "max" if monitor.partition("_")[2] in HIGHER_IS_BETTER else "min"
    return monitor, "maximize" if mode == "max" else "minimize"


def run_search(search: Search, study, say=print) -> bool:
    """Run trials until the study holds ``search.trials`` finished ones; False when Ctrl-C or
    SIGTERM stopped the search (the running trials wrote their checkpoints)."""
    stop = threading.Event()
    lock = threading.Lock()
    errors, running = [], [search.jobs]
    all_done = threading.Event()

    def worker():
        try:
            while not stop.is_set() and next_trial(search, study, stop, lock, say):
                pass
        except BaseException as exc:  # noqa: BLE001 -- re-raised by the main thread
            errors.append(exc)
            stop.set()
        finally:
            with lock:
                running[0] -= 1
                if not running[0]:
                    all_done.set()

    previous = _raise_on_sigterm()
    try:
        for _ in range(search.jobs):
            threading.Thread(target=worker, daemon=True).start()
        # Waiting on an Event, not Thread.join: a join interrupted by Ctrl-C may return at once
        # the next time, and the process end with its trials still running.
        try:
            while not all_done.wait(0.2):
                pass
        except KeyboardInterrupt:
            stop.set()
            say("stopping: the running trials write their checkpoints (Ctrl-C again aborts)")
            while not all_done.wait(0.2):
                pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    with lock:
        write_reports(study, search.out, keys(search), search.config, search.sets)
    if errors:
        raise errors[0]
    return not stop.is_set()


def _raise_on_sigterm():
    """SIGTERM stops the search as Ctrl-C does (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handle(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handle)


def keys(search: Search) -> list[str]:
    return [d.key for d in search.dims]


def next_trial(search: Search, study, stop, lock, say) -> bool:
    """Run one trial of the study if it needs one; False once it holds enough finished trials."""
    optuna = studies.optuna_module()
    stored = studies.in_database(study)
    with lock:
        if stored:
            studies.fail_lost_trials(study)
        finished, running = studies.counts(study.get_trials(deepcopy=False))
        if finished >= search.trials:
            return False
        trial = study.ask() if finished + running < search.trials else None
    if trial is None:  # other processes' trials may yet fail and be queued again
        time.sleep(2)
        return True
    if studies.surplus(study.get_trials(deepcopy=False), trial.number, search.trials):
        trial.set_user_attr("outcome", "surplus")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return True
    values = {d.key: d.suggest(trial) for d in search.dims}
    sets = set_items(values)
    run_dir = search.out / f"trial-{trial.number}"
    resume = trial.user_attrs.get("resume")
    resume = resume if resume and Path(resume).is_file() else None
    for key, value in (("values", values), ("sets", sets), ("monitor", search.monitor),
                       ("checkpoint", str((run_dir / "last.npz").resolve()))):  # fmt: skip
        trial.set_user_attr(key, value)
    best = [None]

    def on_row(row):
        value = row.get(search.monitor)
        if value is None:
            return True
        trial.report(value, int(row["epoch"]))
        if best[0] is None or (value > best[0]) == (search.direction == "maximize"):
            best[0] = value
        return not trial.should_prune()

    beat = [time.monotonic()]

    def tick():
        if stored and time.monotonic() - beat[0] >= studies.HEARTBEAT:
            studies.heartbeat(study, trial)
            beat[0] = time.monotonic()
        return stop.is_set()

    command = fit_command(search.config, [*search.sets, *sets], run_dir, search.launcher, resume)
    if stored:
        studies.heartbeat(study, trial)
    result = run_trial(command, run_dir, on_row, tick, search.threads, mpi=bool(search.launcher))
    finish(search, study, trial, result, best[0], lock, stop)
    if result.state == "error":
        raise UserError(f"trial {trial.number} ({run_dir})", result.message.splitlines()[-1])
    if result.state == "diverged":
        say(f"trial {trial.number} diverged: {' '.join(sets)}")
    return result.state != "interrupted"


def finish(search, study, trial, result, score, lock, stop) -> None:
    """Tell the study how the trial ended; write the reports."""
    optuna = studies.optuna_module()
    trial.set_user_attr("outcome", result.state)
    trial.set_user_attr("epochs", len(result.rows))
    if score is not None:
        trial.set_user_attr("score", score)
    State = optuna.trial.TrialState
    with lock:
        if result.state == "complete" and score is not None:
            study.tell(trial, score)
        elif result.state == "pruned":
            study.tell(trial, state=State.PRUNED)
        else:
            study.tell(trial, state=State.FAIL)
        if result.state == "interrupted":
            studies.requeue(study, trial)
            stop.set()
        write_reports(study, search.out, keys(search), search.config, search.sets)
        if not search.keep_runs:
            drop_runs(study, search.out)


def summary(search: Search, study) -> str:
    """The final table and a line on the best trial."""
    table = format_table(trial_rows(study, keys(search)), keys(search), search.monitor)
    best = studies.best_trial(study)
    if best is None:
        return table + "\nno trial completed"
    folder = search.out / f"trial-{best.number}"
    return (
        f"{table}\nbest: trial {best.number}, {search.monitor} {best.value:.6g}: "
        f"{' '.join(best.user_attrs['sets'])}\n"
        f"config: {search.out / 'best.yaml'}"
        + (f"; run: {folder} (best.npz)" if folder.is_dir() else "")
    )
