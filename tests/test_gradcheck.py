"""The gradient checker itself: it passes correct code, fails wrong code, and spots kinks."""

import numpy as np
import pytest

from nettrain.net.network import build_network
from nettrain.tools.gradcheck import check_net, format_report


def small_net(last_activation="tanh"):
    specs = [
        {"type": "dense", "units": 5, "activation": last_activation, "bias": True, "init": "auto"},
        {"type": "dense", "units": 3, "activation": "linear", "bias": True, "init": "auto"},
    ]
    net = build_network({"layers": specs, "loss": "squared_error"}, np.float64, (4,))
    net.init_params(np.random.default_rng(0))
    return net


def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((6, 4)), rng.standard_normal((6, 3))


def test_passes_a_correct_net_and_reports_every_tensor():
    results, step = check_net(small_net(), *data())
    names = [r.name for r in results]
    assert names == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "input",
    ]
    assert all(r.ok and r.checked == r.size for r in results)
    assert step.ok and abs(step.ratio - 1) < 1e-3
    assert "FAIL" not in format_report(results, step)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_fails_a_wrong_activation_backward(monkeypatch, activation):
    """A separate sigmoid layer, and tanh as dense applies it in its own kernels."""
    from nettrain.layers import dense, sigmoid

    if activation == "sigmoid":
        monkeypatch.setattr(sigmoid.Sigmoid, "backward", lambda self, y, dy, need_dx: dy * y)
    else:
        monkeypatch.setattr(dense, "tanh_grad", lambda dy, y: dy * (1 - y))
    results, step = check_net(small_net(activation), *data())
    failed = {r.name for r in results if not r.ok}
    assert {"layers.0.weight", "layers.0.bias", "input"} <= failed
    assert "FAIL" in format_report(results, step)


def weight_gradient_off_by_one_percent(monkeypatch):
    """Makes every dense layer's weight gradient 1% too large: a bug gradcheck must catch."""
    from nettrain.layers.dense import Dense

    backward = Dense.backward

    def off_by_one_percent(self, saved, dy, need_dx=True):
        dx = backward(self, saved, dy, need_dx)
        self.grads["weight"] *= 1.01
        return dx

    monkeypatch.setattr(Dense, "backward", off_by_one_percent)


def test_fails_a_slightly_wrong_weight_gradient(monkeypatch):
    weight_gradient_off_by_one_percent(monkeypatch)
    results, step = check_net(small_net(), *data())
    assert {r.name for r in results if not r.ok} == {"layers.0.weight", "layers.1.weight"}


def test_step_check_catches_a_gradient_with_the_wrong_scale(monkeypatch):
    from nettrain.layers.dense import Dense

    backward = Dense.backward

    def doubled(self, saved, dy, need_dx=True):
        dx = backward(self, saved, dy, need_dx)
        for g in self.grads.values():
            g *= 2
        return dx

    monkeypatch.setattr(Dense, "backward", doubled)
    _, step = check_net(small_net(), *data())
    assert not step.ok


def test_relu_kinks_are_counted_not_failed():
    net = small_net("relu")
    x, t = data()
    w = net.params()["layers.0.weight"]
    w[...] = 0  # every relu input equals its bias: exactly 0 for each unit
    results, _ = check_net(net, x, t)
    bias = next(r for r in results if r.name == "layers.0.bias")
    assert bias.kinks == bias.size and bias.ok


def test_large_tensors_are_sampled_with_a_fixed_seed():
    net = small_net()
    a, _ = check_net(net, *data(), entries=7)
    b, _ = check_net(net, *data(), entries=7)
    assert [r.checked for r in a] == [7, 5, 7, 3, 7]
    assert [r.max_abs for r in a] == [r.max_abs for r in b]


# -- the tolerance follows the scale of the loss and the gradients ---------------------------


def regression_net():
    """10 inputs -> 16 tanh -> 1 linear, squared_error: the shape of the diabetes data set."""
    specs = [
        {"type": "dense", "units": 16, "activation": "tanh", "bias": True, "init": "auto"},
        {"type": "dense", "units": 1, "activation": "linear", "bias": True, "init": "auto"},
    ]
    net = build_network({"layers": specs, "loss": "squared_error"}, np.float64, (10,))
    net.init_params(np.random.default_rng(0))
    rng = np.random.default_rng(3)
    for name, p in net.params().items():
        if name.endswith(".bias"):
            p[...] = rng.uniform(-0.1, 0.1, size=p.shape)
    return net


def regression_data(scale=1.0):
    """Standardised inputs and targets in 25..346 (the diabetes targets), divided by ``scale``."""
    rng = np.random.default_rng(2)
    return rng.standard_normal((4, 10)), rng.uniform(25, 346, size=(4, 1)) / scale


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_passes_a_correct_net_whatever_the_target_scale(scale):
    net = regression_net()
    x, t = regression_data(scale)
    loss, _ = net.evaluate(x, t)
    assert (loss > 1e4) if scale == 1 else (loss < 10)
    results, step = check_net(net, x, t)
    assert all(r.ok for r in results), format_report(results, step)
    assert step.ok


def test_large_loss_makes_errors_a_fixed_tolerance_would_fail():
    # the control: at loss ~3e4 the finite differences carry absolute errors of ~eps * L / h,
    # above the 1e-8 / 1e-5 of a fixed tolerance; the scaled one is what lets them pass
    results, _ = check_net(regression_net(), *regression_data())
    assert max(r.max_abs for r in results) > 1e-7
    assert max(r.max_rel for r in results) > 1e-5


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_fails_a_wrong_backward_at_any_target_scale(monkeypatch, scale):
    monkeypatch.setattr("nettrain.layers.dense.tanh_grad", lambda dy, y: dy * (1 - y))
    results, step = check_net(regression_net(), *regression_data(scale))
    failed = {r.name for r in results if not r.ok}
    assert {"layers.0.weight", "layers.0.bias", "input"} <= failed, format_report(results, step)


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_fails_a_one_percent_weight_gradient_at_any_target_scale(monkeypatch, scale):
    weight_gradient_off_by_one_percent(monkeypatch)
    results, step = check_net(regression_net(), *regression_data(scale))
    failed = {r.name for r in results if not r.ok}
    assert failed == {"layers.0.weight", "layers.1.weight"}, format_report(results, step)


def test_fails_one_wrong_bias_entry_on_the_large_loss_net(monkeypatch):
    from nettrain.layers.dense import Dense

    backward = Dense.backward

    def one_entry_off(self, saved, dy, need_dx=True):
        dx = backward(self, saved, dy, need_dx)
        bias = self.grads["bias"].reshape(-1)
        bias[0] += 1e-3 * np.max(np.abs(bias))  # 0.1% of the tensor's largest gradient
        return dx

    monkeypatch.setattr(Dense, "backward", one_entry_off)
    results, _ = check_net(regression_net(), *regression_data())
    assert {r.name: r.failed for r in results if not r.ok} == {
        "layers.0.bias": 1,
        "layers.1.bias": 1,
    }
