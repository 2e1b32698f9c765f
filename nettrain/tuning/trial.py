"""One trial of a search: `nettrain fit CONFIG --set ... --out DIR/trial-N --quiet` as a child
process (under a launcher such as `mpirun -np 2` when one is given), followed through the rows
it appends to its metrics.csv, and stopped when the search prunes it.

A child process keeps each trial's memory, threads and Numba state its own, lets a trial run on
several MPI ranks, and leaves a run folder that `fit --resume` continues like any other.
"""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nettrain.runtime import launcher as mpi_launcher

POLL = 0.25  # seconds between two looks at the trial's metrics.csv
# Set by Open MPI (OMPI_, PMIX_), MPICH and Intel MPI (PMI_, HYDRA_, MPI_LOCALNRANKS) in ranks
LAUNCHER_VARIABLES = ("OMPI_", "PMIX_", "PMI_", "HYDRA_", "MPI_LOCALNRANKS")
USER_SETTINGS = ("OMPI_MCA_", "OMPI_ALLOW_RUN_AS_ROOT")
STOP_WAIT = 60  # seconds a stopped trial has to write its checkpoint before it is killed


@dataclass
class Outcome:
    """How a trial's process ended: 'complete', 'pruned' (stopped by the search), 'interrupted'
    (Ctrl-C / SIGTERM reached it), 'diverged' (fit's exit 1), or 'error' (exit 2: bad input;
    ``message`` holds fit's error lines)."""

    state: str
    rows: list
    message: str = ""


def fit_command(config, sets, run_dir, launcher=None, resume=None) -> list[str]:
    """The trial's command line: [launcher...] python -m nettrain fit CONFIG --set ... --out DIR
    --quiet, with --resume CKPT to continue an interrupted trial."""
    items = [a for item in sets for a in ("--set", item)]
    again = ["--resume", str(resume)] if resume else []
    prefix = shlex.split(launcher) if launcher else []
    return [
        *prefix,
        *(sys.executable, "-m", "nettrain", "fit", str(config), *items, *again),
        *("--out", str(run_dir), "--quiet"),
    ]


def run_trial(command, run_dir: Path, on_row, stopping, threads=None, mpi=False) -> Outcome:
    """Run ``command``, calling ``on_row(row)`` for every epoch's row of run_dir/metrics.csv as it
    appears; a False return prunes the trial (the child is stopped, its checkpoint kept).
    ``stopping()`` True: the search is being interrupted, stop the child too. ``threads``: the
    child's NETTRAIN_THREADS (None: its own choice)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = trial_environment()
    if threads:
        env["NETTRAIN_THREADS"] = str(threads)
    log = run_dir / "fit-stderr.txt"
    metrics = run_dir / "metrics.csv"
    rows, seen, pruned, stop_sent = [], None, False, False
    with open(log, "wb") as err:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            while True:
                code = child.poll()
                seen, new = read_new_rows(metrics, seen, len(rows))
                for row in new:
                    rows.append(row)
                    if not pruned and on_row(row) is False:
                        pruned = True
                if code is not None:
                    break
                if (pruned or stopping()) and not stop_sent:
                    stop(child, mpi)
                    stop_sent = True
                time.sleep(POLL)
        except BaseException:  # the search itself is being torn down: the child goes with it
            stop(child, mpi)
            raise
    message = log.read_text(errors="replace").strip()
    if pruned:
        return Outcome("pruned", rows)
    if code == 0:
        return Outcome("complete", rows)
    if code == 1 and "training diverged" in message:
        return Outcome("diverged", rows, message)
    if code in (130, -signal.SIGINT, -signal.SIGTERM) or stop_sent:
        return Outcome("interrupted", rows)
    return Outcome("error", rows, message or f"the trial's fit ended with exit code {code}")


def trial_environment() -> dict:
    """This process's environment, without what an MPI launcher set in it for its ranks when it
    is one: a search started by `mpirun -np N nettrain tune` (one search process per slot) runs
    each trial as a process of its own, which must not take itself for a rank of that job. The
    user's own settings (OMPI_MCA_*, OMPI_ALLOW_RUN_AS_ROOT*) stay."""
    env = dict(os.environ)
    if mpi_launcher.under_mpi() or "PMIX_RANK" in env:
        for key in list(env):
            if key.startswith(LAUNCHER_VARIABLES) and not key.startswith(USER_SETTINGS):
                del env[key]
    return env


def stop(child: subprocess.Popen, mpi: bool) -> None:
    """Ask the child to stop as Ctrl-C would (fit writes last.npz and exits 130); kill it if it
    has not ended after STOP_WAIT seconds. Open MPI's mpirun forwards SIGUSR1 to every rank, where
    its own SIGTERM would kill them."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGUSR1 if mpi else signal.SIGTERM)
    try:
        child.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def read_new_rows(path: Path, seen, have: int):
    """(stamp, rows past the first ``have``) of metrics.csv when it changed since ``seen``; fit
    writes the file whole and atomically after every epoch, so a read never sees half a row."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return seen, []
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    if stamp == seen:
        return seen, []
    try:
        with open(path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, ValueError):
        return seen, []
    return stamp, rows[have:]
