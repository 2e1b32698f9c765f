"""Reading .npz and .npy data files: named arrays, never unpickling anything.

An array stored uncompressed (``numpy.savez``, not ``savez_compressed``) and every .npy file is
opened memory-mapped: a data set larger than memory trains, each batch reading only its rows.
"""

from __future__ import annotations

import math
import mmap
import os
import tokenize
import zipfile
from pathlib import Path

import numpy as np

from nettrain.core.errors import UserError
from nettrain.core.files import READ_ERRORS


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
            mapped = {n: mapped_member(path, f"{n}.npy") for n in names}
            return {n: f[n] if mapped[n] is None else mapped[n] for n in names}
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
    """numpy reads a file that is not a zip archive as a pickle and says so; say what it is.
    (zipfile.is_zipfile takes a file it cannot open for no zip archive: open it here first.)"""
    if not Path(path).is_file():
        return
    try:
        with open(path, "rb") as f:
            is_zip = zipfile.is_zipfile(f)
    except OSError as exc:
        raise UserError(path, f"cannot read the .npz file: {exc}") from None
    if not is_zip:
        raise UserError(
            path,
            "not an .npz file: it is not a zip archive (truncated, damaged, or another kind of "
            "file)",
        )


def mapped_member(path: str, member: str) -> np.ndarray | None:
    """Array ``member`` of an .npz memory-mapped, or None where it is compressed, not a plain
    array or damaged (numpy's own reading then says what is wrong): numpy maps .npy files, not
    the members of a zip, so the member's data is found at its offset in the archive."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)  # the local file header: name and extra lengths at 26 and 28
            if local[:4] != b"PK\x03\x04":
                return None
            skip = int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + skip)
            return _mapped_npy(path, f, info.file_size)
    except Exception:  # noqa: BLE001 - any damage: numpy's own reading reports it
        return None


def read_npy(path: str) -> np.ndarray:
    """An .npy file, memory-mapped (read-only)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            array = _mapped_npy(path, f, os.fstat(f.fileno()).st_size)
    except FileNotFoundError:
        raise UserError(path, "file not found") from None
    except (*READ_ERRORS, SyntaxError, tokenize.TokenError) as exc:  # a damaged header
        raise UserError(path, f"cannot read the .npy file: {exc}") from None
    if array is None:
        raise UserError(path, "not an .npy array of numbers (Python objects, or truncated)")
    return array


def _mapped_npy(path: str, f, size: int) -> np.ndarray | None:
    """The .npy array whose header starts at f's position, mapped from ``path``; None where it
    holds objects or its data would not fit in the ``size`` bytes from that position."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        return None
    header = np.lib.format
    read = header.read_array_header_1_0 if version == (1, 0) else header.read_array_header_2_0
    shape, fortran, dtype = read(f)
    if dtype.hasobject or f.tell() - start + math.prod(shape) * dtype.itemsize > size:
        return None
    if 0 in shape:
        return np.zeros(shape, dtype)
    order = "F" if fortran else "C"
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=f.tell(), shape=shape, order=order)
    # Batches read scattered rows: without this hint every row read pulls in the 128 KiB
    # around it, and a shuffled epoch over a large file reads it many times over.
    advise = getattr(getattr(mapped, "_mmap", None), "madvise", None)
    if advise is not None and hasattr(mmap, "MADV_RANDOM"):
        advise(mmap.MADV_RANDOM)
    return mapped
