"""Bad inputs through the CLI: exit code 2, one `error: <where>: <what>` line, no file touched.

Every case below builds its bad input in a fresh folder (also the current folder), runs one
command and checks the contract of docs/commands.md and issue 6: exit code 2; on stderr exactly
one line `error: ...` (plus at most one hint line, indented); the line names the culprit (config
file and YAML line, data file and sample, checkpoint and key, or the option); no traceback;
nothing on stdout; and no file created, changed or removed anywhere (the case folder, the shared
data folder, the current folder), compared by size, mtime and SHA-256.

Write failures (disk full while a checkpoint or a prediction file is written) are tested after the
table: they exit 1 and leave the previous file intact.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import net_arrays

from nettrain import checkpoint
from nettrain.core.errors import UserError

CONFIG = """\
seed: 0
data:
  train: TRAIN
  test: TEST
model:
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 16
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
"""


def blobs(rng, n):
    centers = np.array([[3.0, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]])
    y = rng.integers(0, 3, n)
    return (centers[y] + rng.standard_normal((n, 4))).astype(np.float32), y


@pytest.fixture(scope="module")
def world(tmp_path_factory, cli_call):
    """Shared, never modified: train.npz (40), test.npz (20), x.npz, c.yaml (absolute data
    paths), run/ (a 2-epoch run: last.npz, best.npz, ...) and other/last.npz (a run of a
    different net: 5 hidden units)."""
    folder = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    x, y = blobs(rng, 40)
    np.savez(folder / "train.npz", x=x, y=y)
    xt, yt = blobs(rng, 20)
    np.savez(folder / "test.npz", x=xt, y=yt)
    np.savez(folder / "x.npz", x=xt)
    (folder / "c.yaml").write_text(config_text(folder))
    for out, extra in (("run", []), ("other", ["--set", "model.layers.0.units=5"])):
        args = ["fit", str(folder / "c.yaml"), "--out", str(folder / out), "--quiet", *extra]
        result = cli_call(*args, code=None)
        assert result.exit_code == 0, result.output
    return folder


def config_text(world: Path, old: str = "", new: str = "") -> str:
    """The config with absolute data paths into ``world``, with ``old`` replaced by ``new``."""
    text = CONFIG.replace("TRAIN", str(world / "train.npz")).replace(
        "TEST", str(world / "test.npz")
    )
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def line_of(text: str, snippet: str) -> int:
    """1-based number of the first line of ``text`` holding ``snippet``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if snippet in line)


@dataclass
class Here:
    """What a case builds its input with: the shared ``world`` and its own folder ``tmp`` (the
    current folder while the command runs)."""

    world: Path
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def config(self, old: str = "", new: str = "", name: str = "bad.yaml", text=None):
        """Write a config (the base one with ``old`` -> ``new``, or ``text``); (name, line of
        ``new``'s first line, or None)."""
        text = config_text(self.world, old, new) if text is None else text
        if isinstance(text, bytes):
            (self.tmp / name).write_bytes(text)
            return name, None
        (self.tmp / name).write_text(text)
        if not new.strip():
            return name, None
        return name, line_of(text, next(ln for ln in new.splitlines() if ln.strip()))

    def npz(self, name: str, **arrays) -> str:
        np.savez(self.tmp / name, **arrays)
        return name

    def data_config(self, name: str, **arrays) -> str:
        """A config training on a data file ``name`` (written from ``arrays``) without test set."""
        self.npz(name, **arrays)
        text = config_text(self.world, str(self.world / "train.npz"), str(self.tmp / name))
        text = text.replace(f"  test: {self.world / 'test.npz'}\n", "")
        return self.config(text=text)[0]

    def run_copy(self) -> Path:
        """A copy of the trained run folder, inside this case's folder."""
        shutil.copytree(self.world / "run", self.tmp / "run")
        return self.tmp / "run"

    def checkpoint_with(self, name: str, change) -> str:
        """A copy of the run's last.npz with ``change(arrays, meta)`` applied, re-saved by
        nettrain (so its checksum matches: only the change is wrong)."""
        arrays, meta = checkpoint.load(self.world / "run" / "last.npz")
        change(arrays, meta)
        checkpoint.save(self.tmp / name, arrays, meta)
        return name

    def weights_with(self, name: str, change) -> str:
        """The run's layers.* arrays, changed by ``change(arrays)``, as a weights-only .npz."""
        weights = net_arrays(self.world / "run" / "last.npz")
        change(weights)
        return self.npz(name, **weights)


