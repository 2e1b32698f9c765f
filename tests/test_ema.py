"""train.ema, the weights' moving average (nettrain.optim.average): the rate and the update by
hand, training unchanged by it, the average scored and checkpointed, and an exact resume."""

import numpy as np
import pytest
from helpers import blob_configs, interrupt_and_resume, without_seconds

from nettrain import checkpoint
from nettrain.core.errors import UserError
from nettrain.optim import average
from nettrain.optim.average import PREFIX, WeightAverage
from nettrain.training.fit import fit
from nettrain.training.prepare import prepare

CONFIG = """
seed: 3
dtype: float64
data: {{train: {train}, validation: 0.25}}
model:
  input: [4]
  layers:
    - {{type: dense, units: 8, activation: tanh}}
    - {{type: batchnorm}}
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 4
  batch_size: 16
  optimizer: {{name: sgd, lr: 0.5, momentum: 0.9}}
"""


@pytest.fixture
def config(tmp_path):
    return blob_configs(tmp_path, CONFIG)


class Arrays:
    """A stand-in for a net: arrays() is all the average reads."""

    def __init__(self, **arrays):
        self.a = arrays

    def arrays(self):
        return self.a


def test_rate_and_update_by_hand():
    avg = WeightAverage(Arrays(w=np.array([0.0, 1.0])), 0.5)
    assert avg.rate(1) == pytest.approx(2 / 11) and avg.rate(2) == pytest.approx(3 / 12)
    assert avg.rate(100) == 0.5  # the ramp (101/110) is past the decay
    net = Arrays(w=np.array([1.0, 3.0]))
    avg.update(net, 1)  # 2/11 of the old, 9/11 of the new
    np.testing.assert_allclose(avg.held["w"], [9 / 11, 2 / 11 + 27 / 11], rtol=1e-15)
    net.a["w"][...] = [-1.0, 0.0]
    avg.update(net, 2)  # 3/12 of that, 9/12 of the new
    np.testing.assert_allclose(avg.held["w"], [3 / 12 * 9 / 11 - 9 / 12, 3 / 12 * 29 / 11])
    # swapped in and out: the net holds the average inside, its own weights again after
    held = avg.held["w"].copy()
    with avg.scoring(net):
        np.testing.assert_array_equal(net.a["w"], held)
    np.testing.assert_array_equal(net.a["w"], [-1.0, 0.0])


def test_training_is_unchanged_and_the_average_is_scored_and_saved(config, tmp_path, monkeypatch):
    plain = fit(*config(), folder=tmp_path / "plain")
    seen = []  # the iterate after each step, as the average reads it
    update = WeightAverage.update

    def recording(self, net, step):
        seen.append({k: a.copy() for k, a in net.arrays().items()})
        update(self, net, step)

    monkeypatch.setattr(WeightAverage, "update", recording)
    averaged = fit(*config("train.ema=0.8"), folder=tmp_path / "ema")
    a, _ = checkpoint.load(tmp_path / "ema/last.npz")
    b, _ = checkpoint.load(tmp_path / "plain/last.npz")
    # training itself is the same: the iterate of the averaged run is the plain run's net
    for k in b:
        if k.startswith("layers."):
            np.testing.assert_array_equal(a[PREFIX + k], b[k])
    # the average by hand, from the initial weights (the plain run's, seeded alike)
    init = prepare(*config()).net.arrays()
    assert len(seen) == 4 * 3  # 48 training rows, batches of 16
    for step, weights in enumerate(seen, start=1):
        d = min(0.8, (1 + step) / (10 + step))
        init = {k: d * init[k] + (1 - d) * weights[k] for k in init}
    for k, v in init.items():
        np.testing.assert_allclose(a[k], v, rtol=1e-12, atol=1e-15)
        assert not np.array_equal(a[k], b[k]) or k.endswith("bias")
    # the rows score the average; the finished run's net holds it
    run = averaged.run
    assert all(np.array_equal(run.net.arrays()[k], a[k]) for k in init)
    loss, _ = run.world.score(run.net, run.validation, 64)
    assert averaged.rows[-1]["validation_loss"] == pytest.approx(loss, rel=1e-12)
    assert averaged.rows[-1]["validation_loss"] != plain.rows[-1]["validation_loss"]


def test_interrupted_and_resumed_with_an_average_is_bit_identical(config, tmp_path, monkeypatch):
    cfg, src = config("train.ema=0.9")
    full = fit(cfg, src, folder=tmp_path / "full").rows
    meta, resumed = interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads=5)
    assert (meta["epoch"], meta["batch"]) == (1, 2)  # mid-epoch
    a, _ = checkpoint.load(tmp_path / "full/last.npz")
    b, _ = checkpoint.load(tmp_path / "cut/last.npz")
    assert a.keys() == b.keys() and any(k.startswith(PREFIX) for k in a)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert without_seconds(resumed) == without_seconds(full)


def test_the_decay_is_checked_and_fixed_on_resume(config, tmp_path):
    for bad in ("1", "-0.1", "yes"):
        with pytest.raises(UserError, match="train.ema"):
            config(f"train.ema={bad}")
    assert average.OPTION.default == 0.0  # off unless asked for
    fit(*config("train.epochs=1"), folder=tmp_path / "run")
    cfg, src = config("train.epochs=2", "train.ema=0.9")
    with pytest.raises(UserError, match="different train.ema"):
        fit(cfg, src, folder=tmp_path / "run", resume=tmp_path / "run/last.npz")
    # a checkpoint written before train.ema was a key resumes as one without it
    arrays, meta = checkpoint.load(tmp_path / "run/last.npz")
    del meta["config"]["train"]["ema"]
    checkpoint.save(tmp_path / "run/last.npz", arrays, meta)
    fit(*config("train.epochs=2"), folder=tmp_path / "run", resume=tmp_path / "run/last.npz")
