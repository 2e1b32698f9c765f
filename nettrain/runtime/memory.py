"""Keeping freed memory in the process, for the next batch's arrays of the same sizes.

Every training step allocates arrays of the same sizes as the last one (a layer's output, a
max-pool's switches, a gradient) and frees the last step's. glibc's malloc hands arrays above a
threshold to the kernel as fresh pages (mmap) and returns them on free, so each step pays the page
faults of touching megabytes of new memory again: LeNet trained at 9,500 samples/s instead of
15,600 on a 2-core VM (``nettrain bench configs/mnist-lenet.yaml``). With the threshold at its
largest (32 MiB) and the heap trimmed only past 1 GiB of free memory, a freed array's pages are
reused by the next one. The cost is that memory freed by a finished training step stays with the
process (its peak is what it needed anyway).

pyarrow (the CSV and parquet readers) allocates with malloc too, not with its own allocator
(mimalloc), unless the user chose one (``ARROW_DEFAULT_MEMORY_POOL``): mimalloc kept some 25 MB
of a wide file's parse buffers after the read, and a read is followed by ``trim_freed_memory``,
which gives glibc's freed memory back once. The MNIST CSV's one-epoch fit (docs/csv.md) peaked
at 313-317 MB with mimalloc, 297 MB so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's upper limit on 64-bit systems
TRIM_THRESHOLD = 2**30

_done = False
_libc = None


def _glibc():
    """glibc (None where the C library is another: macOS, musl)."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc = libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else False
        except OSError:
            _libc = False
    return _libc or None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above (once per process), and have pyarrow allocate with it if it
    is not imported yet; False where there is no glibc."""
    global _done
    if _done:
        return True
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    libc = _glibc()
    if libc is None:  # not glibc (macOS, musl): its allocator does as it does
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done


def trim_freed_memory() -> None:
    """Give the memory freed so far back to the system, once (after reading a data file, whose
    buffers the training steps will not reuse); nothing where there is no glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
