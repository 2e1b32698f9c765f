"""Graphs against PyTorch: the same config built in PyTorch (float64, training mode, autograd)
gives the outputs, the loss, every parameter gradient, the input gradient and batchnorm's updated
running statistics of nettrain's net to 1e-10 relative. Residual nets with identity and
1x1-projection shortcuts, concats, an output read by three layers. Skips without torch; the
numpy references of tests/test_graphs.py run everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from test_graphs import RESIDUAL, TINY, net_of

torch = pytest.importorskip("torch")
F = torch.nn.functional

# a ResNet-shaped net: stem, an identity block, a downsampling block with a 1x1 projection
RESNET = [
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same", "bias": False},
    {"type": "batchnorm"},
    {"type": "relu", "name": "s"},
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same", "bias": False},
    {"type": "batchnorm", "momentum": 0.3},
    {"type": "relu"},
    {"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same", "bias": False},
    {"type": "batchnorm"},
    {"type": "add", "from": [-1, "s"]},
    {"type": "relu", "name": "b1"},
    {"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2, "padding": 1, "bias": False},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "bias": False},
    {"type": "batchnorm"},
    {"type": "conv2d", "filters": 8, "kernel": 1, "stride": 2, "bias": False, "from": "b1"},
    {"type": "batchnorm", "eps": 1e-3},
    {"type": "add", "from": [-3, -1]},
    {"type": "relu"},
    {"type": "global_avgpool2d"},
    {"type": "dense", "units": 3},
    {"type": "softmax"},
]
CASES = [
    ("resnet", RESNET, (2, 8, 8), "multinomial_cross_entropy"),
    ("residual_concat", RESIDUAL, (2, 6, 6), "multinomial_cross_entropy"),
    ("three_readers", TINY, (3,), "squared_error"),
]


def sources(entries):
    """Each entry's inputs as entry indices (-1: the input), as docs/graphs.md defines `from`."""
    names = {e["name"]: i for i, e in enumerate(entries) if "name" in e}

    def index(ref, i):
        if ref == "input":
            return -1
        if isinstance(ref, str):
            return names[ref]
        return i + ref if ref < 0 else ref

    out = []
    for i, e in enumerate(entries):
        ref = e.get("from", -1 if i else "input")
        out.append([index(r, i) for r in (ref if isinstance(ref, list) else [ref])])
    return out


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def torch_forward(entries, p, state, x):
    """The net of resolved ``entries`` in PyTorch ops, training mode; ``p``: parameters by
    nettrain name (nettrain layouts), ``state``: batchnorm running statistics, updated."""
    outs = {-1: x}
    for i, (e, srcs) in enumerate(zip(entries, sources(entries), strict=True)):
        kind, xs = e["type"], [outs[j] for j in srcs]
        x, w, b = xs[0], p.get(f"layers.{i}.weight"), p.get(f"layers.{i}.bias")
        if kind == "add":
            x = sum(xs[1:], xs[0])
        elif kind == "concat":
            x = torch.cat(xs, 1)
        elif kind == "dense":
            x = x.flatten(1) @ w + (b if b is not None else 0)
        elif kind == "conv2d":
            k, pad = pair(e["kernel"]), e["padding"]
            if pad in ("same", "valid"):
                pad = ((k[0] - 1) // 2, (k[1] - 1) // 2) if pad == "same" else (0, 0)
            x = F.conv2d(x, w, b, pair(e["stride"]), pair(pad))
        elif kind == "batchnorm":
            rm, rv = state[f"layers.{i}.running_mean"], state[f"layers.{i}.running_var"]
            x = F.batch_norm(x, rm, rv, w, b, True, e["momentum"], e["eps"])
        elif kind == "global_avgpool2d":
            x = x.mean((2, 3))
        activation = e.get("activation", kind)
        if activation == "relu":
            x = torch.relu(x)
        elif activation == "tanh":
            x = torch.tanh(x)
        elif activation == "softmax":
            x = torch.softmax(x, 1)
        outs[i] = x
    return outs[len(entries) - 1]


def assert_close(got, expected, what, rtol=1e-10, atol=1e-15):
    """Relative to the tensor's largest value; ``atol`` for gradients that are 0 but for
    rounding (a conv's bias under a batchnorm, ~1e-17 on both sides)."""
    got, expected = np.asarray(got), np.asarray(expected)
    scale = float(np.abs(expected).max())
    assert np.abs(got - expected).max() <= rtol * scale + atol, what


@pytest.mark.parametrize("name, layers, shape, loss", CASES, ids=[c[0] for c in CASES])
def test_outputs_and_gradients_equal_pytorch(name, layers, shape, loss):
    net = net_of(layers, shape, loss)
    rng = np.random.default_rng(7)
    net.init_params(rng)
    for key, a in net.params().items():  # biases and batchnorm's affine off their defaults
        if not key.endswith("weight") or a.ndim == 1:
            a[...] = rng.uniform(0.5, 1.5, a.shape) if a.ndim == 1 else a
    state0 = {k: rng.uniform(0.5, 1.5, a.shape) for k, a in net.state().items()}
    for k, a in net.state().items():
        a[...] = state0[k]
    n = 6
    x = rng.standard_normal((n, *shape))
    t = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, n)]
    if loss == "squared_error":
        t = rng.standard_normal((n, net.n_outputs))

    params = {k: torch.tensor(a.copy(), requires_grad=True) for k, a in net.params().items()}
    state = {k: torch.tensor(a.copy()) for k, a in state0.items()}
    tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(t)
    from nettrain.config import config_from_dict

    entries = config_from_dict({"model": {"input": list(shape), "layers": layers, "loss": loss}})[
        0
    ]["model"]["layers"]
    out = torch_forward(entries, params, state, tx)
    if loss == "squared_error":
        value = 0.5 * ((out - tt) ** 2).sum() / n
    else:
        value = -(tt * torch.log(out)).sum() / n
    value.backward()

    got_loss, got_out, got_dx = net.loss_and_backward(x, t)
    assert_close(got_loss, value.item(), "loss")
    assert_close(got_out, out.detach().numpy().reshape(n, -1), "outputs")
    assert_close(got_dx, tx.grad.numpy(), "input gradient")
    for k, g in net.grads().items():
        assert_close(g, params[k].grad.numpy(), k)
    for k, a in net.state().items():
        assert_close(a, state[k].numpy(), k)
