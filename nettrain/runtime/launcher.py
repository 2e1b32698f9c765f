"""What the MPI launcher tells a process through its environment, read without importing MPI.

``mpirun``/``mpiexec`` of Open MPI set OMPI_COMM_WORLD_SIZE, _RANK and _LOCAL_SIZE; MPICH's and
Intel MPI's Hydra set PMI_SIZE, PMI_RANK and MPI_LOCALNRANKS. A process started without them is
one process: nettrain then never imports mpi4py. (docs/mpi.md, "How it
works".) A leaf module: threads.py reads it before numpy is imported.
"""

from __future__ import annotations

import os

SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
RANK = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
LOCAL_SIZE = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")


def _first(names, default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default


def world_size() -> int:
    """Processes the launcher started (1 without a launcher)."""
    return _first(SIZE, 1)


def rank() -> int:
    """This process's rank (0 without a launcher)."""
    return _first(RANK, 0)


def local_size() -> int:
    """Processes of the job on this machine (the world size when the launcher does not say)."""
    return _first(LOCAL_SIZE, world_size())


def under_mpi() -> bool:
    """Whether this process is one of several started by an MPI launcher."""
    return world_size() > 1
