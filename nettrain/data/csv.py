"""CSV and TSV files (optionally gzipped): one sample per line; the file's layout and its errors.

``label`` picks the label column(s): a 0-based index (negative counts from the end), a header
name, a list of them, or ``auto`` (the default): the header column named ``label``, ``target``,
``class`` or ``y`` (in that order of preference, any case), else the only column whose first
data row holds text (class names, as iris's ``species``), else the first column. Every other
column is a feature, encoded as columns.py says (numbers, categories, missing fields). One label
column of integers gives class labels, of text gives class names (numbered in sorted order), of
other numbers a (N, 1) target; a list (even of one column) gives (N, K) float targets.
``header: auto`` takes the first line as a header when one of its feature fields is text where
the next line has a number, or when every field of it is text. The body is read with pyarrow
(blocks.py); the Python csv module only reads the first lines, and locates a bad field's line
and column when arrow reports one.
"""

from __future__ import annotations

import csv
import functools
import gzip
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from nettrain.core.errors import UserError
from nettrain.data.blocks import BLOCK, narrow
from nettrain.data.columns import MISSING
from nettrain.data.spans import Span, cut
from nettrain.runtime import threads

# bytes of the file parsed at a time (one record batch): arrow's parse of a block takes up to
# some 30 times its size for a wide table (MNIST's 785 columns), so the read holds that, never
# the whole file's (docs/csv.md: 256 KB against 1 MB)
READ = 1 << 18
LINES = 16  # a block holds at least this many first lines: every row must fit in one
SPLIT = 1 << 23  # a file of this many bytes or more is read in parts side by side (parts())


def named_read_errors(read):
    """A damaged file met past its first line (a truncated or corrupt .gz, a field arrow cannot
    read and the locating pass does not explain) is a UserError naming the file."""

    @functools.wraps(read)
    def reading(path, *args, **kwargs):
        try:
            return read(path, *args, **kwargs)
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, pa.ArrowException) as exc:
            where = str(path) if isinstance(path, (str, Path)) else type(path).__name__
            raise UserError(where, f"cannot read the file: {exc}") from None

    return reading


# header names taken as the label column by ``label: auto``, in order of preference
LABEL_NAMES = ("label", "target", "class", "y")


