"""The numpy arrays a table's columns are filled into, record batch by record batch (blocks.py
reads the batches), and the joining of a file's parts read side by side on threads.

A part of a file fills its own fillers. Number features of one type share one (rows, columns)
array (Block): the parts' Blocks are views of one array, part i's rows after part i-1's room,
so that the joined columns need no copy where each part held as many rows as foreseen (a line a
row); a part with blank lines leaves a gap that the join closes. Every other column (a label, a
category, a number feature of its own) fills a Filling per part, joined end to end, a category's
codes mapped into the first part's vocabulary grown in file order: the join gives what one
reader would have given.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate, pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nettrain.data.columns import MISSING


@dataclass
class RawColumn:
    """One column as read: ``kind`` number | category | label; ``values`` (N,); ``vocab`` the
    category values (codes index it); ``text`` whether the field was text; ``block`` (the
    (N, K) array, the column's index in it) where ``values`` is a column of one."""

    kind: str
    values: np.ndarray
    vocab: list | None = None
    text: bool = False
    block: tuple | None = None


class Retry(Exception):
    """Column ``col`` must be read again as arrow type ``to``: a later batch did not fit."""

    def __init__(self, col: int, to):
        super().__init__(col)
        self.col, self.to = col, to


def is_text(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)


class Block:
    """Number feature columns ``cols`` of one numpy type (at ``idx`` in a batch) filled
    together into one (rows, columns) array, each batch's columns copied in at once: the
    layout of the encoded features, which a table of pixels then is as it stands
    (Encoding.encode). ``span``: the rows of ``whole`` (the parts' shared array) to fill, or
    no ``whole``: an array grown as needed (a .gz file)."""

    def __init__(self, cols: list, idx: list, kind, whole=None, span=(0, 0)):
        self.cols, self.idx, self.kind, self.whole, self.at = cols, idx, kind, whole, span[0]
        self.room = whole[span[0] : span[1]] if whole is not None else None
        self.values = self.room if whole is not None else np.empty((1024, len(cols)), kind)
        self.n = 0

    @classmethod
    def parts(cls, cols: list, idx: list, kind, rows: list) -> list[Block]:
        """One Block for each part of a file (``rows``: room for each, None where unknown),
        the parts' rooms spans of one array."""
        if None in rows:
            return [cls(cols, idx, kind) for _ in rows]
        whole = np.empty((sum(rows), len(cols)), kind)
        return [cls(cols, idx, kind, whole, s) for s in pairwise(accumulate(rows, initial=0))]

    def add(self, batch) -> None:
        if not batch.num_rows:
            return
        part = batch.select(self.idx)
        v = _matrix(part, self.kind == np.float32)
        if v is None:  # a missing field in a uint8 column: read again in float32 (NaN)
            col = next(c for c, a in zip(self.cols, part.columns, strict=True) if a.null_count)
            raise Retry(col, pa.float32())
        end = self.n + len(v)
        if end > len(self.values):  # more rows than foreseen (a .gz file): half as many more
            grown = np.empty((max(end, len(self.values) * 3 // 2), len(self.cols)), self.kind)
            grown[: self.n] = self.values[: self.n]
            self.values = grown
        self.values[self.n : end] = v
        self.n = end


def join_blocks(parts: list[Block]) -> dict:
    """{col: RawColumn} of the parts' Blocks, in file order, as one (rows, columns) array."""
    n = sum(p.n for p in parts)
    if len(parts) == 1:
        values, room = parts[0].values[:n], len(parts[0].values)
    elif all(p.values is p.room for p in parts):  # one array: gaps closed, rows moved up
        whole, at = parts[0].whole, 0
        for p in parts:
            if p.at != at:
                whole[at : at + p.n] = whole[p.at : p.at + p.n]
            at += p.n
        values, room = whole[:n], len(whole)
    else:  # a part held more rows than lines (lone CRs end lines too): copied together
        values = np.concatenate([p.values[: p.n] for p in parts])
        room = n
    if room - n > n // 8:  # far fewer rows than room: trimmed
        values = values.copy()
    for p in parts:
        p.values = p.room = p.whole = None
    return {c: RawColumn("number", values[:, i], block=(values, i))
            for i, c in enumerate(parts[0].cols)}  # fmt: skip


def _matrix(part, missing: bool) -> np.ndarray | None:
    """(rows, columns) of a batch's number columns of one type, NaN for a missing field where
    ``missing`` (float32), None where a field is missing and may not be (uint8)."""
    try:  # every column in one copy (pyarrow 16 and later)
        return np.asarray(part.to_tensor(null_to_nan=missing, row_major=False))
    except pa.ArrowTypeError:
        return None


def _numbers(arr, dtype) -> np.ndarray:
    """A number column's values in ``dtype``, NaN where missing. Through ``to_tensor``, as
    _matrix: arrow's ``to_numpy`` and Python scalars import pandas, 0.15 s of every start."""
    if pa.types.is_null(arr.type):
        return np.full(len(arr), np.nan, dtype)
    batch = pa.RecordBatch.from_arrays([arr], ["v"])
    v = np.asarray(batch.to_tensor(null_to_nan=arr.null_count > 0))
    return v[:, 0].astype(dtype, copy=False)


class Filling:
    """One column filled batch by batch into its final numpy array (its compact form,
    blocks.py's docstring), with room for ``rows`` (None: grown as needed); a category column's
    codes index one vocabulary grown batch by batch."""

    def __init__(self, role: str, rows: int | None):
        self.role, self.rows, self.type, self.vocab = role, rows, None, {}
        self.values, self.n = None, 0

    def add(self, arr) -> None:
        self.type = arr.type
        v = self._numpy(arr)
        end = self.n + len(v)
        if self.values is None:
            self.values = np.empty(max(self.rows or 0, len(v)), v.dtype)
        if end > len(self.values):  # more rows than foreseen (a .gz file): half as many more
            grown = np.empty(max(end, len(self.values) * 3 // 2), v.dtype)
            grown[: self.n] = self.values[: self.n]
            self.values = grown
        self.values[self.n : end] = v
        self.n = end

    def _numpy(self, arr) -> np.ndarray:
        if self.role == "label":
            if is_text(arr.type):
                return np.array(pc.cast(arr, pa.string()).to_pylist(), object)
            return _numbers(arr, np.float64)
        if is_text(arr.type):
            return _codes(arr, self.vocab)
        return _numbers(arr, np.uint8 if arr.type == pa.uint8() else np.float32)

    def column(self) -> RawColumn:
        values = self.values[: self.n]
        if len(self.values) - self.n > self.n // 8:  # far fewer rows than room: trimmed
            values = values.copy()
        self.values = None
        if self.role == "label":
            return RawColumn("label", values, text=is_text(self.type))
        if is_text(self.type):
            names = [None] * len(self.vocab)
            for name, code in self.vocab.items():
                names[code] = name
            return RawColumn("category", values, names, text=True)
        return RawColumn("number", values)


def join_fillings(parts: list[Filling]) -> RawColumn:
    """One column of the parts' Fillings of it, in file order."""
    cols = [p.column() for p in parts]
    first = cols[0]
    if len(cols) == 1:
        return first
    if first.kind != "category":
        return RawColumn(first.kind, np.concatenate([c.values for c in cols]), text=first.text)
    vocab = {name: code for code, name in enumerate(first.vocab)}
    codes = [first.values]
    for col in cols[1:]:  # -1 (missing) stays -1: the lookup's last entry
        lookup = [vocab.setdefault(name, len(vocab)) for name in col.vocab]
        codes.append(np.array(lookup + [-1], np.int32)[col.values])
    return RawColumn("category", np.concatenate(codes), list(vocab), text=True)


def _codes(arr, vocab: dict) -> np.ndarray:
    """A chunk's int32 codes into ``vocab`` (grown with its new values), -1 where missing."""
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    names = arr.dictionary.to_pylist()
    # a missing-field token held as text (a .parquet file, a DataFrame) is missing too
    codes = [-1 if s in MISSING else vocab.setdefault(s, len(vocab)) for s in names]
    return np.array(codes + [-1], np.int32)[_indices(arr.indices)]


def _indices(indices) -> np.ndarray:
    """A dictionary column's indices, -1 where missing; int32 ones (arrow's own, and the CSV
    reader's) straight from arrow's buffers."""
    if indices.type != pa.int32():
        return np.nan_to_num(_numbers(indices, np.float64), nan=-1).astype(np.intp)
    validity, values = indices.buffers()
    at, n = indices.offset, len(indices)
    v = np.frombuffer(values, np.int32, n, at * 4)
    if not indices.null_count:
        return v
    valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")[at : at + n]
    return np.where(valid.astype(bool), v, -1)
