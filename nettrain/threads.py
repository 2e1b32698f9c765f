"""Thread settings, applied before numpy and Numba are imported.

nettrain runs BLAS (matrix products) and Numba kernels (conv2d, maxpool2d) one after the other,
never at once, so both may use every core; what must not happen is one pool spinning while the
other works. Numba's ``workqueue`` layer parks its threads when a kernel ends (the OpenMP layer
keeps them spinning, which halved throughput on 2 cores), so it is the default here, and OpenBLAS
is told to park its threads at once (BLAS_SPIN). The thread
count comes from ``--threads`` or ``NETTRAIN_THREADS`` (default: all cores) and sets BLAS and
Numba alike. Same thread count, same results: kernels split work by sample, never by sum.
"""

from __future__ import annotations

import os
import sys

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# OpenBLAS worker threads spin for 2**n cycles after each product before they sleep; the
# default (n = 28, about 0.1 s) keeps them spinning through the Numba kernels that follow,
# taking their cores (LeNet trained about 15% slower). 2**4 cycles: they sleep at once.
BLAS_SPIN = ("OPENBLAS_THREAD_TIMEOUT", "4")


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
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    return threads
