"""Property-based tests: whatever a user hands nettrain, it works or says what is wrong.

Random YAML trees (some far from a config, some a valid config with keys deleted, misspelt or
given values of the wrong type, some with their text garbled) go to `summary` and `gradcheck`;
random bytes, and valid data files and checkpoints truncated or with bytes flipped, go to `fit`
(as data, --weights, --resume), `predict` and `evaluate`. The property: exit 0, or the command's
error exit code with an `error:` line on stderr, never a traceback.

NETTRAIN_FUZZ_EXAMPLES=500 runs more (random) examples than CI's fixed, derandomised set.
"""

from __future__ import annotations

import copy
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("NETTRAIN_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 40,
    derandomize=not EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

BASE = {
    "seed": 0,
    "model": {
        "input": [1, 4, 4],
        "layers": [
            {"type": "conv2d", "filters": 2, "kernel": 3, "padding": "same", "activation": "relu"},
            {"type": "maxpool2d", "size": 2},
            {"type": "dense", "units": 5, "activation": "tanh"},
            {"type": "dense", "units": 3},
            "softmax",
        ],
        "loss": "multinomial_cross_entropy",
    },
    "train": {"epochs": 1, "batch_size": 8, "optimizer": {"name": "sgd", "lr": 0.1}},
}

NAMES = [
    *("seed", "dtype", "data", "model", "train", "input", "layers", "loss", "type", "units"),
    *("activation", "filters", "kernel", "stride", "padding", "size", "drop_prob", "epochs"),
    *("batch_size", "optimizer", "name", "lr", "momentum", "schedule", "checkpoint", "dataset"),
    *("test", "validation", "preprocess", "augment", "init", "bias", "every_steps", "monitor"),
    *("mode", "early_stopping", "patience", "dense", "softmax", "sigmoid", "tanh", "relu"),
    *("conv2d", "maxpool2d", "dropout", "sgd", "adam", "moons", "xor", "float32", "float64"),
    *("same", "valid", "squared_error", "cross_entropy", "multinomial_cross_entropy", "auto"),
    *("standardize", "minmax", "step", "cosine", "path", "format", "npz", "csv", "x", "y"),
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.sampled_from([0, -1, 2**31, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(NAMES),
)
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=8))
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=16,
)


def paths(tree, prefix=()):
    """Every path into ``tree`` (dict keys and list indices), parents before children."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in list(items):
        yield (*prefix, key)
        if isinstance(value, (dict, list)):
            yield from paths(value, (*prefix, key))


def mutated(draw, tree):
    """``tree`` after a few random edits: delete, misspell a key, replace a value."""
    tree = copy.deepcopy(tree)
    for _ in range(draw(st.integers(1, 3))):
        where = list(paths(tree))
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = draw(st.sampled_from(["delete", "misspell", "replace", "replace"]))
        if op == "delete":
            del parent[key]
        elif op == "misspell" and isinstance(key, str) and key:
            i = draw(st.integers(0, len(key) - 1))
            typo = key[:i] + draw(st.sampled_from(["", "x", key[i] * 2, "_"])) + key[i + 1 :]
            parent[typo] = parent.pop(key)
        else:
            parent[key] = draw(trees)
    return tree


@st.composite
def config_texts(draw):
    kind = draw(st.sampled_from(["mutated", "mutated", "random", "garbled"]))
    if kind == "random":
        tree = draw(st.dictionaries(keys, trees, max_size=5))
    else:
        tree = mutated(draw, BASE)
    text = yaml.safe_dump(tree, sort_keys=False)
    if kind == "garbled":
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(text)))
            junk = draw(
                st.sampled_from(["\t", ":", "[", "{", "'", '"', "&a", "*a", "!!", "%", "- "])
            )
            text = text[:i] + junk + text[i:]
    return text


def assert_clean(result, codes=(0, 2)):
    """Worked, or failed with its exit code and an `error:` line; never a traceback."""
    shown = f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{shown}"
    )
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert result.exit_code in codes, shown
    if result.exit_code != 0:
        assert any(line.startswith("error: ") for line in result.stderr.splitlines()), shown


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository
    return tmp_path


@FUZZ
@given(text=config_texts())
def test_random_configs_in_summary_and_gradcheck(folder, text, cli_call):
    (folder / "c.yaml").write_text(text)
    assert_clean(cli_call("summary", "c.yaml", code=None))
    args = ["gradcheck", "c.yaml", "--samples", "2", "--entries", "3"]
    assert_clean(cli_call(*args, code=None), codes=(0, 1, 2))


# -- random bytes as data files and checkpoints ---------------------------------------------------

CONFIG = """\
data:
  train: train.npz
