"""The Trial handle's bookkeeping: best so far, and what a metrics line may contain."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from helpers import claimed_trial

from hpsearch.errors import StopTrial
from hpsearch.report import diagnostics as dg


def test_a_nan_metric_stops_the_run_as_diverged_and_never_becomes_the_best(tmp_path):
    """README: diverged when the metric itself is not finite, a finite train_loss beside it or not (a
    finite loss used to hide it: the run was recorded finished, with no value)."""
    t = claimed_trial(tmp_path)
    t.report(1, val_acc=0.4, train_loss=1.0)
    with pytest.raises(StopTrial, match="diverged: val_acc is nan"):
        t.report(2, val_acc=math.nan, train_loss=0.9)
    assert (t.best, t.best_epoch) == (0.4, 1)
    assert (t.stop_reason, t.diverged_why) == ("diverged", "val_acc is nan")
    t2 = claimed_trial(tmp_path / "other")
    with pytest.raises(StopTrial, match="diverged: val_acc is inf"):
        t2.report(1, val_acc=math.inf)  # no loss at all
    assert t2.best is None


def test_extras_cannot_overwrite_epoch_attempt_or_metrics(tmp_path):
    t = claimed_trial(tmp_path)
    t.report(1, val_acc=0.5, extras={"epoch": 99, "attempt": 7, "val_acc": 1.0, "losses": [1.0]})
    [line] = t.store.metrics(t.id)
    assert (line["epoch"], line["attempt"], line["val_acc"], line["losses"]) == (1, 1, 0.5, [1.0])


def test_a_state_that_cannot_be_read_back_is_refused_at_its_first_report(tmp_path):
    """README: state holds tensors, dicts, lists and numbers. A module class in it was written, then
    never resumed from (weights_only), and the restart blamed a missing state=."""
    import torch.nn as nn

    t = claimed_trial(tmp_path)
    with pytest.raises(ValueError, match=r"report\(state=\.\.\.\): the state cannot be read back.*ReLU"):
        t.report(1, val_acc=0.5, state={"model": {"w": 1.0}, "fn": nn.ReLU})
    assert t.store.metrics(t.id) == [] and not list(t.store.layout.checkpoints.glob("*.pt"))
    t.report(1, val_acc=0.5, state={"model": {"w": 1.0}})  # a plain state goes through
    assert len(list(t.store.layout.checkpoints.glob("*.pt"))) == 1


def test_a_list_reported_as_a_metric_is_told_to_go_in_extras(tmp_path):
    """`report(1, val_acc=0.5, losses=[...])` failed with "must be a number" and no way out; the
    first-epoch loss check wants exactly such a list."""
    trial = claimed_trial(tmp_path, epochs=2)
    with pytest.raises(ValueError, match=r"metric 'losses' must be a number, got \[2\.3, 2\.1\]; pass data that is "):
        trial.report(1, val_acc=0.5, losses=[2.3, 2.1])
    trial.report(1, val_acc=0.5, extras={"losses": [2.3, 2.1, 2.0, 1.9]})
    assert trial.store.metrics(trial.id)[-1]["losses"] == [2.3, 2.1, 2.0, 1.9]


def test_the_first_epoch_loss_check_says_how_to_report_batch_losses():
    runs = pd.DataFrame({"trial": ["s1-t0000"], "status": ["finished"]})
    why = dict(dg.checks(runs, [{"stage": 1}], {"s1-t0000": [{"epoch": 1, "val_acc": 0.5}]}))["first-epoch loss"]
    assert "extras={'losses': [...]}" in why and "metrics line" in why
