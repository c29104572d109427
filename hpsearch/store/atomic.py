"""Whole-file writes that readers on any host see complete or not at all: a temporary file beside
the target, then a rename. Used by the store (stage files, heartbeats, checkpoints) and by the
journal's snapshot, which sits below the store and so cannot import it."""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

from hpsearch.errors import StoreError

_HOST_TOKEN = f"{socket.gethostname()}-{os.urandom(3).hex()}"  # other hosts may share the folder (NFS)
_COUNTER = itertools.count()


def temp_beside(path: Path) -> tuple[int, str]:
    """A new file beside `path`, named for this host, process and call; O_EXCL refuses a name in use.

    Not tempfile.mkstemp: it makes 0600 files (other users of a shared sweep could not read them,
    so it needs an fchmod) and costs more; a checkpoint per trial makes this a hot path. 0o666
    here is narrowed by the umask, as for any file the user creates."""
    while True:
        tmp = str(path.parent / f".{path.name}.{_HOST_TOKEN}-{os.getpid()}-{next(_COUNTER)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


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
