"""Dead, slow and failing workers: requeue and resume from the checkpoint, retry limit, claim tokens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import count_events, events, kill_pids, noop_sweep, plan, spawn, wait_for, write_sweep

from hpsearch.errors import StopTrial
from hpsearch.store.fold import State
from hpsearch.store.sweepdir import Store, read_jsonl
from hpsearch.trainables.trial import Trial


def _lines(root: Path, trial: str) -> list[dict]:
    return read_jsonl(root / "trials" / trial / "metrics.jsonl")


def test_killed_worker_is_resumed_from_its_checkpoint_then_failed_after_the_retry_limit(tmp_path: Path) -> None:
    root = tmp_path / "d"
    plan(write_sweep(tmp_path, noop_sweep(trials=1, epochs=12, sleep=0.3, retries=1)), root)
    tid = "s1-t0000"
    procs = []
    try:
        # worker A trains 2+ epochs, then is SIGKILLed mid-trial
        a = spawn("worker", "--dir", str(root), log=tmp_path / "a.log")
        procs.append(a)
        wait_for(lambda: len(_lines(root, tid)) >= 2, 60, "worker A's second epoch")
        a.send_signal(signal.SIGKILL)
        a.wait()
        killed_a = time.time()
        done_by_a = max(x["epoch"] for x in _lines(root, tid))

        # worker B (no master runs): sees A is gone, requeues the trial and resumes it
        b = spawn("worker", "--dir", str(root), log=tmp_path / "b.log")
        procs.append(b)
        wait_for(lambda: any(x["time"] > killed_a for x in _lines(root, tid)), 60, "worker B's first epoch")
        b.send_signal(signal.SIGKILL)
        b.wait()
        lines = _lines(root, tid)
        old = [x for x in lines if x["time"] <= killed_a]
        new = [x for x in lines if x["time"] > killed_a]
        # epochs A had checkpointed are kept, not redone; B went on from the next one
        assert [x["epoch"] for x in old] == list(range(1, len(old) + 1)) and len(old) >= done_by_a - 1
        assert new and new[0]["epoch"] == len(old) + 1
        # each epoch keeps the attempt that trained it (A's kept epochs were relabelled 2 once)
        assert {x["attempt"] for x in old} == {1} and {x["attempt"] for x in new} == {2}
        claims = [e for e in events(root) if e.get("ev") == "claim"]
        assert [(c["attempt"]) for c in claims] == [1, 2]
        assert [e for e in events(root) if e.get("ev") == "release"][0]["lost"] is True

        # worker C: the trial was lost twice, past `retries: 1`: it is failed with the reason
        c = spawn("worker", "--dir", str(root), "--exit-when-idle", log=tmp_path / "c.log")
        procs.append(c)
        assert c.wait(timeout=60) == 0
        t = Store(root).refresh().trials[tid]
        assert t.state is State.FAILED
        assert "worker lost 2 times (retry limit 1)" in t.reason and "exited" in t.reason
        assert count_events(root, "result") == 1
    finally:
        kill_pids([p.pid for p in procs])


def test_a_slow_worker_that_comes_back_cannot_write_over_the_new_owner(tmp_path: Path) -> None:
    store = plan(write_sweep(tmp_path, noop_sweep(trials=1, epochs=3)), tmp_path / "d")
    slow = store.claim("slow")[0]
    store.trial_files_ready(slow)
    slow_trial = Trial(store, slow, params=slow.params, metric="val_acc", goal="maximize")
    slow_trial.report(1, state={"epoch": 1}, val_acc=0.1)  # resumable: the new owner continues from it

    # the slow worker misses its heartbeats: the trial is requeued and claimed by another worker
    other = Store(tmp_path / "d")
    assert other.requeue_lost({slow.trial: "no heartbeat for 3 s"}, retries=3) == [(slow.trial, "requeued")]
    new = other.claim("fast")[0]
    assert (new.worker, new.attempt) == ("fast", 2)
    new_trial = Trial(other, new, params=new.params, metric="val_acc", goal="maximize")
    assert new_trial.start_epoch == 1  # resumed from the slow worker's checkpoint

    # the slow worker wakes up: every write it tries is refused by the attempt token
    with pytest.raises(StopTrial, match="lost"):
        slow_trial.report(2, val_acc=0.9)
    assert not store.owns(slow.trial, 1)
    assert store.finish(slow.trial, 1, "finished", 0.9, 2, 2) is False
    assert store.release(slow.trial, 1, "stopped") is False
    assert [x["epoch"] for x in other.metrics(slow.trial)] == [1]

    for e in (2, 3):
        new_trial.report(e, val_acc=0.2 * e)
    assert other.finish(new.trial, 2, "finished", new_trial.best, new_trial.best_epoch, 3)
    # a stale result event that slipped into the journal (e.g. written by hand) is ignored by the fold
    store.journal.append([{"ev": "result", "trial": slow.trial, "attempt": 1, "status": "failed"}])
    t = Store(tmp_path / "d").refresh().trials[slow.trial]
    assert (t.state, t.best, t.best_epoch, t.attempt) == (State.FINISHED, pytest.approx(0.6), 3, 2)


def _sweep_with(tmp_path: Path, fail: str, max_failures: int, trials: int) -> Path:
    text = (
        f"name: failing\nmetric: {{name: val_acc, goal: maximize}}\ntrainable: {{builtin: noop}}\n"
        f"parameters:\n  fail: {fail}\n  metric_value: {{distribution: uniform, min: 0.1, max: 0.9}}\n"
        f"stages:\n  - {{trials: {trials}, epochs: 2}}\nmax_failures: {max_failures}\n"
        "heartbeat: 0.2\nstale_after: 2\n"
    )
    return write_sweep(tmp_path, text)


def test_failing_trainable_is_recorded_and_the_worker_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "d"
    plan(_sweep_with(tmp_path, "{values: [true, false]}", 100, 10), root)
    w = spawn("worker", "--dir", str(root), "--exit-when-idle", log=tmp_path / "w.log")
    try:
        assert w.wait(timeout=90) == 0
    finally:
        kill_pids([w.pid])
    st = Store(root).refresh()
    states = {t.trial: t for t in st.trials.values()}
    failed = [t for t in states.values() if t.params["fail"]]
    ok = [t for t in states.values() if not t.params["fail"]]
    assert failed and ok, "the seed must give both kinds"
    for t in failed:
        assert t.state is State.FAILED and t.reason.startswith("exception: RuntimeError")
        err = (root / "trials" / t.trial / "error.txt").read_text()
        assert "Traceback" in err and "noop trainable asked to fail" in err
    for t in ok:
        assert t.state is State.FINISHED and not (root / "trials" / t.trial / "error.txt").exists()


@pytest.mark.parametrize("same_error", [True, False])
def test_worker_stops_after_max_failures_in_a_row(tmp_path: Path, same_error: bool) -> None:
    root = tmp_path / "d"
    sweep = _sweep_with(tmp_path, "{value: true}", 3, 8)
    if not same_error:  # each trial fails its own way (letters: reasons differing in numbers are one)
        (tmp_path / "ut_each.py").write_text(
            "def fit(params, trial):\n    raise RuntimeError('boom ' + 'abcdefgh'[int(trial.id[-1])])\n"
        )
        sweep.write_text(sweep.read_text().replace("{builtin: noop}", "{python: 'ut_each:fit'}"))
    plan(sweep, root)
    w = spawn("worker", "--dir", str(root), log=tmp_path / "w.log", new_session=True)
    try:
        assert w.wait(timeout=90) == 3
    finally:
        kill_pids([w.pid])
    log = (tmp_path / "w.log").read_text()
    # the same error: the sweep-wide rule says so first (report.failures.same_error_early)
    said = "the first 3 results of stage 1 failed with the same error" if same_error else "3 trials failed in a row"
    assert said in log, log
    c = {}
    for t in Store(root).refresh().trials.values():
        c[t.state] = c.get(t.state, 0) + 1
    assert c == {State.FAILED: 3, State.PLANNED: 5}  # the rest of the queue is not burnt
    hb = json.loads(next((root / "workers").glob("*.json")).read_text())
    assert hb["state"] == "exited" and not os.path.exists(f"/proc/{w.pid}/status")


IDLE_WORKER = """
import json, sys, threading, time
from hpsearch.store.sweepdir import Store
from hpsearch.run.worker import Worker, WorkerOptions

