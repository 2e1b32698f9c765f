"""Losses against the formulas of docs/maths.md, fused paths against unfused ones, extremes."""

import numpy as np
import pytest

from nettrain.layers.sigmoid import sigmoid
from nettrain.layers.softmax import softmax
from nettrain.net import losses

RNG = np.random.default_rng(0)


def per_sample_reference(name, o, t):
    """The seed formulas written sample by sample, unit by unit; batch loss = mean."""
    values, grads = [], np.zeros_like(o)
    for n in range(len(o)):
        e = 0.0
        for i in range(o.shape[1]):
            oi, yi = o[n, i], t[n, i]
            if name == "squared_error":
                e += 0.5 * (oi - yi) ** 2
                grads[n, i] = oi - yi
            elif name == "cross_entropy":
                e += -(yi * np.log(oi) + (1 - yi) * np.log(1 - oi))
                grads[n, i] = (oi - yi) / (oi * (1 - oi))
            else:
                e += -yi * np.log(oi)
                grads[n, i] = -yi / oi
        values.append(e)
    return np.mean(values), grads / len(o)


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_loss_matches_seed_formula(name):
    o = softmax(RNG.standard_normal((5, 4)))
    t = np.eye(4)[RNG.integers(0, 4, 5)]
    if name == "cross_entropy":
        t = RNG.uniform(0, 1, (5, 4))
    value, grad = losses.LOSSES[name](o, t)
    ref_value, ref_grad = per_sample_reference(name, o, t)
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10)


def test_loss_by_hand():
    o = np.array([[0.5, 0.25, 0.25]])
    t = np.array([[1.0, 0.0, 0.0]])
    assert losses.squared_error(o, t)[0] == pytest.approx(0.5 * (0.25 + 0.0625 + 0.0625))
    assert losses.multinomial_cross_entropy(o, t)[0] == pytest.approx(np.log(2))
    expected = -(np.log(0.5) + 2 * np.log(0.75))
    assert losses.cross_entropy(o, t)[0] == pytest.approx(expected)


def test_batch_loss_is_mean_of_sample_sums():
    o, t = RNG.standard_normal((6, 3)), RNG.standard_normal((6, 3))
    value, grad = losses.squared_error(o, t)
    assert value == pytest.approx(np.sum((o - t) ** 2) / 2 / 6)
    np.testing.assert_allclose(grad, (o - t) / 6)


def test_fused_softmax_mce_equals_unfused():
    s = RNG.standard_normal((4, 5))
    t = np.eye(5)[[0, 3, 1, 4]]
    o = softmax(s)
    value, ds = losses.softmax_multinomial_cross_entropy(s, o, t)
    ref_value, do = losses.multinomial_cross_entropy(o, t)
    jac_product = o * (do - np.sum(do * o, axis=1, keepdims=True))
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(ds, jac_product, atol=1e-15)


def test_fused_sigmoid_ce_equals_unfused():
    s = RNG.standard_normal((4, 3))
    t = RNG.uniform(0, 1, (4, 3))
    o = sigmoid(s)
    value, ds = losses.sigmoid_cross_entropy(s, o, t)
    ref_value, do = losses.cross_entropy(o, t)
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(ds, do * o * (1 - o), atol=1e-15)


def test_fused_losses_are_finite_for_huge_logits():
    s = np.array([[1e4, -1e4, 0.0]])
    t = np.array([[0.0, 1.0, 0.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        v1, g1 = losses.softmax_multinomial_cross_entropy(s, softmax(s), t)
        v2, g2 = losses.sigmoid_cross_entropy(s, sigmoid(s), t)
    assert v1 == pytest.approx(2e4)
    assert v2 == pytest.approx(2e4 + np.log(2))
    assert np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))


def test_unfused_cross_entropies_are_finite_at_exact_0_and_1():
    o = np.array([[0.0, 1.0]])
    for fn in (losses.cross_entropy, losses.multinomial_cross_entropy):
        value, grad = fn(o, np.array([[1.0, 0.0]]))
        assert np.isfinite(value) and np.all(np.isfinite(grad))
