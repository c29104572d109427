"""The Trial handle's bookkeeping: best so far, and what a metrics line may contain."""

from __future__ import annotations

import math

from helpers import claimed_trial


def test_nan_metric_never_becomes_the_best(tmp_path):
    t = claimed_trial(tmp_path)
    t.report(1, val_acc=math.nan, train_loss=1.0)  # a finite loss: not diverged
    assert t.best is None
    t.report(2, val_acc=0.4, train_loss=0.9)
    t.report(3, val_acc=0.3, train_loss=0.8)
    assert (t.best, t.best_epoch) == (0.4, 2)


def test_extras_cannot_overwrite_epoch_attempt_or_metrics(tmp_path):
    t = claimed_trial(tmp_path)
    t.report(1, val_acc=0.5, extras={"epoch": 99, "attempt": 7, "val_acc": 1.0, "losses": [1.0]})
    [line] = t.store.metrics(t.id)
    assert (line["epoch"], line["attempt"], line["val_acc"], line["losses"]) == (1, 1, 0.5, [1.0])
