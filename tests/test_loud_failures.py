"""Failures are loud, through the real CLI: a stage in which every trial fails stops the sweep
with a non-zero exit and the reasons grouped; the same error early stops it early; the report
shows each failed run's reason; messages speak the trainable's own terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import count_events, run_cli, start_master, write, write_sweep

from hpsearch.report.failures import group_failures, reason_key, same_error_early
from hpsearch.store.fold import State, TrialRecord
from hpsearch.store.sweepdir import Store

FAST = "heartbeat: 0.2\nstale_after: 3\n"


def _sweep(trainable: str, trials: int = 4, extra: str = "") -> str:
    return (
        "name: loud\nmetric: {name: val_acc, goal: maximize}\n"
        f"trainable: {trainable}\n"
        "parameters:\n  lr: {distribution: log_uniform_values, min: 0.001, max: 0.1}\n"
        f"stages:\n  - {{trials: {trials}, epochs: 2}}\n  - {{trials: 2, epochs: 2}}\n"
        f"workers: 2\n{FAST}{extra}"
    )


CRASH_IN_EPOCH_2 = """
def fit(params, trial):
    for epoch in trial.epoch_range:
        if epoch == 2:
            raise RuntimeError(f"boom in epoch {epoch}")
        trial.report(epoch, val_acc=0.5)
"""
WRONG_METRIC_PROGRAM = """
import json, os
for epoch in range(1, int(os.environ["HPSEARCH_EPOCHS"]) + 1):
    with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"epoch": epoch, "accuracy": 0.5}) + "\\n")
