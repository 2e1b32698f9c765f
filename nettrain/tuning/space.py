"""The search space of `nettrain tune`: a YAML file mapping config keys, written as ``--set``
writes them, to the values a trial may give them.

```yaml
train.optimizer.lr: {log_uniform: [1.0e-3, 0.3]}   # lo * (hi / lo) ** u, u uniform in [0, 1]
train.optimizer.momentum: {uniform: [0.8, 0.99]}
model.layers.4.units: {int: [50, 300]}            # both ends included
train.batch_size: {choice: [32, 64, 128]}
```

The file is checked like a config: a wrong entry is reported with the file, line and key; every
key is tried on the config with both ends of its range (every choice) before any trial runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from nettrain.config import ConfigSource, load_config
from nettrain.core.errors import UserError

KINDS = {
    "log_uniform": "[lo, hi], numbers with 0 < lo < hi: drawn uniformly in log(value)",
    "uniform": "[lo, hi], numbers with lo < hi",
    "int": "[lo, hi], integers with lo < hi, both included",
    "choice": "[a, b, ...], one or more values",
}


@dataclass
class Dimension:
    """One key of the space: its kind ('log_uniform', ...), its [lo, hi] or choices, its line."""

    key: str
    kind: str
    values: list
    where: str

    def extremes(self) -> list:
        """The values checked on the config before the search: both ends, or every choice."""
        return self.values

    def suggest(self, trial):
        """This dimension's value for an Optuna trial."""
        if self.kind == "choice":
            if all(_scalar(v) for v in self.values):
                return trial.suggest_categorical(self.key, self.values)
            texts = [set_text(v) for v in self.values]  # lists and mappings, by their YAML
            return yaml.safe_load(trial.suggest_categorical(self.key, texts))
        lo, hi = self.values
        if self.kind == "int":
            return trial.suggest_int(self.key, lo, hi)
        return trial.suggest_float(self.key, lo, hi, log=self.kind == "log_uniform")


def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def set_text(value) -> str:
    """``value`` as the YAML text of a ``--set`` (1e-05 -> '1.0e-05', which YAML reads back as a
    number; a list in flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def set_items(values: dict) -> list[str]:
    """The ``--set KEY=VALUE`` items of a trial's values."""
    return [f"{key}={set_text(v)}" for key, v in values.items()]


def read_space(path, config, sets=()) -> list[Dimension]:
    """The dimensions of the space file ``path``, checked, and each key tried on ``config``."""
    src = ConfigSource.from_file(path)
    if not src.tree:
        raise UserError(str(path), "the space is empty: give at least one key, e.g. "
                        "train.optimizer.lr: {log_uniform: [1.0e-4, 1.0]}")  # fmt: skip
    dims = [_dimension(src, key, value) for key, value in src.tree.items()]
    for dim in dims:
        for value in dim.extremes():
            try:
                load_config(config, [*sets, f"{dim.key}={set_text(value)}"])
            except UserError as exc:
                raise UserError(
                    dim.where, f"{set_text(value)} does not fit the config: {exc.what}", exc.hint
                ) from None
    return dims


def _dimension(src: ConfigSource, key, value) -> Dimension:
    where = src.where((key,))
    if not isinstance(key, str) or not key.strip():
        raise UserError(where, "a key of the space is a config key as --set writes it")
    kinds = ", ".join(f"{{{k}: {v}}}" for k, v in KINDS.items())
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in KINDS:
        raise UserError(where, "expected a mapping with one of the kinds", kinds)
    kind, values = next(iter(value.items()))
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise UserError(where, f"choice: expected {KINDS['choice']}, got {values!r}")
        return Dimension(key, kind, values, where)
    if not isinstance(values, list) or len(values) != 2:
        raise UserError(where, f"{kind}: expected {KINDS[kind]}, got {values!r}")
    lo, hi = (_number(v, kind, where) for v in values)
    if not lo < hi or (kind == "log_uniform" and lo <= 0):
        raise UserError(where, f"{kind}: expected {KINDS[kind]}, got [{lo}, {hi}]")
    return Dimension(key, kind, [lo, hi], where)


def _number(v, kind, where):
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise UserError(where, f"int: expected {KINDS['int']}, got {v!r}")
        return v
    try:  # YAML 1.1 reads 1e-3 as text; users mean a number
        number = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise UserError(where, f"{kind}: expected {KINDS[kind]}, got {v!r}")
    return number
