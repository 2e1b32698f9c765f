"""Reading a table's columns with pyarrow into compact, typed numpy columns.

Arrow parses a CSV block by block (csv.py's READ bytes at a time) straight into the narrow
types chosen from a first small block: a number feature into float32 (uint8 where that block
holds only integers in 0..255, as pixels do: the values are the same, the memory a quarter), a
text feature into dictionary codes (int32) with its values; a label column as arrow reads it.
Each block's columns are copied into their final numpy arrays (allocated once for the file's
line count; grown for a .gz file) and the block is dropped, so that arrow never holds the whole
file (a .parquet file comes the same way, in batches of rows). A large plain file is read in
parts side by side, a thread each (spans.py cuts it, fillers.py joins the parts' arrays as one
reader's); a table of pixels goes through integers.py's kernel instead, where it takes the file.
The final forms:

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
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nettrain.data.fillers import (
    Block,
    Filling,
    Retry,
    is_text,
    join_blocks,
    join_fillings,
)
from nettrain.runtime.memory import trim_freed_memory

BLOCK = 1 << 18  # bytes of the first block, from which a CSV's column types are chosen
TEXT = pa.dictionary(pa.int32(), pa.string())


class ConversionError(Exception):
    """A column forced to numbers held a field that is not a number (the caller locates it)."""

    def __init__(self, col: int):
        super().__init__(col)
        self.col = col


def is_number_type(t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)


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
                 rows: list) -> dict:  # fmt: skip
    """{col: RawColumn} of the columns ``wanted`` ({col: 'feature' | 'label'}) of a file read in
    ``len(rows)`` parts side by side, part i on a thread of its own (part 0 on this one);
    ``rows[i]``: at least as many rows as part i holds, None if unknown (each column's array is
    then grown as read; otherwise allocated once).

    ``read(cols, types, i)`` gives part i's record batches (an iterable) of columns ``cols``
    named by their index, in ``types`` {col: arrow type}; ``types`` the chosen ones, ``forced``
    {col: 'number' | 'category'} the columns whose type is settled (by ``columns:`` or a trained
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
        except Retry as retry:
            if forced.get(retry.col) == "number" and retry.to == TEXT:
                raise ConversionError(retry.col) from None
            types[retry.col] = retry.to


def _read_once(read, wanted: dict, types: dict, rows: list) -> dict:
    """One pass over the file, each part a batch (a block of it) at a time: each batch's columns
    are copied into their final arrays and the batch dropped, so that arrow never holds the
    whole file. Number features of one type are copied together (a Block), the others one by
    one (a Filling); the parts' are joined in file order (fillers.py)."""
    order = list(wanted)
    at = {c: i for i, c in enumerate(order)}  # a column's place in a batch
    blocks = [Block.parts(cols, [at[c] for c in cols], kind, rows)
              for kind, cols in _plain(wanted, types).items()]  # fmt: skip
    together = {c for parts in blocks for c in parts[0].cols}
    alone = {c: [Filling(role, r) for r in rows] for c, role in wanted.items() if c not in together}
    stop = threading.Event()

    def part(i: int) -> None:
        fill = _filler(wanted, at, [b[i] for b in blocks], {c: f[i] for c, f in alone.items()})
        try:
            for batch in read(order, types, i):
                if stop.is_set():
                    return
                fill(batch)
                del batch
        except pa.ArrowInvalid as exc:
            stop.set()  # the other parts need not go on
            raise _retry(exc, wanted) from None
        except BaseException:
            stop.set()
            raise

    on_threads(part, len(rows))
    out = {}
    for parts in blocks:
        out.update(join_blocks(parts))
    for c, parts in alone.items():
        for f in parts:
            if f.type is None:  # no rows: the column as the type it was to be read in
                f.add(pa.nulls(0, types.get(c, pa.null())))
        out[c] = join_fillings(parts)
    return {c: out[c] for c in order}


def _retry(exc, wanted: dict) -> Exception:
    """The Retry for arrow's conversion error in a column of ``wanted``, else ``exc``."""
    match = _COLUMN.search(str(exc))
    if match is None or int(match.group(1)) not in wanted:
        return exc
    col, was = int(match.group(1)), match.group(2)
    if wanted[col] == "label":
        to = pa.float64() if was.startswith(("int", "uint", "null")) else pa.string()
    else:
        to = pa.float32() if was.startswith(("uint8", "int", "null")) else TEXT
    return Retry(col, to)


_COLUMN = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")


def _filler(wanted: dict, at: dict, blocks: list, alone: dict):
    """A function copying one batch of a part into its Blocks and Fillings (``at``: a column's
    place in a batch); a boolean or date column raises Retry (to be read as text)."""
    order, schema = list(at), None

    def fill(batch) -> None:
        nonlocal schema
        if schema is None or not batch.schema.equals(schema):  # true/false, dates: as text
            schema = batch.schema
            for c, f in zip(order, schema, strict=True):
                if not is_number_type(f.type) and not is_text(f.type):
                    raise Retry(c, TEXT if wanted[c] == "feature" else pa.string())
        for block in blocks:
            block.add(batch)
        for c, filling in alone.items():
            filling.add(batch.column(at[c]))

    return fill


def on_threads(part, count: int) -> None:
    """part(i) for i in range(count), part 0 on this thread, the others on threads of their own;
    the first part's error (in file order) raised once every part has returned."""
    errors = [None] * count

    def run(i):
        try:
            part(i)
        except BaseException as exc:  # noqa: BLE001 (raised below, on the caller's thread)
            errors[i] = exc

    others = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(1, count)]
    for t in others:
        t.start()
    run(0)
    for t in others:
        t.join()
    for exc in errors:
        if exc is not None:
            raise exc


def _plain(wanted: dict, types: dict) -> dict:
    """{numpy type: the number features read in it}: uint8 (never missing) and float32."""
    kinds: dict = {}
    for c, role in wanted.items():
        t = types.get(c)
        if role == "feature" and t in (pa.uint8(), pa.float32()):
            kinds.setdefault(np.uint8 if t == pa.uint8() else np.float32, []).append(c)
    return kinds
