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


def test_a_mostly_diverged_lr_range_reaches_a_decade_below_the_threshold(tmp_path):
    (tmp_path / "hot.py").write_text(HOT)
    doc = {
        "name": "hot",
        "seed": 0,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"python": "hot:fit"},
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.1, "max": 10.0}},
        "stages": [{"trials": 16, "epochs": 1}, {"trials": 8, "epochs": 1}],
        "workers": 1,
    }
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
