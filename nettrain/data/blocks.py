"""Reading a table's columns with pyarrow, block by block, into typed numpy columns.

A file is read as a stream of record batches (a CSV in blocks of ``BLOCK`` bytes, parsed on
several threads; a .parquet file by row groups), and each block is turned at once into the
column's compact form, so that the text and arrow's own arrays of a block are freed before the
next one is read:

- ``number``: float32 with NaN for a missing field, or uint8 where every value of the column is an
  integer in 0..255 (pixels: the values are the same, the memory a quarter);
- ``category``: int32 codes into the column's vocabulary (its values in order of first
  appearance), -1 for a missing field;
- ``label``: the field as arrow read it (numbers as float64 with NaN, or text), kept whole.

Types are arrow's where not forced: a column whose first block held only integers and whose
later block holds 1.5 (or text) is read again as float64 (or text); a column arrow reads as
neither numbers nor text (true/false, dates) is read again as text. The missing-field tokens
are ``columns.MISSING``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nettrain.data.columns import MISSING

BLOCK = 1 << 24  # bytes of CSV text per block: 16 MiB


@dataclass
class RawColumn:
    """One column as read: ``kind`` number | category | label; ``values`` (N,); ``vocab`` the
    category values (codes index it); ``text`` whether arrow read text (for labels and the
    automatic number/category rule)."""

    kind: str
    values: np.ndarray
    vocab: list | None = None
    text: bool = False


class ConversionError(Exception):
    """A forced number column held a field that is not a number (the caller locates it)."""

    def __init__(self, col: int):
        super().__init__(col)
        self.col = col


def is_number_type(t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)


def read_columns(open_batches, wanted: dict[int, str], forced: dict[int, str]) -> list:
    """{col: RawColumn} of the columns ``wanted`` ({col: 'feature' | 'label'}).

    ``open_batches(cols, types)`` opens a stream of record batches of columns ``cols``, named
    by their index, with ``types`` {col: arrow type} forced; ``forced`` {col: 'number' | 'category'}
    the types settled before reading (by ``columns:`` or by a trained encoding)."""
    types = {c: pa.float64() if k == "number" else pa.string() for c, k in forced.items()}
    while True:
        try:
            return _read_once(open_batches, wanted, types)
        except _Retry as retry:
            if retry.col in forced and forced[retry.col] == "number":
                raise ConversionError(retry.col) from None
            types[retry.col] = retry.to


class _Retry(Exception):
    def __init__(self, col: int, to):
        super().__init__(col)
        self.col, self.to = col, to


_COLUMN = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")


def _read_once(open_batches, wanted, types) -> dict:
    parts: dict[int, list] = {c: [] for c in wanted}
    vocabs: dict[int, dict] = {}
    try:  # arrow converts the first block on opening the stream
        stream = open_batches(list(wanted), types)
        for c in wanted:  # neither numbers nor text (true/false, dates): read again as text
            t = stream.schema.field(str(c)).type
            if not is_number_type(t) and not is_text(t):
                raise _Retry(c, pa.string())
        for batch in stream:
            for c, role in wanted.items():
                parts[c].append(_block(batch.column(str(c)), role, vocabs.setdefault(c, {})))
    except pa.ArrowInvalid as exc:
        match = _COLUMN.search(str(exc))
        if match is None or int(match.group(1)) not in wanted:
            raise
        col, was = int(match.group(1)), match.group(2)
        to = pa.float64() if was.startswith(("int", "uint", "null")) else pa.string()
        raise _Retry(col, to) from None
    return {c: _joined(parts[c], wanted[c], vocabs.get(c)) for c in wanted}


def is_text(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _block(arr, role: str, vocab: dict):
    """A block of one column in its compact form: ('n', numbers) or ('c', codes) or ('t', text)."""
    if is_text(arr.type):
        if role == "label":
            return ("t", arr.to_numpy(zero_copy_only=False))
        enc = pc.dictionary_encode(arr)
        names = enc.dictionary.to_pylist()
        # a missing-field token held as text (a .parquet file, a DataFrame) is missing too
        codes = [-1 if s in MISSING else vocab.setdefault(s, len(vocab)) for s in names]
        lookup = np.array(codes + [-1], np.int32)
        idx = enc.indices.fill_null(len(names)).to_numpy(zero_copy_only=False)
        return ("c", lookup[idx])
    if pa.types.is_null(arr.type):
        return ("n", np.full(len(arr), np.nan, np.float32 if role != "label" else np.float64))
    v = arr.to_numpy(zero_copy_only=False)
    if role == "label":
        return ("n", v.astype(np.float64, copy=False))
    if v.dtype.kind in "iu" and len(v) and v.min() >= 0 and v.max() <= 255:
        return ("n", v.astype(np.uint8))
    return ("n", v.astype(np.float32))


def _joined(parts: list, role: str, vocab: dict | None) -> RawColumn:
    kinds = {k for k, _ in parts}
    arrays = [a for _, a in parts]
    if not arrays:
        empty = np.empty(0, np.float32)
        return RawColumn("label" if role == "label" else "number", empty)
    if role == "label":
        if "t" in kinds:
            values = np.concatenate([a.astype(object) for a in arrays])
            return RawColumn("label", values, text=True)
        return RawColumn("label", np.concatenate(arrays))
    if "c" in kinds:
        names = [None] * len(vocab)
        for name, code in vocab.items():
            names[code] = name
        return RawColumn("category", np.concatenate(arrays), names, text=True)
    if all(a.dtype == np.uint8 for a in arrays):
        return RawColumn("number", np.concatenate(arrays))
    return RawColumn("number", np.concatenate([a.astype(np.float32) for a in arrays]))
