"""Config validation through ``nettrain.config.load_config``: every error names the file, the
1-based YAML line and the dotted key, and says what was expected and what was given."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from nettrain.assemble import net_for_config
from nettrain.config import load_config
from nettrain.config.schema import TRAIN
from nettrain.core.errors import UserError

# Line numbers of the base config (1-based), used by the cases below.
BASE = """\
seed: 0
dtype: float32
data:
  train: d.npz
model:
  input: [4]
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 8
  shuffle: true
  optimizer: {name: sgd, lr: 0.1, momentum: 0.5}
"""
LAYERS = """\
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
"""
OPTIMIZER = "  optimizer: {name: sgd, lr: 0.1, momentum: 0.5}"
CONV_INPUT = ("input: [4]", "input: [1, 4, 4]")


def edit(*pairs):
    """The base config with each (old, new) replaced; every ``old`` must occur exactly once."""
    text = BASE
    for old, new in pairs:
        assert text.count(old) == 1, f"{old!r} is not unique in the base config"
        text = text.replace(old, new)
    return text


@pytest.fixture
def folder(tmp_path):
    """tmp_path holding d.npz: x float (20, 4), y int labels 0..2."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((20, 4)), y=rng.integers(0, 3, 20))
    return tmp_path


def write(folder, text, name="cfg.yaml"):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def sgd_part(cfg):
    """The optimizer keys these tests set (other optimizers may add keys of their own)."""
    return {k: cfg["train"]["optimizer"][k] for k in ("name", "lr", "momentum")}


def error_of(call) -> UserError:
    with pytest.raises(UserError) as info:
        call()
    return info.value


