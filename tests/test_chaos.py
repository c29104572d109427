"""Chaos and contention: workers SIGKILLed at random during a real sweep; 8 workers on 1,000 trials.

Both print the figures quoted in README "Reliability" (run with `-s` to see them).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import alive, events, kill_pids, noop_sweep, plan, run_cli, spawn, wait_for, worker_pids, write_sweep

from hpsearch.store.fold import State
from hpsearch.store.sweepdir import Store

pytestmark = pytest.mark.slow


def _training_workers(root: Path) -> list[int]:
    """Pids of live workers that are training right now (killing those hits a trial mid-way)."""
    out = []
    for hb in (root / "workers").glob("*.json"):
        try:
            info = json.loads(hb.read_text())
        except (OSError, ValueError):
            continue
        if info.get("state") == "training" and alive(int(info["pid"])):
            out.append(int(info["pid"]))
    return out


def test_chaos_random_sigkills_lose_and_double_nothing(tmp_path: Path) -> None:
    rng = random.Random(1234)
    per_stage, epochs, workers, kills_wanted = [40, 12], 4, 4, 6
    sweep = write_sweep(tmp_path, noop_sweep("chaos", trials=per_stage, epochs=epochs, sleep=0.15, workers=workers))
    root = tmp_path / "d"
    t0 = time.monotonic()
    master = spawn("master", "start", str(sweep), "--dir", str(root), log=tmp_path / "master.log")
    kills = 0
    try:
        wait_for(lambda: (root / "workers").exists() and _training_workers(root), 120, "a training worker")
        while kills < kills_wanted and master.poll() is None:
            time.sleep(rng.uniform(0.3, 1.5))
            victims = _training_workers(root)
            if victims:
                signal_pid = rng.choice(victims)
                try:
                    os.kill(signal_pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
        assert master.wait(timeout=300) == 0, (tmp_path / "master.log").read_text()[-3000:]
        elapsed = time.monotonic() - t0
    finally:
        kill_pids([master.pid, *worker_pids(root)])
    assert kills >= 5, f"only {kills} kills landed before the sweep ended"
    log = (tmp_path / "master.log").read_text()
    assert "replacement worker" in log

    # every planned trial: exactly one result; finished, or failed with a reason
    evs = events(root)
    st = Store(root).refresh()
    assert len(st.trials) == sum(per_stage)
    results = Counter(e["trial"] for e in evs if e.get("ev") == "result")
    assert set(results) == set(st.trials) and set(results.values()) == {1}
    for t in st.trials.values():
        assert t.state is State.FINISHED or (t.state is State.FAILED and t.reason), (t.trial, t.state, t.reason)
    finished = sum(t.state is State.FINISHED for t in st.trials.values())
    assert finished >= len(st.trials) - kills  # a kill can fail at most the one trial it hit
    lost = sum(1 for e in evs if e.get("ev") == "release" and e.get("lost"))
    assert lost >= 1  # kills hit trials mid-way and those were requeued

    # no truncated checkpoint: every file loads without unpickling anything
    ckpts = sorted((root / "checkpoints").glob("*.pt"))
    assert ckpts
    for p in ckpts:
        payload = torch.load(p, map_location="cpu", weights_only=True)
        assert payload["trial"] in st.trials

    # `report` agrees with each trial's metrics.jsonl
    r = run_cli("report", str(root), "--format", "json")
    assert r.returncode == 0, r.stderr
    runs = json.loads(r.stdout)["runs"]
    assert len(runs) == sum(per_stage)
    store = Store(root)
    for run in runs:
        if run["status"] != "finished":
            continue
        lines = store.metrics(run["trial"])
        assert [m["epoch"] for m in lines] == list(range(1, run["of_epochs"] + 1)), run["trial"]
        best = max(lines, key=lambda m: m["val_acc"])
        # (report's JSON keeps 10 significant digits, as pandas writes floats)
        assert run["val_acc"] == pytest.approx(best["val_acc"], rel=1e-9), run["trial"]
        assert run["best_epoch"] == best["epoch"], run["trial"]
        assert run["epochs"] == run["of_epochs"]
        payload = torch.load(root / "checkpoints" / run["checkpoint"], weights_only=True)
        assert payload["epoch"] == run["best_epoch"] and payload["metrics"]["val_acc"] == pytest.approx(
            run["val_acc"], rel=1e-9
        )
    finished = sum(run["status"] == "finished" for run in runs)
    print(
        f"\nchaos: {kills} SIGKILLs, {sum(per_stage)} trials x {epochs} epochs, {workers} workers, "
        f"{lost} trials requeued, {finished} finished, {sum(per_stage) - finished} failed, "
        f"{len(ckpts)} checkpoints load, {elapsed:.1f} s, {st.bad_lines} torn journal line(s)"
    )


def test_eight_workers_claim_1000_trials_exactly_once(tmp_path: Path) -> None:
    n_trials, n_workers = 1000, 8
    root = tmp_path / "d"
    plan(write_sweep(tmp_path, noop_sweep("contention", trials=n_trials, epochs=1, stale_after=60)), root)
    t0 = time.monotonic()
    # the journal's lock is held until every worker has joined: otherwise, on a slow machine, the first
    # workers to start can claim all 1000 trials before the last ones have imported torch
    gate = os.open(root / "journal.jsonl.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(gate, fcntl.LOCK_EX)
    logs = [tmp_path / f"w{i}.log" for i in range(n_workers)]
    procs = [
        spawn("worker", "--dir", str(root), "--exit-when-idle", "--id", f"w{i}", log=logs[i]) for i in range(n_workers)
    ]
    try:
        while not all(log.exists() and "joined sweep" in log.read_text() for log in logs):
            assert all(p.poll() is None for p in procs), [log.read_text()[-1000:] for log in logs if log.exists()]
            time.sleep(0.1)
        os.close(gate)  # releases the lock: eight workers contend for it from the first claim
        gate = -1
        codes = [p.wait(timeout=500) for p in procs]
    finally:
        if gate >= 0:
            os.close(gate)
        kill_pids([p.pid for p in procs])
    elapsed = time.monotonic() - t0
    assert codes == [0] * n_workers, [(tmp_path / f"w{i}.log").read_text()[-1000:] for i in range(n_workers)]

    raw = (root / "journal.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    evs = [json.loads(line) for line in raw.splitlines()]  # every line parses
    claims = Counter(e["trial"] for e in evs if e["ev"] == "claim")
    results = Counter(e["trial"] for e in evs if e["ev"] == "result")
    st = Store(root).refresh()
    assert len(st.trials) == n_trials and st.bad_lines == 0
    assert set(claims) == set(st.trials) and set(claims.values()) == {1}
    assert set(results) == set(st.trials) and set(results.values()) == {1}
    assert {t.state for t in st.trials.values()} == {State.FINISHED}
    by_worker = Counter(e["worker"] for e in evs if e["ev"] == "claim")
    assert len(by_worker) == n_workers  # all of them took part
    for t in st.trials.values():
        assert len(Store(root).metrics(t.trial)) == 1
    print(
        f"\ncontention: {n_workers} workers, {n_trials} trials claimed and finished exactly once in "
        f"{elapsed:.1f} s (incl. start-up); claims per worker {sorted(by_worker.values())}"
    )