"""
MISSING_DATA_PROGRAM = """
import sys
open("data/train.csv").read()
"""
UNMODIFIED_SCRIPT = """
import sys
print("training with", sys.argv[1:])
"""


@pytest.mark.parametrize(
    "case, files, trainable, expect",
    [
        (
            "crash in epoch 2",
            {"ut_crash.py": CRASH_IN_EPOCH_2},
            "{python: 'ut_crash:fit'}",
            ["4 x failed: exception: RuntimeError: boom in epoch 2; see ", "/trials/s1-t0000/error.txt"],
        ),
        (
            "wrong metric name",
            {"train.py": WRONG_METRIC_PROGRAM},
            "{command: [python3, train.py]}",
            ["4 x failed: program failed: metrics line 1: no number 'val_acc' (the sweep's metric); keys: accuracy"],
        ),
        (
            "missing data file",
            {"train.py": MISSING_DATA_PROGRAM},
            "{command: [python3, train.py]}",
            [
                "4 x failed: program failed: python3 exited with code 1",
                "FileNotFoundError",
                "data/train.csv",
                "worker.log",
            ],
        ),
        (
            "unmodified script",
            {"train.py": UNMODIFIED_SCRIPT},
            "{command: [python3, train.py, --lr, '{lr}']}",
            ["4 x failed: the program exited 0 without writing a metrics line", "$HPSEARCH_METRICS_FILE"],
        ),
    ],
)
def test_a_stage_in_which_every_trial_fails_stops_the_sweep_loudly(
    tmp_path: Path, case: str, files: dict[str, str], trainable: str, expect: list[str]
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    sweep = write_sweep(tmp_path, _sweep(trainable, extra="max_failures: 100\n"))
    root = tmp_path / "d"
    r = start_master(sweep, root, timeout=240)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr
    out = r.stdout
    assert "Stage 1: 4 of 4 trials failed or diverged, none finished:" in out
    for piece in expect:
        assert piece in out, (case, out[-3000:])
    assert "report()" not in out or "python" in trainable  # a program has no report() to call
    assert f"hpsearch master start {sweep} --dir NEW_DIR" in out
    assert "(no runs)" not in out
    st = Store(root).refresh()
    assert 2 not in st.stages  # no empty next stage
    assert st.stop and st.stop_reason == "stage 1: no trial finished"
    # the report says why, per run, and that the stage had nothing usable
    rep = run_cli("report", str(root), check=True).stdout
    assert "reason" in rep.splitlines()[2] and "failed" in rep
    assert "stage 1 had no usable run" in rep and "nothing stands out" not in rep
    assert "then run the sweep in a new directory" in rep  # nothing left to resume
    status = run_cli("master", "status", str(root), check=True).stdout
    assert "stopped (stage 1: no trial finished)" in status and "left in stage" not in status
    # resuming would fail the same way: status says what the master said
    assert "then run it in a new directory: hpsearch master start" in status and "resume with" not in status


def test_the_same_error_in_the_first_trials_stops_the_sweep_early(tmp_path: Path) -> None:
    write(tmp_path / "ut_crash.py", CRASH_IN_EPOCH_2)
    sweep = write_sweep(tmp_path, _sweep("{python: 'ut_crash:fit'}", trials=40, extra="max_failures: 3\n"))
    root = tmp_path / "d"
    r = start_master(sweep, root, timeout=240)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr
    st = Store(root).refresh()
    c = {s: sum(1 for t in st.trials.values() if t.state is s) for s in State}
    assert c[State.FAILED] >= 3 and c[State.FINISHED] == 0 and c[State.RUNNING] == 0
    assert c[State.PLANNED] >= 30  # the rest of the stage was not burnt
    assert "Stopped early (the first 3 results of stage 1 failed with the same error" in r.stdout
    assert f"x failed: exception: RuntimeError: boom in epoch 2; see {root}/trials/" in r.stdout
    assert f"then resume with: hpsearch master start {sweep} --dir {root} (the failed trials stay failed" in r.stdout
    assert count_events(root, "stage") == 1
    # the report's advice agrees with the master's (it said "a new directory" here)
    rep = run_cli("report", str(root), check=True).stdout
    assert "then resume the sweep with the same `hpsearch master start` command" in rep and "new directory" not in rep
    # fixed, the same command goes on: the trials not run yet run (the old failures stop nothing)
    failed = {t.trial for t in st.trials.values() if t.state is State.FAILED}
    write(
        tmp_path / "ut_crash.py",
        "def fit(params, trial):\n    for e in trial.epoch_range:\n        trial.report(e, val_acc=0.4)\n",
    )
    r = start_master(sweep, root, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    st = Store(root).refresh()
    assert st.done and {t.trial for t in st.trials.values() if t.state is State.FAILED} == failed


def test_a_stage_with_some_finished_runs_goes_on(tmp_path: Path) -> None:
    write(
        tmp_path / "ut_half.py",
        "def fit(params, trial):\n    if params['lr'] > 0.01:\n        raise ValueError('lr too high')\n"
        "    for e in trial.epoch_range:\n        trial.report(e, val_acc=params['lr'])\n",
    )
    sweep = write_sweep(tmp_path, _sweep("{python: 'ut_half:fit'}", trials=8, extra="max_failures: 3\nseed: 1\n"))
    root = tmp_path / "d"
    r = start_master(sweep, root, timeout=240)
    st = Store(root).refresh()
    firsts = st.stage_trials(1)
    assert any(t.state is State.FINISHED for t in firsts) and any(t.state is State.FAILED for t in firsts)
    assert r.returncode in (0, 1), r.stderr  # stage 2 samples near the finished runs; it may fail too
    assert 2 in st.stages
    rep = run_cli("report", str(root), "--format", "json", check=True).stdout
    runs = json.loads(rep)["runs"]
    assert {x["reason"] for x in runs if x["status"] == "failed"} == {"exception: ValueError: lr too high"}


# -- the grouping, as a function ---------------------------------------------------------------------
def _rec(i: int, state: State, reason: str | None) -> TrialRecord:
    return TrialRecord(f"s1-t{i:04d}", 1, f"s1-t{i:04d}", {}, 0, 2, state=state, reason=reason)


def test_reasons_that_differ_only_in_numbers_are_one_group() -> None:
    assert reason_key("boom in epoch 1") == reason_key("boom in epoch 12") == "boom in epoch #"
    assert reason_key("lr 1.5e-3 too high") == reason_key("lr 0.2 too high")
    assert reason_key("boom") != reason_key("bang")
    recs = [
        _rec(0, State.FAILED, "RuntimeError: boom in epoch 1"),
        _rec(1, State.FAILED, "OSError: disk"),
        _rec(2, State.FAILED, "RuntimeError: boom in epoch 2"),
        _rec(3, State.DIVERGED, "diverged"),
        _rec(4, State.FINISHED, None),
        _rec(5, State.FAILED, "RuntimeError: boom in epoch 3"),
    ]
    groups = group_failures(recs)
    assert [(g.count, g.status, g.reason, g.trial) for g in groups] == [
        (3, "failed", "RuntimeError: boom in epoch 1", "s1-t0000"),
        (1, "failed", "OSError: disk", "s1-t0001"),
        (1, "diverged", "diverged", "s1-t0003"),
    ]


def test_same_error_early_needs_n_results_all_failed_with_one_error() -> None:
    same = [_rec(i, State.FAILED, f"boom {i}") for i in range(3)]
    planned = [_rec(9, State.PLANNED, None)]
    assert same_error_early(same + planned, 3)
    assert not same_error_early(same[:2] + planned, 3)
    assert not same_error_early([*same, _rec(3, State.FINISHED, None)], 3)
    assert not same_error_early([*same[:2], _rec(3, State.FAILED, "other")], 3)


def test_trials_that_fail_at_once_stop_at_max_failures_across_workers(tmp_path: Path) -> None:
    """Failing in milliseconds, two workers burnt 8 of 8 trials before the master's next look: each
    worker's count in a row stayed below max_failures. The workers now apply the master's rule."""
    write(tmp_path / "ut_instant.py", "def fit(params, trial):\n    trial.report(1, accuracy=0.5)\n")
    sweep = write_sweep(tmp_path, _sweep("{python: 'ut_instant:fit'}", trials=16, extra="max_failures: 3\n"))
    root = tmp_path / "d"
    r = start_master(sweep, root, timeout=240)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr
    st = Store(root).refresh()
    failed = sum(1 for t in st.trials.values() if t.state is State.FAILED)
    assert 3 <= failed <= 3 + 2  # the limit, plus at most one trial in each worker's hands
    assert "Stopped early (the first 3 results of stage 1 failed with the same error" in r.stdout
    logs = "".join(p.read_text() for p in (root / "workers").glob("local-*.out"))
    assert "leaving: the first 3 results of stage 1 failed with the same error (max_failures: 3)" in logs
