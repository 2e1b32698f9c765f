"""Training knobs: train.clip_grad_norm, the plateau schedule and train.label_smoothing, by hand,
against PyTorch's clip_grad_norm_, ReduceLROnPlateau and CrossEntropyLoss(label_smoothing), in
the loop, and through an exact resume."""

import numpy as np
import pytest
from helpers import blob_configs, interrupt_and_resume, net_arrays, without_seconds

from nettrain.core.errors import UserError
from nettrain.net.losses import smoothed, softmax_multinomial_cross_entropy
from nettrain.optim.clip import EPS, clip_grad_norm
from nettrain.optim.schedule import plateau_update
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
    - {{type: dense, units: 3}}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 6
  batch_size: 16
  optimizer: {{name: sgd, lr: 0.5, momentum: 0.9}}
"""


@pytest.fixture
def config(tmp_path):
    return blob_configs(tmp_path, CONFIG)


# -- clip_grad_norm --------------------------------------------------------------------------


def test_clipping_by_hand():
    # all gradients together: sqrt(3^2 + 4^2 + 12^2) = 13
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}
    assert clip_grad_norm(grads, 6.5) == 13.0
    factor = 6.5 / (13 + EPS)
    np.testing.assert_array_equal(grads["a"], np.array([3.0, 4.0]) * factor)
    np.testing.assert_array_equal(grads["b"], np.array([[12.0]]) * factor)
    assert np.sqrt(sum(np.sum(g**2) for g in grads.values())) == pytest.approx(6.5)
    # a norm below the bound is left as it is
    small = {"a": np.array([0.3, 0.4])}
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small["a"], [0.3, 0.4])


@pytest.mark.parametrize("max_norm", [0.05, 1.0, 100.0])
def test_clipping_matches_pytorch(max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = {f"layers.{i}.weight": rng.standard_normal((5, i + 2)) for i in range(3)}
    tensors = [
        torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()
    ]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    assert clip_grad_norm(grads, max_norm) == pytest.approx(float(total), rel=1e-12)
    for t, g in zip(tensors, grads.values(), strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


def test_clipping_bounds_the_first_update(config):
    """One step of plain SGD from the same start: the clipped update is the unclipped one times
    min(1, X / norm)."""
    plain = ["train.optimizer.momentum=0", "train.epochs=1", "train.batch_size=48"]
    start = prepare(*config(*plain)).net.params()  # the seed's initial weights
    free = fit(*config(*plain)).run.net.params()
    clipped = fit(*config(*plain, "train.clip_grad_norm=0.01")).run.net.params()
    step = {k: free[k] - start[k] for k in start}  # -lr g
    norm = np.sqrt(sum(np.sum(s**2) for s in step.values())) / 0.5
    for k in start:
        np.testing.assert_allclose(clipped[k] - start[k], step[k] * 0.01 / (norm + EPS), rtol=1e-9)


# -- plateau ---------------------------------------------------------------------------------

PLATEAU = {"factor": 0.5, "patience": 2, "threshold": 0.1, "min_lr": 0.0}


def lrs_of(values, schedule=PLATEAU, higher=False, lr0=1.0):
    state, lrs = None, []
    for v in values:
        state = plateau_update(state, v, lr0, schedule, higher)
        lrs.append(state["lr"])
    return lrs


def test_plateau_by_hand():
    # best 1.0; 0.95 is not below 1.0 * (1 - 0.1): three bad epochs, the third > patience
    # halves the lr; 0.5 improves (best 0.5); then three more bad ones halve it again
    values = [1.0, 0.95, 0.95, 0.95, 0.5, 0.46, 0.5, 0.5]
    assert lrs_of(values) == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]
    # higher is better: 1.05 is not above 1.0 * 1.1
    assert lrs_of([1.0, 1.05, 1.05, 1.05], higher=True) == [1.0, 1.0, 1.0, 0.5]
    # never below min_lr
    assert lrs_of([1.0] * 12, {**PLATEAU, "min_lr": 0.3}) == [1.0] * 3 + [0.5] * 3 + [0.3] * 6


@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_matches_pytorch(mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    values = list(np.round(rng.random(60) * np.linspace(2, 1, 60), 2))  # plateaus and falls
    schedule = {"factor": 0.3, "patience": 3, "threshold": 0.05, "min_lr": 0.002}
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch_plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=0.3, patience=3, threshold=0.05, threshold_mode="rel",
        min_lr=0.002,
    )  # fmt: skip
    expected = []
    for v in values:
        torch_plateau.step(v)
        expected.append(opt.param_groups[0]["lr"])
    ours = lrs_of(values, schedule, higher=mode == "max", lr0=0.1)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    assert len(set(ours)) > 2  # the sequence did reduce the lr, more than once


def test_plateau_reduces_the_lr_in_the_loop(config):
    cfg, src = config(
        "train.schedule={name: plateau, monitor: validation_loss, patience: 0, "
        "threshold: 0.5, factor: 0.5}",
    )
    rows = fit(cfg, src).rows
    lrs = [r["lr"] for r in rows]
    losses = [r["validation_loss"] for r in rows]
    state, expected = None, []  # the lr of epoch e+1 is decided by epoch e's loss
    for loss in losses:
        expected.append(0.5 if state is None else state["lr"])
        state = plateau_update(state, loss, 0.5, cfg["train"]["schedule"], False)
    assert lrs == expected and lrs[-1] < 0.5


def test_plateau_monitor_defaults_to_the_checkpoints_and_is_checked(config):
    run = fit(*config("train.schedule=plateau", "train.epochs=1")).run
    assert (run.plateau.metric, run.plateau.mode) == ("validation_accuracy", "max")
    with pytest.raises(UserError, match="did you mean 'validation_loss'"):
        config("train.schedule={name: plateau, monitor: validation_los}")
    with pytest.raises(UserError, match="needs a test set"):
        fit(*config("train.schedule={name: plateau, monitor: test_loss}"))
    with pytest.raises(UserError, match="clip_grad_norm"):
        config("train.clip_grad_norm=0")


# -- resume ----------------------------------------------------------------------------------


def test_interrupted_and_resumed_with_both_knobs_is_bit_identical(config, tmp_path, monkeypatch):
    knobs = (
        "train.clip_grad_norm=0.2",
        "train.schedule={name: plateau, monitor: validation_loss, patience: 0, threshold: 0.5}",
    )
    cfg, src = config(*knobs)
    full = fit(cfg, src, folder=tmp_path / "full").rows
    assert len({r["lr"] for r in full}) > 1  # the plateau did act
    # 3 batches an epoch; the flag is read after every batch and at every epoch's end: the 10th
    # read is after batch 2 of epoch 3, past two plateau updates
    meta, resumed = interrupt_and_resume(cfg, src, tmp_path / "cut", monkeypatch, reads=9)
    assert (meta["epoch"], meta["batch"]) == (2, 2) and meta["plateau"]["lr"] < 0.5
    a, b = net_arrays(tmp_path / "full/last.npz"), net_arrays(tmp_path / "cut/last.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert without_seconds(resumed) == without_seconds(full)


# -- label_smoothing -------------------------------------------------------------------------


def test_smoothing_by_hand():
    t = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(smoothed(t, 0.1)[0], [0.025, 0.925, 0.025, 0.025])
    assert smoothed(t, 0.1).sum(axis=1) == pytest.approx([1.0, 1.0])
    # one sigmoid unit: two classes share e
    np.testing.assert_allclose(smoothed(np.array([[1.0], [0.0]]), 0.1), [[0.95], [0.05]])


@pytest.mark.parametrize("e", [0.05, 0.3])
def test_smoothing_matches_pytorch(e):
    """Loss and gradient of softmax + multinomial cross-entropy on smoothed targets against
    CrossEntropyLoss(label_smoothing=e)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    s, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    o = np.exp(s - s.max(axis=1, keepdims=True))
    o /= o.sum(axis=1, keepdims=True)
    loss, grad = softmax_multinomial_cross_entropy(s, o, smoothed(np.eye(5)[labels], e))
    ts = torch.tensor(s, requires_grad=True)
    ref = torch.nn.CrossEntropyLoss(label_smoothing=e)(ts, torch.tensor(labels))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, ts.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_smoothing_in_the_first_update(config):
    """One step of plain SGD on the whole training set: the update is -lr times the gradient
    of the loss on the smoothed targets."""
    plain = ["train.optimizer.momentum=0", "train.epochs=1", "train.batch_size=48"]
    run = prepare(*config(*plain))
    start, net, train = run.net.params(), run.net, run.train
    idx = np.arange(len(train))
    t = smoothed(train.targets(idx, net.n_outputs, net.dtype), 0.2)
    net.loss_and_backward(train.inputs(idx, net.dtype), t, input_grad=False)
    grads = {k: g.copy() for k, g in net.grads().items()}
    trained = fit(*config(*plain, "train.label_smoothing=0.2")).run.net.params()
    for k in start:
        np.testing.assert_allclose(trained[k] - start[k], -0.5 * grads[k], rtol=1e-9, atol=1e-15)


def test_smoothing_needs_classes_and_a_cross_entropy(config):
    with pytest.raises(UserError, match="label smoothing needs a cross-entropy loss"):
        prepare(*config("model.loss=squared_error", "train.label_smoothing=0.1"))
    with pytest.raises(UserError, match="label_smoothing"):
        config("train.label_smoothing=1.0")
