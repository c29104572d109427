"""A hung trainable and a full disk, for real: `epoch_timeout` kills a hung program (or restarts a
worker whose in-process trainable hangs) and the sweep goes on; ENOSPC on a small tmpfs stops
the sweep with a clear reason, leaves the journal whole, and the sweep resumes once space is freed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from helpers import (
    count_events,
    events,
    kill_pids,
    noop_sweep,
    plan,
    run_cli,
    spawn,
    start_master,
    wait_for,
    worker_pids,
    write,
    write_sweep,
)

from hpsearch.store.fold import State
from hpsearch.store.sweepdir import Store

HANGING_PROGRAM = """
import json, os, time
for epoch in range(int(os.environ["HPSEARCH_START_EPOCH"]) + 1, int(os.environ["HPSEARCH_EPOCHS"]) + 1):
    if epoch == 2 and os.environ["HPSEARCH_TRIAL_ID"] == "s1-t0001":
        time.sleep(3600)  # a deadlocked data loader
    with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"epoch": epoch, "val_acc": 0.5 + 0.01 * epoch}) + "\\n")
"""
HANGING_FIT = """
import threading

def fit(params, trial):
    for epoch in trial.epoch_range:
        if epoch == 2 and trial.id == "s1-t0001":
            threading.Event().wait()  # a stuck collective: nothing can interrupt it
        trial.report(epoch, val_acc=0.5 + 0.01 * epoch)
