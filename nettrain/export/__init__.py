"""Exporting trained nets for other tools: ONNX (onnx.py) and safetensors (safetensors.py).

``export(members, fmt, output, opset)`` writes the file atomically (nettrain.core.files), so that a
refused or failed export leaves nothing half-written at ``output``.
"""

from __future__ import annotations

from pathlib import Path

from nettrain.core.errors import UserError
from nettrain.core.files import atomic_write

FORMATS = ("onnx", "safetensors")


def export(members: list, fmt: str, output, opset: int | None = None) -> None:
    """Write ``members`` [(net, meta, where)] to ``output`` in format ``fmt``."""
    if fmt == "onnx":
        from nettrain.export.onnx import DEFAULT_OPSET, to_onnx

        payload = to_onnx(members, DEFAULT_OPSET if opset is None else opset)
    elif fmt == "safetensors":
        from nettrain.export.safetensors import to_safetensors

        if opset is not None:
            raise UserError("--opset", "applies to --format onnx only")
        payload = to_safetensors(members)
    else:
        raise UserError("--format", f"unknown format '{fmt}'", "choose " + " or ".join(FORMATS))
    atomic_write(Path(output), lambda f: f.write(payload))
