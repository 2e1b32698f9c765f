"""Slow, obvious numpy references for every layer, in float64, one window or one formula at a
time: the fast kernels are compared against these (tests/test_layer_table.py and the per-layer
tests). Each returns what the layer's forward and backward give for dL/dy = dy."""

from __future__ import annotations

import numpy as np


def pair(v):
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def pads(padding, kernel):
    """(ph, pw) as conv2d defines them: valid 0, same (k-1)//2, an int or pair as given."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        return tuple((k - 1) // 2 for k in pair(kernel))
    return pair(padding)


def windows(x, kh, kw, stride, padding=(0, 0)):
    """Yield (oh, ow, window (N, C, kh, kw), its (rows, cols) slices) over the zero-padded x."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH, OW = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    for oh in range(OH):
        for ow in range(OW):
            rows, cols = slice(oh * sh, oh * sh + kh), slice(ow * sw, ow * sw + kw)
            yield oh, ow, xp[:, :, rows, cols], (rows, cols)


def conv_forward(x, weight, bias, stride, padding):
    """y (N, F, OH, OW), one einsum per output position."""
    F, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    OH, OW = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
    y = np.zeros((len(x), F, OH, OW))
    for oh, ow, window, _ in windows(x, kh, kw, stride, padding):
        y[:, :, oh, ow] = np.einsum("ncij,fcij->nf", window, weight) + bias
    return y


def conv_backward(x, weight, dy, stride, padding):
    """dx, dW, db for dL/dy = dy: each output position adds its share, window by window."""
    (ph, pw), (_, _, kh, kw) = padding, weight.shape
    dxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
    dW = np.zeros(weight.shape)
    for oh, ow, window, (rows, cols) in windows(x, kh, kw, stride, padding):
        g = dy[:, :, oh, ow]
        dxp[:, :, rows, cols] += np.einsum("nf,fcij->ncij", g, weight)
        dW += np.einsum("nf,ncij->fcij", g, window)
    dx = dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]
    return dx, dW, dy.sum(axis=(0, 2, 3))


def maxpool(x, dy, size, stride):
    """y and dx; np.argmax over the window flattened in row-major order returns the first
    maximum, which is exactly the tie rule."""
    (kh, kw), (sh, sw) = size, stride
    N, C, H, W = x.shape
    OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
    y = np.zeros((N, C, OH, OW))
    dx = np.zeros(x.shape)
    for oh in range(OH):
        for ow in range(OW):
            rows, cols = slice(oh * sh, oh * sh + kh), slice(ow * sw, ow * sw + kw)
            window = x[:, :, rows, cols].reshape(N, C, kh * kw)
            first = np.argmax(window, axis=2)
            y[:, :, oh, ow] = np.take_along_axis(window, first[..., None], axis=2)[..., 0]
            n, c = np.indices((N, C))
            dx[n, c, rows.start + first // kw, cols.start + first % kw] += dy[:, :, oh, ow]
    return y, dx


def avgpool(x, dy, size, stride):
    """y and dx: each window's mean; dy / (kh*kw) back onto every input of the window."""
    (kh, kw), (sh, sw) = size, stride
    OH, OW = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    y = np.zeros((*x.shape[:2], OH, OW))
    dx = np.zeros(x.shape)
    for oh, ow, window, (rows, cols) in windows(x, kh, kw, (sh, sw)):
        y[:, :, oh, ow] = window.mean(axis=(2, 3))
        dx[:, :, rows, cols] += dy[:, :, oh, ow][:, :, None, None] / (kh * kw)
    return y, dx


def batchnorm(x, dy, weight, bias, running_mean, running_var, momentum, eps, train):
    """(y, dx, dweight, dbias, new running_mean, new running_var), per channel (axis 1) over
    every other axis, written as PyTorch documents it; dx by the chain rule through mean and
    variance term by term (not the closed form the kernel uses)."""
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    w, b = weight.reshape(shape), bias.reshape(shape)
    if not train:
        std = np.sqrt(running_var.reshape(shape) + eps)
        y = w * (x - running_mean.reshape(shape)) / std + b
        return y, dy * w / std, None, None, running_mean, running_var
    m = x.size // x.shape[1]
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    y = w * xhat + b
    dxhat = dy * w
    dvar = np.sum(dxhat * (x - mean), axis=axes, keepdims=True) * -0.5 * std**-3
    dmean = -np.sum(dxhat / std, axis=axes, keepdims=True) + dvar * np.mean(
        -2 * (x - mean), axis=axes, keepdims=True
    )
    dx = dxhat / std + dvar * 2 * (x - mean) / m + dmean / m
    rm, rv = running_mean, running_var
    if m > 1:
        rm = (1 - momentum) * rm + momentum * mean.reshape(-1)
        rv = (1 - momentum) * rv + momentum * var.reshape(-1) * m / (m - 1)
    return y, dx, np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes), rm, rv


