"""Tables (CSV, TSV, .parquet) as data sets: the label column(s), then the feature columns
encoded as columns.py says, every error naming the file, line and column (docs/csv.md).

``read_labelled`` reads a labelled set: with ``encoding`` (a trained one) its feature columns are
found by header name in any order and encoded as in training; without, the encoding is fitted on
the file's ``fit_rows`` (the training split; all rows by default). ``read_features`` reads the
inputs of predict: the same layout, the label column there or not.
"""

from __future__ import annotations

from pathlib import PurePath

import numpy as np

from nettrain.core.errors import UserError
from nettrain.data import integers
from nettrain.data.blocks import ConversionError, read_columns
from nettrain.data.checks import checked
from nettrain.data.columns import MISSING, Column, Encoding
from nettrain.data.csv import Table, named_read_errors
from nettrain.data.fillers import RawColumn
from nettrain.data.parquet import ParquetTable


def open_table(path, header="auto", delimiter="auto"):
    """The Table of a CSV/TSV file, or the ParquetTable of a .parquet file or of a table in
    memory (a pandas DataFrame or a pyarrow Table)."""
    if not isinstance(path, (str, PurePath)):
        return ParquetTable(type(path).__name__, frame=path)
    if str(path).lower().endswith(".parquet"):
        return ParquetTable(path)
    return Table(path, header, delimiter)


@named_read_errors
def read_labelled(path, label="auto", header="auto", delimiter="auto", columns=None,
                  encoding=None, fit_rows=None):  # fmt: skip
    """The labelled Dataset of a table; its ``label_note`` says which column ``auto`` took."""
    table = open_table(path, header, delimiter)
    note = None
    if encoding is not None and encoding.label and table.header is not False:
        present = [n for n in encoding.label if n in table.first]
        if len(present) == len(encoding.label):
            label = encoding.label if len(present) > 1 or isinstance(label, list) else present[0]
    label_cols, note = table.label_columns(label)
    features = [c for c in range(table.ncols) if c not in label_cols]
    if not features:
        raise UserError(table.path, "no feature columns: every column is a label column")
    if columns:
        table.header = True
    table.decide_header(features)
    if encoding is not None:
        order = _matched(table, encoding, features)
        types = {c: col.type for c, col in zip(order, encoding.columns, strict=True) if c >= 0}
    else:
        types = _declared(table, columns or {}, features, label_cols)
    values = isinstance(label, list)
    wanted = {c: "label" for c in label_cols}
    wanted.update({c: "feature" for c in features if types.get(c) != "ignore"})
    if encoding is not None:
        wanted = {c: r for c, r in wanted.items() if r == "label" or c in types}
    forced = {c: t for c, t in types.items() if t != "ignore"}
    raw = _read(table, wanted, forced)
    n = len(next(iter(raw.values())).values)
    if n == 0:
        raise UserError(table.path, "the data set is empty: no rows after the header")
    y, classes = labels(table, raw, label_cols, values, note)
    if encoding is None:
        for c in features:  # numbers held as text (a DataFrame of strings): a number column
            if c in raw and c not in types and raw[c].kind == "category":
                raw[c] = _as_numbers(raw[c])
        every = table.names
        names = {c: every[c] for c in features}
        rows = fit_rows(n) if fit_rows is not None else None
        encoding = Encoding.fit(names, raw, types, rows)
        encoding.label = [every[c] for c in label_cols]
        encoding.label_index = label_cols
        order = features
    if encoding.width == 0:
        raise UserError(table.path, "no features: every feature column is ignored")
    x, unseen = encoding.encode(raw, order, n)
    if note is not None:
        note = f"the labels are {table.column_name(label_cols[0])}, {note}"
    return checked(x, y, table.path, classes=classes, label_note=note, encoding=encoding,
                   unseen=unseen)  # fmt: skip


read_csv = read_labelled  # a CSV/TSV file's labelled Dataset, by its usual name


@named_read_errors
def read_features(path, encoding: Encoding | None, n_features: int, label="auto",
                  header="auto", delimiter="auto"):  # fmt: skip
    """(x (N, F), unseen) of a table for predict. With a trained ``encoding``: its columns by
    header name (by position without a header, the label columns dropped when there); without
    (a net trained on arrays), every column a number, the label columns dropped when the file
    has as many columns more than the net's inputs as ``label`` names."""
    table = open_table(path, header, delimiter)
    if encoding is None:
        drop = []
        if table.ncols == n_features + (len(label) if isinstance(label, list) else 1):
            drop = table.label_columns(label)[0]
        features = [c for c in range(table.ncols) if c not in drop]
        table.decide_header(features)
        every = table.names
        encoding = Encoding([Column(every[c], "number") for c in features])
        raw = _read(table, dict.fromkeys(features, "feature"), dict.fromkeys(features, "number"))
        _no_missing(table, raw)
        order = features
    else:
        if table.header == "auto":
            if set(encoding.names) <= set(f.strip() for f in table.first):
                table.header = True
            else:
                table.decide_header(range(table.ncols))
        order = _matched(table, encoding, None)
        forced = {c: col.type for c, col in zip(order, encoding.columns, strict=True)
                  if col.type != "ignore" and c >= 0}  # fmt: skip
        raw = _read(table, dict.fromkeys(forced, "feature"), forced)
    n = len(next(iter(raw.values())).values) if raw else 0
    if n == 0:
        raise UserError(table.path, "the data set is empty: no rows after the header")
    return encoding.encode(raw, order, n)


