"""Writing files atomically, and what reading a damaged file raises.

A leaf module (it imports only ``nettrain.core.errors``): checkpoints, the run folder, predictions
and plots are all written through ``atomic_write``, so that a crash or kill while writing leaves
the previous file intact: a temporary file in the same folder, fsync, rename, fsync the folder.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

from nettrain.core.errors import JobFailed, UserError

# What numpy and zipfile raise on bytes that are not a whole .npz (truncated, damaged, foreign).
READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    OverflowError,
    MemoryError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
)
# A write that fails because of the path (no such folder, no permission) is bad input, exit 2;
# one that fails because the machine did (disk full, I/O error) is a failed job, exit 1.
PATH_ERRNOS = (
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENAMETOOLONG,
)


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place.

    A failed write (disk full, no such folder) is raised as a NettrainError naming ``path``
    (see PATH_ERRNOS for its exit code); the file at ``path`` is then left as it was.
    """
    try:
        _atomic_write(Path(path), write)
    except OSError as exc:
        if exc.errno in PATH_ERRNOS:
            error, hint = UserError, "check that its folder exists and can be written"
        else:
            error, hint = JobFailed, "the previous version of the file, if any, is unchanged"
        raise error(str(path), f"could not write the file: {exc.strerror or exc}", hint) from exc


def _atomic_write(path: Path, write) -> None:
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


def write_stream(path, write, text: bool = False) -> None:
    """Atomic write of what ``write(stream)`` writes: to a UTF-8 text stream, or binary."""

    def body(f):
        if not text:
            write(f)
            return
        stream = io.TextIOWrapper(f, encoding="utf-8", newline="")
        write(stream)
        stream.flush()
        stream.detach()  # f stays open for atomic_write's fsync

    atomic_write(Path(path), body)
