"""A nettrain config's net as a PyTorch module, for the PyTorch side of benchmarks/run.py.

``TorchNet(cfg)`` builds the same layers with PyTorch's own modules (Conv2d, BatchNorm1d/2d,
Linear, pooling, activations), each entry reading what its `from` names (docs/graphs.md): a
graph runs as one, with its outputs kept until their last reader. Its output is the logits: the
final softmax is left to the loss (CrossEntropyLoss), as the hand-written nets of worker.py do.
Covers the layer types of benchmarks/configs/.
"""

from __future__ import annotations

import torch
from torch import nn


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def sources(entries: list) -> list[list[int]]:
    """Per entry, the indices of the entries it reads (-1: the input)."""
    names = {e["name"]: i for i, e in enumerate(entries) if "name" in e}

    def index(ref, i):
        if ref == "input":
            return -1
        if isinstance(ref, str):
            return names[ref]
        return i + ref if ref < 0 else ref

    refs = [e.get("from", -1 if i else "input") for i, e in enumerate(entries)]
    return [[index(r, i) for r in (ref if isinstance(ref, list) else [ref])]
            for i, ref in enumerate(refs)]  # fmt: skip


def module(e: dict, shape: tuple) -> tuple[nn.Module, tuple]:
    """(the module of entry e on per-sample input ``shape``, its output shape)."""
    kind = e["type"]
    if kind == "conv2d":
        k, pad = pair(e["kernel"]), e["padding"]
        if pad in ("same", "valid"):
            pad = ((k[0] - 1) // 2, (k[1] - 1) // 2) if pad == "same" else (0, 0)
        m = nn.Conv2d(shape[0], e["filters"], k, pair(e["stride"]), pair(pad), bias=e["bias"])
        s = pair(e["stride"])
        h = (shape[1] + 2 * pair(pad)[0] - k[0]) // s[0] + 1
        w = (shape[2] + 2 * pair(pad)[1] - k[1]) // s[1] + 1
        return m, (e["filters"], h, w)
    if kind == "batchnorm":
        bn = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        return bn(shape[0], eps=e["eps"], momentum=e["momentum"]), shape
    if kind == "dense":
        n_in = 1
        for d in shape:
            n_in *= d
        return nn.Sequential(nn.Flatten(), nn.Linear(n_in, e["units"], bias=e["bias"])), (
            e["units"],
        )
    if kind == "maxpool2d":
        size = pair(e["size"])
        stride = size if e["stride"] is None else pair(e["stride"])
        h, w = ((shape[a + 1] - size[a]) // stride[a] + 1 for a in (0, 1))
        return nn.MaxPool2d(size, stride), (shape[0], h, w)
    if kind == "global_avgpool2d":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (shape[0],)
    if kind == "relu":
        return nn.ReLU(), shape
    if kind == "tanh":
        return nn.Tanh(), shape
    if kind in ("softmax", "linear"):
        return nn.Identity(), shape  # the loss applies the softmax
    raise ValueError(f"torch_net.py has no module for {kind}")


class TorchNet(nn.Module):
    """The net of a resolved nettrain config (``model`` section), logits out."""

    def __init__(self, cfg: dict):
        super().__init__()
        entries = cfg["model"]["layers"]
        self.kinds = [e["type"] for e in entries]
        self.sources = sources(entries)
        self.layers = nn.ModuleList()
        shapes = {-1: tuple(cfg["model"]["input"])}
        for i, e in enumerate(entries):
            ins = [shapes[j] for j in self.sources[i]]
            if e["type"] == "add":
                m, shape = nn.Identity(), ins[0]
            elif e["type"] == "concat":
                m, shape = nn.Identity(), (sum(s[0] for s in ins), *ins[0][1:])
            else:
                m, shape = module(e, ins[0])
                act = e.get("activation", "linear")
                if act not in ("linear", "softmax"):
                    m = nn.Sequential(m, module({"type": act}, shape)[0])
            self.layers.append(m)
            shapes[i] = shape
        readers = {}
        for i, refs in enumerate(self.sources):
            for j in refs:
                readers[j] = i
        self.last_reader = readers

    def forward(self, x):
        outs = {-1: x}
        for i, (kind, m) in enumerate(zip(self.kinds, self.layers, strict=True)):
            xs = [outs[j] for j in self.sources[i]]
            if kind == "add":
                y = xs[0]
                for other in xs[1:]:
                    y = y + other
            elif kind == "concat":
                y = torch.cat(xs, 1)
            else:
                y = m(xs[0])
            outs[i] = y
            for j in set(self.sources[i]):
                if self.last_reader[j] == i:
                    del outs[j]
        return outs[len(self.layers) - 1]
