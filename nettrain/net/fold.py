"""Batchnorm folded into the conv before it, for inference (predict, Model.predict, ensembles).

In evaluation a batchnorm is an affine map per channel with the running statistics,
y = scale * x + shift, scale = weight / sqrt(running_var + eps), shift = bias - running_mean *
scale. Applied to a convolution's output, it is the same convolution with each filter's weights
multiplied by its channel's scale and the bias (0 for a conv without one) by scale, plus shift:

    W'[f] = scale[f] * W[f],    b'[f] = scale[f] * b[f] + shift[f]

(computed in float64, then cast to the net's dtype). ``folded(net)`` returns a copy of the net in
which each batchnorm that reads a conv2d's output, where nothing else reads that output and the
conv applies no activation of its own, is gone: the conv takes the folded weights and applies the
batchnorm's fused relu in its own kernels. One element-wise pass over the output less a layer,
what onnxruntime's graph optimiser does to the same net. The outputs equal the unfolded net's up
to rounding (float32: a few units in the last place); training and ``evaluate``, whose figures
must be those of fit, run the net as trained.
"""

from __future__ import annotations

import copy

import numpy as np

from nettrain.net.network import Network


def foldable(net: Network, k: int) -> bool:
    """Whether layer k is a batchnorm that the conv2d layer before it can absorb."""
    layer = net.layers[k]
    if layer.kind != "batchnorm" or net.sources[k][0] < 0:
        return False
    j = net.sources[k][0]
    conv = net.layers[j]
    readers = sum(refs.count(j) for refs in net.sources)
    return (
        conv.kind == "conv2d"
        and conv.fused is None
        and readers == 1
        and (layer.fused is None or layer.fused in conv.FUSABLE)
    )


def folded_conv(conv, bn):
    """A copy of ``conv`` computing bn(conv(x)) in evaluation, bn's fused activation included."""
    eps = bn.options["eps"]
    rm, rv = (bn.state[k].astype(np.float64) for k in ("running_mean", "running_var"))
    scale = bn.params["weight"].astype(np.float64) / np.sqrt(rv + eps)
    shift = bn.params["bias"].astype(np.float64) - rm * scale
    weight = conv.params["weight"].astype(np.float64)
    bias = conv.params["bias"].astype(np.float64) if "bias" in conv.params else 0.0
    new = copy.copy(conv)  # its scratch buffers shared: scratch only, refilled every pass
    new.params = {
        "weight": (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(conv.dtype),
        "bias": (bias * scale + shift).astype(conv.dtype),
    }
    new.fused = bn.fused
    return new


def folded(net: Network) -> Network:
    """The net for inference: every foldable batchnorm folded into its conv (a new Network
    whose layers share nothing that the original's training changes); the net itself when
    there is none."""
    fold = [k for k in range(len(net.layers)) if foldable(net, k)]
    if not fold:
        return net
    into = {net.sources[k][0]: k for k in fold}  # conv position -> its batchnorm's
    layers, sources, position = [], [], {-1: -1}
    for k, layer in enumerate(net.layers):
        if k in fold:  # its output is the folded conv's
            position[k] = position[net.sources[k][0]]
            continue
        if k in into:
            layer = folded_conv(layer, net.layers[into[k]])
        layers.append(layer)
        sources.append(tuple(position[s] for s in net.sources[k]))
        position[k] = len(layers) - 1
    return Network(layers, net.input_shape, net.dtype, net.loss_name, sources, net.entries)