CASES = []


def case(fn):
    """Register ``fn(here) -> (argv, needles)``: needles must all be in the error line."""
    CASES.append(pytest.param(fn, id=fn.__name__.removeprefix("case_").replace("_", "-")))
    return fn


W = "WORLD"  # placeholder in argv for the shared folder, replaced by its path


# -- malformed YAML ------------------------------------------------------------------------------


@case
def case_yaml_unclosed_bracket(h):
    name, line = h.config("units: 3}", "units: 3")
    return ["fit", name], [f"{name}:", "invalid YAML"]


@case
def case_yaml_binary_garbage(h):
    name, _ = h.config(text=bytes(range(256)) * 4)
    return ["summary", name], [name, "not a text file"]


@case
def case_yaml_list_at_top_level(h):
    name, _ = h.config(text="- seed: 0\n- model: {}\n")
    return ["gradcheck", name], [f"{name}:1", "must be a mapping"]


@case
def case_yaml_python_tag_is_never_executed(h):
    # if the tag were constructed, os.mkdir would create 'pwned' (the snapshot would see it)
    name, _ = h.config(text="seed: !!python/object/apply:os.mkdir ['pwned']\n")
    return ["fit", name], [f"{name}:1", "invalid YAML", "python/object/apply"]


@case
def case_yaml_alias_inside_its_anchor(h):
    text = config_text(h.world) + "extra: &a [*a]\n"
    name, _ = h.config(text=text)
    return ["summary", name], [f"{name}:{line_of(text, 'extra')}", "endless structure"]


@case
def case_yaml_nested_too_deeply(h):
    name, _ = h.config(text="model: " + "[" * 600 + "]" * 600 + "\n")
    return ["summary", name], [name, "nested too deeply"]


@case
def case_yaml_duplicate_key(h):
    name, line = h.config("  batch_size: 16\n", "  batch_size: 16\n  epochs: 5\n")
    return ["fit", name], [f"{name}:{line + 1}", "duplicate key 'epochs'"]


@case
def case_empty_config(h):
    name, _ = h.config(text="")
    return ["fit", name], [name, "missing section 'model'"]


# -- unknown and misspelt keys, at several levels ------------------------------------------------


@case
def case_misspelt_top_level_key(h):
    name, line = h.config("\ntrain:", "\ntrian:")
    return ["fit", name], [f"{name}:{line}: trian", "did you mean 'train'"]


@case
def case_misspelt_model_key(h):
    name, line = h.config("  layers:", "  layer:")
    return ["summary", name], [f"{name}:{line}: model.layer", "did you mean 'layers'"]


@case
def case_misspelt_layer_key(h):
    name, line = h.config("units: 8,", "unit: 8,")
    return ["fit", name], [f"{name}:{line}: model.layers.0.unit", "did you mean 'units'"]


@case
def case_misspelt_optimizer_key(h):
    name, line = h.config("momentum: 0.9", "momentun: 0.9")
    return ["fit", name], [f"{name}:{line}: train.optimizer.momentun", "did you mean 'momentum'"]


@case
def case_unknown_key_given_by_set(h):
    return ["fit", f"{W}/c.yaml", "--set", "train.epoch=3"], ["--set train.epoch=3", "'epochs'"]


# -- wrong types ----------------------------------------------------------------------------------


@case
def case_epochs_as_text(h):
    name, line = h.config("epochs: 2", "epochs: ten")
    return ["fit", name], [f"{name}:{line}: train.epochs", "'ten'", "integer"]


@case
def case_layers_as_a_mapping(h):
    name, line = h.config(
        "  layers:\n    - {type: dense, units: 8, activation: tanh}\n"
        "    - {type: dense, units: 3}\n    - softmax\n",
        "  layers: {type: dense}\n",
    )
    return ["summary", name], [f"{name}:{line}: model.layers", "list of layers"]


@case
def case_layer_type_as_a_list(h):
    name, line = h.config("{type: dense, units: 3}", "{type: [dense], units: 3}")
    return ["gradcheck", name], [f"{name}:{line}: model.layers.1.type", "expected a name"]


