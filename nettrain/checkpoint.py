"""Checkpoint files (docs/formats.md): an .npz of named arrays plus a JSON ``__meta__`` record.

Arrays: ``layers.{i}.<name>`` (parameters and state, e.g. batchnorm's running statistics) in the
run's dtype, ``optimizer.{param}.{slot}``. ``__meta__`` is a 0-d string array holding JSON: format
version, nettrain version, the resolved config, epoch, step, metrics, RNG state, and a SHA-256 of
the arrays so that a damaged file is detected on load.
Files are written atomically (``nettrain.core.files.atomic_write``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from nettrain import __version__
from nettrain.core.errors import UserError
from nettrain.core.files import READ_ERRORS, atomic_write

FORMAT_VERSION = 1
META = "__meta__"
# Types of the __meta__ entries nettrain reads; a record with other types is damaged or foreign.
META_TYPES = {
    "format": int,
    "checksum": str,
    "config": dict,
    "input_shape": list,
    "n_outputs": int,
    "input_scale": (int, float),
    "targets": str,
    "classes": (list, type(None)),
    "epoch": int,
    "batch": int,
    "step": int,
    "metrics": list,
    "partial": (dict, type(None)),
    "best": (int, float, type(None)),
    "stopping": dict,
    "encoding": (dict, type(None)),
}


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and ``meta`` to ``path`` atomically."""
    meta = {"format": FORMAT_VERSION, "nettrain": __version__, **meta, "checksum": checksum(arrays)}
    payload = {**arrays, META: np.array(json.dumps(meta))}
    atomic_write(Path(path), lambda f: np.savez(f, **payload))


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a checkpoint, after checking it is whole and ours.

    A damaged or missing file is reported with the other checkpoints of its folder that do load.
    """
    try:
        return _load(str(path))
    except UserError as exc:
        if exc.hint is None and not Path(path).is_dir() and Path(path).parent.is_dir():
            others = usable_neighbours(Path(path))
            if others:
                exc.hint = "usable checkpoints in the same folder: " + ", ".join(others)
        raise


def usable_neighbours(path: Path) -> list[str]:
    """The other .npz checkpoints next to ``path`` that load cleanly, newest first."""

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:  # gone since the listing
            return 0.0

    found = []
    for other in sorted(path.parent.glob("*.npz"), key=mtime, reverse=True):
        if other.resolve() == path.resolve():
            continue
        try:
            _load(str(other))
        except UserError:
            continue
        found.append(str(other))
    return found


def read_arrays(path: str, what: str = "checkpoint") -> dict[str, np.ndarray]:
    """Every array of the .npz file at ``path``, never unpickling anything (allow_pickle=False).

    Anything else (no file, a folder, a text file, a truncated or damaged archive, an array of
    Python objects) is a UserError naming the file and, where one is to blame, the array.
    """
    file = Path(path)
    if not file.exists():
        raise UserError(path, f"{what} not found")
    if file.is_dir():
        raise UserError(path, f"is a folder; expected a {what} file (.npz)")
    if not zipfile.is_zipfile(path):
        raise UserError(
            path,
            f"not a readable {what}: the file is not an .npz archive "
            "(it is truncated, damaged, or another kind of file)",
        )
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            for name in f.files:
                try:
                    arrays[name] = f[name]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    raise UserError(
                        path,
                        f"array '{name}' holds Python objects, which nettrain never loads "
                        "(loading them could run code)",
                    ) from None
    except READ_ERRORS as exc:
        raise UserError(
            path,
            f"not a readable {what}: the file is damaged or not an .npz ({exc})",
        ) from None
    return arrays


def _load(path: str) -> tuple[dict[str, np.ndarray], dict]:
    arrays = read_arrays(path)
    if META not in arrays:
        raise UserError(
            path,
            "not a nettrain checkpoint (no __meta__ record): it holds no training state",
            "a file of weights alone can start a new run: nettrain fit CONFIG --weights FILE",
        )
    meta = _meta(arrays.pop(META), path)
    if meta.get("format", 0) > FORMAT_VERSION:
        raise UserError(
            path,
            f"checkpoint format {meta['format']} is newer than this nettrain",
            "upgrade nettrain to read it",
        )
    if "checksum" in meta and meta["checksum"] != checksum(arrays):
        raise UserError(path, "the checkpoint is damaged (its arrays do not match their checksum)")
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise UserError(path, f"array '{name}' holds {a.dtype} values, not numbers")
    return arrays, meta


def _meta(record: np.ndarray, path: str) -> dict:
    """The __meta__ record as a dict, after checking the types of the entries nettrain reads."""
    if record.dtype.kind != "U" or record.ndim != 0:
        raise UserError(path, "the checkpoint's __meta__ record is not a JSON text")
    try:
        meta = json.loads(str(record))
    except (ValueError, RecursionError):
        raise UserError(path, "the checkpoint's __meta__ record is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise UserError(path, "the checkpoint's __meta__ record has no config")
    for key, types in META_TYPES.items():
        if key in meta and not isinstance(meta[key], types):
            raise UserError(
                path,
                f"the checkpoint's __meta__ record is damaged: '{key}' holds "
                f"{type(meta[key]).__name__} {repr(meta[key])[:40]}",
            )
    shape = meta.get("input_shape")
    if shape is None:
        raise UserError(path, "the checkpoint's __meta__ record has no input_shape")
    if not shape or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise UserError(path, f"the checkpoint's __meta__ record is damaged: input_shape {shape}")
    return meta


def load_weights(path) -> dict[str, np.ndarray]:
    """The ``layers.*`` arrays of a checkpoint, or of any .npz that holds such arrays (weights
    exported by another tool in docs/formats.md's layouts need no ``__meta__``)."""
    path = str(path)
    arrays = read_arrays(path)
    if META in arrays:
        arrays, _ = load(path)
    weights = {k: v for k, v in arrays.items() if k.startswith("layers.")}
    if not weights:
        raise UserError(path, "no 'layers.{i}.weight' arrays: not a weights file")
    return weights
