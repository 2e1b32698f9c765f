"""safetensors export (docs/formats.md, "safetensors"): a net's parameters and batchnorm statistics
for PyTorch.

Tensors keep their checkpoint names (``layers.{i}.weight``, ``layers.{i}.bias``,
``layers.{i}.running_mean``, ``layers.{i}.running_var``; i is the entry of ``model.layers``) in
the checkpoint's dtype and in the layouts of each layer's PyTorch module (its ``TORCH`` and
``torch_arrays``: a dense weight transposed to ``torch.nn.Linear``'s (out, in); conv2d (out, in,
kh, kw) and batchnorm (C,) are torch's already). A layer whose ``TORCH`` is None is refused.
Metadata: ``format: pt`` (what ``safetensors.torch`` expects), ``nettrain_config`` (the resolved
config as JSON) and ``nettrain_version``. docs/formats.md builds the torch.nn model of a config and
loads the file into it with ``load_state_dict``.
"""

from __future__ import annotations

import json

import numpy as np

from nettrain import __version__
from nettrain.core.errors import UserError


def torch_layout(net, where: str = "export") -> dict[str, np.ndarray]:
    """The net's parameters and state by checkpoint name, in PyTorch's layouts."""
    tensors = {}
    for layer in net.layers:
        if getattr(layer, "TORCH", None) is None:
            raise UserError(
                f"{where}: layer {layer.index} ({layer.kind})",
                "cannot be exported to safetensors: nettrain has no PyTorch form for it",
                "leave the layer out, or export the net with --format onnx",
            )
        for name, a in layer.torch_arrays().items():
            tensors[f"layers.{layer.index}.{name}"] = np.ascontiguousarray(a)
    return tensors


def to_safetensors(members: list) -> bytes:
    """The safetensors bytes of one member (net, meta, where)."""
    if len(members) > 1:
        raise UserError(
            "export",
            "--format safetensors takes one checkpoint (a file of one net's weights)",
            "export each net on its own, or use --format onnx for one averaging graph",
        )
    try:
        from safetensors.numpy import save
    except ImportError:
        raise UserError(
            "export",
            "--format safetensors needs the safetensors package",
            "pip install 'nettrain[onnx]'",
        ) from None
    net, meta, where = members[0]
    metadata = {
        "format": "pt",
        "nettrain_config": json.dumps(meta["config"]),
        "nettrain_version": __version__,
    }
    return save(torch_layout(net, where), metadata=metadata)