# (id, config text, builder, line, dotted key, substrings the message (or hint) must hold)
# builder "load": load_config; "net": net_for_config (errors found when the net is built).
ERROR_CASES = [
    (
        "unknown-top-key",
        edit(("seed: 0", "sed: 0")),
        "load",
        1,
        "sed",
        ["unknown key 'sed'", "did you mean 'seed'?"],
    ),
    (
        "misspelt-data-train",
        edit(("  train: d.npz", "  trian: d.npz")),
        "load",
        4,
        "data.trian",
        ["unknown key 'trian'", "did you mean 'train'?"],
    ),
    (
        "misspelt-model-layers",
        edit(("  layers:", "  layres:")),
        "load",
        7,
        "model.layres",
        ["unknown key 'layres'", "did you mean 'layers'?"],
    ),
    (
        "misspelt-train-epochs",
        edit(("epochs: 2", "epoch: 2")),
        "load",
        13,
        "train.epoch",
        ["unknown key 'epoch'", "did you mean 'epochs'?"],
    ),
    (
        "misspelt-optimizer-lr",
        edit(("lr: 0.1", "lrr: 0.1")),
        "load",
        16,
        "train.optimizer.lrr",
        ["unknown key 'lrr'", "did you mean 'lr'?"],
    ),
    (
        "misspelt-layer-option",
        edit(("units: 8,", "unit: 8,")),
        "load",
        8,
        "model.layers.0.unit",
        ["unknown key 'unit'", "did you mean 'units'?"],
    ),
    (
        "unknown-layer-type",
        edit(("type: dense, units: 3", "type: dens, units: 3")),
        "load",
        9,
        "model.layers.1.type",
        ["unknown", "'dens'", "did you mean 'dense'?"],
    ),
    (
        "layer-without-type",
        edit(("{type: dense, units: 3}", "{units: 3}")),
        "load",
        9,
        "model.layers.1",
        ["no 'type'", "dense"],
    ),
    (
        "layer-not-a-mapping",
        edit(("    - softmax", "    - 3")),
        "load",
        10,
        "model.layers.2",
        ["expected a mapping", "'type'", "got 3"],
    ),
    (
        "unknown-loss",
        edit(("loss: multinomial_cross_entropy", "loss: multinomial_crossentropy")),
        "load",
        11,
        "model.loss",
        ["unknown value 'multinomial_crossentropy'", "did you mean 'multinomial_cross_entropy'?"],
    ),
    (
        "epochs-text",
        edit(("epochs: 2", 'epochs: "ten"')),
        "load",
        13,
        "train.epochs",
        ["expected an integer >= 1", "got 'ten' (text)"],
    ),
    (
        "epochs-fraction",
        edit(("epochs: 2", "epochs: 2.5")),
        "load",
        13,
        "train.epochs",
        ["expected an integer >= 1", "got 2.5"],
    ),
    (
        "shuffle-text",
        edit(("shuffle: true", 'shuffle: "yes"')),
        "load",
        15,
        "train.shuffle",
        ["expected true or false", "got 'yes' (text)"],
    ),
    (
        "lr-text",
        edit(("lr: 0.1", "lr: fast")),
        "load",
        16,
        "train.optimizer.lr",
        ["expected a number > 0", "got 'fast' (text)"],
    ),
    (
        "units-list",
        edit(("units: 3}", "units: [3]}")),
        "load",
        9,
        "model.layers.1.units",
        ["expected an integer >= 1", "got a list [3]"],
    ),
    (
        "input-not-a-shape",
        edit(("input: [4]", "input: [4, 0]")),
        "load",
        6,
        "model.input",
        ["expected a list of positive integers", "[4, 0]"],
    ),
    (
        "epochs-zero",
        edit(("epochs: 2", "epochs: 0")),
        "load",
        13,
        "train.epochs",
        ["expected an integer >= 1", "got 0"],
    ),
    (
        "batch-size-negative",
        edit(("batch_size: 8", "batch_size: -1")),
        "load",
        14,
        "train.batch_size",
        ["expected an integer >= 1", "got -1"],
    ),
    (
        "lr-zero",
        edit(("lr: 0.1", "lr: 0")),
        "load",
        16,
        "train.optimizer.lr",
        ["expected a number > 0", "got 0"],
    ),
    (
        "momentum-one",
        edit(("momentum: 0.5", "momentum: 1.0")),
        "load",
        16,
        "train.optimizer.momentum",
        ["expected a number in [0, 1)", "got 1.0"],
    ),
    (
        "units-zero",
        edit(("units: 3}", "units: 0}")),
        "load",
        9,
        "model.layers.1.units",
        ["expected an integer >= 1", "got 0"],
    ),
    (
        "filters-zero",
        edit(
            CONV_INPUT,
            ("{type: dense, units: 8, activation: tanh}", "{type: conv2d, filters: 0, kernel: 3}"),
        ),
        "load",
        8,
        "model.layers.0.filters",
        ["expected an integer >= 1", "got 0"],
    ),
    (
        "conv1d-padding-pair",
        edit(
            (
                "{type: dense, units: 8, activation: tanh}",
                "{type: conv1d, filters: 2, kernel: 3, padding: [1, 2]}",
            ),
        ),
        "load",
        8,
        "model.layers.0.padding",
        ["expected 'same', 'valid' or an integer >= 0", "got a list [1, 2]"],
    ),
    (
        "seed-negative",
        edit(("seed: 0", "seed: -3")),
        "load",
        1,
        "seed",
        ["expected an integer >= 0", "got -3"],
    ),
    (
        "dtype-float16",
        edit(("dtype: float32", "dtype: float16")),
        "load",
        2,
        "dtype",
        ["unknown value 'float16'", "float64"],
    ),
    (
        "missing-loss",
        edit(("  loss: multinomial_cross_entropy\n", "")),
        "load",
        5,
        "model",
        ["missing required key 'model.loss'", "multinomial_cross_entropy"],
    ),
    (
        "missing-layers",
        edit((LAYERS, "")),
        "load",
        5,
        "model.layers",
        ["expected a non-empty list of layers", "got nothing (null)"],
    ),
    (
        "empty-layers",
        edit((LAYERS, "  layers: []\n")),
        "load",
        7,
        "model.layers",
        ["expected a non-empty list of layers", "got a list []"],
    ),
    (
        "dataset-and-train",
        edit(("  train: d.npz", "  dataset: mnist\n  train: d.npz")),
        "load",
        5,
        "data.train",
        ["data.dataset", "data.train", "not both"],
    ),
    (
        "train-file-missing",
        edit(("train: d.npz", "train: nothere.npz")),
        "load",
        4,
        "data.train",
        ["file not found", "nothere.npz"],
    ),
    (
        "conv-kernel-too-large",
        edit(
            CONV_INPUT,
            ("{type: dense, units: 8, activation: tanh}", "{type: conv2d, filters: 2, kernel: 7}"),
        ),
        "net",
        8,
        "model.layers.0",
        ["cannot be built", "kernel 7x7", "4x4"],
    ),
    (
        "tanh-cross-entropy",
        edit(
            ("{type: dense, units: 3}", "{type: dense, units: 3, activation: tanh}"),
            ("    - softmax\n", ""),
            ("loss: multinomial_cross_entropy", "loss: cross_entropy"),
        ),
        "net",
        10,
        "model.loss",
        ["cross_entropy needs outputs in (0, 1)", "tanh", "(-1, 1)", "activation: sigmoid"],
    ),
    (
        "relu-multinomial",
        edit(
            ("{type: dense, units: 3}", "{type: dense, units: 3, activation: relu}"),
            ("    - softmax\n", ""),
        ),
        "net",
        10,
        "model.loss",
        ["multinomial_cross_entropy needs a softmax output", "relu", "{type: softmax}"],
    ),
]


