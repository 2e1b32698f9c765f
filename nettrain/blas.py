"""Matrix products whose bits do not depend on the thread count.

``matmul(a, b, out)``: a (M, K) @ b (K, N) -> (M, N). BLAS runs single-threaded in nettrain
(``threads.configure``). A large product is cut into blocks of output rows or columns that depend
on the shapes alone; each block is one single-threaded BLAS call, and the blocks are shared out
over the threads in force. A block's result is the same whichever thread computes it, so the
product gives the same bits with one thread or eight, and when ``threads.adapt`` changes the count
in the middle of a run because another job took a core. (OpenBLAS's own threading gives other bits
for 1 and 2 threads on shapes such as 64x784 @ 784x256, and its waiting threads spin: two
trainings side by side each ran 10-19 times slower than alone.)
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from nettrain.threads import active_threads

# A block does at least this many floating-point operations (2 per multiply-add) and spans at least
# MIN_SPAN rows or columns: a smaller one costs more to hand to a thread (tens of microseconds, and
# one more packing of the other operand) than it saves.
MIN_BLOCK_FLOPS = 8_000_000
MIN_SPAN = 32
MAX_BLOCKS = 16

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def blocks(m: int, k: int, n: int) -> tuple[int, list[tuple[int, int]]]:
    """(axis, [(start, stop), ...]): how an (m, k) @ (k, n) product is cut, along the output's
    rows (axis 0) or columns (axis 1), whichever is longer. A function of the shapes alone, never
    of the thread count; the sum over k is never cut."""
    axis, span = (0, m) if m >= n else (1, n)
    count = min(MAX_BLOCKS, span // MIN_SPAN, (2 * m * k * n) // MIN_BLOCK_FLOPS)
    if count <= 1:
        return axis, [(0, span)]
    # Edges on multiples of 16, so that every block but the last is whole vector registers wide.
    edges = [min(span, (span * i // count + 8) // 16 * 16) for i in range(count)] + [span]
    return axis, list(zip(edges[:-1], edges[1:], strict=True))


def _workers(count: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < count:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = ThreadPoolExecutor(count, thread_name_prefix="nettrain-blas")
            _pool_size = count
        return _pool


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a (M, K) @ b (K, N) -> (M, N), written into ``out`` when given."""
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=np.result_type(a, b))
    axis, parts = blocks(m, k, n)

    def product(start, stop):
        if axis == 0:
            np.matmul(a[start:stop], b, out=out[start:stop])
        else:
            np.matmul(a, b[:, start:stop], out=out[:, start:stop])

    threads = min(active_threads(), len(parts))
    if threads <= 1:
        for start, stop in parts:
            product(start, stop)
        return out
    todo = iter(parts)  # shared: next() on a list iterator is atomic under the GIL

    def drain():
        for start, stop in todo:
            product(start, stop)

    pool = _workers(threads - 1)
    helpers = [pool.submit(drain) for _ in range(threads - 1)]
    drain()
    for helper in helpers:
        helper.result()
    return out
