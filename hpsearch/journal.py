"""The sweep's journal: an append-only JSON-lines file under a lock, and the state it folds into.

State is the fold of the events; every process rebuilds it and keeps it current by reading
only the bytes appended since its last read, so a claim costs the same at trial 10,000 as
at trial 10. Writers append under the lock after checking the transition against fresh
state; the fold re-checks every transition, so a stray event can never corrupt the state.
"""
from __future__ import annotations

import contextlib
import enum
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import filelock

from .errors import StoreError
from .flock import FlockLock
from .gcpause import bulk


class State(str, enum.Enum):
    PLANNED = "planned"
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED


STATES = {s.value: s for s in State}        # State(value) is slow in a hot loop
FINISHED = frozenset({State.FINISHED, State.DIVERGED, State.FAILED})


@dataclass(slots=True)  # slots: 100,000 records fold noticeably faster and smaller
class TrialRecord:
    trial: str
    stage: int
    config: str
    params: dict[str, Any]
    seed: int
    epochs: int
    parent: str | None = None
    state: State = State.PLANNED
    attempt: int = 0            # claims so far; a claim's token is (trial, attempt)
    lost: int = 0               # times requeued because its worker vanished
    worker: str | None = None
    best: float | None = None
    best_epoch: int | None = None
    epochs_done: int = 0
    reason: str | None = None
    device: str | None = None   # as the claiming worker named it (cpu, cuda:0 (GPU 1))


@dataclass
class SweepState:
    """Everything the journal says, folded."""

    fingerprint: str | None = None
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    stages: dict[int, dict[str, Any]] = field(default_factory=dict)   # k -> {"space": ..., "trials": [ids]}
    stages_done: set[int] = field(default_factory=set)
    queue: dict[str, None] = field(default_factory=dict)              # planned, in claim order
    requeued: dict[str, None] = field(default_factory=dict)           # served before `queue`
    done: bool = False
    stop: bool = False
    bad_lines: int = 0

    def apply(self, ev: dict[str, Any]) -> None:
        kind = ev.get("ev")
        t = self.trials.get(ev.get("trial", ""))
        # the two events of every trial come first: a 100,000-trial sweep folds 200,000 of them
        if kind == "claim":
            if t is not None and t.state is State.PLANNED:
                t.state, t.attempt, t.worker = State.RUNNING, ev["attempt"], ev["worker"]
                t.device = ev.get("device", t.device)
                self.queue.pop(t.trial, None)
                self.requeued.pop(t.trial, None)
        elif kind == "result":
            if t is not None and t.state not in FINISHED and ev["attempt"] >= t.attempt:
                t.state = STATES[ev["status"]]
                t.attempt = max(t.attempt, ev["attempt"])
                t.worker, t.device = ev.get("worker", t.worker), ev.get("device", t.device)
                t.best, t.best_epoch = ev.get("best"), ev.get("best_epoch")
                t.epochs_done, t.reason = ev.get("epochs_done", t.epochs_done), ev.get("reason")
                self.queue.pop(t.trial, None)
                self.requeued.pop(t.trial, None)
        elif kind == "created":
            self.fingerprint = ev.get("fingerprint", self.fingerprint)  # --force re-stamps it
        elif kind == "stage" and ev["stage"] not in self.stages:
            k, trials = ev["stage"], self.trials
            for p in ev["trials"]:   # positional: this loop builds every record of a stage
                trials[p["trial"]] = TrialRecord(p["trial"], k, p["config"], p["params"], p["seed"], p["epochs"],
                                                 p.get("parent"))
            ids = [p["trial"] for p in ev["trials"]]
            self.stages[k] = {**ev, "trials": ids}  # ids only: the records hold the rest (and a snapshot, ids)
            self.queue.update(dict.fromkeys(ids))
        elif kind == "release" and t is not None and t.state is State.RUNNING and ev["attempt"] == t.attempt:
            t.state, t.worker = State.PLANNED, None
            t.lost += 1 if ev.get("lost") else 0
            t.epochs_done = ev.get("epochs_done", t.epochs_done)
            self.requeued[t.trial] = None
        elif kind == "stage_done":
            self.stages_done.add(ev["stage"])
        elif kind == "done":
            self.done = True
        elif kind == "stop":
            self.stop = True
        elif kind == "resume":
            self.stop = self.done = False

    def next_queued(self) -> Iterator[str]:
        # no copy of the queue (O(trials) per claim): callers stop iterating before they append
        yield from self.requeued
        yield from self.queue

    def stage_trials(self, k: int) -> list[TrialRecord]:
        return [self.trials[tid] for tid in self.stages.get(k, {}).get("trials", [])]

    @property
    def current_stage(self) -> int:
        return max(self.stages, default=0)


