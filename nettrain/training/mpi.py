"""Data-parallel training over MPI, and its one-process stand-in (docs/mpi.md).

``world()`` is ``Single`` in a process started without an MPI launcher (mpi4py is then never
imported) and ``Mpi`` under ``mpirun -np N``; the training loop calls the same methods on both:

- ``block(n)``: this rank's rows of a batch of n (rank r: n*r//N to n*(r+1)//N, so shares
  differ by at most one row and a short last batch splits the same way);
- ``reduce_step(grads, loss, sums, stop)``: ONE allreduce per step of every gradient, the batch
  loss, the batch's metric sums and the stop flag, packed in one flat buffer. Each rank's
  gradients are already divided by the global batch size (the loss divides by it), so the sum is
  the global batch's mean gradient, the same on every rank, and every rank applies the same
  update. A NaN or Inf on any rank makes the sum non-finite on all of them, so all stop together;
  a stop request (Ctrl-C, SIGTERM) on any rank stops all at the same step.
- ``allsum(a)``: a float64 sum over ranks (synchronised batchnorm statistics, which each step
  passes to the layers as ``layer_sum``: nettrain.core.step.Step);
- ``score(net, ds, batch_size)``: validation and test scored in blocks of rows, one per rank,
  the outputs gathered in row order on every rank, so every rank decides best.npz and early
  stopping alike.
Only rank 0 prints and writes the run folder (nettrain.training.run_folder); the exit code of a
failed job is the command line's (nettrain.cli.base.failures).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from nettrain.assemble import score as score_all
from nettrain.core.errors import NettrainError, UserError
from nettrain.runtime import launcher

AGREE_SECONDS = 10.0  # how long a failed rank waits for the others to fail at the same point


class Single:
    """One process: every method is the identity of its MPI counterpart."""

    size, rank, root = 1, 0, True
    layer_sum = None  # the sum a training step gives layers of whole-batch statistics (Step.allsum)

    def block(self, n: int) -> slice:
        return slice(0, n)

    def reduce_step(self, grads: dict, loss: float, sums: dict, stop: bool):
        return loss, sums, stop

    def allsum(self, a: np.ndarray) -> np.ndarray:
        return a

    def any(self, flag: bool) -> bool:
        return bool(flag)

    def barrier(self) -> None:
        pass

    def on_root(self, job):
        return job()

    def score(self, net, ds, batch_size: int):
        """(mean loss, outputs (N, K)) of ``net`` on ``ds``."""
        loss, _, outputs = score_all(net, ds, batch_size)
        return loss, outputs


class Mpi(Single):
    """N processes started by an MPI launcher, over mpi4py's COMM_WORLD."""

    def __init__(self):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rendezvous = self.comm.Dup()  # where failed ranks meet, apart from training's
        self.size, self.rank = self.comm.Get_size(), self.comm.Get_rank()
        self.root = self.rank == 0
        self.layer_sum = self.allsum  # batchnorm's statistics are the whole batch's
        self.allreduce_seconds = 0.0
        sys.excepthook = self._abort_on_exception

    def _abort_on_exception(self, kind, value, traceback) -> None:
        """An exception nothing caught ends the whole job (the other ranks would wait for this
        one forever): the traceback, then MPI_Abort."""
        sys.__excepthook__(kind, value, traceback)
        sys.stderr.flush()
        self.comm.Abort(1)

    def block(self, n: int) -> slice:
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def reduce_step(self, grads: dict, loss: float, sums: dict, stop: bool):
        arrays = list(grads.values())
        dtype = arrays[0].dtype if arrays else np.dtype(np.float64)
        extra = [loss, float(stop)] + [v for k in sorted(sums) for v in np.atleast_1d(sums[k])]
        sizes = [a.size for a in arrays]
        flat = np.empty(sum(sizes) + len(extra), dtype)
        at = 0
        for a, size in zip(arrays, sizes, strict=True):
            flat[at : at + size] = a.ravel()
            at += size
        flat[at:] = extra
        started = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        self.allreduce_seconds += time.perf_counter() - started
        at = 0
        for a, size in zip(arrays, sizes, strict=True):
            a.reshape(-1)[...] = flat[at : at + size]
            at += size
        loss, stop, rest = float(flat[at]), bool(flat[at + 1] > 0), flat[at + 2 :]
        total = {}
        for k in sorted(sums):
            count = np.atleast_1d(sums[k]).size
            part, rest = rest[:count].astype(np.float64), rest[count:]
            total[k] = int(round(part[0])) if k == "correct" else part.tolist()
        return loss, total, stop

    def allsum(self, a: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(a, dtype=np.float64).copy()
        self.comm.Allreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM)
        return out

    def any(self, flag: bool) -> bool:
        return bool(self.comm.allreduce(int(bool(flag)), op=self.MPI.MAX))

    def barrier(self) -> None:
        self.comm.Barrier()

    def on_root(self, job):
        """Run ``job`` on rank 0 only; its result, or the UserError it raised, on every rank."""
        outcome = None
        if self.root:
            try:
                outcome = ("ok", job())
            except NettrainError as exc:
                outcome = ("error", (type(exc).__name__, exc.where, exc.what, exc.hint))
        kind, value = self.comm.bcast(outcome, root=0)
        if kind == "error":
            raise UserError(*value[1:])
        return value

    def score(self, net, ds, batch_size: int):
        rows = self.block(len(ds))
        part = None
        if rows.stop > rows.start:
            mine = ds.subset(np.arange(rows.start, rows.stop))
            loss, _, outputs = score_all(net, mine, batch_size)
            part = (loss * (rows.stop - rows.start), outputs)
        parts = [p for p in self.comm.allgather(part) if p is not None]
        return sum(p[0] for p in parts) / len(ds), np.concatenate([p[1] for p in parts])

    def agree(self, timeout: float | None = None) -> bool:
        """Whether every rank reaches this point (each failed the same way) within ``timeout``
        seconds (AGREE_SECONDS for None)."""
        request = self.rendezvous.Ibarrier()
        deadline = time.monotonic() + (AGREE_SECONDS if timeout is None else timeout)
        while time.monotonic() < deadline:
            if request.Test():
                return True
            time.sleep(0.01)
        return False

    def abort(self, code: int) -> None:
        self.comm.Abort(code)


_world = []


def world() -> Single:
    """This process's world: Mpi under an MPI launcher with more than one process, else Single."""
    if not _world:
        _world.append(Mpi() if launcher.under_mpi() else Single())
    return _world[0]
