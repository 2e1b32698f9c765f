"""Checkpoint files (SPEC.md): an .npz of named arrays plus a JSON ``__meta__`` record.

Arrays: ``layers.{i}.weight|bias`` in the run's dtype, ``optimizer.{param}.{slot}``. ``__meta__``
is a 0-d string array holding JSON: format version, nettrain version, the resolved config, epoch,
step, metrics, RNG state, and a SHA-256 of the arrays so that a damaged file is detected on load.
Files are written atomically: a temporary file in the same folder, fsync, rename, fsync folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from nettrain import __version__
from nettrain.errors import UserError

FORMAT_VERSION = 1
META = "__meta__"


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


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place."""
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text: str) -> None:
    """Atomic text write (config.yaml, metrics.csv)."""
    atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def load(path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of a checkpoint, after checking it is whole and ours.

    A damaged file is reported with the other checkpoints of its folder that do load.
    """
    try:
        return _load(str(path))
    except UserError as exc:
        if exc.hint is None and Path(path).exists():
            others = usable_neighbours(Path(path))
            if others:
                exc.hint = "usable checkpoints in the same folder: " + ", ".join(others)
        raise


def usable_neighbours(path: Path) -> list[str]:
    """The other .npz checkpoints next to ``path`` that load cleanly, newest first."""
    found = []
    candidates = sorted(path.parent.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for other in candidates:
        if other.resolve() == path.resolve():
            continue
        try:
            _load(str(other))
        except UserError:
            continue
        found.append(str(other))
    return found


def _load(path: str) -> tuple[dict[str, np.ndarray], dict]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except FileNotFoundError:
        raise UserError(path, "checkpoint not found") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise UserError(
            path,
            f"not a readable checkpoint: the file is damaged or not an .npz ({exc})",
        ) from None
    if META not in arrays:
        raise UserError(
            path,
            "not a nettrain checkpoint (no __meta__ record): it holds no training state",
            "a file of weights alone can start a new run: nettrain fit CONFIG --weights FILE",
        )
    try:
        meta = json.loads(str(arrays.pop(META)))
    except (json.JSONDecodeError, TypeError):
        raise UserError(path, "the checkpoint's __meta__ record is not valid JSON") from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise UserError(path, "the checkpoint's __meta__ record has no config")
    if meta.get("format", 0) > FORMAT_VERSION:
        raise UserError(
            path,
            f"checkpoint format {meta['format']} is newer than this nettrain",
            "upgrade nettrain to read it",
        )
    if "checksum" in meta and meta["checksum"] != checksum(arrays):
        raise UserError(path, "the checkpoint is damaged (its arrays do not match their checksum)")
    return arrays, meta


def load_weights(path) -> dict[str, np.ndarray]:
    """The ``layers.*`` arrays of a checkpoint, or of any .npz that holds such arrays (weights
    exported by another tool in SPEC.md's layouts need no ``__meta__``)."""
    path = str(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            names = list(f.files)
    except FileNotFoundError:
        raise UserError(path, "checkpoint not found") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(path, f"not a readable .npz file ({exc})") from None
    if META in names:
        arrays, _ = load(path)
    else:
        with np.load(path, allow_pickle=False) as f:
            arrays = {n: f[n] for n in names}
    weights = {k: v for k, v in arrays.items() if k.startswith("layers.")}
    if not weights:
        raise UserError(path, "no 'layers.{i}.weight' arrays: not a weights file")
    return weights
