"""data.augment: the Numba gather against a numpy reference, the bilinear turn and zoom worked by
hand, seeded draws (same step, same views; another step, other views), training-only, and an
interrupted augmented run resumed exactly."""

import numpy as np
import pytest
from helpers import interrupt_and_resume, net_arrays

from nettrain.core.errors import UserError
from nettrain.data import Dataset
from nettrain.data.augment import Augment, _gather, _warp, crop_view
from nettrain.training.fit import fit
from nettrain.training.prepare import prepare


def reference_gather(x, rows, top, left, flip, h, w):
    """Pad with zeros far enough, slice each window, mirror where flipped."""
    pad = int(max(np.abs(top).max(), np.abs(left).max())) + max(h, w)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = []
    for r, t, lf, f in zip(rows, top, left, flip, strict=True):
        window = padded[r, :, pad + t : pad + t + h, pad + lf : pad + lf + w]
        out.append(window[:, :, ::-1] if f else window)
    return np.array(out)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_gather_matches_the_numpy_reference(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (6, 2, 5, 7)).astype(dtype)
    rows = np.array([5, 0, 3, 3, 1], np.int64)
    top, left = rng.integers(-6, 6, 5), rng.integers(-8, 8, 5)
    flip = rng.random(5) < 0.5
    out = np.empty((5, 2, 4, 3), dtype)
    _gather(x, rows, top, left, flip, out)
    np.testing.assert_array_equal(out, reference_gather(x, rows, top, left, flip, 4, 3))


def warp(x, rows, top, left, flip, angle, zoom, shape):
    out = np.empty((len(rows), x.shape[1], *shape), x.dtype)
    whole = x.dtype == np.uint8
    bounds = (0.0, 255.0) if whole else (-np.inf, np.inf)
    args = (np.asarray(top), np.asarray(left), np.asarray(flip), np.asarray(angle, float))
    _warp(x, np.asarray(rows, np.int64), *args, np.asarray(zoom, float), whole, *bounds, out)
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_warp_without_turn_or_zoom_is_the_gather(dtype):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (6, 2, 9, 7)).astype(dtype)
    rows, top, left = [5, 0, 3, 3], [1, -2, 0, 4], [0, 2, -1, -6]
    flip = [True, False, True, False]
    out = warp(x, rows, top, left, flip, [0] * 4, [1] * 4, (6, 7))
    np.testing.assert_array_equal(out, reference_gather(x, rows, top, left, flip, 6, 7))