def _matched(table, encoding: Encoding, features) -> list[int]:
    """The file's column of each of the encoding's columns: by header name, else by position
    (-1 for an ignored column the file lacks)."""
    cols = encoding.columns
    if table.header:
        names = [f.strip() for f in table.first]
        order = []
        for col in cols:
            if col.name in names:
                order.append(names.index(col.name))
            elif col.type == "ignore":
                order.append(-1)
            else:
                raise UserError(
                    table.path,
                    f"no column '{col.name}': the net was trained with it (the training data's "
                    f"feature columns: {', '.join(encoding.names)})",
                )
        return order
    if features is None:
        features = list(range(table.ncols))
        if table.ncols == len(cols) + len(encoding.label_index):
            features = [c for c in features if c not in encoding.label_index]
    if len(features) != len(cols):
        raise UserError(
            table.path,
            f"samples have shape ({len(features)},), the net's input is ({encoding.width},)",
            f"the trained net takes {encoding.width} values per sample, from the "
            f"{len(cols)} columns {', '.join(c.name for c in cols)}: give inputs of that size, "
            "or a header with the training data's column names",
        )
    return list(features)


def _declared(table, columns: dict, features, label_cols) -> dict:
    """{col: TYPE} of ``columns: {NAME: TYPE}``, by header name."""
    types = {}
    names = [f.strip() for f in table.first]
    for name, kind in columns.items():
        if name not in names:
            raise UserError(
                table.path,
                f"columns: no column '{name}' in the header (it has: {', '.join(names)})",
            )
        c = names.index(name)
        if c in label_cols:
            raise UserError(
                table.path,
                f"columns: '{name}' is the label column, not a feature",
                "name the label column with the data's `label` key (label: auto takes a column "
                "named label, target, class or y, else the only text column, else the first)",
            )
        types[c] = kind
    return types


def _read(table, wanted: dict, forced: dict) -> dict:
    """The raw columns, after checking number columns hold finite numbers."""
    try:
        labels = [c for c, role in wanted.items() if role == "label"]
        types = table.sniff(list(wanted), labels)
        rows = table.parts()
        raw = integers.read(table, wanted, types, forced, rows)
        if raw is None:
            raw = read_columns(table.read, wanted, types, forced, rows)
    except ConversionError as exc:
        raise table.first_bad_value([exc.col]) or UserError(table.path, "cannot read") from None
    except UserError:
        raise
    except Exception as exc:  # a short row, bad text: the locating pass names line and column
        if type(exc).__module__.startswith("pyarrow"):
            bad = table.first_bad_value([])
            if bad is not None:
                raise bad from None
        raise
    for c, col in raw.items():
        if col.kind == "number" and col.values.dtype.kind == "f":
            inf = np.isinf(col.values)
            if inf.any():
                row = int(np.flatnonzero(inf)[0])
                raise UserError(
                    table.path,
                    f"{table.at(row, c)}: {float(col.values[row])} is not a finite number",
                )
    return raw


def _no_missing(table, raw: dict) -> None:
    for c, col in raw.items():
        if col.values.dtype.kind == "f" and np.isnan(col.values).any():
            row = int(np.flatnonzero(np.isnan(col.values))[0])
            raise UserError(
                table.path,
                f"{table.at(row, c)}: is empty or missing (this net was trained on arrays, "
                "without a column encoding to fill it)",
            )


# how to name a table's label column (the hint of errors that a wrong label column may cause)
LABEL_HINT = "data.train.label names the label column (e.g. {path: FILE, label: NAME})"


def labels(table, raw: dict, cols: list[int], values: bool, note: str | None = None):
    """(y, class names or None) of the label columns (see csv.py's docstring); ``values``:
    (N, K) float targets whatever the columns hold; ``note``: how ``label: auto`` chose them,
    told where a label field is empty."""
    for c in cols:
        col = raw[c].values
        if col.dtype == object:
            gap = np.array([v is None or v.strip() in MISSING for v in col])
        else:
            gap = np.isnan(col)
        if gap.any():
            row = int(np.flatnonzero(gap)[0])
            line, field = table.place(row, c)
            what = "is empty" if not field.strip() else f"is missing ('{field}')"
            message = f"line {line}, {table.column_name(c)}: the label {what}"
            if note is not None:  # taken by label: auto, perhaps the wrong column
                raise UserError(table.path, f"{message} (label: auto took {note})", LABEL_HINT)
            raise UserError(table.path, message)
    if len(cols) == 1 and not values and raw[cols[0]].text:
        classes, y = np.unique(raw[cols[0]].values.astype(str), return_inverse=True)
        return y.astype(np.int64), [str(c) for c in classes]
    for c in cols:
        if raw[c].text:
            bad = next(v for v in raw[c].values if not _number(v))
            row = int(np.flatnonzero(raw[c].values == bad)[0])
            raise UserError(table.path, f"{table.at(row, c)}: '{bad}' is not a number")
    y = np.stack([raw[c].values for c in cols], axis=1).astype(np.float64)
    if not np.isfinite(y).all():
        row, k = (int(v) for v in np.argwhere(~np.isfinite(y))[0])
        raise UserError(table.path, f"{table.at(row, cols[k])}: {y[row, k]} is not a finite number")
    if values or len(cols) > 1:
        return y, None
    y = y[:, 0]
    whole = np.all(y == np.round(y)) and np.abs(y).max(initial=0) < 2**53  # int64 holds them
    return (y.astype(np.int64), None) if whole else (y[:, None], None)


def _as_numbers(col: RawColumn) -> RawColumn:
    """A category column whose values all read as numbers, as a number column; else itself."""
    if not all(_number(v) for v in col.vocab):
        return col
    lookup = np.array([float(v) for v in col.vocab] + [np.nan], np.float32)
    return RawColumn("number", lookup[col.values])


def _number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
