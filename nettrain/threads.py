"""Thread settings, applied before numpy and Numba are imported, and adapted to a busy machine.

nettrain's threaded work is its Numba kernels (conv2d, pooling, tanh) and its matrix products
(``nettrain.blas``: single-threaded BLAS calls on row blocks, shared out over threads). Both give
the same bits for any thread count: kernels split work by sample, never a sum, and a product's
row blocks depend on its shapes alone (tests/test_threads.py). So the thread count is free to
change in the middle of a run, and it does:

- ``--threads N`` / ``NETTRAIN_THREADS`` (default: every core this process may use) is the most
  threads nettrain uses;
- ``adapt()``, called between training steps and inference batches, measures twice a second how
  much CPU time *other* processes took (``/proc/stat`` less this process's own time) and uses the
  cores they leave free, at least one: two trainings started together on 2 cores each run on one
  thread instead of fighting over two, and a training beside a busy job gives the job its core.
  It lowers the count at once and raises it after two measurements agree.

Measured on a 2-core VM (AMD EPYC, ``configs/mnist-mlp.yaml``, 3 epochs, benchmarks/fair.py):
with OpenBLAS's own threads, which spin while they wait, two runs side by side each took 11-19
times as long as one alone; ``OMP_WAIT_POLICY=passive`` only brought that to 9 times, OpenBLAS
sleeping at once to 4 times; one thread each, 1.15 times. Numba uses its OpenMP threading layer
when the OpenMP runtime is installed (its threads spin briefly between kernels; the parked threads
of the ``workqueue`` layer woke too slowly for kernels of a few milliseconds: LeNet trained at
5,300-6,100 samples/s instead of 8,500-9,200), then TBB, then workqueue. Settings the user made in
the environment are kept. (GNU OpenMP does not survive a fork: a program that forks after
training, without exec, should set NUMBA_THREADING_LAYER=workqueue.)
"""

from __future__ import annotations

import os
import sys
import time

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
NUMBA_LAYERS = ("NUMBA_THREADING_LAYER_PRIORITY", "omp tbb workqueue")
WINDOW = 0.5  # seconds between two measurements of the other processes' CPU time

_state = {"max": 1, "active": 1, "adaptive": False, "last": None, "raise_votes": 0}


def configure(threads: int | None = None, adaptive: bool = True) -> int:
    """Set the thread environment for this process; returns the most threads it will use."""
    if threads is None:
        threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or cpu_count()
    os.environ["NETTRAIN_THREADS"] = str(threads)
    for name in BLAS_VARIABLES:  # each BLAS call is one thread: nettrain.blas shares them out
        os.environ[name] = "1"
    if "numba" in sys.modules:
        # Numba has read its environment already, and refuses a changed NUMBA_NUM_THREADS once
        # its pool runs: set the pool's active size instead.
        import numba

        threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    else:
        os.environ.setdefault(*NUMBA_LAYERS)
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    _state.update(max=threads, adaptive=adaptive and _readable(), last=None, raise_votes=0)
    _set_active(threads)
    return threads


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def active_threads() -> int:
    """Threads to use now: at most the configured count, fewer while other jobs hold cores."""
    return _state["active"]


def max_threads() -> int:
    return _state["max"]


def adaptive() -> bool:
    """Whether ``adapt`` measures the machine's load (Linux, more than one thread)."""
    return _state["adaptive"] and _state["max"] > 1


def adapt() -> int:
    """Measure the other processes' CPU use (at most every WINDOW seconds) and set the thread
    count to the cores they leave free; returns the count in force. Cheap to call every step."""
    if not _state["adaptive"] or _state["max"] <= 1:
        return _state["active"]
    now = time.monotonic()
    last = _state["last"]
    if last is not None and now - last[0] < WINDOW:
        return _state["active"]
    sample = (now, *_cpu_times())
    _state["last"] = sample
    if last is None:
        return _state["active"]
    wall = (sample[0] - last[0]) * os.sysconf("SC_CLK_TCK")
    others = max(0.0, (sample[1] - last[1]) - (sample[2] - last[2])) / wall  # in cores
    free = min(cpu_count(), os.cpu_count() or 1) - others
    target = max(1, min(_state["max"], int(free + 0.5)))
    if target < _state["active"]:
        _state["raise_votes"] = 0
        _set_active(target)
    elif target > _state["active"]:
        _state["raise_votes"] += 1
        if _state["raise_votes"] >= 2:
            _state["raise_votes"] = 0
            _set_active(target)
    else:
        _state["raise_votes"] = 0
        _set_active(target)  # Numba may have started since: give its pool the count too
    return _state["active"]


def _set_active(count: int) -> None:
    _state["active"] = count
    numba = sys.modules.get("numba")
    if numba is not None and numba.get_num_threads() != count:
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))


def _readable() -> bool:
    try:
        _cpu_times()
        return True
    except (OSError, ValueError, IndexError):
        return False


def _cpu_times() -> tuple[int, int]:
    """(busy clock ticks of the whole machine, clock ticks of this process), from /proc."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    with open("/proc/self/stat", "rb") as f:
        own = f.read().rsplit(b")", 1)[1].split()
    return user + nice + system + irq + softirq, int(own[11]) + int(own[12])


# Until configure() is called (nettrain used as a library, not through its CLI): every core.
_state.update(max=cpu_count(), active=cpu_count(), adaptive=_readable())