class Table:
    """A delimited text file: its delimiter, first row and header, read column by column."""

    def __init__(self, path, header="auto", delimiter="auto"):
        self.path = str(path)
        name = Path(self.path).name.lower().removesuffix(".gz")
        try:
            with self.open() as f:
                first = f.readline().rstrip("\r\n")
        except FileNotFoundError:
            raise UserError(self.path, "file not found") from None
        except (OSError, UnicodeDecodeError, EOFError, zlib.error) as exc:
            raise UserError(self.path, f"cannot read the file: {exc}") from None
        if not first.strip():
            raise UserError(self.path, "the file is empty (or its first line is blank)")
        self.line = len(first.encode())  # bytes of the first line, for the block size
        if delimiter == "auto":
            counts = {d: first.count(d) for d in (",", "\t", ";")}
            delimiter = "\t" if name.endswith(".tsv") else max(counts, key=counts.get)
        self.delimiter = delimiter
        self.first = next(csv.reader([first], delimiter=delimiter))
        self.ncols = len(self.first)
        self.header = header
        self.spans = None  # parts(): the byte spans of the parts read side by side

    def open(self):
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rt", encoding="utf-8", newline="")
        return open(self.path, encoding="utf-8", newline="")

    @property
    def names(self) -> list[str]:
        """Each column's name: its header field, or 'column C' without a header."""
        if self.header:
            return [f.strip() for f in self.first]
        return [f"column {c}" for c in range(self.ncols)]

    def label_columns(self, label) -> tuple[list[int], str | None]:
        """(columns of ``label``, None), or for ``auto`` (the column it took, why)."""
        if label != "auto":
            return self.columns(label, "label"), None
        if self.header is not False:
            names = [f.strip().lower() for f in self.first]
            for name in LABEL_NAMES:
                if name in names:
                    self.header = True
                    return [names.index(name)], "found by its name"
        row = self.first_data_row()
        text = [c for c, field in enumerate(row) if field.strip() and not is_number(field)]
        if len(text) == 1:  # class names (iris's 'species'): the one column a feature cannot be
            return text, "the only column holding text"
        return [0], "the first column (no column is named " + ", ".join(LABEL_NAMES) + ")"

    def first_data_row(self) -> list[str]:
        """The fields of the first line below a header (of the first line with header: false)."""
        if self.header is False:
            return self.first
        return self.second_row()

    def second_row(self) -> list[str]:
        with self.open() as f:
            f.readline()
            row = next(csv.reader([f.readline().rstrip("\r\n")], delimiter=self.delimiter))
        return row if len(row) == self.ncols else []

    def columns(self, spec, key: str) -> list[int]:
        """0-based indices of the column(s) ``spec`` names (indices or header names)."""
        out = []
        for item in spec if isinstance(spec, list) else [spec]:
            if isinstance(item, str):
                if self.header is False:
                    raise UserError(
                        self.path, f"{key} '{item}' is a column name, but header is false"
                    )
                if item not in self.first:
                    raise UserError(
                        self.path,
                        f"no column '{item}' in the header (it has: {', '.join(self.first)})",
                    )
                self.header = True
                out.append(self.first.index(item))
            else:
                if not -self.ncols <= item < self.ncols:
                    raise UserError(
                        self.path,
                        f"{key} column {item} is out of range: the file has "
                        f"{self.ncols} columns (0..{self.ncols - 1}, or -1 for the last)",
                    )
                out.append(item % self.ncols)
        return out

    def decide_header(self, features) -> None:
        """header 'auto': a first row with text in a feature column where the next row has a
        number, or with text in every field, is a header."""
        if self.header != "auto":
            return
        second = self.second_row()
        text = [not is_number(f) for f in self.first]
        below = [bool(second) and is_number(second[c]) for c in range(self.ncols)]
        self.header = any(text[c] and below[c] for c in features) or all(
            t and f.strip() not in MISSING for t, f in zip(text, self.first, strict=True)
        )

    def column_name(self, c: int) -> str:
        return f"column {c} ('{self.first[c]}')" if self.header else f"column {c}"

    def _options(self, include, types, block=None, header=True):
        """pyarrow's options (``header``: whether the input starts at the top of the file); a
        block is at least LINES first lines long (a table of 40,000 columns has rows of some
        300 KB)."""
        gz = "gzip" if self.path.endswith(".gz") else None
        block = block and max(block, LINES * self.line)
        read = pacsv.ReadOptions(
            column_names=[str(c) for c in range(self.ncols)],
            skip_rows=1 if self.header and header else 0,
            **({"block_size": block} if block else {}),
        )
        convert = pacsv.ConvertOptions(
            null_values=list(MISSING),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            include_columns=[str(c) for c in include],
            column_types={str(c): t for c, t in types.items()},
        )
        parse = pacsv.ParseOptions(delimiter=self.delimiter, quote_char='"')
        return pa.input_stream(self.path, compression=gz), read, parse, convert

    def sniff(self, cols, labels=()) -> dict:
        """{col: arrow type} to read each column in, from a first block of the body."""
        stream, read, parse, convert = self._options(cols, {}, BLOCK)
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse,
                                convert_options=convert)  # fmt: skip
        try:
            first = reader.read_next_batch()
        except StopIteration:
            return {}
        return {
            c: narrow(first.schema.field(str(c)).type, first.column(str(c)), c in labels)
            for c in cols
        }

    def read(self, include: list[int], types: dict, part: int = 0):
        """The record batches of part ``part`` of the body (parts()), columns ``include`` named by
        their index, in ``types``: one block of READ bytes of the file parsed at a time."""
        start, end = self.spans[part] if len(self.spans or ()) > 1 else (0, None)
        stream, read, parse, convert = self._options(include, types, READ, header=start == 0)
        if end is not None:
            stream = pa.PythonFile(Span(self.path, start, end), mode="r")
        with stream:
            yield from pacsv.open_csv(stream, read_options=read, parse_options=parse,
                                      convert_options=convert)  # fmt: skip

    def parts(self) -> list[int | None]:
        """At least as many rows as each part of the body holds, in file order (spans.py), the
        parts' byte spans kept (``spans``); [None] for a .gz file (its rows unknown)."""
        self.spans = None
        if self.path.endswith(".gz"):
            return [None]
        lines, spans = cut(self.path, threads.active_threads(), SPLIT, READ)
        lines[0] -= 1 if self.header else 0
        self.spans = spans
        return lines

    def place(self, row: int, c: int) -> tuple[int, str]:
        """(1-based file line, field) of data row ``row`` (blank lines skipped), column c."""
        skip = 1 if self.header else 0
        seen = -1
        with self.open() as f:
            for number, fields in enumerate(csv.reader(f, delimiter=self.delimiter), start=1):
                if number <= skip or not fields or fields == [""]:
                    continue
                seen += 1
                if seen == row:
                    return number, fields[c] if c < len(fields) else ""
        return row + skip + 1, ""

    def at(self, row: int, c: int) -> str:
        """'line L, column C ('name')' of data row ``row``."""
        return f"line {self.place(row, c)[0]}, {self.column_name(c)}"

    def first_bad_value(self, cols) -> UserError | None:
        """The error for the first field of ``cols`` that is neither a number nor missing, or a
        row of another length than the first."""
        with self.open() as f:
            for number, row in enumerate(csv.reader(f, delimiter=self.delimiter), start=1):
                if (number == 1 and self.header) or not row or row == [""]:
                    continue
                if len(row) != self.ncols:
                    return UserError(
                        self.path,
                        f"line {number} has {len(row)} columns, the first has {self.ncols}",
                    )
                for c in cols:
                    if not is_number(row[c]) and row[c].strip() not in MISSING:
                        return UserError(
                            self.path,
                            f"line {number}, {self.column_name(c)}: '{row[c]}' is not a number",
                        )
        return None


def is_number(text: str) -> bool:
    """Whether a field's text reads as a number."""
    try:
        float(text)
    except ValueError:
        return False
    return True
