"""The master dies, is interrupted, or is stopped from another terminal: nothing is lost or doubled."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from helpers import (
    alive,
    count_events,
    events,
    kill_pids,
    noop_sweep,
    planned_master,
    run_cli,
    spawn,
    stop_released_or_finished,
    wait_for,
    worker_pids,
    write_sweep,
)

from hpsearch.store.fold import State
from hpsearch.store.sweepdir import Store


def _start(tmp_path: Path, sweep: Path, root: Path, log: str = "master.log"):
    return spawn("master", "start", str(sweep), "--dir", str(root), log=tmp_path / log)


def _training(root: Path, n: int) -> bool:
    """At least n trials claimed and one epoch reported."""
    return count_events(root, "claim") >= n and any((root / "trials").glob("*/metrics.jsonl"))


def _assert_exact(root: Path, per_stage: list[int]) -> None:
    """Every planned trial finished with exactly one result; no extra trial, no stage planned twice."""
    evs = events(root)
    kinds = Counter(e.get("ev") for e in evs)
    assert kinds["stage"] == len(per_stage) and kinds["stage_done"] == len(per_stage) and kinds["done"] >= 1
    st = Store(root).refresh()
    assert [len(st.stage_trials(k)) for k in range(1, len(per_stage) + 1)] == per_stage
    assert len(st.trials) == sum(per_stage)
    results = Counter(e["trial"] for e in evs if e.get("ev") == "result")
    assert set(results) == set(st.trials) and set(results.values()) == {1}
    assert {t.state for t in st.trials.values()} == {State.FINISHED}
    for t in st.trials.values():
        lines = Store(root).metrics(t.trial)
        assert [m["epoch"] for m in lines] == list(range(1, t.epochs + 1)), t.trial


def _assert_released_not_failed(root: Path) -> None:
    st = Store(root).refresh()
    assert st.stop
    assert not [t for t in st.trials.values() if t.state in (State.RUNNING, State.FAILED)]
    assert stop_released_or_finished(root)
    wait_for(lambda: not any(alive(p) for p in worker_pids(root)), 30, "workers to exit")


def test_master_killed_mid_stage_resumes_with_exact_counts(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[24, 8], epochs=2, sleep=0.05, workers=2))
    root = tmp_path / "d"
    m = _start(tmp_path, sweep, root)
    try:
        wait_for(lambda: count_events(root, "result") >= 6, 90, "6 results")
        m.send_signal(signal.SIGKILL)
        m.wait()
        assert Counter(e.get("ev") for e in events(root))["stage_done"] == 0  # killed mid-stage 1
        # the same command again: it continues (its old workers, orphaned, may still be working)
        r = run_cli("master", "start", str(sweep), "--dir", str(root), timeout=180)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        assert "Resuming" in r.stdout
        _assert_exact(root, [24, 8])
        wait_for(lambda: not any(alive(p) for p in worker_pids(root)), 30, "every worker to exit")
    finally:
        kill_pids([m.pid, *worker_pids(root)])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_signal_on_master_releases_trials_and_a_resume_finishes_them(sig: int, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=6, epochs=3, sleep=0.4, workers=2))
    root = tmp_path / "d"
    m = _start(tmp_path, sweep, root)
    try:
        wait_for(lambda: _training(root, 2), 90, "two trials training")
        m.send_signal(sig)
        assert m.wait(timeout=60) == 130
        _assert_released_not_failed(root)
        assert "Resume with" in (tmp_path / "master.log").read_text()
        if sig == signal.SIGINT:
            return  # one resume is enough (SIGTERM's)
        r = run_cli("master", "start", str(sweep), "--dir", str(root), timeout=180)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        _assert_exact(root, [6])
    finally:
        kill_pids([m.pid, *worker_pids(root)])


def test_master_stop_from_another_process(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=6, epochs=3, sleep=0.4, workers=2))
    root = tmp_path / "d"
    m = _start(tmp_path, sweep, root)
    try:
        wait_for(lambda: _training(root, 2), 90, "two trials training")
        r = run_cli("master", "stop", str(root))
        assert r.returncode == 0 and "Stop requested" in r.stdout
        assert m.wait(timeout=60) == 0
        _assert_released_not_failed(root)
    finally:
        kill_pids([m.pid, *worker_pids(root)])


@pytest.mark.parametrize("fast", [False, True])
def test_second_ctrl_c_kills_at_once_and_leaves_the_directory_honest(tmp_path: Path, fast: bool) -> None:
    """Epochs of 20 s: a clean stop would wait for the epoch to end, a second Ctrl-C must not. It
    used to leave no stop event (`fast`: the second came before the first was written), the killed
    workers' trials `running` and master.json `running`: `master status` showed a live stage."""
    sweep = write_sweep(tmp_path, noop_sweep(trials=4, epochs=2, sleep=20, workers=2))
    root = tmp_path / "d"
    m = _start(tmp_path, sweep, root)
    try:
        wait_for(
            lambda: count_events(root, "claim") >= 2 and len(worker_pids(root)) >= 2,
            90,
            "two trials claimed by two workers",
        )
        pids = worker_pids(root)
        m.send_signal(signal.SIGINT)
        if not fast:
            wait_for(lambda: count_events(root, "stop") == 1, 10, "the stop event")
        m.send_signal(signal.SIGINT)
        assert m.wait(timeout=60) == 130  # the epochs in hand (20 s) were not waited for: killed
        assert not any(alive(p) for p in pids)
        assert count_events(root, "stop") == 1
        st = Store(root).refresh()
        assert st.stop and not [t for t in st.trials.values() if t.state is State.RUNNING]
        released = [e for e in events(root) if e.get("ev") == "release"]
        assert len(released) >= 2 and not any(e["lost"] for e in released)  # no retry spent
        assert '"state": "exited"' in (root / "master.json").read_text()
        status = run_cli("master", "status", str(root)).stdout
        assert "(stopped)" in status and "0 running" in status, status
    finally:
        kill_pids([m.pid, *worker_pids(root)])


@pytest.mark.parametrize("done_elsewhere", [True, False])
def test_a_worker_that_left_after_the_last_trial_is_not_replaced(tmp_path: Path, done_elsewhere: bool) -> None:
    """The master sees a worker gone while the journal it read a moment before still had work: it
    must look again before starting a replacement (a Slurm run once got a needless third array).
    With work really left, the same call does start one."""
    from hpsearch.run.launchers import LaunchSpec
    from hpsearch.run.launchers.local import LocalLauncher

    root = tmp_path / "run"
    m = planned_master(write_sweep(tmp_path, noop_sweep(trials=2, workers=1)), root)
    m.launcher = LocalLauncher(LaunchSpec(str(root), 1))  # started nobody: alive() == 0
    assert not any(t.state.is_finished for t in m.store.state.stage_trials(1))  # as the master last read it
    if done_elsewhere:
        run_cli("worker", "--dir", str(root), "--exit-when-idle", check=True, timeout=120)
    try:
        m._check_workers(1)
        assert m.launcher.restarts == (0 if done_elsewhere else 1)
        assert len(m.launcher.procs) == m.launcher.restarts
    finally:
        m.launcher.stop(grace=5)
