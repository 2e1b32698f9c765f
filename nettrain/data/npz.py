"""Reading .npz data files: named arrays, never unpickling anything."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from nettrain.errors import UserError
from nettrain.files import READ_ERRORS


def read_npz(path: str, names) -> dict:
    """The named arrays of an .npz file, never unpickling anything."""
    path = str(path)
    if not path.endswith(".npz"):
        raise UserError(path, "unsupported data file type (expected .npz with arrays x and y)")
    _require_zip(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [n for n in names if n not in f.files]
            if missing:
                raise UserError(
                    path, f"no array '{missing[0]}' in the file (it has: {', '.join(f.files)})"
                )
            return {n: f[n] for n in names}
    except FileNotFoundError:
        raise UserError(path, "file not found") from None
    except READ_ERRORS as exc:
        raise UserError(path, f"cannot read the .npz file: {exc}") from None


def npz_names(path: str) -> list[str]:
    """The array names an .npz file holds."""
    _require_zip(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return list(f.files)
    except FileNotFoundError:
        raise UserError(path, "file not found") from None
    except READ_ERRORS as exc:
        raise UserError(path, f"cannot read the .npz file: {exc}") from None


def _require_zip(path: str) -> None:
    """numpy reads a file that is not a zip archive as a pickle and says so; say what it is."""
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise UserError(
            path,
            "not an .npz file: it is not a zip archive (truncated, damaged, or another kind of "
            "file)",
        )
