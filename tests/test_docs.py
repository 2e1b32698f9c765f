"""The docs keep up with the code: every config key in the configuration reference (generated from
the option specs), every option with its doc text, every page in the site's nav, the README's
Quickstart true to CI, and every command the README shows run as written."""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml
from helpers import invoke

from nettrain.config import reference, schema
from nettrain.core.options import Opt
from nettrain.data import DATASETS
from nettrain.data.augment import AUGMENT, CROP
from nettrain.data.preprocess import PREPROCESS
from nettrain.data.sources import SOURCES
from nettrain.layers import LAYERS
from nettrain.layers.initializers import INITIALIZERS
from nettrain.optim import OPTIMIZERS
from nettrain.optim.schedule import COMMON, SCHEDULES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
CONFIGS_PAGE = (DOCS / "configs.md").read_text()


def documented_keys():
    for section, options in (
        ("", schema.TOP),
        ("data.", schema.DATA),
        ("model.", schema.MODEL),
        ("train.", schema.TRAIN),
    ):
        for key in options:
            yield f"{section}{key}"
    yield "data.validation"
    for key in schema.CHECKPOINT:
        yield f"train.checkpoint.{key}"
    for key in schema.EARLY_STOPPING:
        yield f"train.early_stopping.{key}"
    for table in (OPTIMIZERS, LAYERS):
        for name, cls in table.items():
            yield name
            yield from cls.OPTIONS
    for key in AUGMENT:
        yield f"data.augment.{key}"
    yield "data.augment.crop"
    for key in CROP:
        yield f"data.augment.crop.{key}"
    for table in (SCHEDULES, INITIALIZERS, SOURCES, DATASETS, PREPROCESS):
        for name, options in table.items():
            yield name
            yield from options
    yield from COMMON


def all_options():
    """(where, Opt or doc text) for every option spec the config is validated with."""
    for name, table in (
        ("", schema.TOP),
        ("data.", schema.DATA),
        ("model.", schema.MODEL),
        ("train.", schema.TRAIN),
        ("train.checkpoint.", schema.CHECKPOINT),
        ("train.early_stopping.", schema.EARLY_STOPPING),
        ("data.augment.", AUGMENT),
        ("data.augment.crop.", CROP),
        ("train.schedule.", COMMON),
    ):
        yield from ((f"{name}{k}", o) for k, o in table.items())
    for prefix, table in (
        ("layer", LAYERS),
        ("optimizer", OPTIMIZERS),
        ("schedule", SCHEDULES),
        ("init", INITIALIZERS),
        ("format", SOURCES),
        ("dataset", DATASETS),
        ("preprocess", PREPROCESS),
    ):
        for name, entry in table.items():
            for key, opt in reference.options_of(entry).items():
                yield f"{prefix} {name}: {key}", opt


REFERENCE = reference.render(reference.PAGE.read_text())


@pytest.mark.parametrize("key", sorted(set(documented_keys())))
def test_every_config_key_is_in_the_reference(key):
    assert f"`{key}`" in REFERENCE


def test_every_option_has_its_doc_text():
    empty = [where for where, opt in all_options() if not isinstance(opt, Opt) and not opt]
    empty += [where for where, opt in all_options() if isinstance(opt, Opt) and not opt.doc]
    assert not empty, "fill in the doc of: " + ", ".join(empty)


def test_the_reference_page_shows_every_table_once():
    markers = reference.MARKER.findall(reference.PAGE.read_text())
    assert sorted(markers) == sorted(reference.TABLES)
    assert "<!-- options:" not in REFERENCE
    with pytest.raises(KeyError, match="unknown options marker"):
        reference.render("<!-- options: nothing -->")


def test_every_page_is_in_the_nav_and_the_hook_exists():
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    listed = list(pages(site["nav"]))
    assert sorted(listed) == sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert all((ROOT / hook).is_file() for hook in site["hooks"])


def quickstart_commands():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in quickstart.splitlines() if line.startswith("    ")]


def test_quickstart_has_two_pip_install_commands_and_ci_runs_the_second():
    commands = quickstart_commands()
    assert len(commands) == 2 and all(c.startswith("pip install") for c in commands)
    assert "nettrain fit configs/" in commands[0]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    steps = [line for line in ci if line and not line.startswith("#")]
    parts = commands[1].split(" && ")
    assert commands[1] in steps or all(p in steps for p in parts), (parts, steps)
    assert steps.index(parts[0]) < steps.index(parts[-1]) == len(steps) - 1, (
        "CI installs first and ends with the test run, whose summary line ends its output"
    )


def test_every_config_in_configs_is_listed():
    for path in (ROOT / "configs").glob("*.yaml"):
        assert f"`configs/{path.name}`" in CONFIGS_PAGE, path.name
    assert re.search(r"nettrain fit configs/\S+\.yaml", README)


def test_the_mnist_mlp_time_is_stated_the_same_everywhere():
    def seconds(text):
        return {int(n) for n in re.findall(r"(\d+) s(?:econds)?\b", text)}

    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    row = next(r for r in CONFIGS_PAGE.splitlines() if r.startswith("| `configs/mnist-mlp"))
    comment = (ROOT / "configs" / "mnist-mlp.yaml").read_text().splitlines()[0]
    stated = [seconds(quickstart), seconds(row), seconds(comment)]
    assert all(len(s) == 1 for s in stated) and len(set.union(*stated)) == 1, stated


def readme_commands() -> list[list[str]]:
    """Every distinct `nettrain ...` line of the README's code blocks, in order, as arguments."""
    found = []
    for line in README.splitlines():
        text = line.strip().removeprefix("$ ")
        if line.startswith("    ") and text.startswith("nettrain "):
            args = shlex.split(text, comments=True)[1:]
            if args not in found:
                found.append(args)
    return found


def test_the_readme_shows_every_command():
    from nettrain.cli.commands import cli

    shown = {args[0] for args in readme_commands()}
    assert shown == set(cli.commands), set(cli.commands) ^ shown


def test_every_command_in_the_readme_runs_as_written(tmp_path, monkeypatch):
    """In a folder that has the repository's configs/ and datasets/, as a clone has."""
    for folder in ("configs", "datasets"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert len(commands) >= 10
    for args in commands:
        if args[0] == "plot" and importlib.util.find_spec("matplotlib") is None:
            invoke(*args, code=2)  # says to pip install 'nettrain[plot]'
            continue
        invoke(*args)
    assert (tmp_path / "runs" / "mlp" / "last.npz").is_file()
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == 10001
    assert (tmp_path / "mlp.onnx").stat().st_size > 0
    assert (tmp_path / "data" / "mnist-test" / "x.npy").is_file()