@case
def case_lr_as_a_list(h):
    name, line = h.config("lr: 0.1", "lr: [0.1]")
    return ["fit", name], [f"{name}:{line}: train.optimizer.lr", "number"]


# -- zero, negative and impossible sizes -------------------------------------------------------


@case
def case_zero_units(h):
    name, line = h.config("units: 3}", "units: 0}")
    return ["fit", name], [f"{name}:{line}: model.layers.1.units", "got 0"]


@case
def case_negative_batch_size(h):
    name, line = h.config("batch_size: 16", "batch_size: -5")
    return ["fit", name], [f"{name}:{line}: train.batch_size", "got -5"]


@case
def case_units_too_large_for_memory(h):
    name, line = h.config("units: 8,", "units: 100000000000000,")
    return ["fit", name], [f"{name}:{line}: model.layers.0", "does not fit in memory"]


@case
def case_pooling_a_flat_input(h):
    name, line = h.config("    - {type: dense, units: 3}", "    - {type: maxpool2d, size: 2}")
    return ["fit", name], [f"{name}:{line}: model.layers.1", "maxpool2d", "(channels, height"]


@case
def case_kernel_larger_than_the_input(h):
    name, line = h.config(
        "  layers:\n",
        "  input: [1, 2, 2]\n  layers:\n    - {type: conv2d, filters: 2, kernel: 5}\n",
    )
    return ["summary", name], [f"{name}:{line + 2}: model.layers.0", "larger than"]


@case
def case_model_input_does_not_match_the_data(h):
    name, _ = h.config("  layers:\n", "  input: [5]\n  layers:\n")
    return ["fit", name], ["train.npz", "(4,)", "(5,)"]


# -- loss and output that do not go together ----------------------------------------------------


@case
def case_cross_entropy_on_a_tanh_output(h):
    name, _ = h.config(
        "    - {type: dense, units: 3}\n    - softmax\n  loss: multinomial_cross_entropy",
        "    - {type: dense, units: 3, activation: tanh}\n  loss: cross_entropy",
    )
    line = line_of((h.tmp / name).read_text(), "loss: cross_entropy")
    return ["fit", name], [f"{name}:{line}: model.loss", "tanh", "(0, 1)"]


@case
def case_multinomial_without_softmax(h):
    name, _ = h.config("    - softmax\n", "")
    line = line_of((h.tmp / name).read_text(), "loss:")
    return ["gradcheck", name], [f"{name}:{line}: model.loss", "softmax"]


@case
def case_targets_do_not_match_the_outputs(h):
    name = h.data_config("t.npz", x=np.zeros((6, 4), np.float32), y=np.zeros((6, 2), np.float32))
    return ["fit", name], ["t.npz", "2 values per sample", "3 outputs"]


# -- missing and unreadable files ----------------------------------------------------------------


@case
def case_config_not_found(h):
    return ["fit", "nope.yaml"], ["nope.yaml", "not found"]


@case
def case_config_is_a_folder(h):
    (h.tmp / "folder.yaml").mkdir()
    return ["fit", "folder.yaml"], ["CONFIG", "folder.yaml", "is a directory"]


@case
def case_data_file_not_found(h):
    name, line = h.config(f"{h.world / 'test.npz'}", "missing.npz")
    return ["fit", name], [f"{name}:{line}: data.test", "not found", "missing.npz"]


@case
def case_data_file_unreadable(h):
    """Opening the file is refused as the system refuses it to a user without read permission:
    by a stand-in for open(), since root (CI's user) reads files whatever their mode."""
    name = h.data_config("locked.npz", x=np.zeros((6, 4), np.float32), y=np.zeros(6, int))
    locked, real_open = str(h.tmp / "locked.npz"), builtins.open

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    h.monkeypatch.setattr(builtins, "open", refusing_open)
    return ["fit", name], ["locked.npz", "ermission"]


@case
def case_checkpoint_is_a_folder(h):
    return ["fit", f"{W}/c.yaml", "--weights", f"{W}/run"], ["--weights", "is a directory"]


@case
def case_checkpoint_not_found_lists_the_others(h):
    return ["predict", f"{W}/run/las.npz", f"{W}/x.npz"], ["las.npz", "not found"]


