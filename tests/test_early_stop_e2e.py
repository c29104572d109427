"""Early stopping end to end: the real CLI, real worker processes, a real sweep directory.

A pruned trial from every trainable kind (built-in noop and classifier, population training,
a Python function, a command program), W&B's early_terminate giving the same run as its
early_stop form, and many workers deciding at one rung: every decision in the journal is the
rule applied to the rung values recorded before it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import events, metrics, run_cli, spawn, wait_for, write, write_sweep

from hpsearch.search import earlystop as es
from hpsearch.store import sweepfile
from hpsearch.store.fold import SweepState
from hpsearch.store.sweepdir import Store

NOOP: dict[str, Any] = {
    "name": "es",
    "seed": 3,
    "metric": {"name": "val_acc", "goal": "maximize"},
    "trainable": {"builtin": "noop"},
    "parameters": {"metric_value": {"distribution": "uniform", "min": 0.1, "max": 0.9}},
    "heartbeat": 0.2,
    "stale_after": 5,
}


def start(tmp: Path, doc: dict[str, Any], timeout: float = 300) -> tuple[Path, Any]:
    f = write_sweep(tmp, yaml.safe_dump(doc, sort_keys=False))
    d = tmp / "run"
    p = run_cli("master", "start", str(f), "--dir", str(d), timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return d, p


def check_journal(d: Path) -> SweepState:
    """Replay the journal: each rung decision is the stage's rule applied to the values recorded at
    that rung before it; a pruned trial stopped at a rung that said stop, and trained no further."""
    sweep, _ = sweepfile.load(d / "sweep.yaml")
    maximize = sweep.metric.goal == "maximize"
    state = SweepState()
    decided = 0
    for ev in events(d):
        if ev.get("ev") == "rung":
            t = state.trials[ev["trial"]]
            rule = sweep.early_stop_for(t.stage)
            assert ev["epoch"] in rule.rungs(t.epochs)
            before = state.rung_values(t.stage, ev["epoch"], exclude=t.trial)
            assert es.decide(rule, ev["epoch"], ev["value"], before, maximize).stop is ev["stop"], ev
            decided += 1
        state.apply(ev)
    assert decided, "no rung decision was taken"
    for t in state.trials.values():
        stops = [r for r in t.rungs or () if r[2]]
        if t.state.value == "pruned":
            assert len(stops) == 1 and stops[0][0] == t.epochs_done < t.epochs
            assert t.reason and t.reason.startswith(f"pruned at epoch {t.epochs_done}")
            assert [m["epoch"] for m in metrics(d, t.trial)][-1] == t.epochs_done  # its epochs are kept
        else:
            assert not stops
    return state


def statuses(state: SweepState) -> dict[str, str]:
    return {t.trial: t.state.value for t in state.trials.values()}


# -- the built-in noop: the rule, the report, the stage file -------------------------------------
def test_asha_prunes_through_the_cli_and_report_shows_the_rungs(tmp_path: Path) -> None:
    doc = {**NOOP, "stages": [{"trials": 12, "epochs": 9}], "early_stop": {"type": "asha", "eta": 3}, "workers": 2}
    d, p = start(tmp_path, doc)
    state = check_journal(d)
    pruned = [t for t in state.trials.values() if t.state.value == "pruned"]
    finished = [t for t in state.trials.values() if t.state.value == "finished"]
    assert pruned and finished and len(pruned) + len(finished) == 12
    # the checkpoint of a pruned trial's last epoch is kept (best_last)
    for t in pruned:
        last = metrics(d, t.trial)[-1]["checkpoint"]
        assert (d / "checkpoints" / last).is_file()
    assert "pruned" in p.stdout and "Early stopping:" in p.stdout
    saved = sum(t.epochs - t.epochs_done for t in pruned)
    stage = json.loads((d / "stages" / "stage-1.json").read_text())
    assert stage["counts"]["pruned"] == len(pruned) and stage["early_stopping"]["epochs_saved"] == saved
    assert [r["epoch"] for r in stage["early_stopping"]["per_rung"]] == [1, 3]
    # ranked: every finished configuration before any pruned one; pruned runs are not "not ranked"
    flags = [r["pruned"] for r in stage["ranking"]]
    assert flags == sorted(flags) and flags.count(True) == len(pruned)
    assert all(r["status"] != "pruned" for r in stage["not_ranked"])

    r = run_cli("report", str(d), check=True)
    assert f"{len(pruned)} trial(s) pruned, {saved} of 108 planned epochs saved" in r.stdout
    assert "rung epoch   1: 12 reached" in r.stdout
    j = json.loads(run_cli("report", str(d), "--format", "json", check=True).stdout)
    assert j["early_stopping"][0]["pruned"] == len(pruned)
    assert [r["status"] for r in j["runs"]] == ["finished"] * len(finished) + ["pruned"] * len(pruned)
    values = [r["value"] for r in j["runs"] if r["status"] == "pruned"]
    assert values == sorted(values, reverse=True)  # pruned runs rank among themselves by what they reached
    html = tmp_path / "report.html"
    run_cli("report", str(d), "--html", str(html), check=True)
    assert "<table id='early-stopping'>" in html.read_text() and f"{len(pruned)} pruned" in html.read_text()


def test_wandb_early_terminate_runs_the_same_sweep_as_its_early_stop_form(tmp_path: Path) -> None:
    """One worker (a fixed arrival order): W&B's hyperband {min_iter: 1, eta: 3} prunes the very
    trials that early_stop {type: asha, min_epochs: 1, eta: 3} prunes, and is no longer warned about."""
    base = {**NOOP, "stages": [{"trials": 10, "epochs": 4}], "workers": 1}
    d1, p1 = start(tmp_path / "ours", {**base, "early_stop": {"type": "asha", "min_epochs": 1, "eta": 3}})
    d2, p2 = start(tmp_path / "wandb", {**base, "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3}})
    s1, s2 = check_journal(d1), check_journal(d2)
    assert statuses(s1) == statuses(s2) and "pruned" in statuses(s1).values()
    assert "warning" not in p2.stdout + p2.stderr  # early_terminate is honoured, no longer "not used"
    assert "Early stopping:\n  stage 1: asha (eta 3, rungs [1, 3, 9" in p2.stdout


def test_median_rule_and_a_stage_that_turns_it_off(tmp_path: Path) -> None:
    doc = {
        **NOOP,
        "early_stop": {"type": "median", "min_trials": 2},
        "stages": [{"trials": 10, "epochs": 3}, {"trials": 4, "epochs": 3, "early_stop": "none"}],
        "workers": 1,  # a fixed arrival order: which trials the median rule stops is then fixed too
    }
    d, p = start(tmp_path, doc)
    state = check_journal(d)
    assert "pruned" in statuses(state).values()
    assert all(t.state.value == "finished" and not t.rungs for t in state.stage_trials(2))


# -- every trainable kind ------------------------------------------------------------------------
def test_a_python_trainable_sees_stoptrial_when_pruned(tmp_path: Path) -> None:
    write(
        tmp_path / "es_fit.py",
        """
        import hpsearch

        def fit(params, trial):
            try:
                for epoch in trial.epoch_range:
                    trial.report(epoch, val_acc=params["x"] * (1 - 0.5 ** epoch))
            except hpsearch.StopTrial as e:
                (trial.trial_dir / "stopped.txt").write_text(e.reason)
                raise
        """,
    )
    doc = {
        **NOOP,
        "trainable": {"python": "es_fit:fit"},
        "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}},
        "stages": [{"trials": 8, "epochs": 4}],
        "early_stop": "asha",
        "workers": 1,
    }
    d, _ = start(tmp_path, doc)
    state = check_journal(d)
    pruned = [t.trial for t in state.trials.values() if t.state.value == "pruned"]
    assert pruned
    for tid in pruned:
        assert (d / "trials" / tid / "stopped.txt").read_text().startswith("pruned at epoch")
    for t in state.trials.values():
        assert (d / "trials" / t.trial / "stopped.txt").exists() is (t.trial in pruned)


def test_a_command_program_gets_sigterm_when_pruned(tmp_path: Path) -> None:
    write(
        tmp_path / "prog.py",
        """
        import json, os, signal, sys, time

        def on_term(signum, frame):
            with open(os.path.join(os.environ["HPSEARCH_TRIAL_DIR"], "sigterm.txt"), "w") as f:
                f.write("got SIGTERM")
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_term)
        x = float(sys.argv[1])
        recorded = os.path.join(os.environ["HPSEARCH_TRIAL_DIR"], "metrics.jsonl")
        for epoch in range(1, int(os.environ["HPSEARCH_EPOCHS"]) + 1):
            with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
                f.write(json.dumps({"epoch": epoch, "val_acc": x * (1 - 0.5 ** epoch)}) + "\\n")
            # wait until the worker has recorded the epoch (a busy machine may take a while), then
            # give a pruned program's SIGTERM time to arrive before the next epoch
            for _ in range(1200):
                if os.path.exists(recorded) and f'"epoch": {epoch},' in open(recorded).read():
                    break
                time.sleep(0.05)
            if epoch == 1:  # the rung of this sweep (asha, eta 3, 3 epochs)
                time.sleep(3.0)
        """,
    )
    doc = {
        **NOOP,
        "trainable": {"command": [sys.executable, "prog.py", "{x}"], "grace": 60},
        "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}},
        "stages": [{"trials": 5, "epochs": 3}],
        "early_stop": {"type": "asha", "eta": 3},
        "workers": 1,
    }
    d, _ = start(tmp_path, doc)
    state = check_journal(d)
    pruned = {t.trial for t in state.trials.values() if t.state.value == "pruned"}
    assert pruned and len(pruned) < 5
    for t in state.trials.values():
        assert (d / "trials" / t.trial / "sigterm.txt").exists() is (t.trial in pruned)


@pytest.mark.parametrize("population", [1, 8])
def test_the_builtin_classifier_prunes_alone_and_in_a_population(tmp_path: Path, population: int) -> None:
    """With `population: 8` one worker trains the 8 trials together; pruned members leave the
    batch at their rung and the others train on to the last epoch."""
    doc = {
        **NOOP,
        "trainable": {
            "builtin": "classifier",
            "dataset": "digits",
            "hidden": [16],
            "max_batches": 4,
            "population": population,
        },
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 0.5}},
        "stages": [{"trials": 8, "epochs": 3}],
        "early_stop": {"type": "asha", "eta": 2},
        "workers": 1,
    }
    d, _ = start(tmp_path, doc)
    state = check_journal(d)
    done = {t.trial: t.epochs_done for t in state.trials.values()}
    pruned = [t for t in state.trials.values() if t.state.value == "pruned"]
    assert pruned and any(t.state.value == "finished" for t in state.trials.values())
    for t in state.trials.values():
        assert len(metrics(d, t.trial)) == done[t.trial] == (3 if t.state.value == "finished" else done[t.trial])
    if population > 1:
        claims = [e for e in events(d) if e["ev"] == "claim"]
        assert len(claims) == 8 and len({e["t"] for e in claims}) == 1  # one batch, claimed at once


# -- many workers deciding at once ---------------------------------------------------------------
def test_four_workers_decide_consistently_from_the_journal(tmp_path: Path) -> None:
    doc = {
        **NOOP,
        "stages": [{"trials": 40, "epochs": 5}],
        "early_stop": {"type": "median", "min_trials": 1},
    }
    f = write_sweep(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    d = tmp_path / "run"
    # four workers started by hand, 10 trials each at most: every one of them decides (on a busy
    # machine one worker the master started could claim all 40 before the others have imported torch)
    master = spawn("master", "start", str(f), "--dir", str(d), "--no-workers", capture=True)
    try:
        wait_for(
            lambda: (d / "journal.jsonl").exists() and any(e["ev"] == "stage" for e in events(d)),
            120,
            "stage 1 planned",
            proc=master,
        )
        workers = [spawn("worker", "--dir", str(d), "--max-trials", "10") for _ in range(4)]
        for w in workers:
            assert w.wait(timeout=300) == 0
        out, err = master.communicate(timeout=300)
        assert master.returncode == 0, out[-3000:] + err[-3000:]
    finally:
        if master.poll() is None:
            master.kill()
    state = check_journal(d)
    assert len({t.worker for t in state.trials.values()}) == 4  # decided by four processes
    assert "pruned" in statuses(state).values() and Store(d).refresh().done


def test_dry_run_shows_each_stages_rule_and_rungs(tmp_path: Path) -> None:
    """--dry-run names the rule and its rung epochs per stage (a user trial found it silent), and a W&B
    rule's long band list is shortened."""
    doc = {
        **NOOP,
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3},
        "stages": [{"trials": 9, "epochs": 27}, {"trials": 3, "epochs": 2, "early_stop": "none"}],
    }
    f = write_sweep(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    p = run_cli("master", "start", str(f), "--dir", str(tmp_path / "run"), "--dry-run", check=True)
    assert (
        "stage 1: 9 trial(s) x 27 epoch(s), early stopping asha (eta 3, rungs [1, 3, 9, 27, ...]) at epoch(s) [1, 3, 9]"
        in p.stdout
    )
    stage2 = next(line for line in p.stdout.splitlines() if line.strip().startswith("stage 2:"))
    assert "early stopping" not in stage2
    assert not (tmp_path / "run").exists()
