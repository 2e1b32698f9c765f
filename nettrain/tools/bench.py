"""`nettrain bench CONFIG`: where the time of a training step goes, layer by layer (like
`caffe time`). Random inputs of the configured shape; the net, batch size, dtype, optimizer and
thread count of the config; compile time and warm-up excluded."""

from __future__ import annotations

import time

import numpy as np

from nettrain.core import streams
from nettrain.layers.conv2d import Conv2d
from nettrain.net.network import Network
from nettrain.optim import make_optimizer
from nettrain.runtime import vectors


def time_layers(net: Network, batch_size: int, optimizer_cfg: dict, repeats: int = 20, seed=0):
    """{'layers': [(index, description, forward s, backward s)], 'optimizer': s, 'step': s,
    'inference': s} per batch, means over ``repeats`` after two warm-up steps; 'plans':
    {index: lines} of the conv2d layers' kernel plans."""
    rng = streams.bench_rng(seed)
    net.init_params(rng)
    x = rng.random((batch_size, *net.input_shape)).astype(net.dtype)
    t = np.eye(net.n_outputs, dtype=net.dtype)[rng.integers(0, net.n_outputs, batch_size)]
    params, grads = net.params(), net.grads()
    optimizer = make_optimizer(optimizer_cfg, params)
    for _ in range(2):  # compile and warm caches; as in fit, no gradient for the data
        net.loss_and_backward(x, t, input_grad=False)
        net.forward(x, train=False)
    forward = np.zeros(len(net.layers))
    backward = np.zeros(len(net.layers))
    opt_time = 0.0
    last = len(net.layers) - 1
    for _ in range(repeats):  # the net's own passes, along its graph, each layer timed
        _, h, saved = net.forward_saving(x, True, times=forward)
        net.backward(saved, last, np.ones_like(h) / len(h), input_grad=False, times=backward)
        start = time.perf_counter()
        optimizer.step(params, grads)
        opt_time += time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        net.loss_and_backward(x, t, input_grad=False)
        optimizer.step(params, grads)
    step = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        net.forward(x, train=False)
    inference = (time.perf_counter() - start) / repeats
    rows = [
        (layer.index, layer.label(), forward[i] / repeats, backward[i] / repeats)
        for i, layer in enumerate(net.layers)
    ]
    return {
        "layers": rows,
        "optimizer": opt_time / repeats,
        "step": step,
        "inference": inference,
        "plans": kernel_plans(net),
    }


def kernel_plans(net: Network) -> dict[int, list[str]]:
    """{index: lines}: each conv2d layer's kernels per pass and why (its plan, plan.py); as in
    fit and in time_layers, a layer that reads the net's input computes no gradient for it."""
    return {
        layer.index: layer.plan.lines(input_grad=net.inner[i])
        for i, layer in enumerate(net.layers)
        if isinstance(layer, Conv2d)
    }


def format_timing(result: dict, batch_size: int, threads: int) -> str:
    rows = result["layers"]
    total = sum(f + b for _, _, f, b in rows) + result["optimizer"]
    head = f"{'#':>3}  {'layer':<28} {'forward ms':>11} {'backward ms':>12} {'share':>7}"
    lines = [head, "-" * len(head)]
    plans = result.get("plans", {})
    for index, text, f, b in rows:
        lines.append(
            f"{index:>3}  {text:<28} {1e3 * f:>11.3f} {1e3 * b:>12.3f} "
            f"{100 * (f + b) / total:>6.1f}%"
        )
        lines.extend(f"{'':>5}  {line}" for line in plans.get(index, ()))
    lines.append(
        f"{'':>3}  {'optimizer step':<28} {'':>11} {1e3 * result['optimizer']:>12.3f} "
        f"{100 * result['optimizer'] / total:>6.1f}%"
    )
    lines.append("-" * len(head))
    lines.append(
        f"training step (forward, loss, backward, update): {1e3 * result['step']:.3f} ms"
        f" per batch of {batch_size} = {batch_size / result['step']:,.0f} samples/s"
    )
    lines.append(
        f"inference: {1e3 * result['inference']:.3f} ms per batch = "
        f"{batch_size / result['inference']:,.0f} samples/s ({threads} threads)"
    )
    lines.append(f"kernels: {vectors.describe()}; Numba threading layer: {threading_layer()}")
    return "\n".join(lines)


def threading_layer() -> str:
    """The layer Numba's parallel kernels ran on ('omp', 'tbb' or 'workqueue')."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        return "none (no parallel kernel ran)"