# -- data files: array names, values, labels, emptiness -----------------------------------------


@case
def case_wrong_array_names(h):
    name = h.data_config("named.npz", inputs=np.zeros((6, 4)), labels=np.zeros(6, int))
    return ["fit", name], ["named.npz", "no array 'x'", "inputs, labels"]


@case
def case_nan_in_the_training_data(h):
    x = np.ones((6, 4), np.float32)
    x[3, 2] = np.nan
    name = h.data_config("nan.npz", x=x, y=np.zeros(6, int))
    return ["fit", name], ["nan.npz", "NaN", "sample 3"]


@case
def case_inf_in_the_evaluated_data(h):
    x = np.ones((6, 4), np.float32)
    x[4, 0] = np.inf
    h.npz("inf.npz", x=x, y=np.zeros(6, int))
    return ["evaluate", f"{W}/run/last.npz", "--data", "inf.npz"], ["inf.npz", "sample 4"]


@case
def case_label_out_of_range(h):
    name = h.data_config("big.npz", x=np.zeros((6, 4), np.float32), y=np.array([0, 1, 2, 7, 1, 0]))
    return ["fit", name], ["big.npz", "class label 7", "3 outputs"]


@case
def case_negative_label(h):
    name = h.data_config("neg.npz", x=np.zeros((6, 4), np.float32), y=np.array([0, 1, -1, 2, 1, 0]))
    return ["fit", name], ["neg.npz", "negative class label -1"]


@case
def case_fewer_labels_than_samples(h):
    name = h.data_config("short.npz", x=np.zeros((6, 4), np.float32), y=np.zeros(5, int))
    return ["fit", name], ["short.npz", "6 samples", "y has 5"]


@case
def case_a_single_label_for_all_samples(h):
    name = h.data_config("scalar.npz", x=np.zeros((6, 4), np.float32), y=np.array(1))
    return ["fit", name], ["scalar.npz", "single value"]


@case
def case_empty_data(h):
    name = h.data_config("empty.npz", x=np.zeros((0, 4), np.float32), y=np.zeros(0, int))
    return ["fit", name], ["empty.npz", "empty"]


@case
def case_data_file_of_zero_bytes(h):
    name = h.data_config("zero.npz", x=np.zeros((6, 4), np.float32), y=np.zeros(6, int))
    (h.tmp / "zero.npz").write_bytes(b"")
    return ["fit", name], ["zero.npz", "not an .npz file"]


@case
def case_object_array_in_the_data(h):
    h.npz("objects.npz", x=np.array([None] * 6, dtype=object))
    return ["predict", f"{W}/run/last.npz", "objects.npz"], ["objects.npz", "Object arrays"]


# -- truncated, damaged and foreign checkpoints --------------------------------------------------


