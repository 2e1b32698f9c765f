"""The fit loop through the library: learning, determinism, exact resume, divergence."""

import numpy as np
import pytest
from helpers import interrupt_and_resume, net_arrays, without_seconds

from nettrain import checkpoint
from nettrain.core.errors import JobFailed, UserError
from nettrain.training import loop
from nettrain.training.fit import fit
from nettrain.training.prepare import prepare
from nettrain.training.state import TrainState


@pytest.fixture
def config(blob_config):
    """The blob MLP (conftest.py) with a learning rate, epochs and further --set items."""

    def make(lr=0.1, epochs=3, sets=()):
        return blob_config(f"train.optimizer.lr={lr}", f"train.epochs={epochs}", *sets)

    return make


def test_loss_falls_and_run_folder_is_complete(config, tmp_path):
    cfg, src = config()
    rows = fit(cfg, src, folder=tmp_path / "run").rows
    assert len(rows) == 3 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["test_accuracy"] > 0.8
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "config.yaml",
        "environment.yaml",
        "metrics.csv",
        "last.npz",
        "best.npz",
    }


def test_same_seed_same_weights(config, tmp_path):
    cfg, src = config()
    fit(cfg, src, folder=tmp_path / "a")
    fit(cfg, src, folder=tmp_path / "b")
    a, b = net_arrays(tmp_path / "a/last.npz"), net_arrays(tmp_path / "b/last.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_interrupted_mid_epoch_and_resumed_is_bit_identical(config, tmp_path, monkeypatch):
    cfg, src = config()
    full = fit(cfg, src, folder=tmp_path / "full").rows

    # 6 batches an epoch; the flag is read after every batch and at every epoch's end, so the
    # 10th read is after batch 3 of epoch 2
    meta, resumed = interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads=9)
    assert (meta["epoch"], meta["batch"], meta["step"]) == (1, 3, 9)
    a, b = net_arrays(tmp_path / "full/last.npz"), net_arrays(tmp_path / "cut/last.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert without_seconds(resumed) == without_seconds(full)
    metrics = (tmp_path / "cut/metrics.csv").read_text().splitlines()
    assert len(metrics) == 4  # header + 3 epochs, none duplicated


@pytest.mark.parametrize("reads", [9, 14])  # mid-epoch 2; at the end of epoch 2
def test_an_interrupted_and_resumed_run_keeps_the_best_epoch(config, tmp_path, monkeypatch, reads):
    """best.npz is the same epoch, with the same net, as in the run never interrupted: the
    monitor's best value so far comes back with the checkpoint. (mode max on the training loss
    makes epoch 1 the best, so a resumed run that forgot it would take a later epoch.)"""
    cfg, src = config(sets=["train.checkpoint.monitor=train_loss", "train.checkpoint.mode=max"])
    fit(cfg, src, folder=tmp_path / "full")
    interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads=reads)
    full, cut = (checkpoint.load(tmp_path / f / "best.npz")[1] for f in ("full", "cut"))
    assert full["epoch"] == 1
    assert (cut["epoch"], cut["best"]) == (full["epoch"], full["best"])
    a, b = net_arrays(tmp_path / "full/best.npz"), net_arrays(tmp_path / "cut/best.npz")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_divergence_stops_before_the_update(config, tmp_path):
    """The step whose loss or gradients are not finite is never applied: the weights in memory
    stay those of the last good step, which last.npz (written every step) holds."""
    linear_output = ["model.layers.2=linear", "model.loss=squared_error"]
    cfg, src = config(lr=1e6, epochs=3, sets=[*linear_output, "train.checkpoint.every_steps=1"])
    run = prepare(cfg, src)
    with pytest.raises(JobFailed, match="diverged") as info:
        loop.train(run, tmp_path / "run", progress=False, out=None)
    assert info.value.exit_code == 1 and "learning rate" in info.value.hint
    saved = net_arrays(tmp_path / "run/last.npz")
    assert all(np.all(np.isfinite(w)) for w in saved.values())
    in_memory = run.net.arrays()
    assert saved.keys() <= in_memory.keys()
    for name, w in saved.items():
        np.testing.assert_array_equal(in_memory[name], w, err_msg=name)


def test_the_fit_returns_its_run_folder_rows_and_checkpoints(config, tmp_path):
    cfg, src = config(epochs=2)
    done = fit(cfg, src, folder=tmp_path / "run")
    assert done.folder == tmp_path / "run" and len(done.rows) == 2
    assert done.last == tmp_path / "run/last.npz" and done.best == tmp_path / "run/best.npz"
    assert done.run.state.epoch == 2 and done.run.state.step == 12
    alone = fit(cfg, src)  # no folder: nothing written, the same training
    assert alone.folder is alone.last is alone.best is None
    assert without_seconds(alone.rows) == without_seconds(done.rows)


def test_the_train_state_reads_and_writes_the_checkpoint_entries(config, tmp_path, monkeypatch):
    """TrainState is the seven __meta__ entries of a checkpoint, read and written unchanged."""
    cfg, src = config(sets=["train.early_stopping.patience=9"])
    meta, _ = interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads=9)
    entries = ("epoch", "batch", "step", "metrics", "partial", "best", "stopping")
    state = TrainState.from_meta(meta, "last.npz")
    assert state.to_meta() == {k: meta[k] for k in entries}
    assert list(state.to_meta()) == [k for k in meta if k in entries]  # in the same order
    assert (state.epoch, state.batch, state.step, state.partial["seen"]) == (1, 3, 9, 48)
    assert state.best is not None and state.stopping_best is not None and state.wait == 0
    with pytest.raises(UserError, match="weights only"):
        TrainState.from_meta({"config": {}}, "w.npz")