"""


def _sweep(trainable: str, retries: int, workers: int = 1, trials: int = 4) -> str:
    return (
        "name: hangs\nmetric: {name: val_acc, goal: maximize}\n"
        f"trainable: {trainable}\n"
        "parameters:\n  lr: {distribution: uniform, min: 0.1, max: 0.9}\n"
        f"stages:\n  - {{trials: {trials}, epochs: 3}}\n"
        f"workers: {workers}\nheartbeat: 0.2\nstale_after: 3\nepoch_timeout: 2\nretries: {retries}\n"
    )


@pytest.mark.parametrize(
    "kind, files, trainable",
    [
        ("command", {"train.py": HANGING_PROGRAM}, "{command: [python3, train.py], grace: 1}"),
        ("python", {"ut_hang.py": HANGING_FIT}, "{python: 'ut_hang:fit'}"),
    ],
)
def test_a_hung_trainable_is_timed_out_and_the_worker_goes_on(
    tmp_path: Path, kind: str, files: dict[str, str], trainable: str
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    sweep = write_sweep(tmp_path, _sweep(trainable, retries=1))
    root = tmp_path / "d"
    r = start_master(sweep, root, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    st = Store(root).refresh()
    hung = st.trials["s1-t0001"]
    assert hung.state is State.FAILED
    assert hung.reason.startswith("timeout: epoch 2 of 3 took longer than epoch_timeout 2 s"), hung.reason
    # its finished epoch 1 is kept, as a failure by exception keeps it (it was recorded as 0 epochs, no best)
    assert (hung.best, hung.best_epoch, hung.epochs_done) == (pytest.approx(0.51), 1, 1)
    # retried once, like a lost worker, then failed: two claims, one timed-out release first
    evs = [e for e in events(root) if e.get("trial") == "s1-t0001"]
    assert [e["ev"] for e in evs if e["ev"] != "stage"] == ["claim", "release", "claim", "result"]
    assert evs[1]["lost"] and evs[1]["reason"].startswith("timeout: ")
    assert {t.state for tid, t in st.trials.items() if tid != "s1-t0001"} == {State.FINISHED}
    log = "".join(p.read_text() for p in (root / "workers").glob("local-*.out"))
    assert "s1-t0001: timeout: epoch 2 of 3" in log
    if kind == "python":
        # the stuck thread could not be stopped: the worker started itself afresh, in the same process slot
        assert "starting the worker afresh" in log
        assert log.count("joined sweep hangs") == 3
    if kind == "command":
        assert log.count("joined sweep hangs") == 1  # the worker itself never stopped


def test_epoch_timeout_must_be_a_positive_number(tmp_path: Path) -> None:
    for bad in ("0", "-3", "soon", "[1]"):
        text = _sweep("{builtin: noop}", retries=0).replace("epoch_timeout: 2", f"epoch_timeout: {bad}")
        sweep = write_sweep(tmp_path, text)
        r = run_cli("master", "start", str(sweep), "--dir", str(tmp_path / "d"))
        assert r.returncode == 2 and "epoch_timeout: seconds one epoch may take" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "d").exists()


# -- disk full ----------------------------------------------------------------------------------------
def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs: a real filesystem that fills up (needs root, as in CI)."""
    if not _can_mount():
        pytest.skip("mounting a tmpfs needs root and mount(8); CI runs this as root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount -t tmpfs failed (no CAP_SYS_ADMIN in this container?): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path) -> None:
    """Write zeros until the filesystem refuses (ENOSPC): nothing is left for anyone."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 64, 1):  # big blocks, then whatever crumbs are left
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)


def test_a_full_disk_stops_the_sweep_cleanly_and_it_resumes_when_space_is_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    sweep = write_sweep(
        tmp_path,
        "name: full\nmetric: {name: val_acc, goal: maximize}\ntrainable: {builtin: noop, sleep: 0.1}\n"
        "parameters:\n  metric_value: {distribution: uniform, min: 0.1, max: 0.9}\n"
        "stages:\n  - {trials: 30, epochs: 3}\nworkers: 2\nheartbeat: 0.2\nstale_after: 3\n",
    )
    root = small_disk / "d"
    m = spawn("master", "start", str(sweep), "--dir", str(root), capture=True)
    try:
        wait_for(lambda: count_events(root, "result") >= 3, 120, "three results", proc=m)
        _fill(small_disk / "filler")
        out, err = m.communicate(timeout=180)
        assert m.returncode == 2, out[-2000:] + err
        assert err.startswith("hpsearch: error: ") and len(err.strip().splitlines()) == 1
        assert f"the disk holding {root} is full" in err and "free some space, then resume with: hpsearch" in err
        wait_for(lambda: not [p for p in worker_pids(root) if os.path.exists(f"/proc/{p}")], 60, "workers to exit")
        # the journal is whole: every line is a complete event (a cut-off append was cut back)
        raw = (root / "journal.jsonl").read_bytes()
        assert raw.endswith(b"\n")
        st = Store(root).refresh()
        assert st.bad_lines == 0
        assert not [t for t in st.trials.values() if t.state is State.FAILED]  # the disk's fault, not the trials'
        logs = "".join(p.read_text() for p in (root / "workers").glob("local-*.out"))
        assert "leaving: the disk is full" in logs
        leaving = [ln for ln in logs.splitlines() if "leaving: the disk is full" in ln]
        assert all(ln.count("free space, then resume") == 1 for ln in leaving), leaving  # said once
        # free the space: the same command finishes the sweep, every trial once
        (small_disk / "filler").unlink()
        r = run_cli("master", "start", str(sweep), "--dir", str(root), timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        st = Store(root).refresh()
        assert st.done and {t.state for t in st.trials.values()} == {State.FINISHED} and len(st.trials) == 30
        results = Counter(e["trial"] for e in events(root) if e.get("ev") == "result")
        assert set(results.values()) == {1}
    finally:
        kill_pids([m.pid, *worker_pids(root)])


def test_a_no_workers_master_stops_on_a_full_disk_from_its_own_beat(tmp_path: Path, small_disk: Path) -> None:
    """Hand-started workers leave with code 4, which never reaches a --no-workers master: it kept
    waiting with a growing ETA while status called it dead. Its own beat now tells it."""
    sweep = write_sweep(
        tmp_path,
        "name: full\nmetric: {name: val_acc, goal: maximize}\ntrainable: {builtin: noop, sleep: 0.1}\n"
        "parameters:\n  metric_value: {distribution: uniform, min: 0.1, max: 0.9}\n"
        "stages:\n  - {trials: 30, epochs: 3}\nheartbeat: 0.2\nstale_after: 3\n",
    )
    root = small_disk / "d"
    m = spawn("master", "start", str(sweep), "--dir", str(root), "--no-workers", capture=True)
    w = None
    try:
        wait_for(lambda: count_events(root, "stage") >= 1, 60, "stage 1", proc=m)
        w = spawn("worker", "--dir", str(root), log=tmp_path / "worker.log")
        wait_for(lambda: count_events(root, "result") >= 3, 120, "three results", proc=m)
        _fill(small_disk / "filler")
        out, err = m.communicate(timeout=180)
        assert m.returncode == 2, out[-2000:] + err
        assert err.startswith("hpsearch: error: ") and len(err.strip().splitlines()) == 1
        assert f"the disk holding {root} is full" in err and "--no-workers" in err  # the resume keeps it
    finally:
        kill_pids([m.pid] + ([w.pid] if w is not None else []))


def test_a_worker_started_on_a_full_disk_leaves_with_code_4_and_one_line(tmp_path: Path, small_disk: Path) -> None:
    """It exited 2 with a bare StoreError: the master and a Slurm array read 4 as 'disk full'."""
    sweep = write_sweep(tmp_path, noop_sweep("full", trials=4, epochs=1))
    root = small_disk / "d"
    plan(sweep, root)
    _fill(small_disk / "filler")
    r = run_cli("worker", "--dir", str(root), timeout=120)
    assert r.returncode == 4, r.stdout + r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if "leaving:" in ln]
    assert "leaving: the disk is full: cannot write " in line and "(No space left on device)" in line, line
    assert line.count("the disk is full") == 1 and line.count("free space, then resume") == 1, line
    trials = Store(root).refresh().trials.values()
    assert trials and {t.state for t in trials} == {State.PLANNED}  # nothing claimed, nothing lost
