"""Dropout: inverted scaling, the same mask forward and backward, seeded masks, config checks,
gradient check, and exact reproduction of runs that use it (resumed runs included)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build, interrupt_and_resume, net_arrays, without_seconds
from numpy.testing import assert_array_equal

from nettrain.core.errors import UserError
from nettrain.core.step import Step
from nettrain.layers.dropout import Dropout
from nettrain.net.network import build_network, output_range
from nettrain.tools.gradcheck import check_net
from nettrain.training.fit import fit


def dropout(p, shape=(500,), dtype=np.float64, seed=0):
    layer = build(Dropout, shape, dtype=dtype, drop_prob=p)
    layer.rng = np.random.default_rng(seed)
    return layer


def test_eval_mode_is_the_identity():
    layer = dropout(0.5)
    x = np.random.default_rng(1).standard_normal((20, 500))
    y, saved = layer.forward(x, train=False)
    assert_array_equal(y, x)
    assert saved is None


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_train_mode_drops_and_scales(p):
    layer = dropout(p)
    x = np.ones((200, 500))
    y, _ = layer.forward(x, train=True)
    dropped = np.mean(y == 0)
    assert dropped == pytest.approx(p, abs=0.01)  # 100000 units: 7 standard deviations
    kept = y[y != 0]
    np.testing.assert_allclose(kept, 1 / (1 - p))
    assert y.mean() == pytest.approx(1.0, abs=0.03)  # the expectation is preserved
    # on varied inputs: y is x or 0, times 1 / (1 - p)
    x = np.random.default_rng(3).standard_normal((200, 500))
    y, _ = layer.forward(x, train=True)
    zero = y == 0
    np.testing.assert_allclose(y[~zero], x[~zero] / (1 - p))
    assert y.mean() == pytest.approx(x.mean(), abs=0.03)


def test_float32_dropout():
    layer = dropout(0.25, dtype=np.float32)
    x = np.ones((100, 500), dtype=np.float32)
    y, _ = layer.forward(x, train=True)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[y != 0], np.float32(1 / 0.75), rtol=1e-6)


def test_backward_uses_the_forward_mask():
    layer = dropout(0.4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 500))
    y, saved = layer.forward(x, train=True)
    dy = rng.standard_normal((30, 500))
    dx = layer.backward(saved, dy)
    kept = y != 0
    assert_array_equal(dx[~kept], 0)
    np.testing.assert_allclose(dx[kept], dy[kept] / 0.6)
    # a second backward on the same forward is the same
    assert_array_equal(layer.backward(saved, dy), dx)


def test_drop_prob_zero_is_the_identity():
    layer = dropout(0.0)
    x = np.random.default_rng(5).standard_normal((20, 500))
    y, saved = layer.forward(x, train=True)
    assert_array_equal(y, x)
    dy = np.random.default_rng(6).standard_normal((20, 500))
    assert_array_equal(layer.backward(saved, dy), dy)


# -- masks from the run's seed ---------------------------------------------------------------

MODEL = """\
seed: 0
model:
  input: [4]
  layers:
    - {type: dense, units: 64, activation: tanh}
    - {type: dropout, drop_prob: 0.5}
    - {type: dropout, drop_prob: 0.5}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
