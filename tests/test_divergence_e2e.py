"""A learning-rate range that mostly diverged reaches a decade below, through the real CLI."""

from __future__ import annotations

import json

from helpers import run_cli, write_sweep

from hpsearch.store.sweepdir import Store

# Most rates above 0.12 blow up (those in (0.2, 0.32) finish); the finished runs score best near
# 0.2, inside the range, so no border flag moves it: only the divergence evidence says to look lower.
HOT = """
import math

from hpsearch import StopTrial


def fit(params, trial):
    lr = params["lr"]
    for epoch in trial.epoch_range:
        if lr > 0.12 and not 0.2 < lr < 0.32:
            trial.stop_reason = "diverged"
            raise StopTrial("diverged: the loss blew up")
        trial.report(epoch, val_acc=0.9 - 0.3 * abs(math.log10(lr / 0.2)))
"""


def python_sweep(name: str, parameters: dict, stages: list, **settings) -> dict:
    """A one-worker sweep of the python trainable `<name>:fit` (written beside it by the test)."""
    return {
        "name": name,
        "seed": 0,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"python": f"{name}:fit", **settings},
        "parameters": parameters,
        "stages": stages,
        "workers": 1,
    }


def test_a_mostly_diverged_lr_range_reaches_a_decade_below_the_threshold(tmp_path):
    (tmp_path / "hot.py").write_text(HOT)
    lr = {"distribution": "log_uniform_values", "min": 0.1, "max": 10.0}
    doc = python_sweep("hot", {"lr": lr}, [{"trials": 16, "epochs": 1}, {"trials": 8, "epochs": 1}])
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    s1 = json.loads((d / "stages" / "stage-1.json").read_text())
    assert not [f for f in s1["border_flags"] if f["param"] == "lr" and f["extends"]]  # no border moved it
    st = Store(d).refresh()
    diverged = sorted(t.params["lr"] for t in st.stage_trials(1) if t.state.value == "diverged")
    threshold = diverged[0]
    line = next(n for n in p.stdout.splitlines() if "lr's range reaches down to" in n)
    assert line.startswith(f"stage 2: most runs at lr >= {threshold:.1e} diverged")
    s2 = json.loads((d / "stages" / "stage-2.json").read_text())
    assert abs(s2["ranges"]["lr"]["low"] - threshold / 10) < 1e-9 * threshold
    assert any("a decade below" in n for n in s2["notes"])  # the stage file (and `report`) keep the line
    assert min(t.params["lr"] for t in st.stage_trials(2)) < 0.1  # stage 2 really samples below the old range
    # the trainable's own words are the recorded reason (it set stop_reason and raised StopTrial)
    assert {t.reason for t in st.stage_trials(1) if t.state.value == "diverged"} == {"diverged: the loss blew up"}


# The loss each epoch reports rises past 3x the first one at lr >= 0.5 (a real divergence, in the
# reported metrics, not inside an epoch): hpsearch's rule stops it and says so in the reason.
RISING = """
def fit(params, trial):
    for epoch in trial.epoch_range:
        loss = 1.0 * (1 + params["lr"] * 10) ** (epoch - 1)
        trial.report(epoch, val_acc=1 / (1 + loss), train_loss=loss)
"""


def test_a_reported_loss_past_diverge_factor_stops_the_run_and_the_reason_says_which(tmp_path):
    (tmp_path / "rising.py").write_text(RISING)
    doc = python_sweep("rising", {"lr": {"values": [0.01, 0.6]}}, [{"trials": 2, "epochs": 3}], diverge_factor=5)
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    st = Store(d).refresh()
    by_lr = {t.params["lr"]: t for t in st.stage_trials(1)}
    assert by_lr[0.01].state.value == "finished"
    # lr 0.6 reports loss 1, then 7: past 5 x the first at epoch 2
    assert by_lr[0.6].state.value == "diverged"
    assert by_lr[0.6].reason == "diverged: train_loss 7 > 5 x first 1"
    table = run_cli("report", str(d), check=True).stdout
    assert "diverged: train_loss 7 > 5 x first 1" in table
