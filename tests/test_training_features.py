"""Training features end to end: validation hold-out, best checkpoint, checkpoint cadence, early
stopping, real SIGINT/SIGTERM, divergence, resume checks, run environment, evaluate and plot."""

from __future__ import annotations

import builtins
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import invoke as run
from helpers import net_arrays, write_blobs

import nettrain
from nettrain import checkpoint
from nettrain.assemble import score
from nettrain.config import load_config
from nettrain.core.errors import UserError
from nettrain.training.fit import fit as train
from nettrain.training.prepare import prepare

CONFIG = """\
seed: 3
data:
  train: train.npz
  test: test.npz
model:
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 3
  batch_size: 16
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
"""

REGRESSION = """\
seed: 0
data: {train: reg.npz}
model:
  layers:
    - {type: dense, units: 6, activation: tanh}
    - {type: dense, units: 2}
  loss: squared_error
train:
  epochs: 2
  batch_size: 16
  optimizer: {name: sgd, lr: 0.05}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """train.npz (90), test.npz (30), val.npz (20), reg.npz (float targets), c.yaml, reg.yaml."""
    folder = tmp_path_factory.mktemp("data")
    rng = write_blobs(folder, (("train", 90), ("test", 30), ("val", 20)))
    x = rng.standard_normal((40, 3)).astype(np.float32)
    np.savez(folder / "reg.npz", x=x, y=np.tanh(x[:, :2] - x[:, 1:]).astype(np.float32))
    (folder / "c.yaml").write_text(CONFIG)
    (folder / "reg.yaml").write_text(REGRESSION)
    return folder


def load(folder, *sets, name="c.yaml"):
    return load_config(folder / name, list(sets))


def fit(data, out, *sets, code=0, extra=()):
    args = ["fit", data / "c.yaml", "--out", out, *extra]
    for s in sets:
        args += ["--set", s]
    return run(*args, code=code)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def header(path):
    return Path(path).read_text().splitlines()[0].split(",")


def meta_of(path):
    return checkpoint.load(path)[1]


def same_arrays(a_path, b_path, prefix=""):
    a, _ = checkpoint.load(a_path)
    b, _ = checkpoint.load(b_path)
    a = {k: v for k, v in a.items() if k.startswith(prefix)}
    b = {k: v for k, v in b.items() if k.startswith(prefix)}
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a
    )


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def rows_of(x):
    return {tuple(r) for r in np.asarray(x).reshape(len(x), -1).tolist()}


def samples(ds):
    """The inputs of a data set as the net sees them (float32)."""
    return ds.inputs(np.arange(len(ds)), np.float32)


# -- data.validation -------------------------------------------------------------------------


def test_validation_fraction_is_a_seeded_disjoint_hold_out(data):
    cfg, src = load(data, "data.validation=0.2")
    a = prepare(cfg, src)
    assert (len(a.train), len(a.validation)) == (72, 18)
    full = np.load(data / "train.npz")
    assert rows_of(samples(a.train)) | rows_of(samples(a.validation)) == rows_of(full["x"])
    assert not rows_of(samples(a.train)) & rows_of(samples(a.validation))
    assert len(rows_of(full["x"])) == 90  # the rows are distinct, so the sets above are exact
    # labels travel with their rows
    lookup = {tuple(r): int(y) for r, y in zip(full["x"].tolist(), full["y"], strict=True)}
    held_out = samples(a.validation).tolist()
    assert [lookup[tuple(r)] for r in held_out] == a.validation.y.tolist()

    b = prepare(*load(data, "data.validation=0.2"))
    np.testing.assert_array_equal(samples(a.validation), samples(b.validation))
    np.testing.assert_array_equal(samples(a.train), samples(b.train))
    other = prepare(*load(data, "data.validation=0.2", "seed=4"))
    assert rows_of(samples(other.validation)) != rows_of(samples(a.validation))


def test_validation_count_adds_columns_scored_on_the_hold_out(data, tmp_path):
    cfg, src = load(data, "data.validation=15")
    prepared = prepare(cfg, src)
    assert (len(prepared.train), len(prepared.validation)) == (75, 15)
    rows = train(cfg, src, folder=tmp_path / "run").rows
    assert header(tmp_path / "run/metrics.csv") == [
        "epoch",
        "train_loss",
        "train_accuracy",
        "validation_loss",
        "validation_accuracy",
        "test_loss",
        "test_accuracy",
        "lr",
        "seconds",
    ]
    logged = read_csv(tmp_path / "run/metrics.csv")
    assert len(logged) == 3
    # the last row's validation figures are those of the final weights on the 15 held-out rows
    prepared.net.load_params(net_arrays(tmp_path / "run/last.npz"), "last.npz")
    loss, accuracy, _ = score(prepared.net, prepared.validation)
    assert float(logged[-1]["validation_loss"]) == pytest.approx(loss, rel=1e-6)
    assert float(logged[-1]["validation_accuracy"]) == pytest.approx(accuracy)
    assert rows[-1]["validation_loss"] == pytest.approx(loss, rel=1e-6)
    assert round(accuracy * 15) == pytest.approx(accuracy * 15)


def test_validation_file(data, tmp_path):
    cfg, src = load(data, f"data.validation={data / 'val.npz'}")
    assert cfg["data"]["validation"] == str((data / "val.npz").resolve())
    prepared = prepare(cfg, src)
    assert (len(prepared.train), len(prepared.validation)) == (90, 20)
    np.testing.assert_array_equal(samples(prepared.validation), np.load(data / "val.npz")["x"])
    train(cfg, src, folder=tmp_path / "run")
    assert "validation_loss" in header(tmp_path / "run/metrics.csv")
    assert "validation_accuracy" in header(tmp_path / "run/metrics.csv")


@pytest.mark.parametrize("value", ["1.5", "0", "-3", "missing.npz", "true", "1.0", "[1, 2]"])
def test_invalid_validation_values(data, value):
    with pytest.raises(UserError, match=r"data\.validation"):
        load(data, f"data.validation={value}")


def test_invalid_validation_in_the_file_names_its_line(data, tmp_path):
    text = CONFIG.replace("  test: test.npz\n", "  test: test.npz\n  validation: 1.5\n")
    (tmp_path / "v.yaml").write_text(text)
    shutil.copy(data / "train.npz", tmp_path)
    shutil.copy(data / "test.npz", tmp_path)
    result = run("fit", tmp_path / "v.yaml", "--out", tmp_path / "run", code=2)
    assert "v.yaml:5: data.validation" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["90", "500", "0.001"])
def test_validation_leaving_no_set_is_refused(data, value):
    cfg, src = load(data, f"data.validation={value}")
    with pytest.raises(UserError, match=r"data\.validation"):
        prepare(cfg, src)


# -- best.npz follows the monitor -------------------------------------------------------------


def test_best_follows_train_loss_monitor(data, tmp_path):
    epochs = ["train.epochs=5", "train.optimizer.lr=0.5", "train.checkpoint.keep=true"]
    fit(data, tmp_path / "min", *epochs, "train.checkpoint.monitor=train_loss")
    fit(
        data,
        tmp_path / "max",
        *epochs,
        "train.checkpoint.monitor=train_loss",
        "train.checkpoint.mode=max",
    )
    losses = [float(r["train_loss"]) for r in read_csv(tmp_path / "min/metrics.csv")]
    assert len(losses) == 5
    best = meta_of(tmp_path / "min/best.npz")
    assert best["epoch"] == int(np.argmin(losses)) + 1
    assert best["best"] == pytest.approx(min(losses))
    worst = meta_of(tmp_path / "max/best.npz")
    assert worst["epoch"] == int(np.argmax(losses)) + 1
    assert worst["epoch"] != best["epoch"]  # the two modes pick different epochs here
    for mode, meta in (("min", best), ("max", worst)):  # best.npz holds the net of its epoch
        kept = tmp_path / mode / f"epoch-{meta['epoch']:03d}.npz"
        assert same_arrays(tmp_path / mode / "best.npz", kept, "layers.")
        for other in range(1, 6):
            if other != meta["epoch"]:
                other = tmp_path / mode / f"epoch-{other:03d}.npz"
                assert not same_arrays(tmp_path / mode / "best.npz", other, "layers.")
    assert not same_arrays(tmp_path / "max/best.npz", tmp_path / "max/last.npz", "layers.")


def test_best_follows_validation_accuracy_by_default(data, tmp_path):
    fit(data, tmp_path / "run", "data.validation=30", "train.epochs=4")
    accuracy = [float(r["validation_accuracy"]) for r in read_csv(tmp_path / "run/metrics.csv")]
    assert meta_of(tmp_path / "run/best.npz")["epoch"] == int(np.argmax(accuracy)) + 1


@pytest.mark.parametrize("with_test", [True, False])
def test_best_follows_train_loss_without_a_validation_set(data, tmp_path, with_test):
    """monitor auto never selects on the test set: it is only reported."""
    sets = [] if with_test else ["data.test=null"]
    result = fit(data, tmp_path / "run", *sets, "train.epochs=4")
    rows = read_csv(tmp_path / "run/metrics.csv")
    losses = [float(r["train_loss"]) for r in rows]
    best = meta_of(tmp_path / "run/best.npz")
    assert best["epoch"] == int(np.argmin(losses)) + 1
    assert best["best"] == pytest.approx(min(losses))
    assert "best.npz follows train_loss" in result.stderr
    assert "set data.validation" in result.stderr
    assert ("test set is only reported" in result.stderr) == with_test


@pytest.mark.parametrize("section", ["checkpoint", "early_stopping"])
def test_validation_monitor_without_validation_set(data, tmp_path, section):
    result = fit(data, tmp_path / "run", f"train.{section}.monitor=validation_loss", code=2)
    assert f"train.{section}.monitor" in result.stderr
    assert "validation" in result.stderr and result.stderr.startswith("error: ")
    assert not (tmp_path / "run/config.yaml").exists()


def test_accuracy_monitor_with_float_targets(data):
    cfg, src = load(data, "train.checkpoint.monitor=train_accuracy", name="reg.yaml")
    with pytest.raises(UserError, match=r"train\.checkpoint\.monitor") as info:
        prepare(cfg, src)
    assert "train_loss" in info.value.hint
    cfg, src = load(data, "train.early_stopping.monitor=train_accuracy", name="reg.yaml")
    with pytest.raises(UserError, match=r"train\.early_stopping\.monitor"):
        prepare(cfg, src)


def test_float_targets_log_rmse_mae_r2_and_no_accuracy(data, tmp_path):
    cfg, src = load(data, "data.validation=8", name="reg.yaml")
    out = io.StringIO()
    train(cfg, src, folder=tmp_path / "run", output=out)
    assert header(tmp_path / "run/metrics.csv") == [
        "epoch",
        *("train_loss", "train_rmse", "train_mae", "train_r2"),
        *("validation_loss", "validation_rmse", "validation_mae", "validation_r2"),
        "lr",
        "seconds",
    ]
    assert "train_rmse" in out.getvalue() and "val_r2" in out.getvalue()
    last = read_csv(tmp_path / "run/metrics.csv")[-1]
    # squared_error over K = 2 outputs: the loss is half the summed squares, so rmse follows it
    assert float(last["train_rmse"]) == pytest.approx(np.sqrt(float(last["train_loss"])))
    result = json.loads(
        run(
            "evaluate", tmp_path / "run/last.npz", "--split", "validation", "--format", "json"
        ).stdout
    )
    for key in ("loss", "rmse", "mae", "r2"):
        assert result[key] == pytest.approx(float(last[f"validation_{key}"]), rel=1e-5)
    # auto monitor on values: validation_loss, lower is better
    losses = [float(r["validation_loss"]) for r in read_csv(tmp_path / "run/metrics.csv")]
    assert meta_of(tmp_path / "run/best.npz")["epoch"] == int(np.argmin(losses)) + 1


# -- checkpoint cadence ----------------------------------------------------------------------


def test_keep_writes_every_epoch(data, tmp_path):
    fit(data, tmp_path / "run", "train.checkpoint.keep=true")
    names = sorted(p.name for p in (tmp_path / "run").glob("epoch-*.npz"))
    assert names == ["epoch-001.npz", "epoch-002.npz", "epoch-003.npz"]
    for i, name in enumerate(names, start=1):
        meta = meta_of(tmp_path / "run" / name)
        assert (meta["epoch"], meta["batch"], meta["step"]) == (i, 0, 6 * i)
    assert same_arrays(tmp_path / "run/epoch-003.npz", tmp_path / "run/last.npz")
    assert not same_arrays(tmp_path / "run/epoch-001.npz", tmp_path / "run/last.npz", "layers.")
    fit(data, tmp_path / "plain")
    assert not list((tmp_path / "plain").glob("epoch-*.npz"))


def test_every_steps_writes_mid_epoch_checkpoints(data, tmp_path, monkeypatch):
    saved = []
    original = checkpoint.save

    def recording_save(path, arrays, meta):
        original(path, arrays, meta)
        saved.append((Path(path).name, meta["epoch"], meta["batch"], meta["step"]))
        if (meta["epoch"], meta["batch"]) == (1, 2):
            shutil.copy(path, tmp_path / "mid.npz")

    monkeypatch.setattr(checkpoint, "save", recording_save)
    cfg, src = load(data, "train.checkpoint.every_steps=2", "data.test=null")
    train(cfg, src, folder=tmp_path / "run")
    monkeypatch.undo()
    # 90 samples in batches of 16: 6 steps an epoch; steps 2 and 4 fall inside it, step 6 ends it
    assert [s for s in saved if s[0] == "last.npz"] == [
        ("last.npz", 0, 2, 2),
        ("last.npz", 0, 4, 4),
        ("last.npz", 1, 0, 6),
        ("last.npz", 1, 2, 8),
        ("last.npz", 1, 4, 10),
        ("last.npz", 2, 0, 12),
        ("last.npz", 2, 2, 14),
        ("last.npz", 2, 4, 16),
        ("last.npz", 3, 0, 18),
    ]
    # a mid-epoch checkpoint resumes to the same end
    arrays, meta = checkpoint.load(tmp_path / "mid.npz")
    assert meta["partial"]["seen"] == 32
    train(cfg, src, folder=tmp_path / "resumed", resume=tmp_path / "mid.npz")
    assert same_arrays(tmp_path / "run/last.npz", tmp_path / "resumed/last.npz")
    assert without_seconds(read_csv(tmp_path / "run/metrics.csv")) == without_seconds(
        read_csv(tmp_path / "resumed/metrics.csv")
    )


# -- early stopping --------------------------------------------------------------------------


def simulate_stopping(values, mode, patience, best=None, wait=0, start=0):
    """The epoch (1-based) early stopping ends after, and its final (best, wait)."""
    for epoch in range(start, len(values)):
        v = values[epoch]
        if best is None or (v < best if mode == "min" else v > best):
            best, wait = v, 0
        else:
            wait += 1
        if wait >= patience:
            return epoch + 1, best, wait
    return len(values), best, wait


@pytest.fixture(scope="module")
def long_run(data, tmp_path_factory):
    """Metrics of 8 epochs without early stopping (the trajectory does not depend on it)."""
    out = tmp_path_factory.mktemp("long") / "run"
    fit(data, out, "train.epochs=8")
    return read_csv(out / "metrics.csv")


def test_early_stopping_stops_and_records_its_state(data, tmp_path, long_run):
    sets = [
        "train.epochs=8",
        "train.early_stopping.monitor=train_accuracy",
        "train.early_stopping.mode=min",
        "train.early_stopping.patience=1",
    ]
    values = [float(r["train_accuracy"]) for r in long_run]
    stop, best, wait = simulate_stopping(values, "min", 1)
    assert stop < 8
    result = fit(data, tmp_path / "run", *sets)
    assert "early stopping" in result.stdout
    assert "train_accuracy" in result.stdout.split("early stopping")[1]
    logged = read_csv(tmp_path / "run/metrics.csv")
    assert len(logged) == stop
    assert without_seconds(logged) == without_seconds(long_run[:stop])
    meta = meta_of(tmp_path / "run/last.npz")
    assert meta["epoch"] == stop
    assert meta["stopping"]["wait"] == wait == 1
    assert meta["stopping"]["best"] == pytest.approx(best)


def test_resumed_stopped_run_continues_the_count(data, tmp_path, long_run):
    sets = [
        "train.epochs=6",
        "train.early_stopping.monitor=train_loss",
        "train.early_stopping.mode=max",
        "train.early_stopping.patience=2",
    ]
    values = [float(r["train_loss"]) for r in long_run]
    stop, best, wait = simulate_stopping(values[:6], "max", 2)
    assert stop < 6
    fit(data, tmp_path / "run", *sets)
    meta = meta_of(tmp_path / "run/last.npz")
    assert (meta["epoch"], meta["stopping"]["wait"]) == (stop, wait)

    # counting carries on from the checkpoint's (best, wait) ...
    again, _, wait2 = simulate_stopping(values, "max", 2, best, wait, start=stop)
    # ... which is not what a fresh count would give
    fresh, _, _ = simulate_stopping(values, "max", 2, start=stop)
    assert again != fresh
    args = ["fit", data / "c.yaml", "--resume", tmp_path / "run/last.npz"]
    for s in [*sets, "train.epochs=8"]:
        args += ["--set", s]
    result = run(*args)
    assert "early stopping" in result.stdout
    logged = read_csv(tmp_path / "run/metrics.csv")
    assert len(logged) == again
    assert without_seconds(logged) == without_seconds(long_run[:again])
    meta = meta_of(tmp_path / "run/last.npz")
    assert meta["stopping"]["wait"] == wait2


# -- real signals ----------------------------------------------------------------------------

BIG = """\
seed: 0
data: {train: big.npz}
model:
  layers:
    - {type: dense, units: 128, activation: tanh}
    - {type: dense, units: 10}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 6
  batch_size: 32
  optimizer: {name: sgd, lr: 0.01, momentum: 0.9}
