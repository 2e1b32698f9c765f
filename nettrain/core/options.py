"""Typed config options: each checks one YAML value and says what it expected and what it got.

A leaf module (it imports only ``nettrain.core.errors``): layers, optimizers, schedules and data
sources declare their ``OPTIONS`` with it, and the config package checks a file against them.

An ``Opt`` describes one key: its kind, default (``REQUIRED`` for none) and range. ``check``
returns the normalised value or raises a ``UserError`` naming the file, line and key.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nettrain.core.errors import UserError, did_you_mean

if TYPE_CHECKING:  # only annotations: the config package sits above this module
    from nettrain.config.source import ConfigSource

REQUIRED = object()


def _shown(value) -> str:
    # reprlib bounds the text: a value may be huge (a YAML alias bomb) or contain itself
    if isinstance(value, str):
        return f"'{value}' (text)" if len(value) <= 60 else f"'{value[:57]}...' (text)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        text = reprlib.repr(value)
        return f"a list {text}" if len(text) < 40 else "a list"
    return reprlib.repr(value)


@dataclass
class Opt:
    """One config key.

    kind: int | float | bool | str | path | choice | shape | size (int or [h, w]) | padding
    (int, [h, w], 'same' or 'valid'; ``extra={"axes": 1}``: no pair) | ref (a layer reference: a
    name or an integer, or a list of them; resolved by the net's builder). min/max bound numbers;
    ``exclusive_min`` makes min strict.
    """

    kind: str
    default: object = REQUIRED
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    choices: tuple = ()
    doc: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """'an integer >= 1', 'a number in (0, 1)', ... for messages and the reference."""
        names = {
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "str": "a text",
            "path": "a file path",
            "shape": "a list of positive integers, e.g. [1, 28, 28]",
            "size": "a positive integer or a pair [h, w]",
            "padding": "'same', 'valid', an integer >= 0 or a pair [h, w]",
            "named": "a name or a mapping with a 'name'",
            "ref": "a layer's name, index or negative offset, 'input', or a list of them",
        }
        if self.kind == "choice":
            return "one of: " + ", ".join(self.choices)
        if self.kind == "named":
            return "one of: " + ", ".join(self.extra["table"])
        if self.kind == "padding" and self.extra.get("axes") == 1:
            return "'same', 'valid' or an integer >= 0"
        text = names[self.kind]
        if self.min is not None and self.max is not None:
            lo = "(" if self.exclusive_min else "["
            hi = ")" if self.exclusive_max else "]"
            return f"{text} in {lo}{_num(self.min)}, {_num(self.max)}{hi}"
        if self.min is not None:
            return f"{text} {'>' if self.exclusive_min else '>='} {_num(self.min)}"
        if self.max is not None:
            return f"{text} {'<' if self.exclusive_max else '<='} {_num(self.max)}"
        return text

    def check(self, value, src: ConfigSource, path):
        """The normalised value, or a UserError naming where it was given."""

        def fail(detail=None):
            got = detail or f"got {_shown(value)}"
            raise UserError(src.where(path), f"expected {self.describe()}, {got}")

        kind = self.kind
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    fail()
            self._check_range(value, fail)
            return value
        if kind == "float":
            if isinstance(value, str):  # YAML 1.1 reads 1e-3 as text; users mean a number
                try:
                    value = float(value)
                except ValueError:
                    fail()
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                fail()
            value = float(value)
            if not math.isfinite(value):
                fail()
            self._check_range(value, fail)
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                fail()
            return value
        if kind == "str":
            if not isinstance(value, str) or not value:
                fail()
            return value
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                if isinstance(value, str):
                    raise UserError(
                        src.where(path),
                        f"unknown value '{value}': {did_you_mean(value, self.choices)}",
                    )
                fail()
            return value
        if kind == "path":
            if not isinstance(value, str) or not value:
                fail()
            resolved = (src.base_folder(path) / Path(value).expanduser()).resolve()
            return str(resolved)
        if kind == "shape":
            if not isinstance(value, list) or not value:
                fail()
            for v in value:
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    fail()
            return list(value)
        if kind == "size":
            return list(_pair(value, 1, fail))
        if kind == "ref":  # a layer reference, or a list of them (joins)
            refs = value if isinstance(value, list) else [value]
            bad = [
                v for v in refs if isinstance(v, bool) or not isinstance(v, (int, str)) or v == ""
            ]
            if bad or not refs:
                fail(None if not bad or bad[0] is value else f"got {_shown(bad[0])} in the list")
            return list(value) if isinstance(value, list) else value
        if kind == "named":  # a mapping whose 'name' picks its options, or a bare name
            return check_named(value, self.extra["table"], src, path, "name")
        if kind == "padding":
            if value in ("same", "valid"):
                return value
            if self.extra.get("axes") == 1:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    fail()
                return value
            return list(_pair(value, 0, fail))
        raise AssertionError(f"unknown option kind {kind}")

    def _check_range(self, value, fail):
        if self.min is not None and (
            value < self.min or (self.exclusive_min and value == self.min)
        ):
            fail()
        if self.max is not None and (
            value > self.max or (self.exclusive_max and value == self.max)
        ):
            fail()


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _pair(value, minimum, fail):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, list) or len(value) != 2:
        fail()
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            fail()
    return value


def check_mapping(value, options: dict, src: ConfigSource, path, nested=()) -> dict:
    """Validate a mapping against ``options``: unknown keys, missing required keys, each value.

    Keys in ``nested`` are known but validated by the caller (sub-sections, the layer list).
    Returns a new dict with every option present (defaults filled in), in ``options`` order.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise UserError(src.where(path), f"expected a mapping, got {_shown(value)}")
    for key in value:
        if key not in options and key not in nested:
            hint = key_hint(key, [*options, *nested], path)
            raise UserError(src.where((*path, key)), f"unknown key '{key}': {hint}")
    out = {}
    for key, opt in options.items():
        if key in value and value[key] is not None:
            out[key] = opt.check(value[key], src, (*path, key))
        elif opt.required:
            raise UserError(
                src.where(path) if path else src.file,
                f"missing required key '{dotted_key(path, key)}' ({opt.describe()})",
            )
        else:
            out[key] = opt.default
    return out


# Functions (key, path) -> ['dtype' (top level)', ...] naming the other sections that have a key:
# the config schema, which sits above this module, registers its own.
KEY_LOCATORS: list = []


def key_hint(key, known, path) -> str:
    """What to say of an unknown ``key`` at ``path``: the same key in another section
    ("did you mean 'dtype' (top level)?"), else the closest of ``known``, else the keys."""
    if not known:
        return "this takes no options"
    places = (
        [p for locate in KEY_LOCATORS for p in locate(key, path)] if isinstance(key, str) else []
    )
    if places:
        return f"did you mean {' or '.join(places)}?"
    return did_you_mean(key, known)


def dotted_key(path, key) -> str:
    return ".".join(str(p) for p in (*path, key))


def check_named(value, table: dict, src, path, key: str, default=None, common=None) -> dict:
    """A mapping whose ``key`` (type / name) picks its options from ``table``.

    A bare string is taken as that name ("- softmax", "optimizer: adam").
    """
    if isinstance(value, str):
        value = {key: value}
    if value is None and default is not None:
        value = {key: default}
    if not isinstance(value, dict):
        raise UserError(src.where(path), f"expected a mapping with a '{key}', got {_shown(value)}")
    name = value.get(key, default)
    if name is None:
        raise UserError(src.where(path), f"no '{key}' (one of: {', '.join(table)})")
    if not isinstance(name, str):
        raise UserError(
            src.where((*path, key)),
            f"expected a name (one of: {', '.join(table)}), got {_shown(name)}",
        )
    if name not in table:
        raise UserError(
            src.where((*path, key)), f"unknown {key} '{name}': {did_you_mean(name, table)}"
        )
    options = table[name] if isinstance(table[name], dict) else table[name].OPTIONS
    rest = {k: v for k, v in value.items() if k != key}
    return {key: name, **check_mapping(rest, {**options, **(common or {})}, src, path)}
