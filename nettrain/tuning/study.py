"""The Optuna study behind `nettrain tune`: where it lives, how it samples and prunes, and which
of its trials count towards ``--trials``.

- Sampling: TPE, seeded from the config's seed and reseeded for every trial from (seed, trial
  number), so the same space, seed and trial count give the same trials, and several processes on
  one study (whose trials get distinct numbers) draw distinct values.
- Pruning: the median rule on the epoch's monitored figure (a trial stops when its figure is
  worse than the median of earlier trials' at the same epoch), after 5 finished trials.
- Storage: in memory, or a database URL (SQLite for one machine, any SQLAlchemy URL Optuna
  takes for several). With a database, each running trial beats a heartbeat; a trial whose
  process vanished (killed, machine lost) is failed after GRACE seconds and its values queued
  again, as is a trial stopped by Ctrl-C.
- Counting: a trial counts once it is finished: complete, pruned, or diverged (a finished
  outcome of its values). Interrupted or lost trials do not count; their values run again.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from nettrain.core.errors import UserError

HEARTBEAT = 10  # seconds between two heartbeats of a running trial (database storage)
GRACE = 60  # seconds without a heartbeat after which a running trial is taken as lost
OPEN_ATTEMPTS = 5
COUNTED = ("complete", "pruned", "diverged")


def optuna_module():
    try:
        import optuna
    except ImportError:
        raise UserError(
            "tune",
            "Optuna is not installed",
            "install the tune extra: pip install 'nettrain[tune]'",
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The heartbeat is meant for optimize(); the search asks and tells, beating it itself.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")
    return optuna


def seeded_sampler(seed: int, trials: int):
    """TPE whose random draws for trial k come from the stream [seed, k]; the first
    max(3, min(10, trials // 3)) trials are drawn at random (TPE's start-up)."""
    optuna = optuna_module()

    class Sampler(optuna.samplers.TPESampler):
        def before_trial(self, study, trial):
            self._rng.rng.seed([seed, trial.number])
            self._random_sampler._rng.rng.seed([seed, trial.number])
            super().before_trial(study, trial)

    return Sampler(seed=seed, n_startup_trials=max(3, min(10, trials // 3)))


def open_study(name: str, storage_url: str | None, direction: str, seed: int, trials: int):
    """The study ``name`` in ``storage_url`` (created, or loaded when it exists), or in memory."""
    optuna = optuna_module()
    storage = None
    if storage_url:
        engine = {"connect_args": {"timeout": 60}} if storage_url.startswith("sqlite") else {}
        options = {"heartbeat_interval": HEARTBEAT, "grace_period": GRACE}
        options[stale_callback_name(optuna)] = requeue
        for attempt in range(OPEN_ATTEMPTS):
            try:
                storage = optuna.storages.RDBStorage(storage_url, engine_kwargs=engine, **options)
                break
            except Exception as exc:  # SQLAlchemy's: a bad URL, a database not reachable
                # Processes started together race to create the tables: one wins, the others
                # find them on the next attempt.
                if attempt + 1 == OPEN_ATTEMPTS:
                    raise UserError(
                        f"--storage {storage_url}", f"cannot open the storage: {exc}"
                    ) from None
                time.sleep(0.5 * (attempt + 1))
    study = optuna.create_study(
        storage=storage,
        sampler=seeded_sampler(seed, trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5),
        study_name=name,
        direction=direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise UserError(
            f"--study {name}",
            f"the stored study is to {study.direction.name.lower()}, this config's monitor to "
            f"{direction}",
            "choose another --study name",
        )
    return study


def stale_callback_name(optuna) -> str:
    """Optuna 4.9 renamed RDBStorage's failed_trial_callback."""
    import inspect

    names = inspect.signature(optuna.storages.RDBStorage).parameters
    new = "heartbeat_stale_trial_callback"
    return new if new in names else "failed_trial_callback"


def requeue(study, trial) -> None:
    """A trial that ended without a finished outcome runs again with the same values (and goes on
    from its checkpoint where that is at hand)."""
    attrs = {"retry_of": trial.number}
    if trial.user_attrs.get("checkpoint"):
        attrs["resume"] = trial.user_attrs["checkpoint"]
    study.enqueue_trial(trial.params, user_attrs=attrs)


def outcome_of(trial) -> str:
    """complete, pruned, diverged, interrupted, running, waiting or lost (a trial failed by the
    heartbeat check, whose process vanished)."""
    state = trial.state.name.lower()
    if state == "fail":
        return trial.user_attrs.get("outcome", "lost")
    return state


def counts(trials) -> tuple[int, int]:
    """(finished trials that count, trials running now)."""
    finished = sum(outcome_of(t) in COUNTED for t in trials)
    running = sum(t.state.name == "RUNNING" for t in trials)
    return finished, running


def surplus(trials, number: int, wanted: int) -> bool:
    """Whether trial ``number`` is one too many: processes that asked for a trial at the same
    moment may both have seen room for one; the one with the higher number gives way."""
    before = [t for t in trials if t.number < number]
    finished, running = counts(before)
    return finished + running >= wanted


def in_database(study) -> bool:
    """Whether the study lives in a database with a heartbeat (open_study's), not in memory.
    (Optuna wraps the RDBStorage it is given in a cache, which passes the heartbeat through.)"""
    interval = getattr(study._storage, "get_heartbeat_interval", lambda: None)()
    return interval is not None


def heartbeat(study, trial) -> None:
    """Record that ``trial`` is alive. Optuna beats it only inside ``study.optimize``; the search
    asks and tells, so it beats its trials itself, through the storage's own call."""
    study._storage.record_heartbeat(trial._trial_id)


def fail_lost_trials(study) -> None:
    """Fail the running trials whose heartbeat stopped (their values are queued again)."""
    optuna = optuna_module()
    optuna.storages.fail_stale_trials(study)


def best_trial(study):
    """The best complete trial, or None."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None
    values = np.array([t.value for t in complete])
    pick = np.argmax(values) if study.direction.name == "MAXIMIZE" else np.argmin(values)
    return complete[int(pick)]