@pytest.mark.parametrize(
    ("text", "builder", "line", "key", "needles"),
    [pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES],
)
def test_config_error_names_file_line_key_and_values(folder, text, builder, line, key, needles):
    path = write(folder, text)
    call = {"load": load_config, "net": net_for_config}[builder]
    exc = error_of(lambda: call(path))
    message = str(exc)
    full = message + "\n" + (exc.hint or "")
    assert f"cfg.yaml:{line}: {key}" in message, message
    assert str(path) in message, message
    for needle in needles:
        assert needle in full, f"{needle!r} not in {full!r}"
    assert "\n" not in message  # one line


# Malformed YAML: (id, text, acceptable lines, substrings)
YAML_CASES = [
    ("tab-indent", edit(("  epochs: 2", "\tepochs: 2")), (13,), ["invalid YAML", "'\\t'"]),
    ("unclosed-bracket", edit(("input: [4]", "input: [4")), (6, 7), ["invalid YAML"]),
    (
        "duplicate-key",
        edit(("  epochs: 2", "  epochs: 2\n  epochs: 3")),
        (14,),
        ["duplicate key 'epochs'", "first given on line 13"],
    ),
    (
        "duplicate-nested-key",
        edit(("momentum: 0.5}", "momentum: 0.5, lr: 0.2}")),
        (16,),
        ["duplicate key 'lr'", "line 16"],
    ),
    ("not-a-mapping", "- 1\n- 2\n", (1,), ["must be a mapping"]),
]


@pytest.mark.parametrize(
    ("text", "lines", "needles"), [pytest.param(*c[1:], id=c[0]) for c in YAML_CASES]
)
def test_malformed_yaml_names_its_line(folder, text, lines, needles):
    path = write(folder, text)
    message = str(error_of(lambda: load_config(path)))
    match = re.search(r"cfg\.yaml:(\d+): ", message)
    assert match, message
    assert int(match.group(1)) in lines, message
    for needle in needles:
        assert needle in message, message


def test_python_tag_is_rejected_and_never_executed(folder, monkeypatch):
    marker = folder / "executed"
    calls = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd) or 0)
    text = edit(("seed: 0", f'seed: !!python/object/apply:os.system ["touch {marker}"]'))
    message = str(error_of(lambda: load_config(write(folder, text))))
    assert "cfg.yaml:1: " in message
    assert "invalid YAML" in message
    assert "python/object/apply:os.system" in message
    assert calls == []
    assert not marker.exists()


