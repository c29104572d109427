"""The sweep's journal: an append-only JSON-lines file under a lock, folded into `fold.SweepState`.

Every process rebuilds the state and keeps it current by reading only the bytes appended since
its last read, so a claim costs the same at trial 10,000 as at trial 10. Writers append under
the lock after checking the transition against fresh state; the fold re-checks every
transition, so a stray event can never corrupt the state. The snapshot (`snapshot.py`) is a
cache of the fold that a fresh reader may start from.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import filelock

from hpsearch.errors import StoreError, store_write_error
from hpsearch.gcpause import bulk
from hpsearch.store import snapshot
from hpsearch.store.atomic import append_whole
from hpsearch.store.flock import FlockLock
from hpsearch.store.fold import SweepState, decode


def make_lock(path: Path, kind: str, timeout: float) -> filelock.BaseFileLock | FlockLock:
    """`hard` (default, `auto`): fcntl locks, released by the kernel when the holder dies; they
    work on local disks and on NFS with a lock manager (NFSv4, or v3 with lockd). `soft`: a
    lock file created with O_EXCL, for filesystems without working fcntl locks; a soft lock
    left by a dead process is broken once it is older than any critical section can be."""
    if kind == "soft":
        return filelock.SoftFileLock(str(path), timeout=timeout)
    return FlockLock(str(path), timeout=timeout)  # the same kernel lock as filelock.FileLock, held cheaply


class Journal:
    """Append-only event log with an incrementally folded `SweepState`."""

    SOFT_LOCK_STALE_S = 60.0
    POLL_S = 0.001  # a hold is a read and an append: well under a millisecond

    def __init__(
        self, path: Path, lock_kind: str = "auto", timeout: float = 120.0, snapshot: Path | None = None
    ) -> None:
        self.path = path
        self.snapshot_path = snapshot  # a compacted fold of the journal's head (store/snapshot.py)
        self._try_snapshot = snapshot is not None
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_kind = "soft" if lock_kind == "soft" else "hard"
        self.timeout = timeout
        self._lock = make_lock(self.lock_path, self.lock_kind, timeout)
        self._offset = 0
        self._partial = b""
        self.state = SweepState()

    # -- reading -------------------------------------------------------------------------
    @bulk
    def refresh(self) -> SweepState:
        """Fold events appended since the last call. A torn last line waits for its newline."""
        try:
            with open(self.path, "rb") as f:
                if self._try_snapshot:
                    self._load_snapshot(f)
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.state
        except OSError as e:
            raise StoreError(f"cannot read {self.path}: {e}") from None
        if not data:
            return self.state
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # bytes after the last newline: incomplete, keep for later
        for ev in decode(lines, self.state):
            if isinstance(ev, dict):
                try:
                    self.state.apply(ev)
                except (KeyError, TypeError, ValueError):
                    self.state.bad_lines += 1
        return self.state

    def _load_snapshot(self, f: Any) -> None:
        self._try_snapshot = False  # only the first read may start from it
        assert self.snapshot_path is not None  # only called when a snapshot path is set
        got = snapshot.load(self.snapshot_path, f)
        if got is not None:
            vars(self.state).update(vars(got[0]))  # in place: a caller may hold self.state already
            self._offset = got[1]

    def write_snapshot(self) -> bool:
        """Write the folded state, and the offset it folds up to, as the snapshot (a cache: False
        when there is nothing to write or it could not be written, which costs only speed)."""
        path = self.snapshot_path
        if path is None or self._partial or self._offset == 0:
            return False  # a torn last line is pending: no offset stands for exactly this state
        try:
            with open(self.path, "rb") as f:
                check = snapshot.journal_check(f, self._offset)
        except OSError:
            return False
        return snapshot.write(path, snapshot.encode(self.state, self._offset, check))

    # -- writing -------------------------------------------------------------------------
    def locked(self) -> _Locked:
        return _Locked(self)

    def append_locked(self, events: list[dict[str, Any]]) -> None:
        """Append events; the caller holds the lock and has refreshed the state."""
        now = time.time()
        payload = b"".join(
            json.dumps({**e, "t": e.get("t", now)}, separators=(",", ":")).encode() + b"\n" for e in events
        )
        try:
            append_whole(self.path, payload)  # all of these events or none (a full disk cuts nothing in half)
        except OSError as e:
            raise store_write_error(self.path, e) from None
        self.refresh()

    def append(self, events: list[dict[str, Any]]) -> None:
        with self.locked():
            self.refresh()
            self.append_locked(events)


class _Locked:
    """Context manager: the journal lock, with a message that says what to do on timeout."""

    def __init__(self, journal: Journal) -> None:
        self.j = journal

    def __enter__(self) -> Journal:
        deadline = time.monotonic() + self.j.timeout
        while True:
            try:
                # poll often: filelock's default (50 ms) idles a waiting worker far longer than a hold lasts
                self.j._lock.acquire(
                    timeout=min(5.0, max(0.0, deadline - time.monotonic())), poll_interval=self.j.POLL_S
                )
                return self.j
            except filelock.Timeout:
                if self.j.lock_kind == "soft" and self._break_stale_soft_lock():
                    continue
                if time.monotonic() >= deadline:
                    raise StoreError(self._timeout_message()) from None
            except OSError as e:
                raise StoreError(
                    f"cannot create lock file {self.j.lock_path}: {e.strerror} (is the sweep directory writable?)"
                ) from None

    def __exit__(self, *exc: object) -> None:
        self.j._lock.release()

    def _break_stale_soft_lock(self) -> bool:
        try:
            judged = self.j.lock_path.stat()
        except FileNotFoundError:
            return True
        if time.time() - judged.st_mtime > Journal.SOFT_LOCK_STALE_S:
            break_soft_lock(self.j.lock_path, judged)
            return True
        return False

    def _timeout_message(self) -> str:
        return (
            f"could not take the lock {self.j.lock_path} within {self.j.timeout:.0f} s on host "
            f"{socket.gethostname()}: another process holds it, or the filesystem does not support "
            "fcntl locks (some NFS mounts without lockd, some FUSE filesystems). "
            "Fix: check that no stuck hpsearch process holds it; on such filesystems set `lock: soft` "
            "in the sweep file (a soft lock left by a dead process is broken after "
            f"{Journal.SOFT_LOCK_STALE_S:.0f} s)"
        )


def break_soft_lock(path: Path, judged: os.stat_result) -> None:
    """Remove the soft lock file judged stale, and only that one.

    Several waiters may judge the same stale file at once; the first to break it may already
    hold the lock with a fresh file at the same path. A plain unlink would delete that live lock,
    so the file is first renamed aside (one waiter wins the rename) and checked to be the one judged.
    """
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        st = aside.stat()
        if (st.st_ino, st.st_mtime_ns) != (judged.st_ino, judged.st_mtime_ns):
            os.link(aside, path)  # a live lock taken meanwhile: put it back (fails if the path is taken again)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            aside.unlink()
