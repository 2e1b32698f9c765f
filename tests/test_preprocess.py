"""data.preprocess: statistics from the training split alone, hand-checked maps, saved in the
checkpoint and applied by predict and evaluate exactly as in training."""

import numpy as np
import pytest

from nettrain import checkpoint, data
from nettrain.assemble import score
from nettrain.core.errors import UserError
from nettrain.data import preprocess
from nettrain.inference import single
from nettrain.training.fit import fit
from nettrain.training.prepare import prepare

CONFIG = """
seed: 2
data:
  train: train.npz
  test: test.npz
  validation: 0.25
  preprocess: {preprocess}
model:
  layers:
    - {{type: conv2d, filters: 2, kernel: 3, activation: tanh}}
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 8
  optimizer: {{name: sgd, lr: 0.05}}
"""


@pytest.fixture
def folder(tmp_path):
    """train.npz (40, 2, 3, 3) and test.npz (12, ...) with channel means near 50 and -3."""
    rng = np.random.default_rng(0)
    for name, n in (("train", 40), ("test", 12)):
        x = rng.standard_normal((n, 2, 3, 3)) * [[[10.0]], [[0.5]]] + [[[50.0]], [[-3.0]]]
        np.savez(tmp_path / f"{name}.npz", x=x, y=rng.integers(0, 3, n))
    return tmp_path


@pytest.fixture
def make(make_config):
    """(cfg, src) of CONFIG with ``preprocess_text`` as data.preprocess, on ``folder``'s data."""
    return lambda preprocess_text, sets=(): make_config(
        CONFIG.format(preprocess=preprocess_text), *sets
    )


def test_statistics_come_from_the_training_split_only(folder, make):
    cfg, src = make("{name: standardize, per: channel}")
    run = prepare(cfg, src)
    assert len(run.train) == 30 and len(run.validation) == 10
    assert run.validation.x is run.train.x  # the hold-out is a view of the stored samples
    kept = np.load(folder / "train.npz")["x"][run.train.rows]
    np.testing.assert_allclose(run.preprocess["preprocess.mean"], kept.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(run.preprocess["preprocess.std"], kept.std(axis=(0, 2, 3)))
    seen = run.train.inputs(np.arange(30), np.float64)
    np.testing.assert_allclose(seen.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(seen.std(axis=(0, 2, 3)), 1, rtol=1e-12)
    # the test set is mapped with the training statistics, not its own
    test = np.load(folder / "test.npz")["x"]
    expected = (test - kept.mean(axis=(0, 2, 3))[:, None, None]) / kept.std(axis=(0, 2, 3))[
        :, None, None
    ]
    np.testing.assert_allclose(run.test.inputs(np.arange(12), np.float64), expected, rtol=1e-12)


def test_hand_worked_maps():
    ds = data.checked(np.array([[0.0, 5, 2], [2, 5, 4], [4, 5, 9]]), None, "mem")
    spec = {"name": "standardize", "per": "feature"}
    stats = preprocess.fit(spec, ds, "data.preprocess")
    np.testing.assert_allclose(stats["preprocess.mean"], [2, 5, 5])
    out = preprocess.apply(spec, stats, ds).inputs(np.arange(3), np.float64)
    np.testing.assert_allclose(out[:, 0], [-1.2247448713915890, 0, 1.2247448713915890])
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0])  # a constant feature is only centred
    spec = {"name": "minmax", "per": "feature", "low": -1.0, "high": 1.0}
    stats = preprocess.fit(spec, ds, "data.preprocess")
    out = preprocess.apply(spec, stats, ds).inputs(np.arange(3), np.float64)
    np.testing.assert_allclose(out[:, 0], [-1, 0, 1])
    np.testing.assert_allclose(out[:, 2], [-1, -1 + 4 / 7, 1])
    np.testing.assert_array_equal(out[:, 1], [-1, -1, -1])  # constant: maps to low
    spec = {"name": "scale", "factor": 0.5}
    assert preprocess.fit(spec, ds, "data.preprocess") == {}
    out = preprocess.apply(spec, {}, ds).inputs(np.arange(3), np.float32)
    np.testing.assert_array_equal(out[2], np.float32([2, 2.5, 4.5]))


def test_statistics_cover_more_samples_than_one_chunk(monkeypatch):
    monkeypatch.setattr(preprocess, "CHUNK", 7)
    x = np.random.default_rng(1).integers(0, 256, (50, 1, 2, 2)).astype(np.uint8)
    ds = data.Dataset(x, None, "mem", scale=1 / 255)
    stats = preprocess.fit({"name": "standardize", "per": "channel"}, ds, "data.preprocess")
    np.testing.assert_allclose(stats["preprocess.mean"], [x.mean() / 255])
    np.testing.assert_allclose(stats["preprocess.std"], [x.std() / 255])
    stats = preprocess.fit({"name": "minmax", "per": "feature"}, ds, "data.preprocess")
    np.testing.assert_allclose(stats["preprocess.max"], x.max(axis=0) / 255)


@pytest.mark.parametrize(
    "text",
    [
        "{name: standardize, per: channel}",
        "standardize",
        "{name: minmax, low: -1}",
        "{name: scale, factor: 0.02}",
    ],
)
def test_statistics_round_trip_through_the_checkpoint(folder, text, make):
    cfg, src = make(text)
    fit(cfg, src, folder=folder / "run")
    ckpt = folder / "run" / "last.npz"
    arrays, _ = checkpoint.load(ckpt)
    stats = {k: v for k, v in arrays.items() if k.startswith("preprocess.")}
    assert len(stats) == (0 if "scale" in text else 2)
    if "channel" in text:
        assert stats["preprocess.mean"].shape == (2,)
    elif stats:
        assert next(iter(stats.values())).shape == (2, 3, 3)
    net, meta = single.load_net(ckpt)
    test = str(folder / "test.npz")
    _, _, seen_by_evaluate = score(net, single.evaluation_data(meta, net, test))
    predicted = single.predict(net, single.read_inputs(test, net, meta))
    np.testing.assert_array_equal(predicted, seen_by_evaluate)
    _, _, seen_in_training = score(net, prepare(cfg, src).test)
    np.testing.assert_array_equal(predicted, seen_in_training)
    raw = np.load(test)["x"]
    assert not np.allclose(single.predict(net, raw), predicted)  # the map matters


def test_errors(folder, make):
    with pytest.raises(
        UserError, match="cfg.yaml:7: data.preprocess.name: unknown name .*standardize"
    ):
        make("{name: standardise}")
    with pytest.raises(UserError, match="high .* must be greater than low"):
        make("{name: minmax, low: 1, high: 1}")
    with pytest.raises(UserError, match="missing required key 'data.preprocess.factor'"):
        make("scale")
    flat = ["model.input=[18]", "model.layers.0={type: dense, units: 4}"]
    cfg, src = make("{name: standardize, per: channel}", flat)
    with pytest.raises(UserError, match=r"cfg.yaml:7: data.preprocess: per: channel needs"):
        prepare(cfg, src)


def test_checkpoint_without_its_statistics_is_refused(folder, make):
    cfg, src = make("standardize", ["train.epochs=1"])
    fit(cfg, src, folder=folder / "run")
    arrays, meta = checkpoint.load(folder / "run" / "last.npz")
    del arrays["preprocess.std"]
    checkpoint.save(folder / "cut.npz", arrays, meta)
    with pytest.raises(UserError, match="no array 'preprocess.std'"):
        single.load_net(folder / "cut.npz")
