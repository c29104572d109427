"""The fast paths keep their guarantees: the flock lock excludes processes and threads, claims stay
unique under contention, the bulk journal fold equals the line-by-line one, and worker.log is only
created when something is printed."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import threading
import time
from pathlib import Path

import filelock
import pytest

from hpsearch.store.flock import FlockLock
from hpsearch.store.fold import State, SweepState
from hpsearch.store.journal import Journal
from hpsearch.store.lazylog import LazyLog
from hpsearch.store.sweepdir import Store


def _bump(path: str, n: int) -> None:
    lock = FlockLock(path + ".lock")
    for _ in range(n):
        with lock:
            p = Path(path)
            v = int(p.read_text() or 0)
            p.write_text(str(v + 1))


def test_flock_excludes_processes_and_threads(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_bump, args=(str(counter), 150)) for _ in range(2)]
    threads = [threading.Thread(target=_bump, args=(str(counter), 150)) for _ in range(2)]
    for w in [*procs, *threads]:
        w.start()
    for w in [*procs, *threads]:
        w.join()
    assert counter.read_text() == "600"  # no lost update: every read-modify-write was exclusive


def _hold(path: str, ready: mp.synchronize.Event, seconds: float) -> None:
    with FlockLock(path):
        ready.set()
        time.sleep(seconds)


def test_flock_times_out_and_is_released_when_holder_dies(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_hold, args=(path, ready, 30))
    p.start()
    assert ready.wait(10)
    lock = FlockLock(path)
    with pytest.raises(filelock.Timeout):
        lock.acquire(timeout=0.2)
    p.kill()  # the kernel drops a dead holder's lock
    p.join()
    lock.acquire(timeout=5)
    lock.acquire(timeout=0)  # re-entrant in one thread
    lock.release()
    assert lock.is_locked
    lock.release()
    assert not lock.is_locked


def _claimer(root: str, worker: str, out: mp.Queue[list[str]]) -> None:
    store = Store(root)
    mine = []
    while True:
        got = store.claim(worker, n=1)
        if not got:
            break
        for t in got:
            assert store.finish(t.trial, t.attempt, "finished", 0.5, 1, 1)
            mine.append(t.trial)
    out.put(mine)


def test_claims_are_unique_under_contention(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.layout.ensure()
    planned = [
        {"trial": f"s1-t{i:04d}", "config": f"s1-t{i:04d}", "params": {}, "seed": i, "epochs": 1} for i in range(300)
    ]
    store.journal.append([{"ev": "stage", "stage": 1, "space": {}, "trials": planned}])
    ctx = mp.get_context("fork")
    q: mp.Queue[list[str]] = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(str(tmp_path), f"w{i}", q)) for i in range(3)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    claimed = [t for g in got for t in g]
    assert sorted(claimed) == sorted(p["trial"] for p in planned)  # each exactly once
    st = Store(tmp_path).refresh()
    assert all(t.state is State.FINISHED and t.attempt == 1 for t in st.trials.values())


def test_bulk_fold_equals_line_by_line_with_torn_and_garbage_lines(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.jsonl")
    planned = [
        {"trial": f"s1-t{i:04d}", "config": f"s1-t{i:04d}", "params": {}, "seed": i, "epochs": 1} for i in range(5)
    ]
    j.append([{"ev": "stage", "stage": 1, "space": {}, "trials": planned}])
    with open(j.path, "ab") as f:
        f.write(b'{"ev":"claim","trial":"s1-t0000","wor')  # a writer killed mid-line
    j2 = Journal(tmp_path / "journal.jsonl")
    j2.append([{"ev": "claim", "trial": "s1-t0001", "worker": "w", "attempt": 1}])  # isolates the torn line
    with open(j.path, "ab") as f:
        f.write(b"not json\n[1, 2]\n")
    j2.append([{"ev": "claim", "trial": "s1-t0002", "worker": "w", "attempt": 1}])
    bulk = Journal(tmp_path / "journal.jsonl").refresh()
    by_line = SweepState()
    for line in j.path.read_bytes().split(b"\n"):
        with contextlib.suppress(ValueError):
            ev = json.loads(line)
            if isinstance(ev, dict):
                by_line.apply(ev)
    assert bulk.bad_lines == 2
    assert {t: r.state for t, r in bulk.trials.items()} == {t: r.state for t, r in by_line.trials.items()}
    assert bulk.trials["s1-t0000"].state is State.PLANNED
    assert bulk.trials["s1-t0001"].state is State.RUNNING and bulk.trials["s1-t0002"].state is State.RUNNING


def test_lazy_log_creates_the_file_only_when_written(tmp_path: Path) -> None:
    quiet, loud = tmp_path / "quiet.log", tmp_path / "loud.log"
    with LazyLog(quiet) as f, contextlib.redirect_stdout(f):
        pass
    with LazyLog(loud) as f, contextlib.redirect_stdout(f):
        print("hello")
    assert not quiet.exists()
    assert loud.read_text() == "hello\n"