def test_warp_turns_and_zooms_about_the_centre_bilinearly():
    x = np.random.default_rng(3).random((2, 1, 5, 5))
    quarter = warp(x, [1, 0], [0, 0], [0, 0], [False, True], [np.pi / 2] * 2, [1, 1], (5, 5))
    np.testing.assert_allclose(quarter[0], np.rot90(x[1], -1, axes=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(quarter[1], np.rot90(x[0], -1, axes=(1, 2))[:, :, ::-1], atol=1e-12)
    # zoom 2 on a 3x3 image: corner (0, 0) of the view lies at (0.5, 0.5), between four pixels
    img = np.array([[[[0, 100, 7], [200, 40, 9], [1, 2, 3]]]], np.uint8)
    out = warp(img, [0], [0], [0], [False], [0.0], [2.0], (3, 3))
    assert out[0, 0, 0, 0] == 85  # (0 + 100 + 200 + 40) / 4
    assert out[0, 0, 1, 1] == 40  # the centre stays
    assert out[0, 0, 2, 2] == 14  # (40 + 9 + 2 + 3) / 4 = 13.5, rounded half up


def images(n=8, shape=(1, 6, 6)):
    x = np.random.default_rng(1).integers(1, 256, (n, *shape)).astype(np.uint8)
    return Dataset(x, np.zeros(n, np.int64), "mem")


def test_translations_are_shifts_within_k_and_seeded():
    ds, aug = images(), Augment(translate=2, flip=False, crop=None)
    idx = np.array([3, 1, 4, 1, 5, 0, 2])
    a = aug.apply(ds, idx, np.random.default_rng([7, 6, 11]))
    b = aug.apply(ds, idx, np.random.default_rng([7, 6, 11]))
    c = aug.apply(ds, idx, np.random.default_rng([7, 6, 12]))
    assert a.dtype == np.uint8 and a.shape == (7, 1, 6, 6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for view, i in zip(a, idx, strict=True):
        shifts = [
            reference_gather(ds.x, [i], [dy], [dx], [False], 6, 6)[0]
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        ]
        assert any(np.array_equal(view, s) for s in shifts)


def test_flips_mirror_about_half_the_samples():
    ds, aug = images(200), Augment(translate=0, flip=True, crop=None)
    out = aug.apply(ds, np.arange(200), np.random.default_rng(0))
    flipped = np.array([np.array_equal(o, x[:, :, ::-1]) for o, x in zip(out, ds.x, strict=True)])
    same = np.array([np.array_equal(o, x) for o, x in zip(out, ds.x, strict=True)])
    assert np.all(flipped | same) and 70 < flipped.sum() < 130


def test_turns_and_zooms_are_drawn_after_the_other_draws_and_split_by_rank():
    ds = images(6, (1, 6, 6))
    ds.x[:] = np.random.default_rng(5).random(ds.x.shape) * 255  # no rounding in the compare
    ds = Dataset(ds.x.astype(np.float64), ds.y, "mem")
    idx = np.arange(6)
    shifted = Augment(2, True, None).apply(ds, idx, np.random.default_rng([1, 6, 3]))
    barely = Augment(2, True, None, rotate=1e-9, scale=1e-9)
    turned = barely.apply(ds, idx, np.random.default_rng([1, 6, 3]))
    np.testing.assert_allclose(turned, shifted, atol=1e-6)  # the same shifts and flips
    wide = Augment(0, False, None, rotate=30, scale=0.2)
    whole = wide.apply(ds, idx, np.random.default_rng(9))
    share = wide.apply(ds, idx[2:5], np.random.default_rng(9), part=(2, 5, 6))
    np.testing.assert_array_equal(share, whole[2:5])  # a rank's share: the whole batch's draws
    assert not np.allclose(whole, ds.x)


def test_crop_windows_train_randomly_and_evaluate_centrally():
    spec = {"translate": 0, "flip": False, "rotate": 0, "scale": 0}
    spec["crop"] = {"size": [4, 4], "padding": 1}
    ds = crop_view(spec, images(), "data.augment.crop.size")
    assert ds.sample_shape == (1, 4, 4)
    np.testing.assert_array_equal(ds.raw(np.arange(8)), ds.x[:, :, 1:5, 1:5])
    aug = Augment.from_config(spec, ds.sample_shape, "data.augment")
    out = aug.apply(ds, np.arange(8), np.random.default_rng(3))
    assert out.shape == (8, 1, 4, 4)
    for view, x in zip(out, ds.x, strict=True):
        # a 4x4 window of the 6x6 image padded by 1: 5x5 positions, from (-1, -1) to (3, 3)
        windows = [
            reference_gather(x[None], [0], [top], [left], [False], 4, 4)[0]
            for top in range(-1, 4)
            for left in range(-1, 4)
        ]
        assert any(np.array_equal(view, w) for w in windows)
    with pytest.raises(UserError, match=r"\[4, 4\] is larger than the images \(3x3\)"):
        crop_view(spec, images(shape=(1, 3, 3)), "data.augment.crop.size")


CONFIG = """
seed: 4
data:
  train: train.npz
  test: test.npz
  preprocess: {{name: standardize, per: channel}}
  augment: {augment}
model:
  input: [1, 6, 6]
  layers:
    - {{type: conv2d, filters: 3, kernel: 3, activation: relu}}
    - {{type: maxpool2d, size: 2}}
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 3
  batch_size: 10
  optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}
"""


@pytest.fixture
def make(tmp_path, make_config):
    rng = np.random.default_rng(0)
    for name, n in (("train", 40), ("test", 10)):
        x = rng.integers(0, 256, (n, 1, 6, 6)).astype(np.uint8)
        np.savez(tmp_path / f"{name}.npz", x=x, y=rng.integers(0, 3, n))

    def make(augment="{translate: 1, flip: true, crop: {padding: 1}}", sets=()):
        return make_config(CONFIG.format(augment=augment), *sets)

    return make


@pytest.mark.parametrize("augment", [None, "{translate: 1, rotate: 15, scale: 0.1}"])
def test_augmented_run_interrupted_and_resumed_is_bit_identical(
    make, tmp_path, monkeypatch, augment
):
    cfg, src = make(augment) if augment else make()
    full = fit(cfg, src, folder=tmp_path / "full").rows
    plain_cfg, plain_src = make("{}")
    plain = fit(plain_cfg, plain_src, folder=tmp_path / "plain").rows
    assert full[-1]["train_loss"] != plain[-1]["train_loss"]  # the views changed the batches

    # stops in epoch 2, batch 2
    meta, _ = interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads=6)
    assert (meta["epoch"], meta["batch"]) == (1, 2)
    a, b = net_arrays(tmp_path / "full/last.npz"), net_arrays(tmp_path / "cut/last.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_only_training_batches_are_augmented(make):
    cfg, src = make()
    run = prepare(cfg, src)
    assert run.augment is not None and run.test.window is None
    stored = run.test.x.astype(np.float32)
    mean, std = run.preprocess["preprocess.mean"], run.preprocess["preprocess.std"]
    expected = (stored - np.float32(mean[0])) / np.float32(std[0])
    np.testing.assert_allclose(run.test.inputs(np.arange(10), np.float32), expected, atol=1e-5)


def test_augment_needs_images(make):
    flat = ["model.input=[36]", "model.layers=[{type: dense, units: 3}, softmax]"]
    flat.append("data.preprocess=standardize")
    cfg, src = make("{translate: 2}", flat)
    with pytest.raises(UserError, match=r"cfg.yaml:7: data.augment: augmentation needs image"):
        prepare(cfg, src)
    with pytest.raises(UserError, match="cfg.yaml:7: data.augment.translate: expected an int"):
        make("{translate: -1}")
    with pytest.raises(UserError, match="unknown key 'rotation'.*did you mean 'rotate'"):
        make("{rotation: 10}")
    with pytest.raises(UserError, match=r"augment.scale: expected a number in \[0, 1\), got 1.0"):
        make("{scale: 1}")
