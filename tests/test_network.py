"""Building nets from model sections: shapes, names, loss/output rules, whole-net gradients."""

import numpy as np
import pytest

from nettrain.core.errors import UserError
from nettrain.net.network import build_network
from nettrain.tools.gradcheck import check_net


def layers(*specs):
    defaults = {
        "dense": {"activation": "linear", "bias": True, "init": "auto"},
        "conv2d": {
            "stride": [1, 1],
            "padding": "valid",
            "activation": "linear",
            "bias": True,
            "init": "auto",
        },
        "maxpool2d": {"stride": None},
    }
    return [{**defaults.get(s["type"], {}), **s} for s in specs]


def net_of(specs, loss, input_shape, dtype=np.float64):
    net = build_network({"layers": layers(*specs), "loss": loss}, dtype, input_shape)
    net.init_params(np.random.default_rng(0))
    return net


LENET = [
    {"type": "conv2d", "filters": 8, "kernel": [5, 5], "padding": "same", "activation": "relu"},
    {"type": "maxpool2d", "size": [2, 2]},
    {"type": "conv2d", "filters": 16, "kernel": [5, 5], "padding": "same", "activation": "relu"},
    {"type": "maxpool2d", "size": [3, 3]},
    {"type": "dense", "units": 150, "activation": "tanh"},
    {"type": "dense", "units": 10},
    {"type": "softmax"},
]


def test_lenet_shapes_and_names():
    net = net_of(LENET, "multinomial_cross_entropy", (1, 28, 28), np.float32)
    # conv2d + relu and dense + tanh run as one layer each (their classes' FUSABLE)
    assert [(layer.kind, layer.fused, layer.out_shape) for layer in net.layers] == [
        ("conv2d", "relu", (8, 28, 28)),
        ("maxpool2d", None, (8, 14, 14)),
        ("conv2d", "relu", (16, 14, 14)),
        ("maxpool2d", None, (16, 4, 4)),
        ("dense", "tanh", (150,)),
        ("dense", None, (10,)),
        ("softmax", None, (10,)),
    ]
    shapes = {k: v.shape for k, v in net.params().items()}
    assert shapes == {
        "layers.0.weight": (8, 1, 5, 5),
        "layers.0.bias": (8,),
        "layers.2.weight": (16, 8, 5, 5),
        "layers.2.bias": (16,),
        "layers.4.weight": (256, 150),
        "layers.4.bias": (150,),
        "layers.5.weight": (150, 10),
        "layers.5.bias": (10,),
    }
    assert all(p.dtype == np.float32 for p in net.params().values())
    assert net.combined is not None
    assert net.state() == {}


def test_a_layer_that_cannot_fit_names_its_index():
    specs = [{"type": "dense", "units": 4}, {"type": "conv2d", "filters": 2, "kernel": [3, 3]}]
    with pytest.raises(UserError, match="model.layers.1"):
        net_of(specs, "squared_error", (1, 2, 2))


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_cross_entropy_refuses_outputs_outside_0_1(activation):
    specs = [{"type": "dense", "units": 3, "activation": activation}]
    with pytest.raises(UserError, match=f"is {activation}") as info:
        net_of(specs, "cross_entropy", (4,))
    assert "activation: sigmoid" in info.value.hint
    assert info.value.exit_code == 2


def test_multinomial_cross_entropy_needs_softmax():
    with pytest.raises(UserError, match="needs a softmax output"):
        net_of(
            [{"type": "dense", "units": 3, "activation": "sigmoid"}],
            "multinomial_cross_entropy",
            (4,),
        )


def test_cross_entropy_accepts_sigmoid_behind_maxpool():
    specs = [
        {"type": "conv2d", "filters": 2, "kernel": [3, 3], "activation": "sigmoid"},
        {"type": "maxpool2d", "size": [2, 2]},
    ]
    net = net_of(specs, "cross_entropy", (1, 6, 6))
    assert net.combined is None  # the last layer is the pool: the loss is not taken through it


def check(net, x, t):
    results, step = check_net(net, x, t, entries=40)
    assert all(r.ok for r in results), [(r.name, r.max_rel) for r in results]
    assert step.ok, step
    return results


@pytest.mark.parametrize(
    "loss,last",
    [
        ("squared_error", "softmax"),  # the seed's first example: the full softmax Jacobian
        ("squared_error", "tanh"),
        ("cross_entropy", "sigmoid"),
        ("cross_entropy", "softmax"),
        ("multinomial_cross_entropy", "softmax"),
    ],
)
def test_every_output_and_loss_pair_has_the_right_gradient(loss, last):
    rng = np.random.default_rng(5)
    specs = [
        {"type": "dense", "units": 6, "activation": "tanh"},
        {"type": "dense", "units": 4},
        {"type": last},
    ]
    net = net_of(specs, loss, (3,))
    x = rng.standard_normal((5, 3))
    t = np.eye(4)[rng.integers(0, 4, 5)] if last == "softmax" else rng.uniform(0.1, 0.9, (5, 4))
    check(net, x, t)


def test_conv_net_gradient_on_random_shapes():
    rng = np.random.default_rng(6)
    specs = [
        {
            "type": "conv2d",
            "filters": 3,
            "kernel": [3, 2],
            "stride": [2, 1],
            "padding": [1, 0],
            "activation": "relu",
        },
        {"type": "maxpool2d", "size": [2, 2], "stride": [1, 2]},
        {"type": "dense", "units": 5},
        {"type": "softmax"},
    ]
    net = net_of(specs, "multinomial_cross_entropy", (2, 7, 6))
    for p in net.params().values():
        p += rng.uniform(0.01, 0.05, p.shape)
    check(net, rng.standard_normal((3, 2, 7, 6)), np.eye(5)[[0, 2, 4]])
