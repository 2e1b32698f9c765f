"""The README keeps up with the code: every config key documented, the Quickstart true to CI."""

import re
from pathlib import Path

import pytest

from nettrain.config import schema
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


@pytest.mark.parametrize("key", sorted(set(documented_keys())))
def test_every_config_key_is_in_the_readme(key):
    assert f"`{key}`" in README


def test_quickstart_has_two_pip_install_commands_and_ci_runs_the_second():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in quickstart.splitlines() if line.startswith("    ")]
    assert len(commands) == 2 and all(c.startswith("pip install") for c in commands)
    assert "nettrain fit configs/" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_every_config_in_configs_is_listed():
    for path in (ROOT / "configs").glob("*.yaml"):
        assert f"`configs/{path.name}`" in README, path.name
    assert re.search(r"nettrain fit configs/\S+\.yaml", README)


def test_the_mnist_mlp_time_is_stated_the_same_everywhere():
    def seconds(text):
        return {int(n) for n in re.findall(r"(\d+) s(?:econds)?\b", text)}

    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in README.splitlines() if line.startswith("| `configs/mnist-mlp"))
    comment = (ROOT / "configs" / "mnist-mlp.yaml").read_text().splitlines()[0]
    stated = [seconds(quickstart), seconds(row), seconds(comment)]
    assert all(len(s) == 1 for s in stated) and len(set.union(*stated)) == 1, stated
