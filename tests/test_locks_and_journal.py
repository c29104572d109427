"""Locks held by other processes, stale locks of dead ones, and torn journal lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import noop_sweep, plan, run_cli, write_sweep

from hpsearch.errors import StoreError
from hpsearch.store.fold import State
from hpsearch.store.journal import Journal, break_soft_lock
from hpsearch.store.sweepdir import Store

HOLD = """
import sys, time, filelock
lock = (filelock.SoftFileLock if sys.argv[2] == "soft" else filelock.FileLock)(sys.argv[1], timeout=20)
lock.acquire()
print("held", flush=True)
if sys.argv[3] == "die":
    import os; os._exit(0)     # dies holding it: no release, no clean-up
time.sleep(60)
"""


def _holder(lock: Path, kind: str, then: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), kind, then], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


@pytest.fixture
def root(tmp_path: Path) -> Path:
    plan(write_sweep(tmp_path, noop_sweep(trials=4, epochs=1)), tmp_path / "d")
    return tmp_path / "d"


@pytest.fixture
def soft_root(tmp_path: Path) -> Path:
    plan(write_sweep(tmp_path, noop_sweep(trials=4, epochs=1, lock="soft")), tmp_path / "d")
    assert not (tmp_path / "d" / "journal.jsonl.lock").exists()  # a soft lock leaves no file behind
    return tmp_path / "d"


def test_held_lock_times_out_with_one_line_naming_the_lock(root: Path) -> None:
    holder = _holder(root / "journal.jsonl.lock", "hard", "hold")
    try:
        store = Store(root, lock_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(StoreError) as e:
            store.claim("w1")
        assert time.monotonic() - t0 < 5
        msg = str(e.value)
        assert "\n" not in msg
        assert str(root / "journal.jsonl.lock") in msg and "another process holds it" in msg
        assert "lock: soft" in msg  # the fix for filesystems without fcntl locks
        # the holder dies: the kernel frees its lock at once, the sweep goes on
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert [t.trial for t in store.claim("w1")] == ["s1-t0000"]
    finally:
        holder.kill()
        holder.wait()


def test_soft_lock_left_by_a_dead_process_on_this_host_is_broken(soft_root: Path) -> None:
    holder = _holder(soft_root / "journal.jsonl.lock", "soft", "die")
    holder.wait()
    assert (soft_root / "journal.jsonl.lock").exists()
    t0 = time.monotonic()
    assert [t.trial for t in Store(soft_root, lock="soft", lock_timeout=10).claim("w1")] == ["s1-t0000"]
    assert time.monotonic() - t0 < 5


def test_soft_lock_of_another_host_is_broken_once_stale(soft_root: Path) -> None:
    lock = soft_root / "journal.jsonl.lock"
    lock.write_text("4242\nsome-other-host\n")  # filelock's marker: pid, host (not probeable from here)
    store = Store(soft_root, lock="soft", lock_timeout=0.5)
    with pytest.raises(StoreError, match="within 0 s"):
        store.claim("w1")  # young: it may be a live holder on that host
    old = time.time() - Journal.SOFT_LOCK_STALE_S - 5
    os.utime(lock, (old, old))
    assert [t.trial for t in store.claim("w1")] == ["s1-t0000"]


def test_breaking_a_stale_soft_lock_never_removes_a_fresh_one(tmp_path: Path) -> None:
    lock = tmp_path / "journal.jsonl.lock"
    lock.write_text("4242\nsome-other-host\n")
    judged = lock.stat()  # waiter B judges this file stale ...
    lock.unlink()  # ... waiter A breaks it first and takes the lock anew
    lock.write_text(f"{os.getpid()}\nthis-host\n")
    break_soft_lock(lock, judged)  # B's late break must leave A's lock in place
    assert lock.read_text() == f"{os.getpid()}\nthis-host\n"
    assert [p.name for p in tmp_path.iterdir()] == [lock.name]
    break_soft_lock(lock, lock.stat())  # the file judged is the one there: it goes
    assert list(tmp_path.iterdir()) == []


def test_soft_lock_held_by_a_live_process_is_respected(soft_root: Path) -> None:
    holder = _holder(soft_root / "journal.jsonl.lock", "soft", "hold")
    try:
        with pytest.raises(StoreError, match="journal.jsonl.lock"):
            Store(soft_root, lock="soft", lock_timeout=0.5).claim("w1")
    finally:
        holder.kill()
        holder.wait()


def test_master_stop_uses_the_sweeps_soft_lock(soft_root: Path) -> None:
    r = run_cli("master", "stop", str(soft_root))
    assert r.returncode == 0, r.stderr
    assert Store(soft_root).refresh().stop
    assert not (soft_root / "journal.jsonl.lock").exists()  # no hard lock file beside the soft ones


def test_torn_last_line_readers_tolerate_it_next_writer_isolates_it(root: Path) -> None:
    journal = root / "journal.jsonl"
    reader = Store(root)
    reader.refresh()
    with open(journal, "ab") as f:
        f.write(b'{"ev":"claim","trial":"s1-t0003","worker":"ghost","att')  # killed mid-append
    # readers: the torn tail is neither an event nor an error
    for st in (reader.refresh(), Store(root).refresh()):
        assert st.trials["s1-t0003"].state is State.PLANNED and st.bad_lines == 0
    r = run_cli("report", str(root), "--format", "json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["runs"]) == 4

    # the next writer starts a fresh line; the torn one stays a single skipped line
    writer = Store(root)
    claimed = writer.claim("w1", n=2)
    assert [t.trial for t in claimed] == ["s1-t0000", "s1-t0001"]
    for st in (reader.refresh(), Store(root).refresh()):
        assert st.bad_lines == 1
        assert st.trials["s1-t0000"].state is State.RUNNING and st.trials["s1-t0000"].worker == "w1"
        assert st.trials["s1-t0003"].state is State.PLANNED
    raw = journal.read_bytes().split(b"\n")
    assert raw[-1] == b"" and sum(1 for line in raw if line.startswith(b'{"ev":"claim","trial":"s1-t0003"')) == 1
    assert writer.finish("s1-t0000", 1, "finished", 0.5, 1, 1)
    assert Store(root).refresh().trials["s1-t0000"].state is State.FINISHED


def test_torn_metrics_line_does_not_swallow_the_next_epoch(root: Path) -> None:
    store = Store(root)
    rec = store.claim("w1")[0]
    store.trial_files_ready(rec)
    store.append_metrics(rec.trial, {"epoch": 1, "attempt": 1, "val_acc": 0.1})
    with open(store.layout.metrics_file(rec.trial), "ab") as f:
        f.write(b'{"epoch": 2, "attempt": 1, "val_')
    store.append_metrics(rec.trial, {"epoch": 2, "attempt": 2, "val_acc": 0.2})
    assert [(m["epoch"], m["val_acc"]) for m in store.metrics(rec.trial)] == [(1, 0.1), (2, 0.2)]
