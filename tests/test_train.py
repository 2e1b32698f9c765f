"""The fit loop through the library: learning, determinism, exact resume, divergence."""

import numpy as np
import pytest
from helpers import interrupt_and_resume, net_arrays, without_seconds, write_blobs

from nettrain.config import ConfigSource, validate
from nettrain.core.errors import JobFailed
from nettrain.training.fit import fit

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
