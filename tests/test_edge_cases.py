"""Numerical edge cases: huge logits, saturated sigmoids, outputs of exactly 0 or 1 under the
cross-entropies, constant inputs, a single sample, batches larger than the data or not dividing
it. Each gives a finite result equal to a direct numpy computation (in float64, written here
independently of nettrain), or a clear error."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import invoke

import nettrain.net.network  # noqa: F401  (imports the layers before the losses, as the CLI does)
from nettrain import checkpoint
from nettrain.layers.sigmoid import sigmoid
from nettrain.layers.softmax import softmax
from nettrain.net.losses import (
    cross_entropy,
    multinomial_cross_entropy,
    sigmoid_cross_entropy,
    softmax_multinomial_cross_entropy,
)
from nettrain.net.network import build_network

DTYPES = [np.float32, np.float64]


def ref_log_softmax(s):
    s = np.asarray(s, np.float64)
    return s - np.logaddexp.reduce(s, axis=1, keepdims=True)


def ref_softplus(s):
    return np.logaddexp(0.0, np.asarray(s, np.float64))


# -- losses at the edges ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("big", [30.0, 1e4, 1e30])
def test_softmax_cross_entropy_with_huge_logits(dtype, big):
    s = np.array([[big, -big, 0.0], [0.0, 0.0, 0.0], [-big, big, big / 2]], dtype)
    t = np.array([[0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        o = softmax(s)
        value, grad = softmax_multinomial_cross_entropy(s, o, t)
    expected = -np.sum(t * ref_log_softmax(s)) / len(s)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(expected, rel=1e-6)
    assert np.allclose(grad, (np.exp(ref_log_softmax(s)) - t) / len(s), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("big", [40.0, 1e4, 1e30])
def test_sigmoid_cross_entropy_with_huge_logits(dtype, big):
    s = np.array([[big, -big, 0.0, big], [-big, big, 1.0, -big]], dtype)
    t = np.array([[1, 1, 0.5, 0], [0, 0, 1, 1]], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        o = sigmoid(s)
        value, grad = sigmoid_cross_entropy(s, o, t)
    expected = np.sum(ref_softplus(s) - t * s.astype(np.float64)) / len(s)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_sigmoid_is_exactly_0_or_1_without_overflow(dtype):
    s = np.array([[-1e4, -100.0, 100.0, 1e4]], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        o = sigmoid(s)
    assert o.dtype == dtype
    assert o[0, 0] == 0.0 and o[0, -1] == 1.0
    assert np.all((o >= 0) & (o <= 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_on_outputs_of_exactly_0_and_1(dtype):
    """The unfused loss (a softmax output under cross_entropy, or a sigmoid before dropout)
    clips o into (0, 1): finite value and gradient; o == t costs (almost) nothing."""
    o = np.array([[0.0, 1.0, 1.0, 0.0]], dtype)
    right = np.array([[0.0, 1.0, 1.0, 0.0]], dtype)
    wrong = 1 - right
    for t in (right, wrong):
        value, grad = cross_entropy(o, t)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), (t, value, grad)
    assert cross_entropy(o, right)[0] < 1e-6
    # wrong with certainty: o = 0 is taken as the smallest positive number of the dtype, o = 1
    # as the largest number below 1; each unit costs the -log of that
    info = np.finfo(dtype)
    expected = -2 * np.log(float(info.tiny)) - 2 * np.log(float(info.epsneg))
    assert cross_entropy(o, wrong)[0] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multinomial_cross_entropy_on_outputs_of_exactly_0_and_1(dtype):
    o = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype)
    t = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype)
    value, grad = multinomial_cross_entropy(o, t)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(-np.log(np.finfo(dtype).tiny) / 2, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_softmax_under_cross_entropy_through_a_net(dtype):
    """A net whose softmax output is exactly 0 and 1 (weights far too large) under the unfused
    cross_entropy: a finite loss and finite gradients for every parameter."""
    model = {
        "layers": [
            {
                "type": "dense",
                "units": 3,
                "activation": "linear",
                "bias": True,
                "init": {"name": "auto"},
            },
            {"type": "softmax"},
        ],
        "loss": "cross_entropy",
    }
    net = build_network(model, dtype, (2,))
    net.params()["layers.0.weight"][...] = np.array([[1e3, -1e3, 0.0], [0.0, 0.0, 0.0]])
    x = np.array([[5.0, 1.0], [-5.0, 1.0]], dtype)
    t = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype)
    with np.errstate(over="raise", invalid="raise"):
        value, out, _ = net.loss_and_backward(x, t)
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in net.grads().values())


# -- training on small, constant and oddly batched data -----------------------------------------


CONFIG = """\
seed: 3
dtype: float64
data:
  train: train.npz