@case
def case_truncated_checkpoint_names_the_usable_ones(h):
    run = h.run_copy()
    data = (run / "last.npz").read_bytes()
    (run / "cut.npz").write_bytes(data[: len(data) // 2])
    return ["predict", "run/cut.npz", f"{W}/x.npz"], ["run/cut.npz", "not a readable checkpoint"]


@case
def case_checkpoint_whose_arrays_fail_their_checksum(h):
    run = h.run_copy()
    with np.load(run / "last.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["layers.1.bias"] = arrays["layers.1.bias"] + 1  # the record still has the old sum
    np.savez(run / "edited.npz", **arrays)
    return ["evaluate", "run/edited.npz"], ["run/edited.npz", "damaged", "checksum"]


@case
def case_checkpoint_with_a_flipped_byte(h):
    run = h.run_copy()
    data = bytearray((run / "last.npz").read_bytes())
    start = data.index(b"layers.0.weight.npy") + 200  # inside the array's bytes
    data[start] ^= 0xFF
    (run / "flipped.npz").write_bytes(bytes(data))
    args = ["fit", f"{W}/c.yaml", "--resume", "run/flipped.npz", "--set", "train.epochs=3"]
    return args, ["run/flipped.npz", "damaged"]


@case
def case_text_file_named_npz_as_resume(h):
    (h.tmp / "notes.npz").write_text("these are my notes\n")
    args = ["fit", f"{W}/c.yaml", "--resume", "notes.npz"]
    return args, ["notes.npz", "not an .npz archive"]


@case
def case_random_npz_as_weights(h):
    h.npz("random.npz", a=np.random.default_rng(0).random((3, 3)))
    return ["fit", f"{W}/c.yaml", "--weights", "random.npz"], ["random.npz", "layers.{i}.weight"]


@case
def case_random_npz_as_resume(h):
    h.npz("random.npz", a=np.random.default_rng(0).random((3, 3)))
    return ["fit", f"{W}/c.yaml", "--resume", "random.npz"], ["random.npz", "no __meta__"]


@case
def case_checkpoint_of_a_different_net_as_weights(h):
    args = ["fit", f"{W}/c.yaml", "--weights", f"{W}/other/last.npz"]
    return args, ["other/last.npz", "'layers.0.weight' has shape (4, 5)", "(4, 8)"]


@case
def case_checkpoint_of_a_different_net_as_resume(h):
    args = ["fit", f"{W}/c.yaml", "--resume", f"{W}/other/last.npz", "--set", "train.epochs=3"]
    return args, ["other/last.npz", "cannot resume with a different model"]


@case
def case_object_array_in_a_checkpoint_for_predict(h):
    arrays, meta = checkpoint.load(h.world / "run" / "last.npz")
    arrays["layers.0.bias"] = np.array([None] * 8, dtype=object)
    np.savez(h.tmp / "obj.npz", **arrays, __meta__=np.array(json.dumps(meta)))
    return ["predict", "obj.npz", f"{W}/x.npz"], ["obj.npz", "'layers.0.bias'", "Python objects"]


@case
def case_object_array_in_a_checkpoint_for_weights(h):
    h.weights_with("obj.npz", lambda w: w.update({"layers.1.weight": np.array([None], object)}))
    return ["fit", f"{W}/c.yaml", "--weights", "obj.npz"], ["obj.npz", "'layers.1.weight'"]


@case
def case_object_array_in_a_checkpoint_for_resume(h):
    arrays, meta = checkpoint.load(h.world / "run" / "last.npz")
    arrays["optimizer.t"] = np.array(None, dtype=object)
    np.savez(h.tmp / "obj.npz", **arrays, __meta__=np.array(json.dumps(meta)))
    args = ["fit", f"{W}/c.yaml", "--resume", "obj.npz", "--set", "train.epochs=3"]
    return args, ["obj.npz", "'optimizer.t'", "Python objects"]


@case
def case_text_array_in_a_checkpoint(h):
    h.checkpoint_with("txt.npz", lambda arrays, meta: arrays.update({"extra": np.array(["a"])}))
    return ["evaluate", "txt.npz", "--data", f"{W}/test.npz"], ["txt.npz", "'extra'", "<U1"]


@case
def case_integer_weights(h):
    h.weights_with("int.npz", lambda w: w.update({"layers.0.weight": np.ones((4, 8), np.int32)}))
    return ["fit", f"{W}/c.yaml", "--weights", "int.npz"], ["int.npz", "'layers.0.weight'", "int32"]


@case
def case_text_weights(h):
    h.weights_with("txt.npz", lambda w: w.update({"layers.0.bias": np.array(["0.1"] * 8)}))
    args = ["gradcheck", f"{W}/c.yaml", "--weights", "txt.npz"]
    return args, ["txt.npz", "'layers.0.bias'", "floating-point"]


@case
def case_nan_weights(h):
    def change(w):
        w["layers.1.weight"] = np.full_like(w["layers.1.weight"], np.nan)

    h.weights_with("nan.npz", change)
    return ["fit", f"{W}/c.yaml", "--weights", "nan.npz"], ["nan.npz", "'layers.1.weight'", "NaN"]


@case
def case_weights_with_an_extra_layer(h):
    h.weights_with("extra.npz", lambda w: w.update({"layers.7.weight": np.ones((3, 3))}))
    args = ["fit", f"{W}/c.yaml", "--weights", "extra.npz"]
    return args, ["extra.npz", "'layers.7.weight'", "no parameter"]


@case
def case_weights_with_a_missing_array(h):
    h.weights_with("cut.npz", lambda w: w.pop("layers.1.bias"))
    return ["fit", f"{W}/c.yaml", "--weights", "cut.npz"], ["cut.npz", "no array 'layers.1.bias'"]


@case
def case_checkpoint_meta_of_the_wrong_type(h):
    h.checkpoint_with("meta.npz", lambda arrays, meta: meta.update(epoch="two"))
    args = ["fit", f"{W}/c.yaml", "--resume", "meta.npz", "--set", "train.epochs=3"]
    return args, ["meta.npz", "'epoch'", "damaged"]


@case
def case_checkpoint_without_input_shape(h):
    h.checkpoint_with("meta.npz", lambda arrays, meta: meta.pop("input_shape"))
    return ["predict", "meta.npz", f"{W}/x.npz"], ["meta.npz", "input_shape"]


@case
def case_optimizer_state_of_the_wrong_dtype(h):
    def change(arrays, meta):
        arrays["optimizer.t"] = np.array(1.5)

    h.checkpoint_with("opt.npz", change)
    args = ["fit", f"{W}/c.yaml", "--resume", "opt.npz", "--set", "train.epochs=3"]
    return args, ["opt.npz", "'optimizer.t'", "integer"]


@case
def case_resume_a_finished_run(h):
    return ["fit", f"{W}/c.yaml", "--resume", f"{W}/run/last.npz"], ["run/last.npz", "already"]


# -- output folders and files --------------------------------------------------------------------


@case
def case_out_is_a_file(h):
    (h.tmp / "afile").write_text("x")
    return ["fit", f"{W}/c.yaml", "--out", "afile"], ["'--out'", "afile", "is a file"]


@case
def case_out_inside_a_file(h):
    (h.tmp / "afile").write_text("x")
    return ["fit", f"{W}/c.yaml", "--out", "afile/run"], ["afile/run", "cannot write"]


@case
def case_out_holds_a_run(h):
    run = h.run_copy()
    return ["fit", f"{W}/c.yaml", "--out", str(run)], [str(run), "already holds a run"]


@case
def case_resume_into_an_unwritable_folder(h):
    (h.tmp / "afile").write_text("x")
    args = ["fit", f"{W}/c.yaml", "--resume", f"{W}/run/last.npz", "--set", "train.epochs=3"]
    return [*args, "--out", "afile/run"], ["afile/run", "cannot write"]


@case
def case_predict_output_into_a_missing_folder(h):
    args = ["predict", f"{W}/run/last.npz", f"{W}/x.npz", "--output", "no/such/p.csv"]
    return args, ["no/such/p.csv", "could not write"]


@case
def case_predict_output_onto_its_checkpoint(h):
    shutil.copy(h.world / "run" / "last.npz", h.tmp / "ck.npz")
    args = ["predict", "ck.npz", f"{W}/x.npz", "--output", "./ck.npz"]
    return args, ["./ck.npz", "would overwrite the checkpoint"]


# -- conflicting and malformed options ------------------------------------------------------------


@case
def case_resume_and_weights_together(h):
    ck = f"{W}/run/last.npz"
    return ["fit", f"{W}/c.yaml", "--resume", ck, "--weights", ck], ["--resume", "--weights"]


@case
def case_dataset_and_train_together(h):
    name, line = h.config("data:\n", "data:\n  dataset: mnist\n")
    return ["fit", name], [f"{name}:", "data.dataset or data.train"]


@case
def case_unknown_option(h):
    return ["fit", f"{W}/c.yaml", "--epochs", "3"], ["fit", "No such option", "--epochs"]


@case
def case_gradcheck_zero_samples(h):
    return ["gradcheck", f"{W}/c.yaml", "--samples", "0"], ["'--samples'", "0"]


@case
def case_empty_weights_path(h):
    # a script's --weights "$CKPT" with CKPT unset must not silently train from scratch
    return ["fit", f"{W}/c.yaml", "--weights", ""], ["'--weights'", "empty"]


@case
def case_set_without_a_value(h):
    return ["summary", f"{W}/c.yaml", "--set", "train.epochs"], ["--set train.epochs", "KEY=VALUE"]


# -- the checks ---------------------------------------------------------------------------------


def snapshot(*folders: Path) -> dict:
    """{path: (size, mtime_ns, sha256)} of every file, and {path: 'dir'} of every folder."""
    state = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                state[str(path)] = "dir"
            else:
                stat = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[str(path)] = (stat.st_size, stat.st_mtime_ns, digest)
    return state


def test_the_table_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("build", CASES)
def test_bad_input(build, world, tmp_path, monkeypatch, cli_call):
    monkeypatch.chdir(tmp_path)  # a default run folder or a stray file would land here
    argv, needles = build(Here(world, tmp_path, monkeypatch))
    argv = [a.replace(W, str(world)) for a in argv]
    before = snapshot(world, tmp_path)
    result = cli_call(*argv, code=None)
    shown = f"argv: {argv}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.exit_code == 2, shown
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert result.stdout == "", shown
    # resume prints what the new config changes before refusing; those are not error lines
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("resume: ")]
    assert lines and lines[0].startswith("error: "), shown
    assert len(lines) <= 2 and all(ln.startswith("  ") for ln in lines[1:]), shown
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in the error line\n{shown}"
    assert snapshot(world, tmp_path) == before, f"files changed\n{shown}"


def test_damaged_checkpoint_names_the_usable_ones(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    data = (run / "last.npz").read_bytes()
    (run / "cut.npz").write_bytes(data[:-100])
    with pytest.raises(UserError) as caught:
        checkpoint.load(run / "cut.npz")
    assert "usable checkpoints in the same folder" in caught.value.hint
    assert str(run / "last.npz") in caught.value.hint and str(run / "best.npz") in caught.value.hint
    assert "cut.npz" not in caught.value.hint


def test_a_checkpoint_outlives_its_training_data(world, tmp_path, cli_call):
    """predict and evaluate --data need the checkpoint alone; the files its config names may
    have moved. Without --data, evaluate names the missing file."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.npz", "test.npz"):
        shutil.copy(world / name, data / name)
    (data / "c.yaml").write_text(CONFIG.replace("TRAIN", "train.npz").replace("TEST", "test.npz"))
    args = ["fit", str(data / "c.yaml"), "--out", str(tmp_path / "run"), "--quiet"]
    cli_call(*args)
    shutil.rmtree(data)
    ck = str(tmp_path / "run" / "last.npz")
    cli_call("predict", ck, str(world / "x.npz"))
    cli_call("evaluate", ck, "--data", str(world / "test.npz"))
    result = cli_call("evaluate", ck, code=None)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {data}") and "not found" in result.stderr


def test_bad_thread_count_in_the_environment(world, monkeypatch, cli_call):
    monkeypatch.setenv("NETTRAIN_THREADS", "many")
    result = cli_call("summary", str(world / "c.yaml"), code=None)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith("error: cli: Invalid value for '--threads'")


def test_out_of_memory_is_one_line_and_exit_1(world, tmp_path, monkeypatch, cli_call):
    import nettrain.training.fit

    def prepare(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(nettrain.training.fit, "prepare", prepare)
    result = cli_call("fit", str(world / "c.yaml"), "--out", str(tmp_path / "r"), code=None)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: out of memory")
    assert not (tmp_path / "r").exists()


def test_debug_shows_the_traceback_of_a_bad_checkpoint(world, tmp_path, cli_call):
    (tmp_path / "notes.npz").write_text("notes")
    args = ["--debug", "predict", str(tmp_path / "notes.npz"), str(world / "x.npz")]
    result = cli_call(*args, code=None)
    assert isinstance(result.exception, UserError)
    assert "not an .npz archive" in str(result.exception)


# -- failed writes: reported, and the previous file left in place ---------------------------------

WRITES = re.compile(
    r"open\([^)]*[\"'][wax]|(?<!checkpoint)\.write_(text|bytes)\(|savefig\(|np\.save(z|z_compressed)?\("
    r"|os\.(replace|rename)\(|shutil\.(copy|move)"
)
# writes that are not a file of the user's: a probe of the run folder, a stream given by the caller,
# a child process's stderr; and the writes that go through atomic_write on the line itself
NOT_FILES = {
    ("run_folder.py", 'probe.write_bytes(b"")'),
    ("single.py", "np.save(stream, outputs)"),
    ("plot.py", 'atomic_write(out, lambda f: fig.savefig(f, dpi=100, format="png"))'),
    ("lr_find.py", 'atomic_write(out, lambda f: fig.savefig(f, dpi=100, format="png"))'),
    ("trial.py", 'with open(log, "wb") as err:'),  # a tune trial's stderr, as the child writes it
    ("commands.py", "atomic_write(target, lambda f: np.savez(f, x=x, y=y))"),
    ("commands.py", "atomic_write(target / name, lambda f, a=a: np.save(f, a))"),
}


def test_every_file_write_goes_through_atomic_write():
    """files.atomic_write (temporary file, fsync, rename) is the one way nettrain writes a file:
    a new writer elsewhere would leave half-written files after a crash."""
    package = Path(checkpoint.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        if path.relative_to(package).as_posix() in ("core/files.py", "checkpoint.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WRITES.search(line) and (path.name, line.strip()) not in NOT_FILES:
                found.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert not found, "write through nettrain.core.files.atomic_write instead:\n" + "\n".join(found)


def resume_args(world, run):
    return ["fit", str(world / "c.yaml"), "--resume", str(run / "last.npz"), "--quiet"]


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(
    world, tmp_path, monkeypatch, cli_call
):
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    good = (run / "last.npz").read_bytes()
    real_savez = np.savez

    def savez_on_a_full_disk(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_on_a_full_disk)
    result = cli_call(*resume_args(world, run), "--set", "train.epochs=3", code=None)
    monkeypatch.setattr(np, "savez", real_savez)
    assert result.exit_code == 1, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [
        f"error: {run / 'last.npz'}: could not write the file: No space left on device"
    ]
    assert "previous version" in result.stderr and "Traceback" not in result.stderr
    assert (run / "last.npz").read_bytes() == good
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    _, meta = checkpoint.load(run / "last.npz")
    assert meta["epoch"] == 2
    # the run goes on from the intact checkpoint once there is space again
    result = cli_call(*resume_args(world, run), "--set", "train.epochs=3", code=None)
    assert result.exit_code == 0, result.stderr
    assert checkpoint.load(run / "last.npz")[1]["epoch"] == 3


def test_run_folder_that_cannot_be_written_is_refused_and_removed(
    world, tmp_path, monkeypatch, cli_call
):
    real_write_bytes = Path.write_bytes

    def write_bytes(self, data):
        if self.name == ".write-test":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    args = ["fit", str(world / "c.yaml"), "--out", str(tmp_path / "run")]
    result = cli_call(*args, code=None)
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: {tmp_path / 'run'}: cannot write the run folder: No space left on device\n"
    )
    assert list(tmp_path.iterdir()) == []


def fail_fsync_of(monkeypatch, name: str):
    """os.fsync raises ENOSPC for the temporary file of ``name`` (found through /proc)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file an fsync is for")
    real_fsync = os.fsync

    def fsync(fd):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(f".{name}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_failed_fsync_of_metrics_keeps_the_previous_file(world, tmp_path, monkeypatch, cli_call):
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    fail_fsync_of(monkeypatch, "metrics.csv")
    result = cli_call(*resume_args(world, run), "--set", "train.epochs=3", code=None)
    assert result.exit_code == 1, result.stderr
    assert f"error: {run / 'metrics.csv'}: could not write the file" in result.stderr
    assert (run / "metrics.csv").read_bytes() == before["metrics.csv"]
    assert (run / "last.npz").read_bytes() == before["last.npz"]
    assert sorted(p.name for p in run.iterdir()) == sorted(before)


def test_failed_write_of_predictions_keeps_the_previous_file(
    world, tmp_path, monkeypatch, cli_call
):
    out = tmp_path / "p.csv"
    out.write_text("previous predictions\n")
    fail_fsync_of(monkeypatch, "p.csv")
    args = ["predict", str(world / "run" / "last.npz"), str(world / "x.npz"), "--output", str(out)]
    result = cli_call(*args, code=None)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith(f"error: {out}: could not write the file: No space left")
    assert out.read_text() == "previous predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npy"])
def test_predict_output_file_matches_stdout(world, tmp_path, fmt, cli_call):
    ck, x = str(world / "run" / "last.npz"), str(world / "x.npz")
    shown = cli_call("predict", ck, x, "--format", fmt, code=None)
    out = tmp_path / f"p.{fmt}"
    written = cli_call("predict", ck, x, "--format", fmt, "--output", str(out), code=None)
    assert shown.exit_code == written.exit_code == 0
    assert out.read_bytes() == shown.stdout_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