def _decode(lines: list[bytes], state: SweepState) -> list[Any]:
    """Parse JSON lines; torn or garbage lines are counted in state.bad_lines and skipped.

    Many lines are parsed as one JSON array (one C call instead of one per line: 100,000 trials
    fold about twice as fast); if that fails, or yields another count, line by line.
    """
    body = [line for line in lines if line.strip()]
    if len(body) > 1:
        try:
            events = json.loads(b"[" + b",".join(body) + b"]")
            if len(events) == len(body):
                return events
        except ValueError:
            pass
    events = []
    for line in body:
        try:
            events.append(json.loads(line))
        except ValueError:
            state.bad_lines += 1  # a writer killed mid-line; the event was never committed
    return events


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
    POLL_S = 0.001          # a hold is a read and an append: well under a millisecond

    def __init__(self, path: Path, lock_kind: str = "auto", timeout: float = 120.0,
                 snapshot: Path | None = None) -> None:
        self.path = path
        self.snapshot_path = snapshot   # a compacted fold of the journal's head (hpsearch/snapshot.py)
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
        for ev in _decode(lines, self.state):
            if isinstance(ev, dict):
                try:
                    self.state.apply(ev)
                except (KeyError, TypeError, ValueError):
                    self.state.bad_lines += 1
        return self.state

    def _load_snapshot(self, f: Any) -> None:
        from . import snapshot

        self._try_snapshot = False  # only the first read may start from it
        got = snapshot.load(self.snapshot_path, f)
        if got is not None:
            vars(self.state).update(vars(got[0]))  # in place: a caller may hold self.state already
            self._offset = got[1]

    def write_snapshot(self) -> bool:
        """Write the folded state, and the offset it folds up to, as the snapshot (a cache: False
        when there is nothing to write or it could not be written, which costs only speed)."""
        from . import snapshot

        path = self.snapshot_path
        if path is None or self._partial or self._offset == 0:
            return False   # a torn last line is pending: no offset stands for exactly this state
        try:
            with open(self.path, "rb") as f:
                check = snapshot.journal_check(f, self._offset)
        except OSError:
            return False
        return snapshot.write(path, snapshot.encode(self.state, self._offset, check))

    # -- writing -------------------------------------------------------------------------
    def locked(self) -> "_Locked":
        return _Locked(self)

    def append_locked(self, events: list[dict[str, Any]]) -> None:
        """Append events; the caller holds the lock and has refreshed the state."""
        now = time.time()
        payload = b"".join(json.dumps({**e, "t": e.get("t", now)}, separators=(",", ":")).encode() + b"\n"
                           for e in events)
        try:
            with open(self.path, "a+b") as f:   # one open both checks the last byte and appends
                if f.seek(0, os.SEEK_END) > 0 and self._ends_torn(f):
                    payload = b"\n" + payload  # isolate a torn line left by a killed writer
                f.write(payload)
        except OSError as e:
            raise StoreError(f"cannot write {self.path}: {e.strerror} (is the disk full or read-only?)") from None
        self.refresh()

    def _ends_torn(self, f: Any) -> bool:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"

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
                self.j._lock.acquire(timeout=min(5.0, max(0.0, deadline - time.monotonic())),
                                     poll_interval=self.j.POLL_S)
                return self.j
            except filelock.Timeout:
                if self.j.lock_kind == "soft" and self._break_stale_soft_lock():
                    continue
                if time.monotonic() >= deadline:
                    raise StoreError(self._timeout_message()) from None
            except OSError as e:
                raise StoreError(f"cannot create lock file {self.j.lock_path}: {e.strerror} "
                                 "(is the sweep directory writable?)") from None

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
        return (f"could not take the lock {self.j.lock_path} within {self.j.timeout:.0f} s on host "
                f"{socket.gethostname()}: another process holds it, or the filesystem does not support "
                "fcntl locks (some NFS mounts without lockd, some FUSE filesystems). "
                "Fix: check that no stuck hpsearch process holds it; on such filesystems set `lock: soft` "
                "in the sweep file (a soft lock left by a dead process is broken after "
                f"{Journal.SOFT_LOCK_STALE_S:.0f} s)")


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