model:
  layers:
    - {type: dense, units: 3, activation: tanh}
    - {type: dense, units: 2}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 4
  shuffle: false
  optimizer: {name: sgd, lr: 1.0e-30}
"""


def reference_loss(weights: dict, x, y) -> float:
    """Mean multinomial cross-entropy of the config's net, in plain numpy (float64)."""
    h = np.tanh(x @ weights["layers.0.weight"] + weights["layers.0.bias"])
    s = h @ weights["layers.1.weight"] + weights["layers.1.bias"]
    return float(-np.mean(ref_log_softmax(s)[np.arange(len(y)), y]))


def fit(tmp_path, x, y, *sets):
    np.savez(tmp_path / "train.npz", x=x, y=y)
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["fit", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--quiet"]
    return invoke(*args, *(a for s in sets for a in ("--set", s)), code=None)


def metrics(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "n, batch_size",
    [(1, 1), (1, 5), (10, 3), (10, 10), (10, 64), (7, 2)],
    ids=["one-sample", "one-sample-big-batch", "3-into-10", "exact", "batch-over-data", "2-into-7"],
)
def test_epoch_loss_matches_numpy_for_any_batching(tmp_path, n, batch_size):
    """With lr 1e-30 the weights do not move (in float64), so the epoch's train_loss (the mean
    of the batch losses, weighted by batch size) is the loss of the whole set at those weights,
    whatever the batching: a last partial batch must count by its size, not as a full one."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 4))
    y = rng.integers(0, 2, n)
    result = fit(tmp_path, x, y, f"train.batch_size={batch_size}")
    assert result.exit_code == 0, result.stderr
    weights, meta = checkpoint.load(tmp_path / "run" / "last.npz")
    rows = metrics(tmp_path / "run")
    assert len(rows) == 2 and meta["step"] == 2 * -(-n // batch_size)
    expected = reference_loss(weights, x, y)
    for row in rows:
        assert float(row["train_loss"]) == pytest.approx(expected, rel=1e-9)
        assert np.isfinite(float(row["train_loss"]))


def test_constant_inputs_train_to_finite_weights(tmp_path):
    x = np.full((9, 4), 2.5)
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0, 1])
    result = fit(tmp_path, x, y, "train.optimizer.lr=0.5", "train.epochs=40", "train.batch_size=9")
    assert result.exit_code == 0, result.stderr
    weights, _ = checkpoint.load(tmp_path / "run" / "last.npz")
    assert all(np.all(np.isfinite(w)) for w in weights.values())
    # identical inputs can only learn the class frequencies (5 of 9 are class 1): full-batch
    # descent ends at their entropy
    final = reference_loss(weights, x, y)
    assert final == pytest.approx(-(4 / 9) * np.log(4 / 9) - (5 / 9) * np.log(5 / 9), abs=1e-3)


def test_constant_inputs_under_standardize_are_only_centred(tmp_path):
    x = np.full((6, 4), -3.0)
    y = np.array([0, 1, 0, 1, 1, 0])
    result = fit(tmp_path, x, y, "data.preprocess=standardize")
    assert result.exit_code == 0, result.stderr
    assert all(np.isfinite(float(r["train_loss"])) for r in metrics(tmp_path / "run"))


def test_single_sample_cannot_also_give_a_validation_set(tmp_path):
    result = fit(tmp_path, np.ones((1, 4)), np.array([1]), "data.validation=0.5")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: data.validation: ")
    assert "leaves no training or no validation set" in result.stderr
    assert not (tmp_path / "run").exists()


def test_gradcheck_on_a_single_sample(tmp_path, cli_call):
    np.savez(tmp_path / "train.npz", x=np.ones((1, 4)), y=np.array([1]))
    (tmp_path / "c.yaml").write_text(CONFIG)
    result = cli_call("gradcheck", str(tmp_path / "c.yaml"), "--samples", "8", code=None)
    assert result.exit_code == 0, result.stdout + result.stderr


def test_inputs_beyond_float32_are_a_clear_failure(tmp_path):
    """Values that are finite in the file but overflow the run's float32: the first batch's
    loss is not finite, and training stops with exit 1 before any update, saying why."""
    x = np.full((4, 4), 1e300)
    result = fit(tmp_path, x, np.array([0, 1, 0, 1]), "dtype=float32")
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    error = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert error.startswith("error: epoch 1, batch 1: training diverged")
    assert "unscaled inputs" in result.stderr