"""


def resolved(make_config, *sets, text=MODEL):
    return make_config(text, *sets)[0]


def net_of(make_config, *sets, dtype=np.float64, text=MODEL):
    cfg = resolved(make_config, *sets, text=text)
    net = build_network(cfg["model"], dtype, cfg["model"]["input"])
    net.init_params(np.random.default_rng(0))
    return net


def masks(net, x, seed, step):
    _, _, saved = net.forward_saving(x, Step(seed, step))
    return [kept for layer, kept in zip(net.layers, saved, strict=True) if layer.kind == "dropout"]


def test_seed_step_fixes_the_masks(make_config):
    net = net_of(make_config)
    x = np.random.default_rng(7).standard_normal((8, 4))
    a1, b1 = masks(net, x, seed=0, step=5)
    a2, b2 = masks(net, x, seed=0, step=5)
    assert_array_equal(a1, a2)
    assert_array_equal(b1, b2)
    assert not np.array_equal(a1, b1)  # two layers, two streams
    a3, _ = masks(net, x, seed=0, step=6)
    assert not np.array_equal(a1, a3)  # another step
    a4, _ = masks(net, x, seed=1, step=5)
    assert not np.array_equal(a1, a4)  # another seed
    # the stream is [seed, 2, step, layer index]
    expected = np.random.default_rng([0, 2, 5, 1]).random((8, 64)) >= 0.5
    assert_array_equal(a1 != 0, expected)


def test_same_seed_step_same_outputs_and_eval_ignores_masks(make_config):
    net = net_of(make_config)
    x = np.random.default_rng(8).standard_normal((8, 4))
    y1 = net.forward(x, Step(3, 0))
    y2 = net.forward(x, Step(3, 0))
    assert_array_equal(y1, y2)
    e1 = net.forward(x, train=False)
    net.forward(x, Step(3, 9))  # another step's masks drawn in between
    e2 = net.forward(x, train=False)
    assert_array_equal(e1, e2)
    assert not np.allclose(y1, e1)


# -- config ---------------------------------------------------------------------------------


def test_config_rejects_drop_prob_one(make_config):
    second = "{type: dropout, drop_prob: 0.5}\n    - {type: dense"
    text = MODEL.replace(second, second.replace("0.5", "1.0"))
    with pytest.raises(UserError) as info:
        resolved(make_config, text=text)
    message = str(info.value)
    assert "cfg.yaml:7" in message and "model.layers.2.drop_prob" in message
    assert "[0, 1)" in message
    with pytest.raises(UserError, match=r"model\.layers\.1\.drop_prob"):
        resolved(make_config, "model.layers.1.drop_prob=-0.1")


def test_config_rejects_rate_with_a_hint(make_config):
    text = MODEL.replace("{type: dropout, drop_prob: 0.5}", "{type: dropout, rate: 0.5}", 1)
    with pytest.raises(UserError) as info:
        resolved(make_config, text=text)
    message = str(info.value)
    assert "unknown key 'rate'" in message and "drop_prob" in message
    assert "model.layers.1.rate" in message


def test_config_requires_drop_prob(make_config):
    text = MODEL.replace("{type: dropout, drop_prob: 0.5}", "{type: dropout}", 1)
    with pytest.raises(UserError, match="drop_prob"):
        resolved(make_config, text=text)


def test_dropout_keeps_the_output_range_for_the_loss_check(make_config):
    # softmax then dropout: the loss check looks through the dropout
    text = MODEL.replace(
        "    - softmax\n", "    - softmax\n    - {type: dropout, drop_prob: 0.1}\n"
    )
    text = text.replace("multinomial_cross_entropy", "cross_entropy")
    net = net_of(make_config, text=text)
    assert net.layers[-1].kind == "dropout"
    kind, _, index = output_range(net)
    assert (kind, index) == ("softmax", 4)  # the range is the softmax's, below it
    # the control: the same net without the softmax is refused, so the check did run
    with pytest.raises(UserError, match="cross_entropy needs outputs in"):
        net_of(make_config, text=text.replace("    - softmax\n", ""))


# -- gradient check --------------------------------------------------------------------------


def test_net_with_dropout_passes_gradcheck(make_config):
    net = net_of(make_config, "model.layers.0.units=8")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 4))
    t = np.eye(3)[rng.integers(0, 3, 5)]
    results, step = check_net(net, x, t)
    assert all(r.ok for r in results), [(r.name, r.failed, r.max_rel) for r in results]
    assert step.ok
    assert all(r.checked > 0 for r in results)
    # the masks really drop units in the checked passes
    assert any(np.any(mask == 0) for mask in masks(net, x, seed=0, step=0))


def test_gradcheck_fails_if_masks_are_not_reseeded(make_config, monkeypatch):
    """The control: with fresh masks on every pass the finite differences are noise."""
    net = net_of(make_config, "model.layers.0.units=8")
    drawn = np.random.default_rng(0)  # one generator drawn on by every pass
    monkeypatch.setattr(Step, "dropout_rng", lambda step, layer: drawn)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 4))
    t = np.eye(3)[rng.integers(0, 3, 5)]
    results, _ = check_net(net, x, t)
    assert not all(r.ok for r in results)


# -- training -------------------------------------------------------------------------------


@pytest.fixture
def config(blob_config):
    """The blob MLP (conftest.py) with 16 tanh units and dropout 0.3 after them."""
    layers = "model.layers=[{type: dense, units: 16, activation: tanh}, "
    layers += "{type: dropout, drop_prob: 0.3}, {type: dense, units: 3}, softmax]"
    return lambda *sets: blob_config(layers, *sets)


def same_weights(a, b):
    wa, wb = net_arrays(a), net_arrays(b)
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_fit_with_dropout_is_deterministic_and_uses_the_masks(config, tmp_path):
    cfg, src = config()
    a = fit(cfg, src, folder=tmp_path / "a").rows
    b = fit(cfg, src, folder=tmp_path / "b").rows
    assert same_weights(tmp_path / "a/last.npz", tmp_path / "b/last.npz")
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    # dropout is on during training: without it the run differs
    cfg, src = config("model.layers.1.drop_prob=0.0")
    fit(cfg, src, folder=tmp_path / "c")
    assert not same_weights(tmp_path / "a/last.npz", tmp_path / "c/last.npz")


# 6 batches an epoch; the flag is read after every batch and at the epoch's end (7 reads)
@pytest.mark.parametrize(
    ("reads", "position"), [(3, (0, 4)), (5, (1, 0)), (9, (1, 3)), (15, (2, 2))]
)
def test_interrupted_and_resumed_dropout_run_is_bit_identical(
    config, tmp_path, monkeypatch, reads, position
):
    cfg, src = config()
    full = fit(cfg, src, folder=tmp_path / "full").rows

    meta, resumed = interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads)
    assert (meta["epoch"], meta["batch"]) == position  # mostly inside an epoch
    assert same_weights(tmp_path / "full/last.npz", tmp_path / "cut/last.npz")
    assert without_seconds(resumed) == without_seconds(full)
