"""Thread settings, applied before numpy and Numba are imported, and adapted to a busy machine.

nettrain runs BLAS (matrix products) and Numba kernels (conv2d, pooling, tanh, batchnorm) one
after the other, never at once, so both may use every core. Between two of its jobs a pool's
threads either spin (ready at once, but holding a core) or sleep (the core is free, but waking
them takes time). Alone on a 2-core VM (measured with ``nettrain bench``, LeNet and the MNIST MLP):
- Numba's sleeping ``workqueue`` threads woke too slowly for kernels of a few milliseconds (LeNet
  trained at 5,300-6,100 samples/s instead of 8,500-9,200; with today's kernels, and OpenMP's
  threads sleeping at once as below, 11,300-12,400 against OpenMP's 13,100-15,700), so the
  OpenMP layer comes first, then TBB, then workqueue;
- OpenBLAS threads spin 2**28 cycles by default, through the Numba kernels that follow (LeNet fell
  to 2,650 samples/s); 2**4 (sleep at once) slowed the MLP, whose products follow each other
  within microseconds; 2**20 (about 0.3 ms) serves both (BLAS_SPIN). Handing products to threads
  that sleep instead (one BLAS call per block of rows, on a Python thread pool) cost the MLP a
  quarter of its speed: a wake-up on this VM takes about 0.1 ms.
- the OpenMP threads, though, must not spin after a kernel: GNU OpenMP's default spin kept them on
  the cores that the BLAS product right after needed. Where kernels and products alternate every
  millisecond (a conv2d through im2col: lowering, product, output pass, a chunk of samples at a
  time) a layer of 64 filters on 8x8 images took 20-24 ms instead of 2.5-3.2 to evaluate, and
  the strided seed config (seed-softmax-multinomial.yaml) trained at 6-18k samples/s instead of
  22-51k. With GOMP_SPINCOUNT=0 (and KMP_BLOCKTIME=0 for Intel's OpenMP) they sleep at once:
  LeNet, the MLP and the CIFAR nets measured the same either way (OMP_SPIN).

Spinning threads are what a busy machine cannot afford: two trainings of the MNIST MLP started
together on 2 cores each took 11-19 times as long as one alone (LeNet: 6.4 times), as each run's
threads spun on the core the other one needed. ``OMP_WAIT_POLICY=passive`` only brought that to 9
times, OpenBLAS sleeping at once to 4 times; one thread each, 1.15 times. Hence ``adapt()``,
called before every forward pass: twice a second it measures the CPU time *other* processes took
(``/proc/stat`` less this process's own) and uses only the cores they leave free, at least one,
for BLAS and Numba alike. It lowers the count at once and raises it after two measurements agree.

A count given with ``--threads`` or ``NETTRAIN_THREADS`` is used as it is; by default nettrain
uses every core this process may use, fewer while other processes keep cores busy. The Numba
kernels give the same bits for any thread count (they split work by sample, never a sum:
tests/test_layer_table.py); OpenBLAS's products do not for some shapes (64x784 @ 784x256 rounds
differently on 1 and 2 threads), so a run during which ``adapt`` changed the count may differ in
the last bits from a rerun. ``changes()`` tells, and ``fit`` says so; a fixed count keeps runs
bit-identical. Settings the user made in the environment are kept. Under ``mpirun`` with several
ranks on a machine, each rank takes its share of the cores (``shared_cores``), fixed.
(GNU OpenMP does not survive a fork: a program that forks after training, without exec, should
set NUMBA_THREADING_LAYER=workqueue.)
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

from nettrain.runtime import launcher, vectors

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_SPIN = ("OPENBLAS_THREAD_TIMEOUT", "20")  # spin 2**20 cycles after a product, then sleep
NUMBA_LAYERS = ("NUMBA_THREADING_LAYER_PRIORITY", "omp tbb workqueue")
OMP_SPIN = (("GOMP_SPINCOUNT", "0"), ("KMP_BLOCKTIME", "0"))  # OpenMP threads sleep at once
# OpenBLAS's setter, under the names its builds export (numpy's wheels prefix it)
BLAS_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                "scipy_openblas_set_num_threads", "openblas_set_num_threads64_")  # fmt: skip
WINDOW = 0.5  # seconds between two measurements of the other processes' CPU time

_state = {"max": 1, "active": 1, "adaptive": False, "last": None, "votes": 0, "changes": 0}


def configure(threads: int | None = None, adapt_to_load: bool | None = None) -> int:
    """Set the thread environment for this process; returns the most threads it will use.

    A count given here or in NETTRAIN_THREADS is kept as it is; without one, every core this
    process may use, fewer while other processes keep cores busy (``adapt``). ``adapt_to_load``
    overrides that choice."""
    if threads is None:
        threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or None
    adaptive = threads is None if adapt_to_load is None else adapt_to_load
    if threads is None and launcher.local_size() > 1:  # mpirun: the cores shared by its ranks
        threads, adaptive = shared_cores(), bool(adapt_to_load)
    threads = threads or cpu_count()
    for name in BLAS_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.setdefault(*BLAS_SPIN)
    numba = sys.modules.get("numba")
    if numba is not None:
        # Numba has read its environment already, and refuses a changed NUMBA_NUM_THREADS once
        # its pool runs: set the pool's active size instead.
        threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    else:
        os.environ.setdefault(*NUMBA_LAYERS)
        for name, value in OMP_SPIN:
            os.environ.setdefault(name, value)
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
        vectors.use_full_width()  # 512-bit vectors on AVX-512 CPUs, before Numba compiles
    _state.update(max=threads, adaptive=adaptive and _readable(), last=None, votes=0, changes=0)
    _state["configured"] = True
    _set_active(threads)
    return threads


def configured() -> bool:
    """Whether ``configure`` ran in this process (the CLI calls it first; the Python API when
    nothing did)."""
    return _state.get("configured", False)


def shared_cores() -> int:
    """This rank's share of the machine's cores when an MPI launcher started several ranks on
    it (never more than the cores it is bound to); a fixed count, since the other ranks' load is
    expected, not a reason to give way."""
    return max(1, min(cpu_count(), (os.cpu_count() or 1) // launcher.local_size()))


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def active_threads() -> int:
    """Threads in use now: at most the configured count, fewer while other jobs hold cores."""
    return _state["active"]


def max_threads() -> int:
    return _state["max"]


def adaptive() -> bool:
    """Whether ``adapt`` follows the machine's load (Linux, more than one thread)."""
    return _state["adaptive"] and _state["max"] > 1


