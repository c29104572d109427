"""One master per sweep, through real processes: a second live master is refused, two racing
masters leave one running, a master killed with kill -9 and started again adopts the workers
that still run, `--detach` survives its terminal, SIGHUP releases the trials cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from helpers import (
    alive,
    count_events,
    events,
    kill_pids,
    noop_sweep,
    run_cli,
    spawn,
    stop_released_or_finished,
    wait_for,
    worker_pids,
    write_sweep,
)

from hpsearch.store.fold import State
from hpsearch.store.liveness import HOST, master_alive, my_pid_start
from hpsearch.store.sweepdir import Store


def _assert_exact(root: Path, per_stage: list[int]) -> None:
    """Every planned trial finished with exactly one result; no stage planned twice."""
    evs = events(root)
    kinds = Counter(e.get("ev") for e in evs)
    assert kinds["stage"] == len(per_stage) and kinds["stage_done"] == len(per_stage) and kinds["done"] >= 1
    st = Store(root).refresh()
    assert [len(st.stage_trials(k)) for k in range(1, len(per_stage) + 1)] == per_stage
    results = Counter(e["trial"] for e in evs if e.get("ev") == "result")
    assert set(results) == set(st.trials) and set(results.values()) == {1}
    assert {t.state for t in st.trials.values()} == {State.FINISHED}


def _live_workers(root: Path) -> list[int]:
    return [p for p in worker_pids(root) if alive(p)]


def test_a_second_master_is_refused_while_the_first_is_alive(tmp_path: Path) -> None:
    # stale_after 30 s: on a busy machine a late beat never makes the live master look gone
    sweep = write_sweep(tmp_path, noop_sweep(trials=[12], epochs=3, sleep=0.2, workers=2, stale_after=30))
    root = tmp_path / "d"
    first = spawn("master", "start", str(sweep), "--dir", str(root), log=tmp_path / "m1.log")
    try:
        wait_for(lambda: count_events(root, "claim") >= 2, 90, "two claims", proc=first)
        info = json.loads((root / "master.json").read_text())
        assert info["pid"] == first.pid and info["state"] == "running"
        before = [e for e in events(root) if e.get("ev") in ("resume", "created", "stage")]
        second = run_cli("master", "start", str(sweep), "--dir", str(root), timeout=60)
        assert second.returncode == 2
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("hpsearch: error: ")
        assert f"already has a live master (pid {first.pid} on " in err[0] and "last beat" in err[0]
        assert "hpsearch master stop" in err[0]
        # the refused master wrote nothing and started no worker
        assert [e for e in events(root) if e.get("ev") in ("resume", "created", "stage")] == before
        assert json.loads((root / "master.json").read_text())["pid"] == first.pid
        assert len(worker_pids(root)) <= 2
        status = run_cli("master", "status", str(root), check=True).stdout
        assert f"master: alive (pid {first.pid} on " in status
        # the first master is untouched by the attempt: it finishes the sweep
        assert first.wait(timeout=120) == 0
        _assert_exact(root, [12])
        assert len(worker_pids(root)) == 2
    finally:
        kill_pids([first.pid, *worker_pids(root)])


def test_two_masters_racing_on_one_directory_leave_one_running(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[8, 4], epochs=2, sleep=0.05, workers=2, stale_after=30))
    root = tmp_path / "d"
    a = spawn("master", "start", str(sweep), "--dir", str(root), capture=True)
    b = spawn("master", "start", str(sweep), "--dir", str(root), capture=True)
    try:
        outs = [p.communicate(timeout=180) for p in (a, b)]
        codes = sorted([a.returncode, b.returncode])
        assert codes == [0, 2], outs
        loser = outs[[a.returncode, b.returncode].index(2)]
        assert loser[1].startswith("hpsearch: error: ") and len(loser[1].strip().splitlines()) == 1
        _assert_exact(root, [8, 4])
        assert len(worker_pids(root)) == 2  # the loser started none
    finally:
        kill_pids([a.pid, b.pid, *worker_pids(root)])


def test_a_master_killed_and_started_again_adopts_the_workers_that_still_run(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[16, 4], epochs=2, sleep=0.1, workers=2))
    root = tmp_path / "d"
    m = spawn("master", "start", str(sweep), "--dir", str(root), log=tmp_path / "m1.log")
    m2 = None
    try:
        wait_for(lambda: count_events(root, "result") >= 2 and len(_live_workers(root)) == 2, 90, "training", proc=m)
        m.send_signal(signal.SIGKILL)
        m.wait()
        orphans = _live_workers(root)
        assert len(orphans) == 2
        status = run_cli("master", "status", str(root), check=True).stdout
        assert "master: none alive since " in status and f"pid {m.pid}) stopped beating or was killed" in status
        assert f"resume with: hpsearch master start {sweep} --dir {root}" in status
        m2 = spawn("master", "start", str(sweep), "--dir", str(root), capture=True)
        peak = 0
        while m2.poll() is None:  # the sweep never has more than `workers` workers at once
            peak = max(peak, len(_live_workers(root)))
            time.sleep(0.05)
        out, err = m2.communicate()
        assert m2.returncode == 0, out[-2000:] + err
        assert "2 still running from the previous master, kept" in out
        assert peak <= 2
        assert sorted(worker_pids(root)) == sorted(orphans)  # no new worker was started
        _assert_exact(root, [16, 4])
        wait_for(lambda: not _live_workers(root), 30, "the adopted workers to leave")
    finally:
        kill_pids([m.pid, *([m2.pid] if m2 else []), *worker_pids(root)])


def test_detach_runs_in_the_background_and_status_and_stop_work_on_it(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[40], epochs=5, sleep=0.1, workers=1))
    root = tmp_path / "d"
    r = run_cli("master", "start", str(sweep), "--dir", str(root), "--detach", timeout=120)
    pid = None
    try:
        assert r.returncode == 0, r.stderr
        assert "Master running in the background (pid" in r.stdout and str(root / "master.log") in r.stdout
        pid = json.loads((root / "master.json").read_text())["pid"]
        assert alive(pid)  # the command returned; the master runs on (own session, no terminal)
        wait_for(lambda: count_events(root, "result") >= 1, 90, "a result")
        status = run_cli("master", "status", str(root), check=True).stdout
        assert f"master: alive (pid {pid} on " in status
        stop = run_cli("master", "stop", str(root), check=True).stdout
        assert "the master exits" in stop
        wait_for(lambda: not alive(pid), 60, "the background master to exit")
        log = (root / "master.log").read_text()
        assert "Sweep faults" in log and "Stopped (hpsearch master stop). Resume with: hpsearch master start" in log
        st = Store(root).refresh()
        assert not [t for t in st.trials.values() if t.state in (State.RUNNING, State.FAILED)]
        status = run_cli("master", "status", str(root), check=True).stdout
        assert "stopped (hpsearch master stop)" in status and "master: none alive" in status and "exited" in status
        assert "left in stage" not in status  # no ETA for a stopped sweep
    finally:
        kill_pids([*([pid] if pid else []), *worker_pids(root)])


def test_sighup_releases_the_trials_and_the_master_says_so_in_master_log(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[12], epochs=4, sleep=0.2, workers=2))
    root = tmp_path / "d"
    m = spawn("master", "start", str(sweep), "--dir", str(root), log=tmp_path / "m.log")
    try:
        wait_for(lambda: count_events(root, "claim") >= 2, 90, "two claims", proc=m)
        m.send_signal(signal.SIGHUP)
        assert m.wait(timeout=90) == 129
        st = Store(root).refresh()
        assert st.stop and st.stop_reason == "terminal closed (SIGHUP)"
        assert not [t for t in st.trials.values() if t.state in (State.RUNNING, State.FAILED)]
        assert stop_released_or_finished(root)
        log = (root / "master.log").read_text()
        assert "Stopping (terminal closed (SIGHUP))" in log
        assert f"Resume with: hpsearch master start {sweep} --dir {root}" in log  # the real file name
        wait_for(lambda: not _live_workers(root), 30, "workers to exit")
        # and it resumes: the same command finishes the sweep
        r = run_cli("master", "start", str(sweep), "--dir", str(root), timeout=180)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        _assert_exact(root, [12])
    finally:
        kill_pids([m.pid, *worker_pids(root)])


def test_a_master_on_another_host_is_judged_by_its_last_beat(tmp_path: Path) -> None:
    """No process to look at on another host: a fresh beat refuses, a stale one is taken over."""
    # stale_after 60 s: a busy test machine's start-up time never makes the fresh beat stale
    sweep = write_sweep(tmp_path, noop_sweep(trials=[4], epochs=1, workers=1, stale_after=60))
    root = tmp_path / "d"
    r = run_cli("master", "start", str(sweep), "--dir", str(root), timeout=120)
    assert r.returncode == 0, r.stderr
    other = {"host": "node-elsewhere", "pid": 4242, "state": "running", "beat": 9}
    (root / "master.json").write_text(json.dumps({**other, "time": time.time()}))
    before = (root / "journal.jsonl").read_bytes()
    r = run_cli("master", "start", str(sweep), "--dir", str(root), timeout=120)
    assert r.returncode == 2 and "already has a live master (pid 4242 on node-elsewhere, last beat" in r.stderr
    assert (root / "journal.jsonl").read_bytes() == before  # refused: nothing written
    status = run_cli("master", "status", str(root), check=True).stdout
    assert "master: alive (pid 4242 on node-elsewhere" in status
    # its beat goes stale (older than stale_after): taken over (--force: a plain start of this
    # finished sweep only reports it, writing nothing, master.json included)
    (root / "master.json").write_text(json.dumps({**other, "time": time.time() - 600}))
    r = run_cli("master", "start", str(sweep), "--dir", str(root), "--force", timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads((root / "master.json").read_text())
    assert info["host"] != "node-elsewhere" and info["state"] == "exited"


def test_master_alive_rules() -> None:
    now = 1_000_000.0
    info = {"host": "node-elsewhere", "pid": 1, "time": now - 5, "state": "running"}
    assert master_alive(info, 30, now)
    assert not master_alive({**info, "time": now - 31}, 30, now)
    assert not master_alive({**info, "state": "exited"}, 30, now)
    assert not master_alive(None, 30, now)
    # on this host the process decides: a fresh beat from a pid that is gone is no master
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not master_alive({"host": HOST, "pid": gone.pid, "time": now - 5}, 30, now)
    mine = {"host": HOST, "pid": os.getpid(), "pid_start": my_pid_start(), "time": now - 5}
    assert master_alive(mine, 30, now)
    assert not master_alive({**mine, "pid_start": "1"}, 30, now)  # the pid was reused by another process


def test_a_copy_of_a_running_sweep_is_its_own_directory(tmp_path: Path) -> None:
    """`cp -r` of a running sweep looked alive: status named the original's master and workers as
    its own, and `master start` on the copy was refused while the original ran."""
    sweep = write_sweep(tmp_path, noop_sweep(trials=12, epochs=3, sleep=0.5, workers=2))
    root, copy = tmp_path / "d", tmp_path / "copy"
    m = spawn("master", "start", str(sweep), "--dir", str(root), capture=True)
    try:
        wait_for(lambda: count_events(root, "claim") >= 2, 120, "two trials claimed", proc=m)
        shutil.copytree(root, copy)
        running = [t for t in Store(copy).refresh().trials.values() if t.state is State.RUNNING]
        status = run_cli("master", "status", str(copy), check=True).stdout
        assert f"master: none here: this directory is a copy of {root.resolve()}" in status, status
        r = run_cli("master", "start", str(sweep), "--dir", str(copy), timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        # the original's workers hold the copy's running trials: gone from here, requeued
        assert r.stdout.count("this directory is a copy; requeued") == len(running)
        st = Store(copy).refresh()
        assert st.done and {t.state for t in st.trials.values()} == {State.FINISHED}
    finally:
        run_cli("master", "stop", str(root))
        kill_pids([m.pid, *worker_pids(root)])