reads, polls = [], []
real_reads, real_claim = Store.heartbeats, Store.claim
def counted_reads(self):
    reads.append(time.monotonic())
    if len(reads) >= int(sys.argv[2]):
        w.stop.set()            # enough reads seen: stop after this look, however long it took
    return real_reads(self)
def counted_claim(self, *a, **k):
    polls.append(time.monotonic())
    return real_claim(self, *a, **k)
Store.heartbeats, Store.claim = counted_reads, counted_claim  # counts calls of the real methods
w = Worker(sys.argv[1], WorkerOptions(worker_id="idle", poll=0.05))
guard = threading.Timer(240, w.stop.set)  # only a guard against a hang
guard.daemon = True
guard.start()
w.run()
print(json.dumps({"reads": reads, "polls": polls}))
"""


def test_an_idle_worker_reads_the_heartbeats_once_a_heartbeat_period(tmp_path: Path) -> None:
    """An idle worker (queue empty, one trial running elsewhere) looks for lost trials, which reads
    every worker's heartbeat file (maybe over NFS): once per `heartbeat`, not at every poll.

    Asserted on the order of events, not on wall-clock totals (a busy machine stretches every
    interval): between two reads at least one heartbeat period passes, and polls happen between."""
    sweep = write_sweep(tmp_path, noop_sweep(trials=1, heartbeat=1.0, stale_after=600))
    store = plan(sweep, tmp_path / "run")
    assert store.claim("elsewhere")  # alive for the whole test: stale_after is 600 s
    store.beat("elsewhere", {"beat": 1, "host": "another-host"})
    out = subprocess.run(
        [sys.executable, "-c", IDLE_WORKER, str(tmp_path / "run"), "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    reads, polls = seen["reads"], seen["polls"]
    assert len(reads) == 3, reads
    for a, b in zip(reads, reads[1:]):
        assert b - a >= 1.0 - 1e-3, reads  # polling every 0.05 s would read ~20 times a second
        assert sum(a < p < b for p in polls) >= 1  # the worker kept polling in between, without reading
