"""The IDX format of the MNIST files (raw or gzipped).

Header: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the number of dimensions, then each dimension as a big-endian uint32; then the
values, big-endian, row-major.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from nettrain.core.errors import UserError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file, in native byte order."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(str(path), f"cannot read IDX file: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise UserError(str(path), "not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(str(path), "IDX file is truncated in its header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_TYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 0
    if len(raw) - header != count * dtype.itemsize:
        raise UserError(
            str(path),
            f"IDX file holds {len(raw) - header} bytes of data, its header says "
            f"{count * dtype.itemsize} (shape {dims})",
        )
    data = np.frombuffer(raw, dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def idx_shape(path) -> tuple:
    """The shape an IDX file's header declares, without reading its data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[2] not in _TYPES:
                raise UserError(str(path), "not an IDX file (bad magic number)")
            return tuple(int(d) for d in np.frombuffer(f.read(4 * head[3]), ">u4"))
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(str(path), f"cannot read IDX file: {exc}") from None


def labels_beside(images) -> Path | None:
    """The labels file that MNIST's naming pairs with an images file, if it exists:
    'train-images-idx3-ubyte.gz' -> 'train-labels-idx1-ubyte.gz'."""
    images = Path(images)
    name = images.name
    if "images" not in name:
        return None
    candidate = images.with_name(name.replace("images", "labels").replace("idx3", "idx1"))
    return candidate if candidate.is_file() else None
