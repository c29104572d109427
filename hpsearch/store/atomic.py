"""Whole-file writes that readers on any host see complete or not at all: a temporary file beside
the target, then a rename. Used by the store (stage files, heartbeats, checkpoints) and by the
journal's snapshot, which sits below the store and so cannot import it."""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

from hpsearch.errors import store_write_error

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
        raise store_write_error(path, e) from None


def unlink_missing_ok(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def append_whole(path: Path, data: bytes) -> None:
    """Append `data` to a lines file (created if missing) completely or not at all.

    A line torn by a writer killed mid-append is first closed with a newline, so ours stands on
    a line of its own. When the disk fills up part-way the file is cut back to its old size:
    readers never see half of what was appended, and no committed event can be cut in half.
    The caller serializes appends to one file (the journal's lock; one worker per metrics file).

    Raises:
        OSError: the open or the write failed (ENOSPC, EDQUOT, EROFS...); the file is unchanged.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
