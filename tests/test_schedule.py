"""Learning-rate schedules: lr_at against values worked out by hand, their config, and the lr
the training loop really uses."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from nettrain.core.errors import UserError
from nettrain.optim.schedule import lr_at
from nettrain.optim.sgd import SGD
from nettrain.training.fit import fit

LR0 = 0.1
SPE = 10  # steps per epoch


def schedule(name, **options):
    return {"name": name, "warmup_epochs": 0.0, **options}


def at(sched, step, epochs=5, lr0=LR0, spe=SPE):
    return lr_at(sched, lr0, step, spe, epochs)


def test_constant():
    s = schedule("constant")
    for step in (0, 9, 10, 49, 1000):
        assert at(s, step) == pytest.approx(0.1)


def test_step():
    s = schedule("step", step_size=2, gamma=0.5)
    assert at(s, 0) == pytest.approx(0.1)  # epoch 0
    assert at(s, 19) == pytest.approx(0.1)  # epoch 1, the last step before the decay
    assert at(s, 20) == pytest.approx(0.05)  # epoch 2
    assert at(s, 39) == pytest.approx(0.05)  # epoch 3
    assert at(s, 45) == pytest.approx(0.025)  # epoch 4
    assert at(s, 60) == pytest.approx(0.0125)  # epoch 6


def test_multistep():
    s = schedule("multistep", milestones=[2, 5], gamma=0.1)
    assert at(s, 0) == pytest.approx(0.1)
    assert at(s, 19) == pytest.approx(0.1)
    assert at(s, 20) == pytest.approx(0.01)  # epoch 2 reaches milestone 2
    assert at(s, 49) == pytest.approx(0.01)
    assert at(s, 50) == pytest.approx(0.001)  # epoch 5
    assert at(s, 99) == pytest.approx(0.001)


def test_multistep_milestones_in_any_order():
    assert at(schedule("multistep", milestones=[5, 2], gamma=0.1), 30) == pytest.approx(0.01)


def test_exponential():
    s = schedule("exponential", gamma=0.5)
    assert at(s, 0) == pytest.approx(0.1)
    assert at(s, 9) == pytest.approx(0.1)
    assert at(s, 10) == pytest.approx(0.05)
    assert at(s, 25) == pytest.approx(0.025)
    assert at(s, 49) == pytest.approx(0.1 / 16)


def test_cosine():
    s = schedule("cosine", min_lr=0.01)
    # 5 epochs of 10 steps: 50 steps
    assert at(s, 0) == pytest.approx(0.1)  # lr0 at the start
    assert at(s, 25) == pytest.approx(0.01 + 0.09 * 0.5)  # half way: cos(pi/2) = 0
    assert at(s, 50) == pytest.approx(0.01)  # min_lr at the end
    assert at(s, 60) == pytest.approx(0.01)  # and after it
    quarter = 0.01 + 0.09 * (1 + math.sqrt(2) / 2) / 2  # cos(pi/4)
    assert at(s, 10, epochs=4) == pytest.approx(quarter)  # a quarter of 40 steps
    values = [at(s, k) for k in range(51)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert 0.01 < values[49] < 0.0101  # the last step trained is within 1% of min_lr


def test_cosine_default_min_lr_is_zero():
    s = schedule("cosine", min_lr=0.0)
    assert at(s, 10, epochs=2) == pytest.approx(0.05)
    assert at(s, 20, epochs=2) == pytest.approx(0.0, abs=1e-15)


def test_warmup_with_constant():
    s = {**schedule("constant"), "warmup_epochs": 1.0}
    for step in range(10):
        assert at(s, step) == pytest.approx((step + 1) / 10 * 0.1)
    assert at(s, 0) == pytest.approx(0.01)
    assert at(s, 9) == pytest.approx(0.1)
    assert at(s, 10) == pytest.approx(0.1)
    assert at(s, 33) == pytest.approx(0.1)


def test_fractional_warmup():
    s = {**schedule("constant"), "warmup_epochs": 0.5}  # 5 steps
    assert at(s, 2) == pytest.approx(3 / 5 * 0.1)
    assert at(s, 5) == pytest.approx(0.1)


def test_warmup_with_step():
    s = {**schedule("step", step_size=1, gamma=0.5), "warmup_epochs": 1.0}
    assert at(s, 0) == pytest.approx(0.01)
    assert at(s, 5) == pytest.approx(0.06)
    assert at(s, 10) == pytest.approx(0.05)  # epoch 1: decayed once, no more warm-up
    assert at(s, 25) == pytest.approx(0.025)


def test_warmup_with_cosine():
    s = {**schedule("cosine", min_lr=0.02), "warmup_epochs": 1.0}
    # 50 steps, of which 10 warm up: the cosine runs over the other 40
    assert at(s, 3) == pytest.approx(0.1 * 4 / 10)
    assert at(s, 9) == pytest.approx(0.1)
    assert at(s, 10) == pytest.approx(0.1)
    assert at(s, 30) == pytest.approx(0.02 + 0.08 * 0.5)
    assert at(s, 50) == pytest.approx(0.02)


# -- config ---------------------------------------------------------------------------------

BASE = """\
model:
  input: [4]
  layers:
    - {type: dense, units: 2}
  loss: squared_error
train:
  optimizer: {name: sgd, lr: 0.1}
  schedule: {name: step, step_size: 2}
