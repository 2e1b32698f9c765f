"""Thread settings, applied before numpy and Numba are imported.

nettrain runs BLAS (matrix products) and Numba kernels (conv2d, maxpool2d) one after the other,
never at once, so both may use every core. Between two of its jobs a pool's threads either spin
(ready at once, but holding a core) or sleep (the core is free, but waking them takes time). On
a 2-core VM (measured with benchmarks/worker.py, LeNet and the MNIST MLP):
- Numba's sleeping ``workqueue`` threads woke too slowly for kernels of a few milliseconds: the
  second core was busy a quarter of the time, and LeNet trained at 5,300-6,100 samples/s. With
  the OpenMP layer, whose threads spin briefly, it trains at 8,500-9,200. So OpenMP comes first,
  then TBB (which also spins), then workqueue where neither runtime is installed.
- OpenBLAS threads spin 2**28 cycles (about 0.1 s) by default, through the Numba kernels that
  follow: LeNet fell to 2,650 samples/s. 2**4 cycles (sleep at once) slowed the MLP, whose
  products follow each other within microseconds, to 33,000-43,000 samples/s; 2**20 (about
  0.3 ms) gives both: 8,500 and 50,000. Hence BLAS_SPIN.
The thread count comes from ``--threads`` or ``NETTRAIN_THREADS`` (default: all cores) and sets
BLAS and Numba alike. The Numba kernels give the same bits for any thread count: they split work
by sample, never a sum (tests/test_threads.py). Settings the user made in the environment are
kept. (GNU OpenMP does not survive a fork: a program that forks after training, without exec,
should set NUMBA_THREADING_LAYER=workqueue.)
"""

from __future__ import annotations

import os
import sys

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_SPIN = ("OPENBLAS_THREAD_TIMEOUT", "20")  # spin 2**20 cycles after a product, then sleep
NUMBA_LAYERS = ("NUMBA_THREADING_LAYER_PRIORITY", "omp tbb workqueue")


def configure(threads: int | None = None) -> int:
    """Set the thread environment for this process; returns the thread count in force."""
    if threads is None:
        threads = int(os.environ.get("NETTRAIN_THREADS", 0)) or os.cpu_count() or 1
    os.environ["NETTRAIN_THREADS"] = str(threads)
    for name in BLAS_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.setdefault(*BLAS_SPIN)
    if "numba" in sys.modules:
        # Numba has read its environment already, and refuses a changed NUMBA_NUM_THREADS once
        # its pool runs: set the pool's active size instead.
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ.setdefault(*NUMBA_LAYERS)
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    return threads