def test_config_file_not_found(folder):
    exc = error_of(lambda: load_config(folder / "missing.yaml"))
    assert "missing.yaml" in str(exc)
    assert "not found" in str(exc)


# -- accepted configs -----------------------------------------------------------------------


def test_base_config_is_accepted(folder):
    cfg, _ = load_config(write(folder, BASE))
    assert cfg["model"]["input"] == [4]
    assert [layer["type"] for layer in cfg["model"]["layers"]] == ["dense", "dense", "softmax"]
    assert sgd_part(cfg) == {"name": "sgd", "lr": 0.1, "momentum": 0.5}


def test_lr_in_exponent_form_is_a_number(folder):
    # YAML 1.1 reads 1e-3 (no dot) as text; nettrain takes it as the number it means.
    cfg, _ = load_config(write(folder, edit(("lr: 0.1", "lr: 1e-3"))))
    lr = cfg["train"]["optimizer"]["lr"]
    assert isinstance(lr, float)
    assert lr == 0.001


def test_defaults_are_filled_in(folder):
    text = edit(
        ("  batch_size: 8\n", ""),
        ("  shuffle: true\n", ""),
        (OPTIMIZER, "  optimizer: {lr: 0.1}"),
        ("dtype: float32\n", ""),
        CONV_INPUT,
        ("{type: dense, units: 8, activation: tanh}", "{type: conv2d, filters: 2, kernel: 3}"),
    )
    cfg, _ = load_config(write(folder, text))
    assert cfg["dtype"] == "float32"
    assert cfg["train"]["batch_size"] == TRAIN["batch_size"].default
    assert isinstance(cfg["train"]["batch_size"], int) and cfg["train"]["batch_size"] >= 1
    assert cfg["train"]["shuffle"] is True
    assert sgd_part(cfg) == {"name": "sgd", "lr": 0.1, "momentum": 0.0}
    conv = cfg["model"]["layers"][0]
    assert conv["stride"] in (1, [1, 1])  # defaults are kept as written in the schema
    assert conv["padding"] == "valid"
    assert conv["activation"] == "linear"
    assert conv["kernel"] == [3, 3]
    assert cfg["model"]["layers"][1]["activation"] == "linear"
    assert cfg["data"]["test"] is None


def test_relative_data_path_resolves_against_config_folder(folder, tmp_path_factory, monkeypatch):
    sub = folder / "sub"
    sub.mkdir()
    (folder / "d.npz").rename(sub / "d.npz")
    path = write(sub, BASE)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    cfg, _ = load_config(path)
    assert cfg["data"]["train"] == str((sub / "d.npz").resolve())
    # the same relative path given from another folder's point of view would not exist
    assert not (elsewhere / "d.npz").exists()


def test_plain_string_layer(folder):
    cfg, _ = load_config(write(folder, BASE))
    assert cfg["model"]["layers"][2] == {"type": "softmax"}
    net, _ = net_for_config(write(folder, BASE))
    assert net.output_shape == (3,)
    assert net.layers[-1].kind == "softmax"


def test_empty_sections_take_defaults(folder):
    cfg, _ = load_config(
        write(
            folder,
            edit(
                ("train:\n", "train:\n  {}\n"),
                ("  epochs: 2\n  batch_size: 8\n  shuffle: true\n" + OPTIMIZER + "\n", ""),
            ),
        )
    )
    assert cfg["train"]["epochs"] == TRAIN["epochs"].default
    assert cfg["train"]["optimizer"]["name"] == "sgd"


# -- --set ----------------------------------------------------------------------------------


def test_set_applies_typed_values(folder):
    path = write(folder, BASE)
    cfg, _ = load_config(path, ["train.epochs=3", "model.layers.0.units=7"])
    assert cfg["train"]["epochs"] == 3 and isinstance(cfg["train"]["epochs"], int)
    assert cfg["model"]["layers"][0]["units"] == 7
    assert cfg["model"]["layers"][0]["activation"] == "tanh"  # the rest of the entry is kept
    assert cfg["model"]["layers"][1]["units"] == 3


