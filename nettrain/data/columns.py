"""The encoding of a table's feature columns as the net's input features (docs/csv.md).

Each feature column is a ``number``, a ``category`` or ``ignore``d: by default a column whose
non-missing fields all read as numbers is a number, any other a category; ``columns: {NAME:
TYPE}`` overrides that. The encoding is fitted on the training split alone:

- number: one feature; a missing field is filled with the training split's mean, and a column
  that had a missing field in the training split gets a 0/1 indicator feature right after it;
- category: one-hot over the values of the training split, sorted (a missing field is a value
  of its own, sorted last); a value the training split never had gives all zeros (``unseen``).

It is stored in the checkpoint's ``__meta__`` record as JSON (``to_json``), and applied to the
raw rows of every later file the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nettrain.core.errors import UserError

MISSING = ("", "NA", "N/A", "NaN", "nan", "null", "None", "?")
TYPES = ("number", "category", "ignore")
MANY = 100  # a category column with more values than this gets a note (an id, free text)
SHOWN_MISSING = "(missing)"
BUFFER = 1 << 22  # bytes of features encoded at a time (a block of rows)


@dataclass
class Column:
    """One feature column's encoding; ``missing``: its missing fields in the training split."""

    name: str
    type: str
    fill: float = 0.0
    indicator: bool = False
    values: list = field(default_factory=list)
    missing: int = 0

    @property
    def width(self) -> int:
        if self.type == "number":
            return 1 + self.indicator
        return len(self.values) if self.type == "category" else 0

    def feature_names(self) -> list[str]:
        if self.type == "number":
            return [self.name] + ([f"{self.name}={SHOWN_MISSING}"] * self.indicator)
        return [f"{self.name}={_shown(v)}" for v in self.values]


