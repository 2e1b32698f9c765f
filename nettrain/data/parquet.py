""".parquet files (and in-memory tables: a pandas DataFrame, a pyarrow Table): typed, named
columns, read with pyarrow in batches of rows.

The same column rules as a CSV (tables.py, columns.py); a place in the file is 'row R' (1-based,
in the file's row order) and the column's name.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nettrain.core.errors import UserError
from nettrain.data.blocks import ConversionError, is_number_type, is_text, narrow
from nettrain.data.columns import MISSING
from nettrain.data.csv import LABEL_NAMES, is_number

ROWS = 65536  # rows per batch


class ParquetTable:
    """A .parquet file, or a table in memory (``frame``), seen as tables.py sees a CSV's Table."""

    header = True

    def __init__(self, path, frame=None):
        self.path = str(path)
        self.frame = None
        if frame is not None:
            self.frame = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame)
            self.frame = self.frame.select(
                [n for n in self.frame.column_names if not n.startswith("__index_level_")]
            )
            self.schema = self.frame.schema
        else:
            if not Path(self.path).exists():
                raise UserError(self.path, "file not found")
            try:
                self.file = pq.ParquetFile(self.path)
            except (pa.ArrowException, OSError) as exc:
                raise UserError(self.path, f"cannot read the .parquet file: {exc}") from None
            self.schema = self.file.schema_arrow
        self.first = list(self.schema.names)
        self.ncols = len(self.first)
        if not self.ncols:
            raise UserError(self.path, "the file has no columns")

    @property
    def names(self) -> list[str]:
        return list(self.first)

    def label_columns(self, label) -> tuple[list[int], str | None]:
        if label != "auto":
            return self.columns(label, "label"), None
        lower = [n.lower() for n in self.first]
        for name in LABEL_NAMES:
            if name in lower:
                return [lower.index(name)], "found by its name"
        text = [c for c, f in enumerate(self.schema) if not is_number_type(f.type)]
        if len(text) == 1:
            return text, "the only column holding text"
        return [0], "the first column (no column is named " + ", ".join(LABEL_NAMES) + ")"

    def columns(self, spec, key: str) -> list[int]:
        out = []
        for item in spec if isinstance(spec, list) else [spec]:
            if isinstance(item, str):
                if item not in self.first:
                    raise UserError(
                        self.path,
                        f"no column '{item}' in the file (it has: {', '.join(self.first)})",
                    )
                out.append(self.first.index(item))
            elif not -self.ncols <= item < self.ncols:
                raise UserError(
                    self.path,
                    f"{key} column {item} is out of range: the file has {self.ncols} columns",
                )
            else:
                out.append(item % self.ncols)
        return out

    def decide_header(self, features) -> None:
        pass

    def column_name(self, c: int) -> str:
        return f"column {c} ('{self.first[c]}')"

    def sniff(self, cols, labels=()) -> dict:
        """{col: arrow type} to read each column in, from the file's own types."""
        return {c: narrow(self.schema.field(c).type, label=c in labels) for c in cols}

    def read(self, include: list[int], types: dict, part: int = 0):
        """The record batches of columns ``include`` (ROWS rows each), named by their index,
        cast to ``types``: the file is one part."""
        names = [self.first[c] for c in include]
        for batch in self.iter_batches(names):
            arrays = [_cast(arr, types.get(c), c) for c, arr in zip(include, batch.columns,
                                                                    strict=True)]  # fmt: skip
            yield pa.RecordBatch.from_arrays(arrays, names=[str(c) for c in include])

    def parts(self) -> list[int]:
        """The rows of the file's one part (blocks.read_columns)."""
        return [self.frame.num_rows if self.frame is not None else self.file.metadata.num_rows]

    def column(self, c: int):
        if self.frame is not None:
            return self.frame.column(c)
        return self.file.read([self.first[c]]).column(0)

    def iter_batches(self, names: list[str]):
        if self.frame is not None:
            return self.frame.select(names).to_batches(max_chunksize=ROWS)
        return self.file.iter_batches(ROWS, columns=names)

    def place(self, row: int, c: int) -> tuple[int, str]:
        col = self.column(c)
        value = col[row].as_py() if row < len(col) else None
        return row + 1, "" if value is None else str(value)

    def at(self, row: int, c: int) -> str:
        return f"row {row + 1}, {self.column_name(c)}"

    def first_bad_value(self, cols) -> UserError | None:
        for c in cols:
            col = self.column(c).cast(pa.string())
            for row, value in enumerate(col.to_pylist()):
                if value is not None and not is_number(value) and value.strip() not in MISSING:
                    return UserError(self.path, f"{self.at(row, c)}: '{value}' is not a number")
        return None


def _cast(arr, t, c: int):
    """A batch's column in type ``t`` (None: as stored, text where neither numbers nor text);
    text where a number must be is a ConversionError (the caller locates the field)."""
    if t is None:
        return arr if is_number_type(arr.type) or is_text(arr.type) else pc.cast(arr, pa.string())
    if arr.type == t:
        return arr
    if pa.types.is_dictionary(t):
        return pc.dictionary_encode(pc.cast(arr, pa.string()))
    if is_text(arr.type):  # numbers held as text: missing-field tokens first
        arr = pc.cast(arr, pa.string())
        blank = pc.is_in(pc.utf8_trim_whitespace(arr), pa.array(MISSING))
        arr = pc.if_else(blank, pa.scalar(None, pa.string()), arr)
    try:
        return pc.cast(arr, t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ConversionError(c) from None
