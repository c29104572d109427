"""Whole-file writes that readers on any host see complete or not at all: a temporary file beside
the target, then a rename. Used by the store (stage files, heartbeats, checkpoints) and by the
journal's snapshot, which sits below the store and so cannot import it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import StoreError

_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600 files: other users of a shared sweep could not read them


def temp_beside(path: Path) -> tuple[int, str]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write to a temporary file beside `path`, then rename: readers see old or new, never half."""
    try:
        fd, tmp = temp_beside(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            unlink_missing_ok(Path(tmp))
            raise
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror} (is the disk full or read-only?)") from None


def unlink_missing_ok(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
