"""A master that was paused past stale_after (SIGSTOP, a frozen VM, a stalled NFS client) and taken
over leaves when it wakes, writing nothing more; a --no-workers master learns of a full disk from
its own beat. Real processes, a real shared directory."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import count_events, spawn, wait_for, write, write_sweep

SLOW = """
import time

def fit(params, trial):
    for epoch in trial.epoch_range:
        time.sleep(0.3)
        trial.report(epoch, val_acc=params["lr"], state={"epoch": epoch})
"""


def test_a_master_whose_sweep_was_taken_over_leaves_and_writes_nothing_more(tmp_path: Path) -> None:
    """The take-over itself (a stale beat) is tested in test_one_master; here the master that was
    paused wakes to find master.json naming its successor: it must leave at once, not finish and
    plan stages beside it (a new user's SIGSTOP/SIGCONT gave two stage_done and two done events)."""
    write(tmp_path / "slow.py", SLOW)
    sweep = write_sweep(
        tmp_path,
        {
            "name": "takeover",
            "metric": {"name": "val_acc", "goal": "maximize"},
            "trainable": {"python": "slow:fit"},
            "parameters": {"lr": {"min": 0.1, "max": 0.9}},
            "stages": [{"trials": 6, "epochs": 2}, {"trials": 4, "epochs": 2}],
            "heartbeat": 0.2,
            "seed": 0,
        },
    )
    root = tmp_path / "run"
    first = spawn("master", "start", str(sweep), "--dir", str(root), "--no-workers", capture=True)
    worker = None
    try:
        wait_for(lambda: count_events(root, "stage") >= 1, 60, "stage 1", proc=first)
        worker = spawn("worker", "--dir", str(root), "--exit-when-idle", log=tmp_path / "worker.log")
        wait_for(lambda: count_events(root, "result") >= 1, 120, "a first result", proc=first)
        successor = {"host": "node-elsewhere", "pid": 4242, "pid_start": "1", "state": "running", "beat": 1}
        (root / "master.json").write_text(json.dumps({**successor, "time": time.time()}))
        out, err = first.communicate(timeout=120)
    finally:
        for p in (first, worker):
            if p is not None and p.poll() is None:
                p.kill()
    assert first.returncode == 2, out + err
    assert "another master (pid 4242 on node-elsewhere) took this sweep over" in err
    assert json.loads((root / "master.json").read_text())["host"] == "node-elsewhere"  # not overwritten
    assert count_events(root, "stage_done") == 0 and count_events(root, "done") == 0
