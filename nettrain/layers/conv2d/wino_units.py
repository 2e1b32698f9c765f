"""How Winograd's convolutions (winograd.py's F(2x2, 3x3), wino4.py's F(4x4, 3x3)) cut a batch
into units of a few samples, a thread a unit, and the scratch arrays a unit's work lives in."""

from __future__ import annotations

import threading

import numpy as np

from nettrain.layers.conv2d.wino_transforms import CHUNK, ROWS

# No fewer units than this a batch, where samples allow: work for the threads.
MIN_UNITS = 8
# Scratch arrays (V and M, a unit's each per thread) by shape, dtype and calling thread (`tune
# --jobs` trains nets side by side on Python threads), kept between calls: allocated afresh,
# their pages came from the system each time (page faults on every touch).
_SCRATCH: dict = {}


def units(N: int, th: int, tw: int, columns: int) -> tuple[int, int]:
    """(samples a unit, chunks a unit) for th x tw tiles a sample and units of at most
    ``columns`` tile columns (or one sample): the fewest columns wasted (rounding up to whole
    chunks), then the fewest samples. It depends on the shapes alone, so that sums over units
    do too."""
    S = th * (tw + 1)
    best = None
    for g in range(1, max(1, min(-(-N // MIN_UNITS), columns // S)) + 1):
        chunks = -(-g * S // CHUNK)
        waste = 1 - g * S / (chunks * CHUNK)
        if best is None or waste < best[0] - 1e-9:
            best = (waste, g, chunks)
    return best[1], best[2]


def scratch(slots, chunks, C, F, dtype, k=16, rows=ROWS):
    """A unit's V (chunks, C, rows*CHUNK) and M (chunks, k, F + 1, CHUNK) or dM (chunks, F,
    rows*CHUNK) for each of ``slots`` threads (slot s runs units s, s + slots, ...); k values a
    tile (16 for F(2x2), 36 for F(4x4)). M's rows of filters are one longer than F: with F a
    multiple of 32, the 16 rows of one filter that the output transform reads would lie 4 kB
    apart (float32), in one set of the L1 cache, and it took twice as long (V's and dM's blocks
    alike: wino_transforms.ROWS)."""
    key = (threading.get_ident(), slots, chunks, C, F, np.dtype(dtype).str, k)
    if key not in _SCRATCH:
        size = chunks * max(k * (F + 1), F * rows) * CHUNK  # M's or dM's
        _SCRATCH[key] = (np.empty((slots, chunks, C, rows * CHUNK), dtype),
                         np.empty((slots, size), dtype))  # fmt: skip
    return _SCRATCH[key]
