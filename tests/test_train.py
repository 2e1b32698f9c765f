"""The fit loop through the library: learning, determinism, exact resume, divergence."""

import numpy as np
import pytest
from helpers import interrupt_and_resume, net_arrays, without_seconds, write_blobs

from nettrain.config import ConfigSource, validate
from nettrain.core.errors import JobFailed, UserError
from nettrain.training.fit import fit
from nettrain.training.state import TrainState

CONFIG = """
seed: 3
data: {{train: {train}, test: {test}}}
model:
  input: [4]
  layers:
    - {{type: dense, units: 8, activation: tanh}}
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 3
  batch_size: 16
  optimizer: {{name: sgd, lr: {lr}, momentum: 0.9}}
"""


@pytest.fixture
def config(tmp_path):
    write_blobs(tmp_path)

    def make(lr=0.1, epochs=3, sets=()):
        text = CONFIG.format(train=tmp_path / "train.npz", test=tmp_path / "test.npz", lr=lr)
        src = ConfigSource.from_text(text, "cfg.yaml", tmp_path)
        src.apply_overrides([f"train.epochs={epochs}", *sets])
        return validate(src), src

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


def test_divergence_stops_before_the_update(config, tmp_path):
    linear_output = ["model.layers.2=linear", "model.loss=squared_error"]
    cfg, src = config(lr=1e6, epochs=3, sets=linear_output)
    with pytest.raises(JobFailed, match="diverged") as info:
        fit(cfg, src, folder=tmp_path / "run")
    assert info.value.exit_code == 1 and "learning rate" in info.value.hint
    if (tmp_path / "run/last.npz").exists():
        assert all(np.all(np.isfinite(w)) for w in net_arrays(tmp_path / "run/last.npz").values())


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
