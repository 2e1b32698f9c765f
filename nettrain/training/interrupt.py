"""Stopping a training cleanly: Ctrl-C or SIGTERM sets a flag that the loop checks after each
batch; it then writes a checkpoint and raises ``Interrupted`` (exit code 130). Under MPI the flag
of every rank travels with the step's allreduce, so a signal to any rank stops all of them at the
same step."""

from __future__ import annotations

import signal
import sys
import threading

from nettrain.runtime import launcher


class Interrupted(Exception):
    """Training stopped by Ctrl-C / SIGTERM after writing ``checkpoint`` (exit code 130; None
    when no run folder is written); ``fitted``: the fit as it stands (nettrain.training.fit)."""

    exit_code = 130

    def __init__(self, checkpoint, fitted=None):
        super().__init__(checkpoint)
        self.checkpoint, self.fitted = checkpoint, fitted


def stop_signals() -> tuple:
    """SIGINT and SIGTERM; under an MPI launcher also SIGUSR1, which Open MPI's mpirun forwards
    to every rank (its own Ctrl-C and SIGTERM kill the ranks a fraction of a second later)."""
    extra = (signal.SIGUSR1,) if launcher.under_mpi() and hasattr(signal, "SIGUSR1") else ()
    return (signal.SIGINT, signal.SIGTERM, *extra)


class StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks after each batch; a second signal aborts."""

    def __init__(self):
        self.raised = False
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only (a training run in a worker thread)
        for sig in stop_signals():
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True
        print(
            "\nstopping after this batch (press Ctrl-C again to abort without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