"""


@pytest.fixture
def big(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 50)).astype(np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=rng.integers(0, 10, 20000))
    (tmp_path / "big.yaml").write_text(BIG)
    return tmp_path / "big.yaml"


def nettrain_process(config, out, *args):
    env = {**os.environ, "NETTRAIN_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nettrain", "fit", str(config), "--out", str(out), *args],
        cwd=config.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signal_when_training(runs):
    """Send each (process, run folder, signal) its signal once every run has finished an epoch
    (its row is in metrics.csv, so the loop and its Ctrl-C handler are running; all at once, so
    that none is handled while another starts); [(exit code, stdout, stderr)]. The runs are
    given far more epochs than they can train before that: a state is waited for, not a time."""
    deadline = time.monotonic() + 600  # a hang guard only: an epoch takes well under a second
    for proc, out, _ in runs:
        while len(read_csv(out / "metrics.csv") if (out / "metrics.csv").exists() else []) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never finished an epoch"
            time.sleep(0.02)
    for proc, _, sig in runs:
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
    results = []
    for proc, _, _ in runs:
        stdout, stderr = proc.communicate(timeout=600)  # a hang guard only
        results.append((proc.returncode, stdout, stderr))
    return results


def test_sigint_and_sigterm_stop_with_a_resumable_checkpoint(big, tmp_path):
    endless = ("--set", "train.epochs=100000")
    cut = nettrain_process(big, tmp_path / "cut", *endless)
    term = nettrain_process(big, tmp_path / "term", *endless)
    (code, _, stderr), (code_term, _, stderr_term) = signal_when_training(
        [(cut, tmp_path / "cut", signal.SIGINT), (term, tmp_path / "term", signal.SIGTERM)]
    )
    assert code == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert code_term == 130, stderr_term
    assert "--resume" in stderr_term and "Traceback" not in stderr_term

    n_batches = 625
    for folder in ("cut", "term"):
        meta = meta_of(tmp_path / folder / "last.npz")
        assert meta["step"] == meta["epoch"] * n_batches + meta["batch"]
        assert meta["epoch"] >= 1 and meta["step"] >= n_batches  # after the first epoch
        assert meta["batch"] > 0 or meta["partial"] is None  # mid-epoch, or at an epoch's end
        assert len(read_csv(tmp_path / folder / "metrics.csv")) == meta["epoch"]

    # the cut run resumed for one epoch more ends where a run never cut ends
    epochs = f"train.epochs={meta_of(tmp_path / 'cut/last.npz')['epoch'] + 1}"
    env = {**os.environ, "NETTRAIN_THREADS": "1"}
    resumed = subprocess.run(
        [sys.executable, "-m", "nettrain", "fit", str(big), "--resume", "cut/last.npz"]
        + ["--set", epochs],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only
    )
    assert resumed.returncode == 0, resumed.stderr
    full = nettrain_process(big, tmp_path / "full", "--set", epochs)
    out, err = full.communicate(timeout=600)  # a hang guard only
    assert full.returncode == 0, err
    assert same_arrays(tmp_path / "full/last.npz", tmp_path / "cut/last.npz")
    full_rows = read_csv(tmp_path / "full/metrics.csv")
    assert len(full_rows) == int(epochs.split("=")[1])
    assert without_seconds(read_csv(tmp_path / "cut/metrics.csv")) == without_seconds(full_rows)


# -- divergence ------------------------------------------------------------------------------


def test_divergence_exits_1_naming_epoch_batch_and_lr(data, tmp_path):
    result = fit(
        data,
        tmp_path / "run",
        "model.layers.2=linear",
        "model.loss=squared_error",
        "train.optimizer.lr=1e6",
        "train.optimizer.momentum=0",
        "train.checkpoint.every_steps=1",
        code=1,
    )
    assert "epoch 1" in result.stderr and "batch" in result.stderr
    assert "diverged" in result.stderr and "learning rate" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "run/last.npz").exists()  # every step was checkpointed
    meta = meta_of(tmp_path / "run/last.npz")
    assert meta["step"] >= 1
    assert f"batch {meta['batch'] + 1}" in result.stderr  # the batch after the last good step
    for name, w in net_arrays(tmp_path / "run/last.npz").items():
        assert np.all(np.isfinite(w)), name


# -- --resume and --weights ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished 3-epoch run (read only)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    fit(data, out)
    return out


def test_resume_refuses_a_weights_only_file_which_weights_accepts(data, finished, tmp_path):
    exported = tmp_path / "exported.npz"
    np.savez(exported, **net_arrays(finished / "last.npz"))
    with np.load(exported) as f:
        assert "__meta__" not in f.files
    result = run("fit", data / "c.yaml", "--resume", exported, "--out", tmp_path / "r", code=2)
    assert result.stderr.startswith("error: ")
    assert "--weights" in result.stderr
    assert not (tmp_path / "r").exists()

    # an lr too small to move a float32 weight: the run ends at the weights it started from
    fit(
        data,
        tmp_path / "w",
        "train.optimizer.lr=1e-30",
        "train.epochs=1",
        extra=["--weights", exported],
    )
    with np.load(exported) as f:
        want = {k: f[k] for k in f.files}
    got = net_arrays(tmp_path / "w/last.npz")
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert meta_of(tmp_path / "w/last.npz")["epoch"] == 1


def test_weights_and_resume_exclude_each_other(data, finished, tmp_path):
    last = finished / "last.npz"
    result = run("fit", data / "c.yaml", "--resume", last, "--weights", last, code=2)
    assert "--resume" in result.stderr and "--weights" in result.stderr


@pytest.mark.parametrize(
    ("change", "key"),
    [("train.batch_size=8", "train.batch_size"), ("seed=1", "seed")],
)
def test_resume_refuses_fixed_keys(data, finished, tmp_path, change, key):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    before = (copy / "last.npz").read_bytes()
    result = run(
        "fit",
        data / "c.yaml",
        "--resume",
        copy / "last.npz",
        "--set",
        change,
        "--set",
        "train.epochs=5",
        code=2,
    )
    assert f"cannot resume with a different {key}" in result.stderr
    assert f"resume: {key} changes" in result.stderr
    assert (copy / "last.npz").read_bytes() == before


def test_resume_with_more_epochs_reports_the_change(data, finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    result = run("fit", data / "c.yaml", "--resume", copy / "last.npz", "--set", "train.epochs=5")
    assert "train.epochs changes from 3 to 5" in result.stderr
    logged = read_csv(copy / "metrics.csv")
    assert [int(r["epoch"]) for r in logged] == [1, 2, 3, 4, 5]
    assert without_seconds(logged[:3]) == without_seconds(read_csv(finished / "metrics.csv"))
    # same as training 5 epochs straight
    fit(data, tmp_path / "straight", "train.epochs=5")
    assert same_arrays(tmp_path / "straight/last.npz", copy / "last.npz")
    # a finished run without more epochs has nothing to do
    again = run(
        "fit", data / "c.yaml", "--resume", copy / "last.npz", "--set", "train.epochs=5", code=2
    )
    assert "train.epochs" in again.stderr


# -- run environment -------------------------------------------------------------------------


def test_environment_yaml(finished):
    import numba

    env = yaml.safe_load((finished / "environment.yaml").read_text())
    assert env["nettrain"] == nettrain.__version__
    assert env["numpy"] == np.__version__
    assert env["numba"] == numba.__version__
    assert isinstance(env["threads"], int) and env["threads"] >= 1
    assert isinstance(env["threads_adapt_to_load"], bool)
    assert meta_of(finished / "last.npz")["environment"]["numpy"] == np.__version__


# -- evaluate --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_validation(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("val") / "run"
    fit(data, out, "data.validation=15")
    return out


def predicted_confusion(ckpt, path):
    result = run("predict", ckpt, path)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    predictions = np.array([int(r["prediction"]) for r in rows])
    labels = np.load(path)["y"]
    m = np.zeros((3, 3), dtype=int)
    for t, p in zip(labels, predictions, strict=True):
        m[t, p] += 1
    return m


def parse_confusion(text):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    body = lines[start + 2 : start + 5]
    return np.array([[int(v) for v in line.split()[1:]] for line in body])


def test_evaluate_text_shows_classes_and_confusion(data, with_validation):
    ckpt = with_validation / "last.npz"
    m = predicted_confusion(ckpt, data / "test.npz")
    assert m.sum() == 30
    text = run("evaluate", ckpt).stdout
    assert "samples   30" in text
    for column in ("class", "precision", "recall", "f1", "support"):
        assert column in text
    np.testing.assert_array_equal(parse_confusion(text), m)
    # one count worked out here: how many of class 1 were predicted as class 1
    assert m[1, 1] > 0 and parse_confusion(text)[1, 1] == m[1, 1]


def test_evaluate_json(data, with_validation):
    ckpt = with_validation / "last.npz"
    result = json.loads(run("evaluate", ckpt, "--format", "json").stdout)
    m = predicted_confusion(ckpt, data / "test.npz")
    confusion = np.array(result["confusion"])
    np.testing.assert_array_equal(confusion, m)
    assert confusion.sum() == result["samples"] == 30
    assert result["accuracy"] == pytest.approx(np.trace(m) / 30)
    assert [c["class"] for c in result["classes"]] == [0, 1, 2]
    for c, figures in enumerate(result["classes"]):
        assert set(figures) >= {"precision", "recall", "f1", "support"}
        assert figures["support"] == m[c].sum()
        precision = m[c, c] / m[:, c].sum() if m[:, c].sum() else 0.0
        recall = m[c, c] / m[c].sum()
        assert figures["precision"] == pytest.approx(precision)
        assert figures["recall"] == pytest.approx(recall)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert figures["f1"] == pytest.approx(f1)


def test_evaluate_validation_split(data, with_validation, finished):
    result = json.loads(
        run(
            "evaluate", with_validation / "last.npz", "--split", "validation", "--format", "json"
        ).stdout
    )
    assert result["samples"] == 15 == np.array(result["confusion"]).sum()
    logged = read_csv(with_validation / "metrics.csv")[-1]
    assert result["loss"] == pytest.approx(float(logged["validation_loss"]), rel=1e-6)
    assert result["accuracy"] == pytest.approx(float(logged["validation_accuracy"]))
    missing = run("evaluate", finished / "last.npz", "--split", "validation", code=2)
    assert missing.stderr.startswith("error: ") and "data.validation" in missing.stderr


# -- plot ------------------------------------------------------------------------------------


def test_plot_writes_a_png(finished, tmp_path):
    pytest.importorskip("matplotlib")
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    run("plot", copy)
    png = copy / "curves.png"
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.fixture
def no_matplotlib(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_plot_without_matplotlib(finished, tmp_path, no_matplotlib):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    result = run("plot", copy, code=2)
    assert "pip install 'nettrain[plot]'" in result.stderr
    assert result.stderr.startswith("error: ")
    assert not (copy / "curves.png").exists()


def test_plot_needs_a_run_folder(tmp_path, no_matplotlib):
    (tmp_path / "empty").mkdir()
    result = run("plot", tmp_path / "empty", code=2)
    assert "metrics.csv" in result.stderr
    (tmp_path / "started").mkdir()
    (tmp_path / "started/metrics.csv").write_text("epoch,train_loss,lr,seconds\n")
    result = run("plot", tmp_path / "started", code=2)
    assert "no epoch has finished" in result.stderr


def test_early_stopping_auto_without_held_out_data_watches_the_training_loss(tmp_path):
    write_blobs(tmp_path, (("train", 60),))
    text = (
        "data: {train: train.npz}\n"
        "model: {layers: [{type: dense, units: 3}, softmax], loss: multinomial_cross_entropy}\n"
        "train: {epochs: 3, batch_size: 16, early_stopping: {patience: 1}}\n"
    )
    (tmp_path / "c.yaml").write_text(text)
    cfg, src = load_config(tmp_path / "c.yaml")
    run = prepare(cfg, src)
    assert run.stopping is not None and run.stopping.metric == "train_loss"
    assert run.stopping.mode == "min" and run.best.metric == "train_loss"
