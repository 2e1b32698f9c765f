"""Cutting a plain text file into parts at line ends, to be read side by side on threads.

A file of ``split`` bytes or more is cut into a part a thread (as many as nettrain uses, at most
one per ``split`` bytes), each cut just past the first line end after an even share of the
bytes, unless the file holds a quote character: a quoted field may hold a line end, and a part
starting inside one would read as other rows (arrow takes an unclosed quote at the end of its
input as the end of the field). Each part's rows are foreseen as its lines, so that the parts
fill one array with no gap unless lines are blank (fillers.py closes the gap).
"""

from __future__ import annotations

import io
import itertools
import os


def cut(path: str, threads: int, split: int, read: int) -> tuple[list[int], list[tuple]]:
    """(the lines of each part, counting a last line without a line end; each part's (start,
    end) bytes): one part where the file is small or quoted. ``read``: bytes read at a time."""
    size = os.path.getsize(path)
    count = max(1, min(threads, size // split))
    cuts = sorted({0, size, *(line_end(path, size * k // count, read) for k in range(1, count))})
    lines, quoted = [], False
    with open(path, "rb") as f:
        for start, end in itertools.pairwise(cuts):
            n, left = 0, end - start
            while left > 0 and (block := f.read(min(read, left))):
                n, left = n + block.count(b"\n"), left - len(block)
                quoted = quoted or b'"' in block
            lines.append(n)
    lines[-1] += 1  # a last line without a line end
    if quoted or len(lines) == 1:
        return [sum(lines)], [(0, size)]
    return lines, list(itertools.pairwise(cuts))


def line_end(path: str, at: int, read: int) -> int:
    """The offset just past the first line end at or after ``at`` (the file's size if none)."""
    with open(path, "rb") as f:
        f.seek(at)
        while block := f.read(read):
            if (i := block.find(b"\n")) >= 0:
                return f.tell() - len(block) + i + 1
    return os.path.getsize(path)


class Span(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file, as a stream for arrow."""

    def __init__(self, path: str, start: int, end: int):
        self.file = open(path, "rb")  # noqa: SIM115 (closed with the stream)
        self.file.seek(start)
        self.left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.file.readinto(memoryview(buffer)[: self.left]) if self.left > 0 else 0
        self.left -= n
        return n

    def close(self) -> None:
        self.file.close()
        super().close()
