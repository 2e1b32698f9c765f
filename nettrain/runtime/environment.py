"""What a run ran on: versions and thread counts, recorded next to the resolved config."""

from __future__ import annotations

import os
import platform
import sys

from nettrain.runtime import launcher, threads

THREAD_SETTINGS = (
    "NETTRAIN_THREADS",
    "NUMBA_THREADING_LAYER",
    "NUMBA_THREADING_LAYER_PRIORITY",
)


def describe() -> dict:
    import numba
    import numpy

    from nettrain import __version__

    return {
        "nettrain": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "threads": threads.max_threads(),  # the most; fewer while other jobs hold cores
        "threads_adapt_to_load": threads.adaptive(),
        "cpu_count": os.cpu_count(),
        "mpi_ranks": launcher.world_size(),  # processes training together (mpirun -np N)
        "mpi_ranks_on_machine": launcher.local_size(),
        "platform": platform.platform(),
        "threads_env": {
            k: os.environ[k]
            for k in sorted(os.environ)
            if k.endswith("_NUM_THREADS") or k in THREAD_SETTINGS
        },
    }