"""


def resolved(make_config, *sets, text=BASE):
    return make_config(text, *sets)[0]["train"]["schedule"]


def test_schedule_defaults(make_config):
    assert resolved(make_config) == {
        "name": "step",
        "step_size": 2,
        "gamma": 0.1,
        "warmup_epochs": 0.0,
    }
    no_schedule = BASE.replace("  schedule: {name: step, step_size: 2}\n", "")
    assert resolved(make_config, text=no_schedule) == {"name": "constant", "warmup_epochs": 0.0}
    assert resolved(make_config, "train.schedule=cosine") == {
        "name": "cosine",
        "min_lr": 0.0,
        "warmup_epochs": 0.0,
    }


def test_unknown_schedule_name_has_a_hint(make_config):
    with pytest.raises(UserError) as info:
        resolved(make_config, text=BASE.replace("name: step,", "name: cosin,"))
    message = str(info.value)
    assert "cfg.yaml:8" in message and "train.schedule.name" in message
    assert "did you mean 'cosine'?" in message
    with pytest.raises(UserError, match="did you mean 'exponential'"):
        resolved(make_config, "train.schedule=exponentail")


def test_missing_required_options(make_config):
    with pytest.raises(UserError, match=r"missing required key 'train\.schedule\.step_size'"):
        resolved(make_config, text=BASE.replace(", step_size: 2", ""))
    with pytest.raises(UserError, match=r"train\.schedule\.gamma"):
        resolved(make_config, "train.schedule=exponential")
    with pytest.raises(UserError, match=r"train\.schedule\.milestones"):
        resolved(make_config, "train.schedule=multistep")


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        (["train.schedule.gamma=0"], "gamma"),
        (["train.schedule.gamma=-0.5"], "gamma"),
        (["train.schedule.gamma=fast"], "gamma"),
        (["train.schedule.step_size=0"], "step_size"),
        (["train.schedule.step_size=1.5"], "step_size"),
        (["train.schedule.warmup_epochs=-1"], "warmup_epochs"),
        (["train.schedule=multistep", "train.schedule.milestones=[0, 3]"], "milestones"),
        (["train.schedule.min_lr=0.1"], "min_lr"),  # a cosine option on step
    ],
)
def test_bad_schedule_values(make_config, sets, key):
    with pytest.raises(UserError, match=rf"train\.schedule\.{key}"):
        resolved(make_config, *sets)


def test_bad_gamma_in_the_file_names_its_line(make_config):
    text = BASE.replace("step_size: 2}", "step_size: 2, gamma: 0}")
    with pytest.raises(UserError) as info:
        resolved(make_config, text=text)
    assert str(info.value).startswith("cfg.yaml:8: train.schedule.gamma: expected a number > 0")


# -- the lr the loop uses -------------------------------------------------------------------

FIT = """
seed: 1
data: {{train: {train}}}
model:
  input: [4]
  layers:
    - {{type: dense, units: 6, activation: tanh}}
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 3
  batch_size: 16
  optimizer: {{name: sgd, lr: 0.1}}
"""


@pytest.fixture
def fit_config(tmp_path, make_config):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    x = (rng.standard_normal((3, 4))[y] * 3 + rng.standard_normal((50, 4))).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=y)

    return lambda *sets: make_config(FIT.format(train="train.npz"), *sets, name="c.yaml")


def metrics_lr(path):
    with open(path, newline="") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


def test_metrics_lr_follows_exponential_schedule(fit_config, tmp_path):
    cfg, src = fit_config("train.schedule={name: exponential, gamma: 0.5}")
    rows = fit(cfg, src, folder=tmp_path / "run").rows
    assert [r["lr"] for r in rows] == pytest.approx([0.1, 0.05, 0.025])
    assert metrics_lr(tmp_path / "run/metrics.csv") == pytest.approx([0.1, 0.05, 0.025])


def test_every_step_uses_the_scheduled_lr(fit_config, tmp_path, monkeypatch):
    """The lr the optimizer holds at each step is lr_at(step); metrics log each epoch's last."""
    cfg, src = fit_config(
        "train.schedule={name: cosine, min_lr: 0.01, warmup_epochs: 1}", "train.epochs=3"
    )
    used = []
    original = SGD.step

    def step(self, params, grads):
        used.append(self.lr)
        return original(self, params, grads)

    monkeypatch.setattr(SGD, "step", step)
    rows = fit(cfg, src, folder=tmp_path / "run").rows
    spe = 4  # 50 samples, batches of 16
    assert len(used) == 3 * spe
    expected = [lr_at(cfg["train"]["schedule"], 0.1, s, spe, 3) for s in range(3 * spe)]
    assert used == pytest.approx(expected)
    assert used[0] == pytest.approx(0.1 / 4)  # warm-up: (0 + 1) / 4 of lr0
    assert used[spe] == pytest.approx(0.1)  # first post-warm-up step
    assert [r["lr"] for r in rows] == pytest.approx([used[spe - 1], used[2 * spe - 1], used[-1]])


def test_schedule_changes_the_weights(fit_config, tmp_path):
    """Not just logged: a decayed lr changes the training."""
    cfg, src = fit_config()
    fit(cfg, src, folder=tmp_path / "a")
    cfg, src = fit_config("train.schedule={name: step, step_size: 1, gamma: 0.1}")
    fit(cfg, src, folder=tmp_path / "b")
    with np.load(tmp_path / "a/last.npz") as a, np.load(tmp_path / "b/last.npz") as b:
        assert not np.array_equal(a["layers.0.weight"], b["layers.0.weight"])
