"""Reading a table's columns with pyarrow into compact, typed numpy columns.

Arrow parses a CSV on several threads straight into the narrow types chosen from a first small
block: a number feature into float32 (uint8 where that block holds only integers in 0..255, as
pixels do: the values are the same, the memory a quarter), a text feature into dictionary codes
(int32) with its values; a label column as arrow reads it. Each chunk is then turned into the
column's form:

- ``number``: float32 with NaN for a missing field, or uint8 (never missing);
- ``category``: int32 codes into the column's vocabulary (its values in order of first
  appearance), -1 for a missing field;
- ``label``: numbers as float64 with NaN, or text (object array, None where missing).

A type that a later chunk does not fit (300 after uint8 pixels, 1.5 after integers, a word after
numbers) is widened and the file read again: uint8 to float32, numbers to text. A column arrow
reads as neither numbers nor text (true/false, dates) is read as text. Missing-field tokens are
``columns.MISSING``, as text in a .parquet file or a DataFrame too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nettrain.data.columns import MISSING

BLOCK = 1 << 18  # bytes of the first block, from which a CSV's column types are chosen
TEXT = pa.dictionary(pa.int32(), pa.string())


@dataclass
class RawColumn:
    """One column as read: ``kind`` number | category | label; ``values`` (N,); ``vocab`` the
    category values (codes index it); ``text`` whether the field was text."""

    kind: str
    values: np.ndarray
    vocab: list | None = None
    text: bool = False


class ConversionError(Exception):
    """A column forced to numbers held a field that is not a number (the caller locates it)."""

    def __init__(self, col: int):
        super().__init__(col)
        self.col = col


def is_number_type(t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)


def is_text(t) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)


def narrow(t, first=None, label: bool = False):
    """The type to read a feature column in (a label column: ``label``), from arrow's guess
    ``t`` on a first block (and that block's values ``first``). Every column gets one: arrow
    keeps much more memory while it infers a type over a whole file."""
    if label:
        if pa.types.is_integer(t):
            return pa.int64()
        return pa.float64() if is_number_type(t) else pa.string()
    if pa.types.is_integer(t) and first is not None and len(first) and first.null_count == 0:
        lo, hi = pc.min(first).as_py(), pc.max(first).as_py()
        if lo is not None and lo >= 0 and hi <= 255:
            return pa.uint8()
    return pa.float32() if is_number_type(t) else TEXT


def read_columns(read, wanted: dict[int, str], types: dict, forced: dict[int, str]) -> dict:
    """{col: RawColumn} of the columns ``wanted`` ({col: 'feature' | 'label'}).

    ``read(cols, types)`` gives a pyarrow Table of columns ``cols`` named by their index, in
    ``types`` {col: arrow type}; ``types`` the chosen ones, ``forced`` {col:
    'number' | 'category'} the columns whose type is settled (by ``columns:`` or a trained
    encoding): one of them that will not read as numbers is a ConversionError."""
    types = dict(types)
    for c, kind in forced.items():
        if kind == "category":
            types[c] = TEXT
        elif types.get(c) != pa.uint8():
            types[c] = pa.float32()
    while True:
        try:
            return _read_once(read, wanted, types)
        except _Retry as retry:
            if forced.get(retry.col) == "number" and retry.to == TEXT:
                raise ConversionError(retry.col) from None
            types[retry.col] = retry.to


class _Retry(Exception):
    def __init__(self, col: int, to):
        super().__init__(col)
        self.col, self.to = col, to


_COLUMN = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")


def _read_once(read, wanted: dict, types: dict) -> dict:
    try:
        table = read(list(wanted), types)
    except pa.ArrowInvalid as exc:
        match = _COLUMN.search(str(exc))
        if match is None or int(match.group(1)) not in wanted:
            raise
        col, was = int(match.group(1)), match.group(2)
        if wanted[col] == "label":
            to = pa.float64() if was.startswith(("int", "uint", "null")) else pa.string()
        else:
            to = pa.float32() if was.startswith(("uint8", "int", "null")) else TEXT
        raise _Retry(col, to) from None
    for c in wanted:  # neither numbers nor text (true/false, dates): read as text
        t = table.schema.field(str(c)).type
        if not is_number_type(t) and not is_text(t):
            raise _Retry(c, TEXT if wanted[c] == "feature" else pa.string())
    out = {}
    for c, role in wanted.items():  # each column's arrow memory freed once it is converted
        chunks = table.column(str(c))
        table = table.remove_column(table.schema.get_field_index(str(c)))
        out[c] = _column(chunks, role)
        del chunks
    pa.default_memory_pool().release_unused()
    return out


def _column(chunks, role: str) -> RawColumn:
    """One column (a pyarrow ChunkedArray) in its compact form (module docstring)."""
    if role == "label":
        if is_text(chunks.type):
            text = pc.cast(chunks, pa.string()).to_numpy(zero_copy_only=False)
            return RawColumn("label", text.astype(object), text=True)
        return RawColumn("label", chunks.to_numpy().astype(np.float64, copy=False))
    if is_text(chunks.type):
        vocab: dict = {}
        parts = [_codes(arr, vocab) for arr in chunks.chunks]
        names = [None] * len(vocab)
        for name, code in vocab.items():
            names[code] = name
        codes = np.concatenate(parts) if parts else np.empty(0, np.int32)
        return RawColumn("category", codes, names, text=True)
    if pa.types.is_null(chunks.type):
        return RawColumn("number", np.full(len(chunks), np.nan, np.float32))
    if chunks.null_count:  # NaN for a missing field (arrow's own conversion of nulls is slow)
        chunks = pc.fill_null(pc.cast(chunks, pa.float32()), np.float32(np.nan))
    v = chunks.to_numpy()
    return RawColumn("number", v if v.dtype == np.uint8 else v.astype(np.float32, copy=False))


def _codes(arr, vocab: dict) -> np.ndarray:
    """A chunk's int32 codes into ``vocab`` (grown with its new values), -1 where missing."""
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    names = arr.dictionary.to_pylist()
    # a missing-field token held as text (a .parquet file, a DataFrame) is missing too
    codes = [-1 if s in MISSING else vocab.setdefault(s, len(vocab)) for s in names]
    lookup = np.array(codes + [-1], np.int32)
    return lookup[arr.indices.fill_null(len(names)).to_numpy(zero_copy_only=False)]