@pytest.mark.parametrize(
    ("item", "get", "expected"),
    [
        ("train.shuffle=false", lambda c: c["train"]["shuffle"], False),
        ("train.optimizer.lr=0.5", lambda c: c["train"]["optimizer"]["lr"], 0.5),
        ("train.optimizer.lr=1e-3", lambda c: c["train"]["optimizer"]["lr"], 0.001),
        ("model.input=[1, 2, 2]", lambda c: c["model"]["input"], [1, 2, 2]),
        ("model.layers.1.units=5", lambda c: c["model"]["layers"][1]["units"], 5),
        ("model.layers.2={type: softmax}", lambda c: c["model"]["layers"][2], {"type": "softmax"}),
        ("model.layers.1.activation=relu", lambda c: c["model"]["layers"][1]["activation"], "relu"),
        ("dtype=float64", lambda c: c["dtype"], "float64"),
    ],
)
def test_set_values_are_parsed_as_yaml(folder, item, get, expected):
    cfg, _ = load_config(write(folder, BASE), [item])
    assert get(cfg) == expected
    assert type(get(cfg)) is type(expected)


def test_set_relative_path_resolves_against_cwd(folder, monkeypatch):
    path = write(folder, BASE)
    other = folder / "other"
    other.mkdir()
    np.savez(other / "e.npz", x=np.zeros((5, 4)), y=np.zeros(5, dtype=int))
    monkeypatch.chdir(other)
    cfg, _ = load_config(path, ["data.train=e.npz"])
    assert cfg["data"]["train"] == str((other / "e.npz").resolve())


# (id, item, substrings besides the leading '--set ITEM')
SET_ERRORS = [
    ("unknown-key", "train.epochz=3", ["unknown key 'epochz'", "did you mean 'epochs'?"]),
    ("unknown-top-key", "sed=1", ["unknown key 'sed'", "did you mean 'seed'?"]),
    ("unknown-new-section", "foo.bar=1", ["unknown key 'foo'"]),
    (
        "unknown-nested-section",
        "train.optimizr.lr=0.1",
        ["unknown key 'optimizr'", "did you mean 'optimizer'?"],
    ),
    ("unknown-layer-option", "model.layers.0.unitz=3", ["unknown key 'unitz'"]),
    ("index-out-of-range", "model.layers.5.units=3", ["model.layers.5", "no such list entry", "3"]),
    (
        "last-index-out-of-range",
        "model.layers.3={type: softmax}",
        ["model.layers.3", "no such list entry"],
    ),
    ("missing-equals", "train.epochs", ["expected KEY=VALUE"]),
    ("empty-key", "=3", ["expected KEY=VALUE"]),
    (
        "momentum-out-of-range",
        "train.optimizer.momentum=2",
        ["expected a number in [0, 1)", "got 2"],
    ),
    ("units-zero", "model.layers.0.units=0", ["expected an integer >= 1", "got 0"]),
    ("epochs-text", "train.epochs=ten", ["expected an integer >= 1", "'ten'"]),
    ("through-a-scalar", "seed.x=1", ["seed", "not a mapping or a list"]),
]


@pytest.mark.parametrize(("item", "needles"), [pytest.param(*c[1:], id=c[0]) for c in SET_ERRORS])
def test_set_errors_name_the_set(folder, item, needles):
    path = write(folder, BASE)
    message = str(error_of(lambda: load_config(path, ["train.epochs=4", item])))
    assert message.startswith(f"--set {item}:"), message
    assert "cfg.yaml" not in message, message  # the --set is to blame, not the file
    for needle in needles:
        assert needle in message, message


