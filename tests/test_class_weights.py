"""train.class_weights (a per-sample factor on the loss and on dL/do) and evaluate's roc_auc."""

import numpy as np
import pytest

from nettrain.core.errors import UserError
from nettrain.data import checked, class_weights
from nettrain.layers.softmax import softmax
from nettrain.net import losses, metrics
from nettrain.net.network import build_network


def test_weighted_loss_by_hand():
    """Two samples, squared error 1/2 (o - t)^2: losses 0.5 and 2; weights 3 and 1: the batch
    loss is (3 * 0.5 + 1 * 2) / 2 = 1.75, and each row of dL/do is scaled by its weight."""
    o, t = np.array([[1.0], [2.0]]), np.array([[0.0], [0.0]])
    value, grad = losses.squared_error(o, t, w=np.array([3.0, 1.0]))
    assert value == pytest.approx(1.75)
    np.testing.assert_allclose(grad, [[1.5], [1.0]])
    # cross-entropy of p = 0.5 for one sample of weight 2 in a batch of 2: 2 log 2 / 2
    o, t = np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([[1.0, 0.0], [1.0, 0.0]])
    value, _ = losses.multinomial_cross_entropy(o, t, w=np.array([2.0, 1.0]))
    assert value == pytest.approx(np.log(2))


@pytest.mark.parametrize("name", list(losses.COMBINED))
def test_fused_weighted_equals_unfused_weighted(name):
    rng = np.random.default_rng(0)
    s, w = rng.standard_normal((5, 3)), rng.uniform(0.5, 2, 5)
    t = np.eye(3)[rng.integers(0, 3, 5)]
    o = softmax(s) if name[0] == "softmax" else 1 / (1 + np.exp(-s))
    fused, _ = losses.COMBINED[name](s, o, t, w=w)
    plain, _ = losses.LOSSES[name[1]](o, t, w=w)
    assert fused == pytest.approx(plain, rel=1e-10)


@pytest.mark.parametrize(
    ("last", "loss", "k"),
    [("softmax", "multinomial_cross_entropy", 3), ("sigmoid", "cross_entropy", 1),
     ("linear", "squared_error", 2)],
)  # fmt: skip
def test_gradcheck_with_class_weights(last, loss, k):
    """Central differences of the weighted batch loss match the analytic gradients."""
    specs = [
        {"type": "dense", "units": 4, "activation": "tanh", "bias": True, "init": "auto"},
        {"type": "dense", "units": k, "activation": last, "bias": True, "init": "auto"},
    ]
    net = build_network({"layers": specs, "loss": loss}, np.float64, (3,))
    net.init_params(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3))
    t = np.eye(max(k, 2))[rng.integers(0, max(k, 2), 6)][:, :k]
    w = np.array([1.0, 3.0, 0.5, 2.0, 1.0, 0.25])
    net.loss_and_backward(x, t, weights=w)
    analytic = {name: g.copy() for name, g in net.grads().items()}
    h = 1e-6
    for name, p in net.params().items():
        flat, numeric = p.reshape(-1), np.zeros(p.size)
        for i in range(p.size):
            old = flat[i]
            flat[i] = old + h
            up = net.loss_and_backward(x, t, weights=w)[0]
            flat[i] = old - h
            down = net.loss_and_backward(x, t, weights=w)[0]
            flat[i] = old
            numeric[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(analytic[name].reshape(-1), numeric, rtol=1e-5, atol=1e-8)


def test_balanced_and_named_weights():
    ds = checked(np.zeros((6, 1)), np.array([0, 0, 0, 0, 1, 2]), "d", classes=["a", "b", "c"])
    # N / (K N_k): 6 / (3 * 4), 6 / (3 * 1), 6 / (3 * 1)
    np.testing.assert_allclose(class_weights("balanced", ds, 3, "w"), [0.5, 2, 2])
    np.testing.assert_allclose(class_weights({"b": 5, 2: 0.5}, ds, 3, "w"), [1, 5, 0.5])
    with pytest.raises(UserError, match=r"no class 'z' \(the classes: a, b, c\)"):
        class_weights({"z": 1}, ds, 3, "w")
    binary = checked(np.zeros((4, 1)), np.array([0, 1, 1, 1]), "d")
    np.testing.assert_allclose(class_weights("balanced", binary, 1, "w"), [2, 2 / 3])


def test_roc_auc_by_hand_with_ties():
    """Positives score 0.8, 0.4, 0.4; negatives 0.4, 0.1. Pairs (pos, neg): 0.8 beats both (2);
    each 0.4 ties the 0.4 (1/2) and beats 0.1 (1): 2 + 1.5 + 1.5 = 5 of 6."""
    labels = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.8, 0.4, 0.4, 0.4, 0.1])
    assert metrics.roc_auc(labels, scores) == pytest.approx(5 / 6)
    assert metrics.roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_roc_auc_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.uniform(0, 1, 500) + 0.3 * labels, 2)  # rounded: many ties
    expected = sklearn_metrics.roc_auc_score(labels, scores)
    assert metrics.roc_auc(labels, scores) == pytest.approx(expected, rel=1e-12)


def test_class_weights_in_a_fit():
    """Weights of 1 train the same bits as none; balanced weights change the run."""
    import nettrain

    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 3))
    y = (x[:, 0] + 0.5 * rng.standard_normal(40) > 0.8).astype(np.int64)  # about 1 in 4
    config = {
        "model": {
            "layers": [{"type": "dense", "units": 1, "activation": "sigmoid"}],
            "loss": "cross_entropy",
        },
        "train": {"epochs": 2, "batch_size": 8},
    }

    def weights(class_weights):
        model = nettrain.Model.from_config(config, {"train.class_weights": class_weights})
        model.fit(x, y)
        return model.nets[0].params()["layers.0.weight"].copy()

    plain = nettrain.Model.from_config(config)
    plain.fit(x, y)
    np.testing.assert_array_equal(weights({0: 1, 1: 1}), plain.nets[0].params()["layers.0.weight"])
    assert not np.array_equal(weights("balanced"), plain.nets[0].params()["layers.0.weight"])
    with pytest.raises(UserError, match="no class '7'"):
        weights({7: 2})
