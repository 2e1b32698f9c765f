"""The options of a table source (CSV, .parquet) in a config: the label column(s), the header,
the delimiter and the feature columns' types (docs/csv.md)."""

from __future__ import annotations

from dataclasses import dataclass

from nettrain.core.errors import UserError
from nettrain.core.options import Opt, _shown
from nettrain.data.columns import TYPES


@dataclass
class Column(Opt):
    """A CSV column: 0-based index (negative counts from the end), header name, a list of them,
    or ``auto`` (a column named label, target, class or y, else the first)."""

    kind: str = "column"

    def describe(self) -> str:
        return "a column index (0-based), a header name, a list of them, or auto"

    def check(self, value, src, path):
        items = value if isinstance(value, list) and value else [value]
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, str)) or v == "":
                raise UserError(src.where(path), f"expected {self.describe()}, got {_shown(v)}")
        return value


@dataclass
class Header(Opt):
    """``auto`` (a first row holding text where features are is a header), true or false."""

    kind: str = "header"

    def describe(self) -> str:
        return "auto, true or false"

    def check(self, value, src, path):
        if value != "auto" and not isinstance(value, bool):
            raise UserError(src.where(path), f"expected {self.describe()}, got {_shown(value)}")
        return value


@dataclass
class Delimiter(Opt):
    """``auto`` (tab for .tsv, else the most frequent of , ; tab in the first line) or one
    character."""

    kind: str = "delimiter"

    def describe(self) -> str:
        return "auto or a single character such as ',' or '\\t'"

    def check(self, value, src, path):
        if value != "auto" and not (isinstance(value, str) and len(value) == 1):
            raise UserError(src.where(path), f"expected {self.describe()}, got {_shown(value)}")
        return value


@dataclass
class Columns(Opt):
    """``{NAME: number | category | ignore}``: the type of feature columns, by header name."""

    kind: str = "columns"

    def describe(self) -> str:
        return "a mapping {COLUMN: number | category | ignore}"

    def check(self, value, src, path):
        if not isinstance(value, dict):
            raise UserError(src.where(path), f"expected {self.describe()}, got {_shown(value)}")
        for name, kind in value.items():
            Opt("choice", choices=TYPES).check(kind, src, (*path, name))
        return {str(k): v for k, v in value.items()}


COLUMNS = Columns(default={}, doc="feature column types by header name (default: from the data)")
