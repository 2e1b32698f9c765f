"""Nets as graphs (docs/graphs.md): which earlier outputs each entry of ``model.layers`` reads.

An entry reads the output of the entry before it (the first one: the net's input), or what its
``from`` names: a reference (REF) is an entry's ``name``, its 0-based index in ``model.layers``,
a negative offset (-1 the entry just before, -2 the one before that) or ``input``. A join
(``add``, ``concat``: a layer class with ``JOIN``) reads a list of two or more. References point
backwards only, so the list order is an order in which every layer's inputs exist before it.

``entry_sources(specs, where)`` resolves every reference before anything is built, and refuses a
net with an unknown name, a forward reference, a list on a one-input layer, a join of fewer than
two inputs, a name given twice, or a dead branch: an entry whose output nothing reads (other
than the last, whose output is the net's). That last is an error, not a warning: an unread
output is almost always a ``from`` that points one entry too far, and training it anyway would
spend its time and parameters on nothing (docs/graphs.md, "A dead branch").
"""

from __future__ import annotations

import re
from collections import Counter

from nettrain.core.errors import UserError, did_you_mean
from nettrain.core.options import Opt, check_named
from nettrain.layers import LAYERS

INPUT = -1  # the net's input, where a source is an index
NAME = re.compile(r"[A-Za-z0-9_-]+")
NUMBER = re.compile(r"-?[0-9]+")

# The keys any entry of model.layers may carry besides its layer's options; the resolved config
# holds them only where they were given.
KEYS = {
    "name": Opt(
        "str",
        None,
        doc="a name for this layer's output, which `from` can use: unique in the net; letters, "
        "digits, `_` and `-`, not a number, not `input`",
    ),
    "from": Opt(
        "ref",
        None,
        doc="what the layer reads instead of the layer before it: a name, a 0-based index, a "
        "negative offset (-1: the layer before) or `input` (the net's input); add and concat "
        "take a list of two or more. References point backwards only",
    ),
}


def checked_entry(spec, src, path) -> dict:
    """One entry of model.layers, checked (the config schema's): its type's options with their
    defaults, and ``name``/``from`` only where given."""
    resolved = check_named(spec, LAYERS, src, path, "type", common=KEYS)
    return {k: v for k, v in resolved.items() if k not in KEYS or v is not None}


def entry_sources(specs: list, where) -> list[tuple[int, ...]]:
    """Per entry of ``specs`` (resolved layer specs), the indices of the entries it reads
    (INPUT: the net's input). ``where(i, *key)`` names entry i's key for messages (its YAML
    line). A UserError for anything the module docstring lists."""
    names: dict[str, int] = {}
    for i, spec in enumerate(specs):
        name = spec.get("name")
        if name is None:
            continue
        if not NAME.fullmatch(name) or NUMBER.fullmatch(name) or name == "input":
            raise UserError(
                where(i, "name"),
                f"'{name}' cannot name a layer: use letters, digits, '_' and '-', not a number "
                "(it would read as an index) and not 'input'",
            )
        if name in names:
            raise UserError(
                where(i, "name"), f"layer {names[name]} is already named '{name}'",
                "names are unique in the net",
            )  # fmt: skip
        names[name] = i
    sources = [_sources_of(i, spec, names, where) for i, spec in enumerate(specs)]
    readers = Counter(j for refs in sources for j in refs)
    for j in range(len(specs) - 1):
        if not readers[j]:
            raise UserError(
                where(j),
                f"nothing reads the output of {_text(j, specs)}: only the last layer's output "
                "is the net's, so this branch would train for nothing",
                f"read it with a `from` that names it ({_ref(j, specs)}), or remove it",
            )
    return sources


def _sources_of(i: int, spec: dict, names: dict, where) -> tuple[int, ...]:
    kind, refs = spec["type"], spec.get("from")
    if LAYERS[kind].JOIN:
        if not isinstance(refs, list) or len(refs) < 2:
            raise UserError(
                where(i, "from") if refs is not None else where(i),
                f"{kind} layer {i} joins two or more inputs, but "
                + ("has no `from`" if refs is None else f"its from is {refs!r}"),
                "give it from: [REF, REF, ...], e.g. from: [-1, -3]",
            )
        return tuple(_index(ref, i, names, where) for ref in refs)
    if isinstance(refs, list):
        raise UserError(
            where(i, "from"),
            f"{kind} layer {i} takes one input, but its from lists {len(refs)}: {refs!r}",
            f"join them first ({{type: add, from: {refs}}} or concat), or give one REF",
        )
    if refs is None:  # the entry before, or the net's input for the first
        return (i - 1,)
    return (_index(refs, i, names, where),)


def _index(ref, i: int, names: dict, where) -> int:
    """The entry index a reference in entry i's ``from`` points to (INPUT for 'input')."""
    if ref == "input":
        return INPUT
    if isinstance(ref, str):
        if ref not in names:
            known = [*names, "input"]
            raise UserError(where(i, "from"), f"no layer named '{ref}': {did_you_mean(ref, known)}")
        target = names[ref]
    elif ref < 0:
        target = i + ref
        if target < 0:
            raise UserError(
                where(i, "from"),
                f"offset {ref} from layer {i} points before the first layer",
                "the net's input is `input`",
            )
    else:
        target = ref
    if target >= i:
        what = "itself" if target == i else f"layer {target}, after it"
        raise UserError(
            where(i, "from"),
            f"layer {i} reads {ref!r}, which is {what}: references point backwards only",
            "a layer reads the net's input or the output of a layer listed before it",
        )
    return target


def _text(j: int, specs: list) -> str:
    name = specs[j].get("name")
    return f"{specs[j]['type']} layer {j}" + (f" ('{name}')" if name else "")


def _ref(j: int, specs: list) -> str:
    return f"from: {specs[j].get('name') or j}"


def source_text(j: int, specs: list, shape) -> str:
    """'layer 2 (16, 28, 28)', "layer 0 'block_in' (16, 28, 28)" or 'input (1, 28, 28)'."""
    shown = "(" + ", ".join(map(str, shape)) + ")"
    if j == INPUT:
        return f"input {shown}"
    name = specs[j].get("name")
    return f"layer {j}" + (f" '{name}'" if name else "") + f" {shown}"


def is_chain(sources: list) -> bool:
    """Whether every entry reads the one before it (a plain stack)."""
    return all(refs == (i - 1,) for i, refs in enumerate(sources))
