"""Optimizers against updates worked out by hand, their checkpointed state, and their config."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from nettrain.core.errors import UserError
from nettrain.optim import OPTIMIZERS, make_optimizer

W = "layers.0.weight"
B = "layers.0.bias"
P0 = [1.0, -2.0, 0.5]
# the gradient of each of three steps (the same for every optimizer)
G = [
    np.array([0.5, -1.0, 2.0]),
    np.array([1.0, 1.0, 1.0]),
    np.array([-0.5, 0.25, 0.0]),
]


def optimizer(name, lr, params, **options):
    """``name`` with every option given: the OPTIONS defaults, then ``options``."""
    cls = OPTIMIZERS[name]
    cfg = {k: o.default for k, o in cls.OPTIONS.items() if k != "lr" and not o.required}
    cfg.update(options)
    return make_optimizer({"name": name, "lr": lr, **cfg}, params)


def run_steps(name, lr, steps=3, dtype=np.float64, **options):
    """The weight after each of ``steps`` steps of G."""
    params = {W: np.array(P0, dtype=dtype)}
    opt = optimizer(name, lr, params, **options)
    seen = []
    for g in G[:steps]:
        opt.step(params, {W: g.astype(dtype)})
        seen.append(params[W].copy())
    return seen, opt


# -- each update rule, worked out by hand ---------------------------------------------------


def test_sgd_plain():
    seen, _ = run_steps("sgd", 0.1)
    # w <- w - 0.1 g, written out
    assert_allclose(seen[0], [1.0 - 0.05, -2.0 + 0.1, 0.5 - 0.2])
    assert_allclose(seen[1], [0.95 - 0.1, -1.9 - 0.1, 0.3 - 0.1])
    assert_allclose(seen[2], [0.85 + 0.05, -2.0 - 0.025, 0.2])


def test_sgd_momentum():
    seen, opt = run_steps("sgd", 0.1, momentum=0.9)
    # v1 = g1;  v2 = 0.9 v1 + g2;  v3 = 0.9 v2 + g3;  w <- w - 0.1 v
    v1 = np.array([0.5, -1.0, 2.0])
    v2 = np.array([0.45 + 1.0, -0.9 + 1.0, 1.8 + 1.0])  # [1.45, 0.1, 2.8]
    v3 = np.array([1.305 - 0.5, 0.09 + 0.25, 2.52 + 0.0])  # [0.805, 0.34, 2.52]
    w1 = np.array(P0) - 0.1 * v1
    w2 = w1 - 0.1 * v2
    w3 = w2 - 0.1 * v3
    assert_allclose(seen[0], [0.95, -1.9, 0.3])
    assert_allclose(seen[1], [0.805, -1.91, 0.02])
    for got, want in zip(seen, (w1, w2, w3), strict=True):
        assert_allclose(got, want)
    assert_allclose(opt.state[W]["velocity"], v3)


def test_sgd_nesterov():
    seen, _ = run_steps("sgd", 0.1, momentum=0.9, nesterov=True)
    # v as heavy ball; the step uses g + 0.9 v
    v1 = np.array([0.5, -1.0, 2.0])
    v2 = np.array([1.45, 0.1, 2.8])
    v3 = np.array([0.805, 0.34, 2.52])
    w1 = np.array(P0) - 0.1 * (G[0] + 0.9 * v1)  # [0.905, -1.81, 0.12]
    w2 = w1 - 0.1 * (G[1] + 0.9 * v2)
    w3 = w2 - 0.1 * (G[2] + 0.9 * v3)
    assert_allclose(seen[0], [0.905, -1.81, 0.12])
    for got, want in zip(seen, (w1, w2, w3), strict=True):
        assert_allclose(got, want)


def test_sgd_weight_decay():
    seen, _ = run_steps("sgd", 0.1, weight_decay=0.5)
    # g <- g + 0.5 w, then w <- w - 0.1 g
    w1 = np.array([1.0 - 0.1 * (0.5 + 0.5), -2.0 - 0.1 * (-1.0 - 1.0), 0.5 - 0.1 * (2.0 + 0.25)])
    assert_allclose(seen[0], [0.9, -1.8, 0.275])
    assert_allclose(seen[0], w1)
    w2 = w1 - 0.1 * (G[1] + 0.5 * w1)
    assert_allclose(seen[1], w2)


def test_sgd_momentum_with_weight_decay():
    seen, _ = run_steps("sgd", 0.1, momentum=0.5, weight_decay=0.1)
    w0 = np.array(P0)
    v1 = G[0] + 0.1 * w0
    w1 = w0 - 0.1 * v1
    v2 = 0.5 * v1 + G[1] + 0.1 * w1
    w2 = w1 - 0.1 * v2
    assert_allclose(seen[0], w1)
    assert_allclose(seen[1], w2)


def test_adagrad():
    eps = 1e-10
    seen, opt = run_steps("adagrad", 0.5, eps=eps)
    # G1 = g1^2 = [0.25, 1, 4]: the first step is lr * sign(g)
    assert_allclose(seen[0], [1.0 - 0.5, -2.0 + 0.5, 0.5 - 0.5], atol=1e-9)
    G2 = np.array([0.25 + 1.0, 1.0 + 1.0, 4.0 + 1.0])
    w2 = np.array([0.5, -1.5, 0.0]) - 0.5 * G[1] / (np.sqrt(G2) + eps)
    assert_allclose(seen[1], w2, atol=1e-9)
    G3 = G2 + np.array([0.25, 0.0625, 0.0])
    w3 = w2 - 0.5 * G[2] / (np.sqrt(G3) + eps)
    assert_allclose(seen[2], w3, atol=1e-9)
    assert_allclose(opt.state[W]["sum_sq"], [1.5, 2.0625, 5.0])


def test_rmsprop():
    seen, opt = run_steps("rmsprop", 0.01, rho=0.9, eps=1e-8)
    # s1 = 0.1 g1^2 = [0.025, 0.1, 0.4]
    s1 = np.array([0.025, 0.1, 0.4])
    w1 = np.array(P0) - 0.01 * G[0] / (np.sqrt(s1) + 1e-8)
    s2 = 0.9 * s1 + 0.1 * np.array([1.0, 1.0, 1.0])  # [0.1225, 0.19, 0.46]
    w2 = w1 - 0.01 * G[1] / (np.sqrt(s2) + 1e-8)
    s3 = 0.9 * s2 + 0.1 * np.array([0.25, 0.0625, 0.0])
    w3 = w2 - 0.01 * G[2] / (np.sqrt(s3) + 1e-8)
    # the first step moves each weight by lr * sqrt(10) * sign(g)
    assert_allclose(seen[0], np.array(P0) - 0.01 * np.sqrt(10) * np.sign(G[0]), rtol=1e-6)
    for got, want in zip(seen, (w1, w2, w3), strict=True):
        assert_allclose(got, want)
    assert_allclose(opt.state[W]["mean_sq"], s3)


def test_adadelta():
    rho, eps = 0.9, 1e-6
    seen, opt = run_steps("adadelta", 1.0, rho=rho, eps=eps)
    w, s, u = np.array(P0), np.zeros(3), np.zeros(3)
    expected = []
    for g in G:
        s = 0.9 * s + 0.1 * g * g
        d = np.sqrt(u + eps) / np.sqrt(s + eps) * g
        u = 0.9 * u + 0.1 * d * d
        w = w - 1.0 * d
        expected.append(w)
    # the first step: d = sqrt(1e-6) / sqrt(0.1 g^2 + 1e-6) g, about 0.00316 sign(g)
    first = np.sqrt(1e-6) / np.sqrt(np.array([0.025, 0.1, 0.4]) + 1e-6) * G[0]
    assert_allclose(seen[0], np.array(P0) - first)
    assert abs(first[1] + 0.00316) < 1e-4
    for got, want in zip(seen, expected, strict=True):
        assert_allclose(got, want)
    assert_allclose(opt.state[W]["mean_sq"], s)
    assert_allclose(opt.state[W]["mean_sq_delta"], u)


def test_adadelta_lr_scales_the_step():
    one, _ = run_steps("adadelta", 1.0, steps=1)
    half, _ = run_steps("adadelta", 0.5, steps=1)
    assert_allclose(np.array(P0) - half[0], 0.5 * (np.array(P0) - one[0]))


def adam_by_hand(lr, b1, b2, eps, wd=0.0, decoupled=0.0):
    w, m, v = np.array(P0), np.zeros(3), np.zeros(3)
    out = []
    for t, g in enumerate(G, start=1):
        w = w - lr * decoupled * w
        g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return out, m, v


def test_adam():
    seen, opt = run_steps("adam", 0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    # step 1: m_hat = g, v_hat = g^2, so each weight moves by lr * sign(g) (up to eps)
    assert_allclose(seen[0], [0.9, -1.9, 0.4])
    # step 2 by hand for the first weight: g = 0.5 then 1
    m = 0.9 * 0.05 + 0.1 * 1.0  # 0.145
    v = 0.999 * 0.00025 + 0.001 * 1.0  # 0.00124975
    step = 0.1 * (m / (1 - 0.81)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    assert_allclose(seen[1][0], 0.9 - step)
    expected, m3, v3 = adam_by_hand(0.1, 0.9, 0.999, 1e-8)
    for got, want in zip(seen, expected, strict=True):
        assert_allclose(got, want)
    assert_allclose(opt.state[W]["m"], m3)
    assert_allclose(opt.state[W]["v"], v3)
    assert opt.t == 3


def test_adam_other_betas():
    seen, _ = run_steps("adam", 0.05, beta1=0.5, beta2=0.9, eps=1e-3)
    expected, _, _ = adam_by_hand(0.05, 0.5, 0.9, 1e-3)
    for got, want in zip(seen, expected, strict=True):
        assert_allclose(got, want)


def test_adam_weight_decay_is_added_to_the_gradient():
    seen, _ = run_steps("adam", 0.1, weight_decay=0.5)
    expected, _, _ = adam_by_hand(0.1, 0.9, 0.999, 1e-8, wd=0.5)
    for got, want in zip(seen, expected, strict=True):
        assert_allclose(got, want)
    # the L2 term enters m/v: for the third weight g1 + 0.5 w0 = 2.25, still a step of lr
    assert_allclose(seen[0], [0.9, -1.9, 0.4])


def test_adamw_decays_the_weights_directly():
    seen, _ = run_steps("adamw", 0.1, weight_decay=0.5)
    expected, _, _ = adam_by_hand(0.1, 0.9, 0.999, 1e-8, decoupled=0.5)
    # step 1: w <- w (1 - 0.05), then minus lr * sign(g)
    assert_allclose(seen[0], [0.95 - 0.1, -1.9 + 0.1, 0.475 - 0.1])
    for got, want in zip(seen, expected, strict=True):
        assert_allclose(got, want)
    adam, _ = run_steps("adam", 0.1, weight_decay=0.5)
    assert not np.allclose(seen[1], adam[1])


def test_lr_set_between_steps_is_used():
    params = {W: np.array(P0)}
    opt = optimizer("sgd", 0.1, params)
    opt.step(params, {W: G[0]})
    opt.lr = 0.01
    opt.step(params, {W: G[1]})
    assert_allclose(params[W], np.array(P0) - 0.1 * G[0] - 0.01 * G[1])


def test_grads_are_not_modified():
    params = {W: np.array(P0)}
    for name in OPTIMIZERS:
        opt = optimizer(name, 0.1, params, weight_decay=0.1)
        g = G[0].copy()
        opt.step(params, {W: g})
        assert_array_equal(g, G[0], err_msg=name)


# -- state: names, round trip through a checkpoint, dtype ------------------------------------

CASES = {
    "sgd": ("sgd", {}, ()),
    "sgd-momentum": ("sgd", {"momentum": 0.9}, ("velocity",)),
    "sgd-nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}, ("velocity",)),
    "sgd-weight-decay": ("sgd", {"weight_decay": 0.01, "momentum": 0.5}, ("velocity",)),
    "adagrad": ("adagrad", {}, ("sum_sq",)),
    "rmsprop": ("rmsprop", {}, ("mean_sq",)),
    "adadelta": ("adadelta", {}, ("mean_sq", "mean_sq_delta")),
    "adam": ("adam", {}, ("m", "v")),
    "adam-weight-decay": ("adam", {"weight_decay": 0.1}, ("m", "v")),
    "adamw": ("adamw", {}, ("m", "v")),
}


def two_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {W: rng.standard_normal((3, 2)).astype(dtype), B: rng.standard_normal(2).astype(dtype)}


def gradients(step, dtype=np.float64):
    rng = np.random.default_rng([7, step])
    return {W: rng.standard_normal((3, 2)).astype(dtype), B: rng.standard_normal(2).astype(dtype)}


@pytest.mark.parametrize("case", CASES)
def test_state_array_names(case):
    name, options, slots = CASES[case]
    params = two_params()
    opt = optimizer(name, 0.01, params, **options)
    opt.step(params, gradients(0))
    opt.step(params, gradients(1))
    arrays = opt.state_arrays()
    expected = {f"optimizer.{p}.{s}" for p in (W, B) for s in slots} | {"optimizer.t"}
    assert set(arrays) == expected
    assert int(arrays["optimizer.t"]) == 2
    for p in (W, B):
        for s in slots:
            assert arrays[f"optimizer.{p}.{s}"].shape == params[p].shape


@pytest.mark.parametrize("case", CASES)
def test_state_round_trip_continues_bit_identically(case, tmp_path):
    name, options, _ = CASES[case]
    straight = two_params()
    opt = optimizer(name, 0.05, straight, **options)
    for s in range(4):
        opt.step(straight, gradients(s))

    params = two_params()
    first = optimizer(name, 0.05, params, **options)
    for s in range(2):
        first.step(params, gradients(s))
    np.savez(tmp_path / "ckpt.npz", **params, **first.state_arrays())
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}

    params = {k: arrays[k].copy() for k in (W, B)}
    second = optimizer(name, 0.05, params, **options)
    second.load_state_arrays(arrays, "ckpt.npz")
    assert second.t == 2
    for s in range(2, 4):
        second.step(params, gradients(s))
    for k in (W, B):
        assert_array_equal(params[k], straight[k])
    for k, arr in opt.state_arrays().items():
        assert_array_equal(second.state_arrays()[k], arr)


def test_load_state_arrays_refuses_missing_or_misshapen_state():
    params = two_params()
    opt = optimizer("adam", 0.01, params)
    arrays = {k: v.copy() for k, v in opt.state_arrays().items()}
    other = optimizer("adam", 0.01, two_params())
    del arrays[f"optimizer.{W}.m"]
    with pytest.raises(UserError, match=f"optimizer.{W}.m"):
        other.load_state_arrays(arrays, "x.npz")
    arrays = {k: v.copy() for k, v in opt.state_arrays().items()}
    arrays[f"optimizer.{B}.v"] = np.zeros(5)
    with pytest.raises(UserError, match="shape"):
        other.load_state_arrays(arrays, "x.npz")
    # a momentum-free sgd checkpoint has no velocity for a momentum sgd
    with pytest.raises(UserError, match="velocity"):
        optimizer("sgd", 0.1, two_params(), momentum=0.9).load_state_arrays(
            optimizer("sgd", 0.1, two_params()).state_arrays(), "x.npz"
        )


@pytest.mark.parametrize("case", CASES)
def test_float32_params_stay_float32(case):
    name, options, _ = CASES[case]
    params = two_params(np.float32)
    live = dict(params)
    opt = optimizer(name, 0.05, params, **options)
    for s in range(3):
        opt.step(params, gradients(s, np.float32))
    for k in (W, B):
        assert params[k].dtype == np.float32
        assert params[k] is live[k]  # updated in place: the net's arrays are the optimizer's
        assert np.all(np.isfinite(params[k]))
    for key, arr in opt.state_arrays().items():
        if key != "optimizer.t":
            assert arr.dtype == np.float32, key


@pytest.mark.parametrize("case", CASES)
def test_float32_follows_float64(case):
    """The float32 update is the float64 one, rounded: no slot silently stays at zero."""
    name, options, _ = CASES[case]
    p32, p64 = two_params(np.float32), two_params(np.float64)
    o32 = optimizer(name, 0.05, p32, **options)
    o64 = optimizer(name, 0.05, p64, **options)
    for s in range(3):
        o32.step(p32, gradients(s, np.float32))
        o64.step(p64, {k: v.astype(np.float64) for k, v in gradients(s, np.float32).items()})
    for k in (W, B):
        assert_allclose(p32[k], p64[k], rtol=1e-4, atol=1e-5)


# -- config ---------------------------------------------------------------------------------

BASE = """\
model:
  input: [4]
  layers:
    - {type: dense, units: 2}
  loss: squared_error