# element-wise activations: (forward, dL/dx from x, y and dy)
ACTIVATIONS = {
    "linear": (lambda x, o: x, lambda x, y, dy, o: dy),
    "sigmoid": (lambda x, o: 1 / (1 + np.exp(-x)), lambda x, y, dy, o: dy * y * (1 - y)),
    "tanh": (lambda x, o: np.tanh(x), lambda x, y, dy, o: dy * (1 - y**2)),
    "relu": (lambda x, o: np.where(x > 0, x, 0.0), lambda x, y, dy, o: np.where(x > 0, dy, 0)),
    "leaky_relu": (
        lambda x, o: np.maximum(x, 0) + o["negative_slope"] * np.minimum(x, 0),
        lambda x, y, dy, o: np.where(x > 0, dy, o["negative_slope"] * dy),
    ),
}


def softmax(x, dy):
    """y and dx with the full Jacobian of each sample written out."""
    s = x.reshape(len(x), -1)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    dx = np.stack(
        [
            (np.diag(o) - np.outer(o, o)).T @ g
            for o, g in zip(y, dy.reshape(len(x), -1), strict=True)
        ]
    )
    return y.reshape(x.shape), dx.reshape(x.shape)


def torch_layout_forward(config: dict, tensors: dict, x: np.ndarray) -> np.ndarray:
    """(N, K) outputs, in float64, of the net of a resolved ``config`` (its model.layers) with
    the weights ``tensors`` in PyTorch's layouts (an exported safetensors file): dense weight
    (out, in) applied as x @ W.T to the (C, H, W)-flattened input, conv2d weight (F, C, kh, kw),
    conv1d weight (F, C, k),
    batchnorm in evaluation mode with its running statistics, add and concat reading what
    `from` names; x after data.preprocess."""
    entries = config["model"]["layers"]
    outs = {-1: np.asarray(x, np.float64)}  # each entry's output: a graph reads them by `from`
    for i, (e, srcs) in enumerate(zip(entries, entry_sources(entries), strict=True)):
        kind, xs = e["type"], [outs[j] for j in srcs]
        x = xs[0]

        def get(name, i=i):
            t = tensors.get(f"layers.{i}.{name}")
            return None if t is None else np.asarray(t, np.float64)

        if kind == "add":
            x = sum(xs[1:], xs[0])
        elif kind == "concat":
            x = np.concatenate(xs, axis=1)
        elif kind == "dense":
            x = x.reshape(len(x), -1) @ get("weight").T
            x = x if get("bias") is None else x + get("bias")
        elif kind == "conv2d":
            weight = get("weight")
            bias = np.zeros(len(weight)) if get("bias") is None else get("bias")
            stride, padding = pair(e["stride"]), pads(e["padding"], e["kernel"])
            x = conv_forward(x, weight, bias, stride, padding)
        elif kind == "conv1d":  # weight (F, C, k): a conv2d of height 1 on (C, 1, L)
            weight = get("weight")
            bias = np.zeros(len(weight)) if get("bias") is None else get("bias")
            padding = (0, pads(e["padding"], e["kernel"])[1])
            x = conv_forward(
                x[:, :, None, :], weight[:, :, None, :], bias, (1, e["stride"]), padding
            )
            x = x[:, :, 0, :]
        elif kind == "batchnorm":
            stats = (get("weight"), get("bias"), get("running_mean"), get("running_var"))
            x = batchnorm(x, np.zeros_like(x), *stats, None, e["eps"], False)[0]
        elif kind in ("maxpool2d", "avgpool2d"):
            size = pair(e["size"])
            stride = size if e["stride"] is None else pair(e["stride"])
            x = (maxpool if kind == "maxpool2d" else avgpool)(x, np.zeros_like(x), size, stride)[0]
        elif kind == "global_avgpool2d":
            x = x.mean(axis=(2, 3))
        activation = e.get("activation", kind)
        if activation == "softmax":
            x = softmax(x, np.zeros_like(x))[0]
        elif activation in ACTIVATIONS:
            x = ACTIVATIONS[activation][0](x, {"negative_slope": e.get("negative_slope", 0.01)})
        outs[i] = x
    return x.reshape(len(x), -1)


def entry_sources(entries: list) -> list[list[int]]:
    """Per entry of model.layers, the entries it reads (-1: the input), as docs/graphs.md
    defines `from`: a name, an index, a negative offset or 'input'; else the entry before."""
    names = {e["name"]: i for i, e in enumerate(entries) if "name" in e}

    def index(ref, i):
        if ref == "input":
            return -1
        return names[ref] if isinstance(ref, str) else (i + ref if ref < 0 else ref)

    refs = [e.get("from", -1 if i else "input") for i, e in enumerate(entries)]
    return [[index(r, i) for r in (ref if isinstance(ref, list) else [ref])]
            for i, ref in enumerate(refs)]  # fmt: skip
