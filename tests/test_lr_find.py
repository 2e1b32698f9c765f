"""`nettrain lr-find`: the learning-rate range test on a tiny generated set, and its suggestion
on hand-made curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import invoke

from nettrain.config import ConfigSource, validate
from nettrain.tools.lr_find import DIVERGED, range_test, suggestion

CONFIG = """\
seed: 0
data:
  dataset: {name: blobs, n: 300, classes: 3, features: 4, noise: 1.0}
  validation: 0.2
  preprocess: standardize
model:
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  batch_size: 16
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG)
    return path


def rows_of(curve, lrs=None):
    lrs = lrs if lrs is not None else np.logspace(-4, 0, len(curve))
    return [{"lr": lr, "smoothed": s} for lr, s in zip(lrs, curve, strict=True)]


def test_suggestion_is_the_steepest_fall_before_the_minimum():
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]  # one decade a step
    # up to the minimum (0.7), slopes against log10(lr), centred inside and one-sided at the
    # ends (np.gradient): -0.1, -0.55, -0.6, -0.2
    assert suggestion(rows_of([2.0, 1.9, 0.9, 0.7, 5.7], lrs)) == 1e-2
    # -1.0, -0.75, -0.3, -0.1: the first rate
    assert suggestion(rows_of([2.0, 1.0, 0.5, 0.4, 100.0], lrs)) == 1e-4


def test_suggestion_needs_a_fall():
    assert suggestion(rows_of([1.0, 2.0, 4.0])) is None
    assert suggestion(rows_of([1.0, 0.9])) is None


def test_rates_grow_exponentially_and_the_test_stops_past_four_times_the_minimum(config):
    cfg = validate(ConfigSource.from_file(config))
    rows = range_test(cfg, None, start=1e-5, end=1e3, steps=60)
    lrs = np.array([r["lr"] for r in rows])
    np.testing.assert_allclose(lrs, 1e-5 * (1e8) ** (np.arange(len(rows)) / 59))
    smoothed = [r["smoothed"] for r in rows]
    assert len(rows) < 60  # a rate of 1000 diverges
    assert smoothed[-1] > DIVERGED * min(smoothed[:-1]) or not math.isfinite(smoothed[-1])
    assert all(s <= DIVERGED * min(smoothed[: i + 1]) for i, s in enumerate(smoothed[:-1]))
    # the bias-corrected average of the first loss is that loss
    assert rows[0]["smoothed"] == pytest.approx(rows[0]["loss"])


def test_the_command_prints_the_table_and_a_suggestion_and_keeps_nothing(
    config, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.iterdir())
    out = invoke("lr-find", config, "--steps", "40", "--start", "1e-4", "--end", "100").stdout
    lines = out.strip().splitlines()
    assert lines[0].split() == ["step", "lr", "loss", "smoothed"]
    assert lines[1].split()[0] == "1" and float(lines[1].split()[1]) == pytest.approx(1e-4)
    last = lines[-1]
    assert last.startswith("suggested lr: ")
    assert 1e-4 <= float(last.split(": ")[1]) <= 100
    assert sorted(tmp_path.iterdir()) == before


def test_the_plot_is_drawn(config, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "lr.png"
    invoke("lr-find", config, "--steps", "20", "--plot", png)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_range_is_an_input_error(config):
    result = invoke("lr-find", config, "--start", "1", "--end", "0.1", code=2)
    assert "error: lr-find: --start" in result.stderr
