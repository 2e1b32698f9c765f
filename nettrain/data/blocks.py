"""Reading a table's columns with pyarrow into compact, typed numpy columns.

Arrow parses a CSV block by block (csv.py's READ bytes at a time) straight into the narrow
types chosen from a first small block: a number feature into float32 (uint8 where that block
holds only integers in 0..255, as pixels do: the values are the same, the memory a quarter), a
text feature into dictionary codes (int32) with its values; a label column as arrow reads it.
Each block's columns are copied into their final numpy arrays (allocated once for the file's
line count; grown for a .gz file) and the block is dropped, so that arrow never holds the whole
file (a .parquet file comes the same way, in batches of rows). The final forms:

- ``number``: float32 with NaN for a missing field, or uint8 (never missing);
- ``category``: int32 codes into the column's vocabulary (its values in order of first
  appearance), -1 for a missing field;
- ``label``: numbers as float64 with NaN, or text (object array, None where missing).

A type that a later block does not fit (300 after uint8 pixels, 1.5 after integers, a word after
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
from nettrain.runtime.memory import trim_freed_memory

BLOCK = 1 << 18  # bytes of the first block, from which a CSV's column types are chosen
TEXT = pa.dictionary(pa.int32(), pa.string())


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


def read_columns(read, wanted: dict[int, str], types: dict, forced: dict[int, str],
                 rows: int | None = None) -> dict:  # fmt: skip
    """{col: RawColumn} of the columns ``wanted`` ({col: 'feature' | 'label'}); ``rows``: at
    least as many as the table's rows, if known (each column's array is then allocated once).

    ``read(cols, types)`` gives the record batches (an iterable) of columns ``cols`` named by
    their index, in ``types`` {col: arrow type}; ``types`` the chosen ones, ``forced`` {col:
    'number' | 'category'} the columns whose type is settled (by ``columns:`` or a trained
    encoding): one of them that will not read as numbers is a ConversionError."""
    try:
        return _read_typed(read, wanted, dict(types), forced, rows)
    finally:  # the blocks' memory back to the system: the training steps will not reuse it
        pa.default_memory_pool().release_unused()
        trim_freed_memory()


def _read_typed(read, wanted, types, forced, rows):
    for c, kind in forced.items():
        if kind == "category":
            types[c] = TEXT
        elif types.get(c) != pa.uint8():
            types[c] = pa.float32()
    while True:
        try:
            return _read_once(read, wanted, types, rows)
        except _Retry as retry:
            if forced.get(retry.col) == "number" and retry.to == TEXT:
                raise ConversionError(retry.col) from None
            types[retry.col] = retry.to


class _Retry(Exception):
    def __init__(self, col: int, to):
        super().__init__(col)
        self.col, self.to = col, to


_COLUMN = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")


def _read_once(read, wanted: dict, types: dict, rows: int | None) -> dict:
    """One pass over the file, a batch (a block of it) at a time: each batch's columns are
    copied into their final arrays and the batch dropped, so that arrow never holds the whole
    file. Number features of one type are copied together (_Block), the others one by one."""
    order = list(wanted)
    at = {c: i for i, c in enumerate(order)}  # a column's place in a batch
    blocks = [_Block(cols, [at[c] for c in cols], kind, rows)
              for kind, cols in _plain(wanted, types).items()]  # fmt: skip
    together = {c for b in blocks for c in b.cols}
    alone = {c: _Filling(role, rows) for c, role in wanted.items() if c not in together}
    schema = None
    try:
        for batch in read(order, types):
            if schema is None or not batch.schema.equals(schema):  # true/false, dates: as text
                schema = batch.schema
                for c, f in zip(order, schema, strict=True):
                    if not is_number_type(f.type) and not is_text(f.type):
                        raise _Retry(c, TEXT if wanted[c] == "feature" else pa.string())
            for block in blocks:
                block.add(batch)
            for c, part in alone.items():
                part.add(batch.column(at[c]))
            del batch
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
    out = {}
    for block in blocks:
        out.update(block.columns())
    for c, part in alone.items():
        if part.type is None:  # no rows: the column as the type it was to be read in
            part.add(pa.nulls(0, types.get(c, pa.null())))
        out[c] = part.column()
    return {c: out[c] for c in order}


def _plain(wanted: dict, types: dict) -> dict:
    """{numpy type: the number features read in it}: uint8 (never missing) and float32."""
    kinds: dict = {}
    for c, role in wanted.items():
        t = types.get(c)
        if role == "feature" and t in (pa.uint8(), pa.float32()):
            kinds.setdefault(np.uint8 if t == pa.uint8() else np.float32, []).append(c)
    return kinds


class _Block:
    """Number feature columns ``cols`` of one numpy type (at ``idx`` in a batch) filled
    together into one (rows, columns) array, each batch's columns copied in at once: the
    layout of the encoded features, which a table of pixels then is as it stands
    (Encoding.encode). ``rows``: room for as many (None: grown as needed)."""

    def __init__(self, cols: list, idx: list, kind, rows: int | None):
        self.cols, self.idx, self.kind = cols, idx, kind
        self.values, self.n = np.empty((rows or 1024, len(cols)), kind), 0

    def add(self, batch) -> None:
        if not batch.num_rows:
            return
        part = batch.select(self.idx)
        v = _matrix(part, self.kind == np.float32)
        if v is None:  # a missing field in a uint8 column: read again in float32 (NaN)
            col = next(c for c, a in zip(self.cols, part.columns, strict=True) if a.null_count)
            raise _Retry(col, pa.float32())
        end = self.n + len(v)
        if end > len(self.values):  # more rows than foreseen (a .gz file): half as many more
            grown = np.empty((max(end, len(self.values) * 3 // 2), len(self.cols)), self.kind)
            grown[: self.n] = self.values[: self.n]
            self.values = grown
        self.values[self.n : end] = v
        self.n = end

    def columns(self) -> dict:
        values = self.values[: self.n]
        if len(self.values) - self.n > self.n // 8:  # far fewer rows than room: trimmed
            values = values.copy()
        self.values = None
        return {c: RawColumn("number", values[:, i], block=(values, i))
                for i, c in enumerate(self.cols)}  # fmt: skip


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
    return np.asarray(batch.to_tensor(null_to_nan=arr.null_count > 0))[:, 0].astype(
        dtype, copy=False
    )


class _Filling:
    """One column filled batch by batch into its final numpy array (its compact form, module
    docstring), with room for ``rows`` (None: grown as needed); a category column's codes index
    one vocabulary grown batch by batch."""

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


def _codes(arr, vocab: dict) -> np.ndarray:
    """A chunk's int32 codes into ``vocab`` (grown with its new values), -1 where missing."""
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    names = arr.dictionary.to_pylist()
    # a missing-field token held as text (a .parquet file, a DataFrame) is missing too
    codes = [-1 if s in MISSING else vocab.setdefault(s, len(vocab)) for s in names]
    lookup = np.array(codes + [-1], np.int32)
    return lookup[np.nan_to_num(_numbers(arr.indices, np.float64), nan=len(names)).astype(np.intp)]
