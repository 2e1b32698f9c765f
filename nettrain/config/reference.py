"""The configuration reference's tables, generated from the option specs the schema checks with.

docs/config-reference.md holds hand-written prose and marker lines such as
``<!-- options: train -->``; ``render(markdown)`` replaces each marker with the table of that
part of the schema (key, type, default, range or choices, and the ``Opt``'s doc text), so that
the reference and the validation cannot drift apart. A layer, optimizer, schedule, data format or
built-in set added to its table appears in the reference with no edit here.

Used two ways: as an MkDocs hook (mkdocs.yml ``hooks:``; MkDocs calls ``on_page_markdown`` for
every page), and from the command line, ``python -m nettrain.config.reference`` printing the
reference page with its tables filled in (the page as the site shows it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from nettrain.config import schema
from nettrain.core.options import REQUIRED, Opt
from nettrain.data import DATASETS
from nettrain.data.augment import AUGMENT, CROP
from nettrain.data.preprocess import PREPROCESS
from nettrain.data.sources import SOURCES
from nettrain.layers import LAYERS
from nettrain.layers.initializers import INITIALIZERS
from nettrain.net import graph
from nettrain.optim import OPTIMIZERS
from nettrain.optim.schedule import COMMON, SCHEDULES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"
MARKER = re.compile(r"^<!-- options: ([\w.]+) -->$", re.M)

TYPES = {
    "int": "int",
    "float": "number",
    "bool": "bool",
    "str": "text",
    "path": "path",
    "choice": "name",
    "shape": "list of ints",
    "size": "int or [h, w]",
    "padding": "`same`, `valid`, int or [h, w]",
    "named": "name or mapping",
    "ref": "name, int or list",
}
FLAT = "| key | type | default | range / choices | meaning |\n|---|---|---|---|---|\n"
NAMED = "| {what} | key | type | default | range / choices | meaning |\n|---|---|---|---|---|---|\n"

# Keys the schema checks itself (sections and the layer list) rather than through an Opt table.
SECTIONS = {
    "data": "the data (below); `fit` needs `data.dataset` or `data.train`",
    "model": "the net: `model.layers` and `model.loss`",
    "model.layers": "the layers, from the input upwards: a list of mappings, each with a `type` "
    "([layers](#layers)); a bare name such as `- softmax` is a layer without options",
    "train": "how to train (below)",
    "train.optimizer": "the optimizer and its settings ([optimizers](#optimizers)): "
    "`optimizer: adam` or `{name: adam, lr: 0.001}`",
    "train.schedule": "the learning-rate schedule ([schedules](#learning-rate-schedules))",
    "train.checkpoint": "when checkpoints are written and how `best.npz` is chosen (below)",
    "train.early_stopping": "stop when a figure stops improving (below); null: off",
    "data.augment.crop": "random crops: pad with zeros, then take a window at a uniform random "
    "position (below)",
}
SECTION_DEFAULTS = {
    "model.layers": REQUIRED,
    "train.optimizer": "sgd",
    "train.schedule": "constant",
    "train.early_stopping": None,
}


def _number(x) -> str:
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        if x.is_integer() and abs(x) < 1e6:
            return str(int(x))
        return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].strip('+')}{m[2]}", f"{x:g}")
    return str(x)


def default_text(default) -> str:
    if default is REQUIRED:
        return "required"
    if default is None:
        return "`null`"
    if isinstance(default, dict) and set(default) == {"name"}:
        return f"`{default['name']}`"
    if isinstance(default, (list, tuple)):
        return "`[" + ", ".join(_number(v) for v in default) + "]`"
    return f"`{_number(default)}`"


def type_text(opt: Opt) -> str:
    return TYPES.get(opt.kind) or opt.describe()


def range_text(opt: Opt) -> str:
    if opt.kind == "choice":
        return ", ".join(f"`{c}`" for c in opt.choices)
    if opt.kind == "named":
        return ", ".join(f"`{c}`" for c in opt.extra["table"])
    lo, hi = opt.min, opt.max
    if lo is not None and hi is not None:
        left = "(" if opt.exclusive_min else "["
        right = ")" if opt.exclusive_max else "]"
        return f"{left}{_number(lo)}, {_number(hi)}{right}"
    if lo is not None:
        return f"{'>' if opt.exclusive_min else '>='} {_number(lo)}"
    if hi is not None:
        return f"{'<' if opt.exclusive_max else '<='} {_number(hi)}"
    return ""


def cell(text: str) -> str:
    """Table-safe text: '|' escaped, ``rst`` literals as Markdown's."""
    return re.sub(r"``([^`]+)``", r"`\1`", text).replace("|", "\\|").replace("\n", " ")