def changes() -> int:
    """How many times ``adapt`` changed the thread count since ``configure``."""
    return _state["changes"]


def adapt() -> int:
    """Measure the other processes' CPU use (at most every WINDOW seconds) and set the thread
    count to the cores they leave free; returns the count in force. Cheap to call every step."""
    if not adaptive():
        return _state["active"]
    now = time.monotonic()
    last = _state["last"]
    if last is not None and now - last[0] < WINDOW:
        return _state["active"]
    sample = (now, *_cpu_times())
    _state["last"] = sample
    if last is None:
        return _state["active"]
    ticks = (sample[0] - last[0]) * os.sysconf("SC_CLK_TCK")
    others = max(0.0, (sample[1] - last[1]) - (sample[2] - last[2])) / ticks  # in cores
    free = min(cpu_count(), os.cpu_count() or 1) - others
    target = max(1, min(_state["max"], int(free + 0.5)))
    votes = _state["votes"] + 1 if target > _state["active"] else 0
    _state["votes"] = votes
    if target < _state["active"] or votes >= 2:
        _state["votes"] = 0
        _state["changes"] += 1
        _set_active(target)
    return _state["active"]


def _set_active(count: int) -> None:
    _state["active"] = count
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    if "numpy" in sys.modules:
        for setter in _blas_setters():
            setter(count)


_setters: list | None = None


def _blas_setters() -> list:
    """The thread-count setters of the OpenBLAS libraries loaded in this process (found once)."""
    global _setters
    if _setters is None:
        _setters = []
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower()})
        except OSError:  # not Linux: the count set before numpy was imported stays
            paths = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for name in BLAS_SETTERS:
                if hasattr(lib, name):
                    setter = getattr(lib, name)
                    setter.argtypes = [ctypes.c_int]
                    setter.restype = None
                    _setters.append(setter)
                    break
    return _setters


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
