"""Batchnorm folded into the conv before it for inference (nettrain.net.fold): the same outputs
as the net as trained, on chains and graphs, every conv kernel family, float64 and float32."""

import numpy as np
import pytest

from nettrain.config import config_from_dict
from nettrain.inference.single import REUSED_BYTES, chunk, predict
from nettrain.net.fold import folded
from nettrain.net.network import build_network

BN_RELU = [{"type": "batchnorm"}, {"type": "relu"}]
LAYERS = [  # a residual block with a projection, as benchmarks/configs/cifar-resnet.yaml
    {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "bias": False},
    *BN_RELU,
    {"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "name": "a"},
    {"type": "batchnorm", "name": "path"},  # not folded: the projection reads 'a' too
    {"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2, "padding": 1},  # with a bias
    {"type": "batchnorm"},
    {"type": "conv2d", "filters": 8, "kernel": 1, "stride": 2, "bias": False, "from": "a"},
    {"type": "batchnorm"},
    {"type": "add", "from": [-3, -1]},
    {"type": "relu"},
    {"type": "conv2d", "filters": 36, "kernel": 3, "padding": "same", "bias": False},
    *BN_RELU,  # 36 channels in: Winograd's kernels where the plan picks them
    {"type": "conv2d", "filters": 36, "kernel": 3, "padding": "same", "bias": False},
    *BN_RELU,
    {"type": "global_avgpool2d"},
    {"type": "dense", "units": 3},
    {"type": "softmax"},
]


def net_of(dtype, shape=(3, 12, 12)):
    cfg, _ = config_from_dict({"model": {"input": list(shape), "layers": LAYERS,
                                          "loss": "multinomial_cross_entropy"}})  # fmt: skip
    net = build_network(cfg["model"], dtype, shape)
    rng = np.random.default_rng(0)
    net.init_params(rng)
    for layer in net.layers:  # statistics, scales and biases far from the initial 0 and 1
        if "bias" in layer.params:
            layer.params["bias"][...] = rng.normal(0, 1, layer.params["bias"].shape)
        if layer.kind == "batchnorm":
            C = layer.params["weight"].shape
            layer.params["weight"][...] = rng.uniform(0.5, 2, C)
            layer.params["bias"][...] = rng.normal(0, 1, C)
            layer.state["running_mean"][...] = rng.normal(0, 1, C)
            layer.state["running_var"][...] = rng.uniform(0.2, 3, C)
    return net, rng.normal(0, 1, (5, *shape)).astype(dtype)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_folded_outputs_equal_the_nets_own(dtype, rtol):
    net, x = net_of(dtype)
    before = {k: a.copy() for k, a in net.arrays().items()}
    inference = folded(net)
    kinds = [layer.kind for layer in inference.layers]
    # five of the six batchnorms folded, their relus in the convs; the shared output's kept
    assert kinds.count("batchnorm") == 1 and len(kinds) == len(net.layers) - 5
    assert [layer.fused for layer in inference.layers if layer.kind == "conv2d"] == [
        "relu", None, None, None, "relu", "relu"]  # fmt: skip
    np.testing.assert_allclose(predict(net, x), net.forward(x), rtol=rtol, atol=rtol * 1e-2)
    # the net itself is left as it was, and trains on
    assert all(np.array_equal(before[k], a) for k, a in net.arrays().items())
    assert len(net.layers) == len(kinds) + 5
    assert folded(inference) is inference  # nothing left to fold: the net itself


def test_predict_takes_batches_whose_arrays_are_reused():
    net, x = net_of(np.float32, shape=(3, 64, 64))
    padded = 36 * 34 * 34 * 4  # the largest: a 36-channel conv's input, 32x32 padded
    step = chunk(net, 256)
    assert step * padded <= REUSED_BYTES < (step + 1) * padded and step < 256
    assert chunk(net, 8) == 8  # fewer asked for: as asked
    small, _ = net_of(np.float32)
    assert chunk(small, 1000) == 1000
    # the outputs do not depend on the batches (each sample's are its own)
    x = np.random.default_rng(3).normal(0, 1, (step + 3, 3, 64, 64)).astype(np.float32)
    whole = folded(net).forward(x)
    np.testing.assert_allclose(predict(net, x, batch_size=len(x)), whole, rtol=1e-6, atol=1e-7)
