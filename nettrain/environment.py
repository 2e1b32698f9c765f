"""What a run ran on: versions and thread counts, recorded next to the resolved config."""

from __future__ import annotations

import os
import platform
import sys

THREAD_SETTINGS = (
    "NETTRAIN_THREADS",
    "NUMBA_THREADING_LAYER",
    "NUMBA_THREADING_LAYER_PRIORITY",
    "OPENBLAS_THREAD_TIMEOUT",
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
        "numba_threads": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "threads_env": {
            k: os.environ[k]
            for k in sorted(os.environ)
            if k.endswith("_NUM_THREADS") or k in THREAD_SETTINGS
        },
    }