def option_row(key: str, opt) -> str:
    if isinstance(opt, str):  # a section the schema checks itself, documented by a text
        return f"| `{key}` | {section_type(key)} | `null` |  | {cell(opt)} |"
    return (
        f"| `{key}` | {type_text(opt)} | {default_text(opt.default)} | {range_text(opt)} "
        f"| {cell(opt.doc)} |"
    )


def section_type(key: str) -> str:
    return {
        "model.layers": "list",
        "train.optimizer": "name or mapping",
        "train.schedule": "name or mapping",
        "data.dataset": "name or mapping",
        "data.train": "path or mapping",
        "data.test": "path or mapping",
        "data.validation": "fraction, count, path or mapping",
        "data.preprocess": "name or mapping",
    }.get(key, "mapping")


def section_row(key: str) -> str:
    default = SECTION_DEFAULTS.get(key, "")
    shown = default_text(default) if default != "" else ""
    return f"| `{key}` | {section_type(key)} | {shown} |  | {cell(SECTIONS[key])} |"


def flat(prefix: str, options: dict, sections=()) -> str:
    rows = [section_row(s) for s in sections]
    rows += [option_row(f"{prefix}{key}", opt) for key, opt in options.items()]
    return FLAT + "\n".join(rows) + "\n"


def describe_class(cls) -> str:
    """The first sentence of a layer's or optimizer's module docstring, citations dropped."""
    text = " ".join((sys.modules[cls.__module__].__doc__ or "").split("\n\n")[0].split())
    text = re.sub(r" \((?:[^()]*docs/[^()]*)\)", "", text)
    match = re.match(r"(.+?\.)(?:\s|$)", text)
    return cell(match[1] if match else text)


def options_of(entry) -> dict:
    return entry if isinstance(entry, dict) else entry.OPTIONS


def named(what: str, table: dict, common: dict | None = None) -> str:
    """One table for a name -> options table: a row per option, the name on its first row."""
    rows = []
    for name, entry in table.items():
        options = {**options_of(entry), **(common or {})}
        if not options:
            rows.append(f"| `{name}` |  |  |  |  | no options |")
        for i, (key, opt) in enumerate(options.items()):
            first = f"`{name}`" if i == 0 else ""
            rows.append(f"| {first} |{option_row(key, opt)[1:]}")
    return NAMED.format(what=what) + "\n".join(rows) + "\n"


def layers() -> str:
    """A section per layer type with options; one table of the layers without options."""
    parts, bare = [], []
    for name, cls in LAYERS.items():
        if not cls.OPTIONS:
            bare.append(f"| `{name}` | {describe_class(cls)} |")
            continue
        parts.append(f"### `{name}`\n\n{describe_class(cls)}\n\n{flat('', cls.OPTIONS)}")
    parts.append(
        "### Layers without options\n\n| type | what |\n|---|---|\n" + "\n".join(bare) + "\n"
    )
    return "\n".join(parts)


TABLES = {
    "top": lambda: flat("", schema.TOP, ("data", "model", "train")),
    "data": lambda: flat("data.", schema.DATA),
    "model": lambda: flat("model.", schema.MODEL, ("model.layers",)),
    "train": lambda: flat(
        "train.",
        schema.TRAIN,
        ("train.optimizer", "train.schedule", "train.checkpoint", "train.early_stopping"),
    ),
    "train.checkpoint": lambda: flat("train.checkpoint.", schema.CHECKPOINT),
    "train.early_stopping": lambda: flat("train.early_stopping.", schema.EARLY_STOPPING),
    "train.optimizer": lambda: named("name", OPTIMIZERS),
    "train.schedule": lambda: named("name", SCHEDULES, COMMON),
    "model.layers.N": lambda: flat("", graph.KEYS),
    "layers": layers,
    "init": lambda: named("name", INITIALIZERS),
    "data.sources": lambda: named("format", SOURCES),
    "data.dataset": lambda: named("name", DATASETS),
    "data.preprocess": lambda: named("name", PREPROCESS),
    "data.augment": lambda: flat("data.augment.", AUGMENT, ("data.augment.crop",)),
    "data.augment.crop": lambda: flat("data.augment.crop.", CROP),
}


def render(markdown: str) -> str:
    """``markdown`` with every ``<!-- options: NAME -->`` line replaced by that table."""

    def table(match):
        name = match[1]
        if name not in TABLES:
            raise KeyError(f"unknown options marker '{name}' (known: {', '.join(TABLES)})")
        return TABLES[name]().rstrip("\n")

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown, page=None, config=None, files=None, **kwargs):
    """MkDocs hook: fill the option tables into any page that has markers."""
    return render(markdown)


if __name__ == "__main__":
    sys.stdout.write(render(PAGE.read_text()))
