"""`master status` and `report --watch` on a real sweep directory with hand-driven workers."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpsearch.cli import main
from hpsearch.report.picture import snapshot
from hpsearch.report.status import status_text
from hpsearch.report.watch import watch_report
from hpsearch.run.master import Master, StartOptions
from hpsearch.run.progress import Progress
from hpsearch.store.sweepdir import Store
from hpsearch.store.sweepfile import load

SWEEP = """
name: watched
metric: {name: val_acc, goal: maximize}
trainable: {builtin: noop}
parameters:
  metric_value: {distribution: uniform, min: 0.1, max: 0.9}
stages:
  - {trials: 4, epochs: 3}
  - {trials: 2, epochs: 3}
heartbeat: 0.2
stale_after: 5
"""


@pytest.fixture
def planned(tmp_path: Path) -> tuple[str, Store]:
    """Stage 1 planned; one trial claimed by a live worker, one finished, one by a silent worker."""
    f = tmp_path / "watched.yaml"
    f.write_text(SWEEP)
    sweep, raw = load(f)
    root = str(tmp_path / "run dir")
    m = Master(sweep, raw, SWEEP, root, StartOptions(), out=Progress(io.StringIO()))
    m.open_directory()
    m.plan(1)
    store = Store(root)
    store.refresh()
    (done,) = store.claim("w-old")
    store.finish(done.trial, done.attempt, "finished", 0.42, 2, 3)
    (mine,) = store.claim("w-live")
    (stuck,) = store.claim("w-old")
    now = time.time()
    store.beat(
        "w-live",
        {
            "host": "node7",
            "pid": os.getpid(),
            "device": "cuda:1",
            "state": "training",
            "trial": mine.trial,
            "epoch": 2,
            "metric": 0.61,
            "time": now,
        },
    )
    store.beat(
        "w-old",
        {
            "host": "node8",
            "pid": 1,
            "device": "cpu",
            "state": "training",
            "trial": stuck.trial,
            "epoch": 1,
            "metric": 0.1,
            "time": now - 120,
        },
    )
    return root, store


def test_status_shows_workers_alive_by_heartbeat_age_and_what_is_left(planned):
    root, _store = planned
    text = status_text(root)
    assert "watched in " + root + ": running stage 1 of 2" in text
    assert "stage 1/2: 1/4 done (2 running, 1 queued, 0 failed, 0 diverged), sweep best val_acc 0.42" in text
    assert "s1-t0001 on w-live (cuda:1): epoch 2/3, val_acc 0.6100" in text
    assert "w-live: alive training s1-t0001 on cuda:1@node7" in text
    assert "w-old: gone  training s1-t0002 on cpu@node8, last heartbeat 2m00s ago" in text
    assert "workers: 1 alive of 2 seen" in text
    assert "left: 3 trial(s) not finished; 2 stage(s) not done (the running one included)" in text
    assert "\033" not in text


def test_a_worker_whose_last_beat_predates_its_claim_shows_the_trial_it_runs(planned):
    """A beat is written once a heartbeat period: one from before the claim still says "starting";
    the journal says which trial the worker runs (master status said "alive starting" beside an
    epoch 7/8 of its trial)."""
    root, store = planned
    (late,) = store.claim("w-new")
    store.beat(
        "w-new", {"host": "node9", "pid": os.getpid(), "device": "cpu", "state": "starting", "time": time.time()}
    )
    text = status_text(root)
    assert f"w-new: alive training {late.trial} on cpu@node9" in text
    assert "starting" not in text


def test_status_eta_from_the_stage_start_in_the_journal(planned):
    _root, store = planned
    st = store.refresh()
    started = st.stages[1]["t"]
    pic = snapshot(
        st, store.heartbeats(), name="w", metric="val_acc", goal="maximize", stages=2, stale_after=5, now=started + 100
    )
    # 1 finished + 2/3 and 1/3 of the running ones (their workers say epoch 2 and 1 of 3) in 100 s
    done = 1 + (2 / 3 + 1 / 3) * 0.999
    assert pic.eta == pytest.approx(100 / done * (4 - done))


def test_cli_status_runs_on_a_directory(planned):
    root, _store = planned
    r = CliRunner().invoke(main, ["master", "status", root])
    assert r.exit_code == 0 and "w-live: alive" in r.output


def test_watch_refreshes_until_the_sweep_ends(planned):
    root, store = planned
    out = io.StringIO()

    def finish_later() -> None:
        time.sleep(0.6)
        store.journal.append([{"ev": "done"}])

    th = threading.Thread(target=finish_later)
    th.start()
    t0 = time.monotonic()
    rc = watch_report(root, interval=0.1, stream=out)
    th.join()
    assert rc == 0 and time.monotonic() - t0 < 30
    text = out.getvalue()
    rounds = text.count("=== ")
    assert rounds >= 2, text
    assert "\033" not in text  # not a terminal: no screen clearing
    assert text.rstrip().split("=== ")[-1].count("watched in") == 1
    assert ": finished" in text.split("=== ")[-1]


def test_watch_on_a_finished_sweep_prints_once_and_clears_a_terminal(planned):
    root, store = planned
    store.journal.append([{"ev": "done"}])

    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = TTY()
    assert watch_report(root, interval=60, stream=out) == 0
    assert out.getvalue().startswith("\033[H\033[2J") and out.getvalue().count("\033[H") == 1


def test_watch_needs_the_table_format(planned):
    root, _ = planned
    r = CliRunner().invoke(main, ["report", root, "--watch", "--format", "json"])
    assert r.exit_code == 2 and "--watch" in r.output


def test_status_says_when_no_worker_is_alive_to_run_the_queued_trials(tmp_path):
    f = tmp_path / "watched.yaml"
    f.write_text(SWEEP)
    sweep, raw = load(f)
    root = str(tmp_path / "run")
    m = Master(sweep, raw, SWEEP, root, StartOptions(no_workers=True), out=Progress(io.StringIO()))
    m.open_directory()
    m.plan(1)
    text = status_text(root)
    assert "no worker is alive: the queued trials wait for one (hpsearch worker --dir " + root in text
    Store(root).beat("w1", {"host": "h", "pid": os.getpid(), "state": "idle", "time": time.time()})
    assert "no worker is alive" not in status_text(root)
