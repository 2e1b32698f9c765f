"""Keeping freed memory in the process, for the next batch's arrays of the same sizes.

Every training step allocates arrays of the same sizes as the last one (a layer's output, a
max-pool's switches, a gradient) and frees the last step's. glibc's malloc hands arrays above a
threshold to the kernel as fresh pages (mmap) and returns them on free, so each step pays the page
faults of touching megabytes of new memory again: LeNet trained at 9,500 samples/s instead of
15,600 on a 2-core VM (``nettrain bench configs/mnist-lenet.yaml``). With the threshold at its
largest (32 MiB) and the heap trimmed only past 1 GiB of free memory, a freed array's pages are
reused by the next one. The cost is that memory freed by a finished training step stays with the
process (its peak is what it needed anyway).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's upper limit on 64-bit systems
TRIM_THRESHOLD = 2**30

_done = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above (once per process); False where there is no glibc."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator does as it does
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done