@dataclass
class Encoding:
    """The feature columns in file order (by header name, or 'column C' without a header)."""

    columns: list
    label: list = field(default_factory=list)  # the label columns' names
    label_index: list = field(default_factory=list)  # and their 0-based indices in the file

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns if c.type != "ignore"]

    def feature_names(self) -> list[str]:
        return [n for c in self.columns for n in c.feature_names()]

    def number_mask(self) -> np.ndarray:
        """(width,) True where a feature is a number column's value (preprocessing applies)."""
        mask = [c.type == "number" for c in self.columns for _ in range(c.width)]
        for i, name in enumerate(self.feature_names()):
            mask[i] = mask[i] and not name.endswith(f"={SHOWN_MISSING}")
        return np.array(mask, bool)

    def to_json(self) -> dict:
        cols = []
        for c in self.columns:
            entry = {"name": c.name, "type": c.type, "missing": c.missing}
            if c.type == "number":
                entry.update(fill=c.fill, indicator=c.indicator)
            elif c.type == "category":
                entry["values"] = list(c.values)
            cols.append(entry)
        return {"columns": cols, "label": self.label, "label_index": self.label_index}

    @classmethod
    def from_json(cls, record: dict, where: str) -> Encoding:
        try:
            cols = [Column(**c) for c in record["columns"]]
            enc = cls(cols, list(record.get("label", [])), list(record.get("label_index", [])))
        except (KeyError, TypeError) as exc:
            raise UserError(where, f"the checkpoint's column encoding is damaged ({exc})") from None
        for c in cols:
            if c.type not in TYPES:
                raise UserError(where, f"the checkpoint's column encoding is damaged ({c.type})")
        return enc

    def table(self) -> str:
        """The feature table (column, type, width, missing), a note per many-valued column; a
        run of more than 4 number columns without missing fields (pixels) is one line."""
        head = f"{'column':<24} {'type':<18} {'width':>6} {'missing':>8}"
        lines = [head, "-" * len(head)]
        for run in _runs(self.columns):
            c = run[0]
            name = c.name if len(run) == 1 else f"{c.name} .. {run[-1].name} ({len(run)})"
            kind = c.type + (" + indicator" if c.indicator else "")
            width = sum(r.width for r in run)
            lines.append(f"{name[:24]:<24} {kind:<18} {width:>6} {c.missing:>8}")
        lines.append(f"{'features':<24} {'':<18} {self.width:>6}")
        for c in self.columns:
            if c.type == "category" and len(c.values) > MANY:
                lines.append(
                    f"note: column '{c.name}' has {len(c.values)} category values (an id or "
                    f"free text?); to leave it out: columns: {{{c.name}: ignore}}"
                )
        return "\n".join(lines)

    # -- fitting and applying ---------------------------------------------------------------

    @classmethod
    def fit(cls, names: list[str], raw: dict, types: dict, rows=None) -> Encoding:
        """The encoding of columns ``names`` ({col: name}) from their raw columns ``raw``
        ({col: blocks.RawColumn}) on the training ``rows`` (None: all); ``types`` {col: TYPE}
        the settled ones (the others follow the column's kind as read)."""
        cols, means = [], {}
        for c, name in names.items():
            kind = types.get(c) or raw[c].kind if c in raw else types.get(c, "ignore")
            if kind == "ignore":
                cols.append(Column(name, "ignore"))
                continue
            block = raw[c].block
            if kind == "number" and block is not None and block[0].dtype == np.uint8:
                if id(block[0]) not in means:  # never missing: every column of it at once
                    means[id(block[0])] = _means(block[0], rows)
                cols.append(Column(name, "number", float(means[id(block[0])][block[1]])))
                continue
            v = raw[c].values if rows is None else raw[c].values[rows]
            if kind == "number":
                gap = np.isnan(v) if v.dtype.kind == "f" else np.zeros(len(v), bool)
                missing = int(gap.sum())
                fill = float(np.mean(v[~gap], dtype=np.float64)) if missing < len(v) else 0.0
                cols.append(Column(name, "number", fill, missing > 0, missing=missing))
            else:
                present = np.unique(v)
                vocab = raw[c].vocab
                values = sorted(vocab[k] for k in present if k >= 0)
                if present.size and present[0] < 0:
                    values.append(None)
                cols.append(Column(name, "category", values=values, missing=int((v < 0).sum())))
        return cls(cols)

    def encode(self, raw: dict, order: list[int], n: int):
        """(x (n, width), unseen {column name: rows with a value the training split never had})
        of raw columns ``raw`` ({col: RawColumn}); ``order`` the file's column of each of this
        encoding's columns. x is uint8 where every value is (integer pixels, one-hot), else
        float32."""
        cols = [(raw[c], col) for c, col in zip(order, self.columns, strict=True)
                if col.type != "ignore"]  # fmt: skip
        whole = _as_read(cols)
        if whole is not None:  # pixels: the columns as read are the features
            return whole, {}
        small = all(r.values.dtype == np.uint8 for r, col in cols if col.type == "number")
        x = np.empty((n, self.width), np.uint8 if small else np.float32)
        lookups = [_lookup(col, r.vocab) for r, col in cols]
        unseen = {}
        # a block of rows at a time, built feature by feature (contiguous), then transposed
        step = max(1024, BUFFER // max(1, self.width * x.itemsize))
        buf = np.empty((self.width, min(n, step)), x.dtype)
        for start in range(0, n, step):
            rows = slice(start, min(n, start + step))
            b = buf[:, : rows.stop - start]
            j = 0
            for (r, col), lookup in zip(cols, lookups, strict=True):
                v = r.values[rows]
                if col.type == "number" and v.dtype.kind == "f":
                    gap = np.isnan(v)
                    b[j] = np.where(gap, np.float32(col.fill), v)
                    if col.indicator:
                        b[j + 1] = gap
                elif col.type == "number":
                    b[j] = v
                    if col.indicator:
                        b[j + 1] = 0
                else:
                    pos = lookup[v]
                    np.equal(pos, np.arange(col.width)[:, None], out=b[j : j + col.width],
                             casting="unsafe")  # fmt: skip
                    missed = int(np.count_nonzero(pos < 0))
                    if missed:
                        unseen[col.name] = unseen.get(col.name, 0) + missed
                j += col.width
            x[rows] = b.T
        return x, unseen


def _as_read(cols: list) -> np.ndarray | None:
    """The (N, K) uint8 array the raw columns were read into (blocks.py) where it is already
    the encoding: every feature a number column without an indicator, in the array's order."""
    block = cols[0][0].block if cols else None
    if block is None or block[0].dtype != np.uint8 or block[0].shape[1] != len(cols):
        return None
    for i, (r, col) in enumerate(cols):
        if r.block is None or r.block[0] is not block[0] or r.block[1] != i:
            return None  # (a file's columns are read in the encoding's order: a safeguard)
        if col.type != "number" or col.indicator:
            return None
    return block[0]


def _lookup(col: Column, vocab) -> np.ndarray | None:
    """Position in ``col.values`` of each of a file's category codes (-1: a value the training
    split never had), the last entry for a missing field (code -1)."""
    if col.type != "category":
        return None
    index = {v: i for i, v in enumerate(col.values)}
    return np.array([index.get(v, -1) for v in vocab or []] + [index.get(None, -1)], np.int32)


def _runs(columns: list) -> list[list]:
    """The columns in runs: plain number columns (no missing field) more than 4 in a row
    together, every other column on its own."""
    runs: list[list] = []
    for c in columns:
        plain = c.type == "number" and not c.missing
        if plain and runs and runs[-1][-1].type == "number" and not runs[-1][-1].missing:
            runs[-1].append(c)
        else:
            runs.append([c])
    return [part for run in runs for part in ([run] if len(run) > 4 else [[c] for c in run])]


def _shown(value) -> str:
    return SHOWN_MISSING if value is None else str(value)


def unseen_note(where: str, unseen: dict) -> str:
    """The stderr line of predict and evaluate about values the training split never had."""
    parts = ", ".join(f"{n} rows in column '{name}'" for name, n in unseen.items())
    return f"{where}: category values the training data never had (encoded as all zeros): {parts}"


def _means(block: np.ndarray, rows=None) -> np.ndarray:
    """Each column's mean over ``rows`` (None: all) of a (N, K) uint8 block, a chunk of rows at
    a time: the sums are integers, exact in any order, so each mean is np.mean's of its column."""
    index = None if rows is None else np.arange(len(block))[rows]
    n = len(block) if index is None else len(index)
    total = np.zeros(block.shape[1], np.int64)
    step = max(1, BUFFER // max(1, block.shape[1]))
    for start in range(0, n, step):
        part = block[start : start + step] if index is None else block[index[start : start + step]]
        total += part.sum(axis=0, dtype=np.int64)
    return total / max(n, 1)