model:
  layers:
    - {type: dense, units: 5, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 1
  batch_size: 8
"""


def idx(array: np.ndarray) -> bytes:
    """An uint8 array in MNIST's IDX format."""
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return bytes([0, 0, 0x08, array.ndim]) + dims + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def good(tmp_path_factory, cli_call):
    """Valid files to damage: the same 16 samples as train.npz, train.csv (label first, a
    header), train.csv.gz and IDX images and labels; x.npz, c.yaml, run/last.npz."""
    folder = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (16, 4)), rng.integers(0, 3, 16)
    np.savez(folder / "train.npz", x=x.astype(np.float64) / 255, y=y)
    rows = "".join(f"{label},{','.join(map(str, r))}\n" for label, r in zip(y, x, strict=True))
    (folder / "train.csv").write_text("label,a,b,c,d\n" + rows)
    (folder / "train.csv.gz").write_bytes(gzip.compress((folder / "train.csv").read_bytes()))
    (folder / "train-images-idx3-ubyte").write_bytes(idx(x.reshape(16, 2, 2)))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx(y))
    # the labels beside the damaged images file are whole
    (folder / "bad-train-labels-idx1-ubyte").write_bytes(idx(y))
    np.savez(folder / "x.npz", x=rng.standard_normal((3, 4)))
    (folder / "c.yaml").write_text(CONFIG)
    args = ["fit", str(folder / "c.yaml"), "--out", str(folder / "run"), "--quiet"]
    cli_call(*args)
    return folder


@st.composite
def damaged(draw, original: bytes):
    """Bytes like ``original`` gone wrong: truncated, bytes flipped or inserted, or random."""
    kind = draw(st.sampled_from(["truncate", "flip", "flip", "insert", "random"]))
    data = bytearray(original)
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= draw(st.integers(1, 255))
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def fuzz_file(good, name, draw):
    """A damaged copy of ``good/name``, written beside it as bad-<name>."""
    data = draw(damaged((good / name).read_bytes()))
    path = (good / name).with_name(f"bad-{Path(name).name}")
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "name", ["train.npz", "train.csv", "train.csv.gz", "train-images-idx3-ubyte"]
)
@FUZZ
@given(data=st.data())
def test_damaged_data_file(good, folder, data, name, cli_call):
    bad = fuzz_file(good, name, data.draw)
    args = ["fit", str(good / "c.yaml"), "--set", f"data.train={bad}", "--out", "r", "--overwrite"]
    assert_clean(cli_call(*args, "--quiet", code=None), codes=(0, 1, 2))
    ck = str(good / "run" / "last.npz")
    assert_clean(cli_call("predict", ck, bad, code=None))
    assert_clean(cli_call("evaluate", ck, "--data", bad, code=None))


@FUZZ
@given(data=st.data())
def test_damaged_checkpoint(good, folder, data, cli_call):
    bad = fuzz_file(good, "run/last.npz", data.draw)
    assert_clean(cli_call("predict", bad, str(good / "x.npz"), code=None))
    assert_clean(cli_call("evaluate", bad, "--data", str(good / "train.npz"), code=None))
    fit = ["fit", str(good / "c.yaml"), "--out", "r", "--overwrite", "--quiet"]
    assert_clean(cli_call(*fit, "--weights", bad, code=None), codes=(0, 1, 2))
    resume = [*fit, "--resume", bad, "--set", "train.epochs=2"]
    assert_clean(cli_call(*resume, code=None), codes=(0, 1, 2))