train:
  optimizer: {name: sgd, lr: 0.1}
"""


def resolved(make_config, *sets, text=BASE):
    return make_config(text, *sets)[0]


def test_unknown_optimizer_name_suggests_the_nearest(make_config):
    text = BASE.replace("name: sgd", "name: adma")
    with pytest.raises(UserError) as info:
        resolved(make_config, text=text)
    message = str(info.value)
    assert "cfg.yaml:7" in message and "train.optimizer.name" in message
    assert "adma" in message and "did you mean 'adam'?" in message
    with pytest.raises(UserError, match="did you mean 'rmsprop'"):
        resolved(make_config, "train.optimizer.name=rmsprob")


def test_option_of_another_optimizer_is_rejected(make_config):
    text = BASE.replace("{name: sgd, lr: 0.1}", "{name: adam, lr: 0.1, momentum: 0.9}")
    with pytest.raises(UserError) as info:
        resolved(make_config, text=text)
    message = str(info.value)
    assert "unknown key 'momentum'" in message and "train.optimizer.momentum" in message
    with pytest.raises(UserError, match="unknown key 'beta1'"):
        resolved(make_config, "train.optimizer.beta1=0.5")  # sgd has no beta1
    with pytest.raises(UserError, match="unknown key 'rho'"):
        resolved(make_config, "train.optimizer.name=adagrad", "train.optimizer.rho=0.9")


def test_nesterov_needs_momentum(make_config):
    with pytest.raises(UserError) as info:
        resolved(make_config, "train.optimizer.nesterov=true")
    assert "train.optimizer.nesterov" in str(info.value) and "momentum" in str(info.value)
    cfg = resolved(make_config, "train.optimizer.nesterov=true", "train.optimizer.momentum=0.9")
    assert cfg["train"]["optimizer"]["nesterov"] is True


@pytest.mark.parametrize(
    "sets",
    [
        ["train.optimizer.lr=0"],
        ["train.optimizer.lr=-0.1"],
        ["train.optimizer.momentum=1.0"],
        ["train.optimizer.name=adam", "train.optimizer.beta1=1.0"],
        ["train.optimizer.name=adam", "train.optimizer.beta2=-0.1"],
        ["train.optimizer.name=rmsprop", "train.optimizer.eps=0"],
        ["train.optimizer.weight_decay=-1"],
    ],
)
def test_out_of_range_options_are_rejected(make_config, sets):
    key = sets[-1].split("=")[0]
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        resolved(make_config, *sets)


def test_defaults_are_filled_in(make_config):
    cfg = resolved(make_config, "train.optimizer=adam")  # a bare name
    assert cfg["train"]["optimizer"] == {
        "name": "adam",
        "lr": 0.001,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
    }
    assert resolved(make_config, "train.optimizer=adamw")["train"]["optimizer"]["weight_decay"] > 0
    sgd = resolved(make_config)["train"]["optimizer"]
    assert sgd == {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    no_train = BASE.split("train:")[0]
    assert resolved(make_config, text=no_train)["train"]["optimizer"]["name"] == "sgd"
    for name in ("adagrad", "rmsprop", "adadelta"):
        opt = resolved(make_config, f"train.optimizer={name}")["train"]["optimizer"]
        assert set(opt) == {"name", *OPTIMIZERS[name].OPTIONS}
        make_optimizer(opt, two_params())  # every resolved section builds


def test_lr_given_as_yaml_text_is_a_number(make_config):
    # YAML 1.1 reads 1e-3 (no dot) as text
    text = BASE.replace("lr: 0.1", "lr: 1e-3")
    assert resolved(make_config, text=text)["train"]["optimizer"]["lr"] == 0.001
