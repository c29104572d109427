"""An objective ported from Optuna: its own pruning is recorded `pruned`, its Optuna habits are told
what to write instead (README "Porting an Optuna objective"), through the real CLI."""

from __future__ import annotations

import json

from helpers import run_cli, write_sweep

from hpsearch.store.sweepdir import Store

# three kinds of trial, by lr: an Optuna-style `raise TrialPruned()` after epoch 2, hpsearch's own
# `trial.prune("why")` after epoch 1, and a run that trains all 3 epochs
PORTED = """
import optuna


def fit(params, trial):
    lr = params["lr"]
    for epoch in trial.epoch_range:
        trial.report(epoch, val_acc=0.1 * epoch + lr, state={"epoch": epoch})
        if lr == 0.3 and epoch == 2:
            raise optuna.TrialPruned("plateau")
        if lr == 0.2 and epoch == 1:
            trial.prune("loss flat")
"""

HABIT = """
def fit(params, trial):
    lr = trial.suggest_float("lr", 1e-4, 1, log=True)
    trial.report(1, val_acc=lr)
"""


def _sweep(name: str) -> dict:
    return {
        "name": name,
        "seed": 0,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"python": f"{name}:fit"},
        "parameters": {"lr": {"values": [0.1, 0.2, 0.3]}},
        "stages": [{"trials": 3, "epochs": 3}],
        "workers": 1,
    }


def test_trial_pruned_and_trial_prune_record_pruned_runs_with_their_epochs(tmp_path):
    (tmp_path / "ported.py").write_text(PORTED)
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, _sweep("ported"))), "--dir", str(d), check=True)
    st = Store(d).refresh()
    by_lr = {t.params["lr"]: t for t in st.stage_trials(1)}
    assert {lr: t.state.value for lr, t in by_lr.items()} == {0.1: "finished", 0.2: "pruned", 0.3: "pruned"}
    assert by_lr[0.3].reason == "pruned by the trainable after epoch 2 (optuna.TrialPruned: plateau)"
    assert by_lr[0.2].reason == "pruned by the trainable after epoch 1: loss flat"
    assert (by_lr[0.3].epochs_done, by_lr[0.2].epochs_done) == (2, 1)
    assert by_lr[0.3].best is not None and abs(by_lr[0.3].best - 0.5) < 1e-9  # its epochs still count
    assert not (d / "trials" / by_lr[0.3].trial / "error.txt").exists()  # not a failure
    assert "pruned" in p.stdout
    report = json.loads(run_cli("report", str(d), "--format", "json", check=True).stdout)
    assert report  # the report reads a sweep with trainable-pruned runs


def test_an_optuna_suggest_call_fails_the_trial_with_what_to_write_instead(tmp_path):
    (tmp_path / "habit.py").write_text(HABIT)
    d = tmp_path / "run"
    doc = _sweep("habit") | {"stages": [{"trials": 1, "epochs": 1}]}
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d))
    (t,) = Store(d).refresh().stage_trials(1)
    assert t.state.value == "failed"
    assert "has no 'suggest_float' (an Optuna Trial method)" in t.reason
    assert "read params['NAME']" in t.reason