def test_set_does_not_blame_unrelated_file_errors_on_a_set(folder):
    # a --set elsewhere in the model must not take the blame for a missing model.loss
    path = write(folder, edit(("  loss: multinomial_cross_entropy\n", "")))
    message = str(error_of(lambda: load_config(path, ["model.layers.0.units=7"])))
    assert "cfg.yaml:5: model" in message
    assert "--set" not in message


# -- --set into shorthand values ------------------------------------------------------------

SHORTHAND = edit(
    (OPTIMIZER, "  optimizer: adam\n  schedule: cosine"),
    ("  train: d.npz\n", "  train: d.npz\n  preprocess: standardize\n"),
)


@pytest.mark.parametrize(
    ("item", "get", "expected"),
    [
        (
            "train.optimizer.lr=0.01",
            lambda c: c["train"]["optimizer"],
            {"name": "adam", "lr": 0.01},
        ),
        (
            "train.schedule.min_lr=0.001",
            lambda c: c["train"]["schedule"],
            {"name": "cosine", "min_lr": 0.001},
        ),
        (
            "data.preprocess.per=feature",
            lambda c: c["data"]["preprocess"],
            {"name": "standardize", "per": "feature"},
        ),
        ("train.optimizer.name=sgd", lambda c: c["train"]["optimizer"], {"name": "sgd"}),
        ("data.train.format=npz", lambda c: c["data"]["train"], {"format": "npz"}),
    ],
)
def test_set_expands_a_shorthand_to_its_mapping(folder, item, get, expected):
    cfg, _ = load_config(write(folder, SHORTHAND), [item])
    got = get(cfg)
    assert {k: got[k] for k in expected} == expected, got


def test_set_into_a_bare_layer_name(folder):
    # '- softmax' becomes {type: softmax}: a key it does not take is refused, naming the --set
    path = write(folder, SHORTHAND)
    message = str(error_of(lambda: load_config(path, ["model.layers.2.foo=1"])))
    assert message.startswith("--set model.layers.2.foo=1: unknown key 'foo'"), message
    cfg, _ = load_config(path, ["model.layers.2.type=softmax"])
    assert cfg["model"]["layers"][2] == {"type": "softmax"}


def test_set_into_a_shorthand_keeps_the_file_line_of_the_name(folder):
    path = write(folder, SHORTHAND.replace("optimizer: adam", "optimizer: adamm"))
    message = str(error_of(lambda: load_config(path, ["train.optimizer.lr=0.01"])))
    assert "cfg.yaml:17: train.optimizer" in message and "did you mean 'adam'?" in message
    path = write(folder, SHORTHAND)
    message = str(error_of(lambda: load_config(path, ["train.optimizer.lr=-1"])))
    assert message.startswith("--set train.optimizer.lr=-1:"), message


def test_set_into_a_null_section_creates_it(folder):
    path = write(folder, SHORTHAND.replace("  schedule: cosine", "  schedule:"))
    cfg, _ = load_config(path, ["train.schedule.name=step", "train.schedule.step_size=2"])
    assert cfg["train"]["schedule"]["name"] == "step"
    assert cfg["train"]["schedule"]["step_size"] == 2


# -- unknown keys that exist in another section -----------------------------------------------


@pytest.mark.parametrize(
    ("item", "hint"),
    [
        ("model.dtype=float64", "did you mean 'dtype' (top level)?"),
        ("train.lr=0.1", "did you mean 'train.optimizer.lr'?"),
        ("model.layers.0.momentum=0.9", "did you mean 'train.optimizer.momentum'?"),
        ("epochs=3", "did you mean 'train.epochs'?"),
        (
            "train.checkpoint.patience=2",
            "did you mean 'train.schedule.patience' or 'train.early_stopping.patience'?",
        ),
        ("model.epochz=1", "expected one of: input, layers, loss"),
    ],
)
def test_unknown_key_points_to_the_section_that_has_it(folder, item, hint):
    message = str(error_of(lambda: load_config(write(folder, BASE), [item])))
    assert message.startswith(f"--set {item}: unknown key"), message
    assert message.endswith(hint), message
