"""A fast path for CSV tables of small whole numbers (pixels): a Numba kernel parses the digits
straight into the uint8 features, about three times arrow's pace on MNIST's 785 columns.

It is taken where the first block's types (blocks.narrow) make every feature column uint8 and
every label column int64, in a plain (not gzipped) file, each part of the file (spans.py) on a
thread of its own. It takes a field only as ASCII digits, a label's with a leading minus, 0..255
in a feature column, with no quote anywhere in the row; it skips blank lines and takes LF or CRLF
line ends, a last line without one. Any other field or row (empty, signed, 1.5, 300, a space, a
row of another length, a lone CR) hands the whole file to arrow's reader (blocks.read_columns),
which reads it as before: widened types, missing fields, errors named by line. So the fast path
gives the arrays arrow's reader gives, or none (tests/test_csv_integers.py reads every table
both ways).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from nettrain.data.blocks import on_threads
from nettrain.data.fillers import Block, RawColumn, join_blocks
from nettrain.data.spans import line_end

PIECE = 1 << 22  # bytes of a part read and parsed at a time
SKIP, FEATURE, LABEL = 0, 1, 2  # what a column is to the kernel


def read(table, wanted: dict, types: dict, forced: dict, rows: list) -> dict | None:
    """{col: RawColumn} as blocks.read_columns gives them, or None where the fast path does not
    take the file (module docstring); ``rows``: the room for each part of ``table.spans``."""
    features = [c for c, role in wanted.items() if role == "feature"]
    labels = [c for c, role in wanted.items() if role == "label"]
    if (
        not features
        or getattr(table, "spans", None) is None
        or "category" in forced.values()
        or any(types.get(c) != pa.uint8() for c in features)
        or any(types.get(c) != pa.int64() for c in labels)
    ):
        return None
    kind, slot = np.zeros(table.ncols, np.int8), np.zeros(table.ncols, np.int64)
    for role, cols in ((FEATURE, features), (LABEL, labels)):
        kind[cols], slot[cols] = role, np.arange(len(cols))
    blocks = Block.parts(features, [], np.uint8, rows)
    ys = [np.empty((r, len(labels)), np.int64) for r in rows]
    delimiter = ord(table.delimiter)

    def part(i: int) -> None:
        start, end = table.spans[i]
        if start == 0 and table.header:  # past the header, which must end in LF or CRLF
            start = line_end(table.path, 0, PIECE)
            if start - table.line not in (1, 2):  # a lone CR ends it: arrow's to read
                blocks[i].n = -1
                return
        blocks[i].n = _parse_span(table.path, start, end, delimiter, kind, slot, blocks[i].room,
                                  ys[i])  # fmt: skip

    on_threads(part, len(rows))
    if any(b.n < 0 for b in blocks):
        return None
    y = np.concatenate([y[: b.n] for y, b in zip(ys, blocks, strict=True)])
    out = join_blocks(blocks)
    for j, c in enumerate(labels):
        out[c] = RawColumn("label", y[:, j].astype(np.float64))
    return {c: out[c] for c in wanted}


def _parse_span(path, start, end, delimiter, kind, slot, x, y) -> int:
    """Rows of bytes ``start`` to ``end`` of the file parsed into x and y, a piece at a time
    (a piece holds at least one whole line); -1 where a field is not one the path takes."""
    buf = np.empty(PIECE, np.uint8)
    row, held, left = 0, 0, end - start
    with open(path, "rb") as f:
        f.seek(start)
        while left > 0 or held:
            got = f.readinto(memoryview(buf)[held : held + min(len(buf) - held, left)])
            left -= got
            n = held + got
            last = _last_line_end(buf, n) if left > 0 else n
            if last == 0:  # no whole line in the buffer: a larger one
                buf, held = _grown(buf, n), n
                continue
            row = _parse(buf, last, delimiter, kind, slot, x, y, row)
            if row < 0:
                return -1
            held = n - last
            buf[:held] = buf[last:n]
    return row


def _grown(buf: np.ndarray, n: int) -> np.ndarray:
    bigger = np.empty(2 * len(buf), np.uint8)
    bigger[:n] = buf[:n]
    return bigger


@njit(cache=True, nogil=True)
def _last_line_end(buf, n):
    """The offset just past the last LF in buf[:n], 0 if none."""
    i = n - 1
    while i >= 0 and buf[i] != 10:
        i -= 1
    return i + 1


@njit(cache=True, nogil=True)
def _parse(buf, end, delimiter, kind, slot, x, y, row):
    """Parse the lines of buf[:end] (the last may lack its line end) into x (rows, features)
    uint8 and y (rows, labels) int64 from ``row``: the rows filled after them, or -1 at the first
    field or row the fast path does not take (module docstring)."""
    i, ncols, room = 0, kind.shape[0], x.shape[0]
    while i < end:
        c = buf[i]
        if c == 10:  # a blank line
            i += 1
            continue
        if c == 13 and i + 1 < end and buf[i + 1] == 10:
            i += 2
            continue
        if row >= room:
            return -1
        col = 0
        while True:
            k = kind[col]
            if k == SKIP:  # anything but a quote, up to the delimiter or the line end
                while i < end and buf[i] != delimiter and buf[i] != 10 and buf[i] != 13:
                    if buf[i] == 34:
                        return -1
                    i += 1
            else:
                negative = k == LABEL and i < end and buf[i] == 45
                if negative:
                    i += 1
                v, digits = 0, 0
                while i < end and 48 <= buf[i] <= 57:
                    v = v * 10 + (np.int64(buf[i]) - 48)
                    digits += 1
                    i += 1
                    if digits > 18:
                        return -1
                if digits == 0 or (k == FEATURE and v > 255):
                    return -1
                if k == FEATURE:
                    x[row, slot[col]] = v
                else:
                    y[row, slot[col]] = -v if negative else v
            if i < end and buf[i] == delimiter:
                col += 1
                i += 1
                if col == ncols:
                    return -1
                continue
            if i + 1 < end and buf[i] == 13 and buf[i + 1] == 10:
                i += 1
            if i < end and buf[i] != 10:  # a lone CR, a space, a '.', a letter...
                return -1
            if col != ncols - 1:
                return -1
            i += 1
            row += 1
            break
    return row
