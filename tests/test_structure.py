"""The shape of the package: every module imports on its own, imports point downwards only (no
cycle), modules stay small, random streams come from one registry, and the code cites only
documents inside the repository."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nettrain.core import streams
from nettrain.core.step import Step
from nettrain.net.network import build_network

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nettrain"
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own(module):
    """A fresh interpreter per module: an import cycle shows up when its module comes first."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NETTRAIN_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def imports_of(path: Path) -> set[str]:
    """The nettrain modules ``path`` imports, anywhere in it, but for `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nettrain"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nettrain"):
            found.add(node.module)
            # `from nettrain.data import csv` imports a module; `import X` of a name does not
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES}


def import_graph() -> dict[str, set[str]]:
    """module -> the modules importing it runs: the named ones and their packages' __init__,
    except packages the importer is itself inside of (those are already being imported)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        edges = set()
        for target in imports_of(path):
            parts = target.split(".")
            for n in range(1, len(parts) + 1):
                package = ".".join(parts[:n])
                if package in MODULES and not me.startswith(package + ".") and package != me:
                    edges.add(package)
        graph[me] = edges
    return graph


def test_imports_point_downwards_only():
    """No import cycle between modules: the layers of the package can be read bottom up."""
    graph = import_graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_import_graph_sees_a_cycle():
    """The check above can fail: the cycle this package once had is found in a graph that has it."""
    graph = import_graph()
    assert "nettrain.core.options" in graph["nettrain.layers.dense"]
    assert "nettrain.layers.softmax" in graph["nettrain.net.losses"]
    graph["nettrain.core.options"] = {"nettrain.config"}  # as when options lived in config/
    seen, todo = set(), ["nettrain.net.losses"]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    assert (
        "nettrain.config.schema" in seen
        and "nettrain.net.losses" in graph["nettrain.config.schema"]
    )


# The packages bottom up: a module may import its own package and the packages of lower rows; the
# packages of one row are peers and import none of each other (docs/development.md, "Layout").
PACKAGE_ORDER = (
    ("core",),
    ("runtime",),
    ("data", "checkpoint"),
    ("layers", "optim"),
    ("net",),
    ("config",),
    ("assemble",),
    ("training", "inference", "export", "tools", "tuning"),
    ("api",),
    ("cli",),
    ("__main__",),
)
RANK = {role: rank for rank, row in enumerate(PACKAGE_ORDER) for role in row}


def role(module: str) -> str:
    """nettrain.training.loop -> training; nettrain.api -> api; nettrain itself -> ''."""
    return module.split(".")[1] if "." in module else ""


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a package to one above it or beside it. The package root (`import nettrain`,
    its __version__ and its lazy `load`/`Model`) stands outside the order."""
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if role(a) and role(b) and role(a) != role(b) and RANK[role(b)] >= RANK[role(a)]
    )


def test_every_package_has_a_place_in_the_order():
    assert {role(m) for m in MODULES} - {""} == set(RANK)


def test_imports_point_down_the_package_order():
    arrows = upward_arrows(import_graph())
    assert not arrows, "imports up or across the package order:\n" + "\n".join(arrows)


def test_the_package_order_check_sees_an_upward_import():
    """The check above can fail: a layer importing the training loop, or the library importing
    the command line, is reported."""
    graph = import_graph()
    graph["nettrain.layers.dense"] = graph["nettrain.layers.dense"] | {"nettrain.training.loop"}
    graph["nettrain.training.fit"] = graph["nettrain.training.fit"] | {"nettrain.cli.base"}
    graph["nettrain.tools.bench"] = graph["nettrain.tools.bench"] | {"nettrain.export"}
    assert upward_arrows(graph) == [
        "nettrain.layers.dense -> nettrain.training.loop",
        "nettrain.tools.bench -> nettrain.export",
        "nettrain.training.fit -> nettrain.cli.base",
    ]


def test_leaf_modules_import_only_errors():
    for leaf in (
        "nettrain.core.errors",
        "nettrain.core.options",
        "nettrain.core.files",
        "nettrain.core.streams",
    ):
        path = ROOT / (leaf.replace(".", "/") + ".py")
        assert imports_of(path) <= {"nettrain.core.errors"}, leaf


def test_no_module_is_over_300_lines():
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, f"split these modules (at most {MAX_LINES} lines):\n" + "\n".join(long)


def test_the_training_loop_reads_in_one_screen():
    text = (PACKAGE / "training" / "loop.py").read_text()
    body = re.search(r"\ndef train\(.*?(?=\n\n\ndef )", text, re.S).group(0)
    assert len(body.strip().splitlines()) <= 60


# -- random streams ------------------------------------------------------------------------------


def test_random_generators_come_from_the_stream_registry():
    found = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in PACKAGE.rglob("*.py")
        if p.name != "streams.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if "default_rng(" in line
    ]
    assert not found, "draw from a nettrain.core.streams function instead:\n" + "\n".join(found)


def test_stream_ids_are_fixed():
    """Changing an id changes every result drawn from it: checkpoints record them."""
    assert streams.DESCRIPTION == (
        "init [seed,0]; shuffle [seed,1,epoch]; dropout [seed,2,step,layer]; "
        "validation [seed,5]; augment [seed,6,step]"
    )
    draw = streams.init_rng(7).random()
    assert draw == np.random.default_rng([7, 0]).random()
    assert streams.augment_rng(7, 3).random() == np.random.default_rng([7, 6, 3]).random()
    order = np.random.default_rng([7, 1, 2]).permutation(10)
    np.testing.assert_array_equal(streams.epoch_order(7, 2, 10, True), order)
    np.testing.assert_array_equal(streams.epoch_order(7, 2, 10, False), np.arange(10))
    holdout = np.random.default_rng([7, 5]).permutation(10)
    np.testing.assert_array_equal(streams.holdout_order(7, 10), holdout)


def test_dropout_masks_come_from_the_dropout_stream(make_config):
    text = (
        "model:\n  input: [4]\n  layers:\n    - {type: dense, units: 3}\n"
        "    - {type: dropout, drop_prob: 0.5}\n  loss: squared_error\n"
    )
    cfg, _ = make_config(text)
    net = build_network(cfg["model"], np.float64, cfg["model"]["input"])
    layer = net.layers[1]
    expected = streams.dropout_rng(11, 5, layer.index).random(8)
    np.testing.assert_array_equal(Step(11, 5).dropout_rng(layer.index).random(8), expected)
    _, mask = layer.forward(np.ones((2, 3)), Step(11, 5))  # the layer draws from it
    kept = streams.dropout_rng(11, 5, layer.index).random((2, 3), dtype=layer.dtype) >= 0.5
    np.testing.assert_array_equal(mask != 0, kept)


# -- references: only to documents in the repository ---------------------------------------------

# Spelled in pieces so that this file does not cite them itself.
OUTSIDE = re.compile(r"\bSP" + r"EC\b|\.\./" + "shared|(?i:seed[- ]" + "notes)")
DOC_CITATION = re.compile(r"\bdocs/[\w./-]+\.md")


def cited_files():
    for folder in ("nettrain", "tests", "benchmarks"):
        yield from (p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".yaml"))


def test_code_cites_no_file_outside_the_repository():
    found = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in cited_files()
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, "cite a page of the docs (docs/*.md) instead:\n" + "\n".join(found)


def test_cited_docs_exist():
    missing = {
        f"{p.relative_to(ROOT)}: {doc}"
        for p in [*cited_files(), ROOT / "README.md"]
        for doc in DOC_CITATION.findall(p.read_text())
        if not (ROOT / doc).is_file()
    }
    assert not missing, "\n".join(sorted(missing))
