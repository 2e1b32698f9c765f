"""CSV and TSV files (optionally gzipped): one sample per line, numeric feature columns.

``label`` picks the label column(s): a 0-based index (negative counts from the end), a header
name, a list of them, or ``auto`` (the default): the header column named ``label``, ``target``,
``class`` or ``y`` (in that order of preference, any case), else the only column whose first
data row holds text (class names, as iris's ``species``), else the first column. Every other
column is a feature. One label column of integers gives class labels, of text gives class names
(numbered in sorted order), of other numbers a (N, 1) target; a list (even of one column) gives
(N, K) float targets. ``header: auto`` takes the first line as a header when one
of its feature fields is not a number. Features that are all integers in 0..255 are kept as
uint8 (the values are the same; the memory is an eighth).
"""

from __future__ import annotations

import csv
import functools
import gzip
import warnings
import zlib
from pathlib import Path

import numpy as np

from nettrain.core.errors import UserError
from nettrain.data.checks import checked


def _named_read_errors(read):
    """A damaged file met past its first line (a truncated or corrupt .gz) is a UserError
    naming the file, like one met on the first line."""

    @functools.wraps(read)
    def reading(path, *args, **kwargs):
        try:
            return read(path, *args, **kwargs)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(str(path), f"cannot read the file: {exc}") from None

    return reading


# header names taken as the label column by ``label: auto``, in order of preference
LABEL_NAMES = ("label", "target", "class", "y")


@_named_read_errors
def read_csv(path, label="auto", header="auto", delimiter="auto"):
    """The labelled Dataset of a CSV/TSV file; its ``label_note`` says which column ``auto``
    took."""
    table = Table(path, header, delimiter)
    label_cols, note = table.label_columns(label)
    features = [c for c in range(table.ncols) if c not in label_cols]
    if not features:
        raise UserError(table.path, "no feature columns: every column is a label column")
    table.decide_header(features)
    x = table.numbers(features)
    y, classes = table.labels(label_cols, values=isinstance(label, list))
    if note is not None:
        note = f"the labels are {table.column_name(label_cols[0])}, {note}"
    return checked(x, y, table.path, classes=classes, label_note=note)


@_named_read_errors
def read_csv_inputs(path, n_features: int, label="auto", header="auto", delimiter="auto"):
    """x (N, F) of a CSV for predict: every column a feature, except that a file with as many
    columns more than the net's inputs as the training data had label columns drops those."""
    table = Table(path, header, delimiter)
    drop = []
    if table.ncols == n_features + (len(label) if isinstance(label, list) else 1):
        drop = table.label_columns(label)[0]
    features = [c for c in range(table.ncols) if c not in drop]
    table.decide_header(features)
    return table.numbers(features)


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
        if delimiter == "auto":
            counts = {d: first.count(d) for d in (",", "\t", ";")}
            delimiter = "\t" if name.endswith(".tsv") else max(counts, key=counts.get)
        self.delimiter = delimiter
        self.first = next(csv.reader([first], delimiter=delimiter))
        self.ncols = len(self.first)
        self.header = header

    def open(self):
        if self.path.endswith(".gz"):
            return gzip.open(self.path, "rt", encoding="utf-8", newline="")
        return open(self.path, encoding="utf-8", newline="")

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
        text = [c for c, field in enumerate(row) if field.strip() and not _is_number(field)]
        if len(text) == 1:  # class names (iris's 'species'): the one column a feature cannot be
            return text, "the only column holding text"
        return [0], "the first column (no column is named " + ", ".join(LABEL_NAMES) + ")"

    def first_data_row(self) -> list[str]:
        """The fields of the first line below a header (of the first line with header: false)."""
        if self.header is False:
            return self.first
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
        """header 'auto': a first row with text in a feature column is a header."""
        if self.header == "auto":
            self.header = any(not _is_number(self.first[c]) for c in features)

    def column_name(self, c: int) -> str:
        return f"column {c} ('{self.first[c]}')" if self.header else f"column {c}"

    def _loadtxt(self, cols, dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty body is reported below, not warned
            return np.loadtxt(
                self.path,
                delimiter=self.delimiter,
                skiprows=1 if self.header else 0,
                usecols=cols,
                dtype=dtype,
                ndmin=2,
                comments=None,
                quotechar='"',
                encoding="utf-8",
            )

    def numbers(self, cols) -> np.ndarray:
        """The columns ``cols`` as (N, len(cols)) numbers; an error names a bad value's place."""
        try:
            x = self._loadtxt(cols, np.float64)
        except ValueError as exc:
            raise self.first_bad_value(cols) or UserError(self.path, str(exc)) from None
        if len(x) == 0:
            raise UserError(self.path, "the data set is empty: no rows after the header")
        finite = np.isfinite(x)
        if not finite.all():
            row, col = (int(v) for v in np.argwhere(~finite)[0])
            raise UserError(
                self.path,
                f"line {self.line_of(row)}, {self.column_name(cols[col])}: "
                f"{x[row, col]} is not a finite number",
            )
        if np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255:
            x = x.astype(np.uint8)
        return x

    def labels(self, cols, values: bool = False):
        """(y, class names or None) of the label columns (see the module docstring); ``values``:
        (N, K) float targets whatever the columns hold."""
        text = self._loadtxt(cols, str)
        if len(cols) == 1 and not values and not all(_is_number(v) for v in text[:, 0]):
            empty = np.flatnonzero(np.char.strip(text[:, 0]) == "")
            if len(empty):
                raise UserError(
                    self.path,
                    f"line {self.line_of(int(empty[0]))}, {self.column_name(cols[0])}: "
                    "the label is empty",
                )
            classes, y = np.unique(text[:, 0], return_inverse=True)
            return y.astype(np.int64), [str(c) for c in classes]
        y = self.numbers(cols).astype(np.float64)
        if values or len(cols) > 1:
            return y, None
        y = y[:, 0]
        return (y.astype(np.int64), None) if np.all(y == np.round(y)) else (y[:, None], None)

    def line_of(self, row: int) -> int:
        """1-based file line of data row ``row`` (blank lines are skipped by the reader)."""
        skip = 1 if self.header else 0
        seen = -1
        with self.open() as f:
            for number, line in enumerate(f, start=1):
                if number <= skip or not line.strip():
                    continue
                seen += 1
                if seen == row:
                    return number
        return row + skip + 1

    def first_bad_value(self, cols) -> UserError | None:
        """The error for the first field of ``cols`` that is not a number, or a short row."""
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
                    if not _is_number(row[c]):
                        what = "is empty" if not row[c].strip() else f"'{row[c]}' is not a number"
                        return UserError(self.path, f"line {number}, {self.column_name(c)}: {what}")
        return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
