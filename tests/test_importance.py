"""Parameter importance (Optuna's PED-ANOVA on an in-memory study) and the parallel-coordinates plot."""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
import pytest

from hpsearch.report.importance import MIN_RUNS, importance, importance_text
from hpsearch.report.plots import all_plots, importance_plot, parallel_coordinates
from hpsearch.report.sweepdata import SweepData
from hpsearch.search import space as sp
from hpsearch.search.config import parse

LR = {"kind": "numeric", "low": 1e-4, "high": 1.0, "log": True, "integer": False, "q": None, "bounds": None}
DROPOUT = dict(LR, low=0.0, high=0.9, log=False)
BATCH = {"kind": "categorical", "values": [32, 64, 128], "probabilities": None}


def data_where_only_lr_matters(n1: int = 60, n2: int = 6, goal: str = "maximize") -> SweepData:
    """Stage 1: n1 runs whose metric is a function of log10(lr) alone (peak at 1e-2); dropout and
    batch are noise. Stage 2: n2 runs (too few for importance)."""
    sweep = parse(
        {
            "name": "imp",
            "metric": {"name": "val_acc", "goal": goal},
            "trainable": {"builtin": "noop"},
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1},
                "dropout": {"min": 0.0, "max": 0.9},
                "batch": {"values": [32, 64, 128]},
            },
            "stages": [{"trials": n1, "epochs": 1}, {"trials": n2, "epochs": 1}],
        }
    )
    rng = np.random.default_rng(0)
    rows = []
    for k, n in ((1, n1), (2, n2)):
        for i in range(n):
            lr = 10 ** rng.uniform(-4, 0)
            value = math.exp(-((math.log10(lr) + 2) ** 2))
            rows.append(
                {
                    "trial": f"s{k}-t{i:04d}",
                    "stage": k,
                    "status": "finished",
                    "val_acc": value if goal == "maximize" else -value,
                    "p.lr": lr,
                    "p.dropout": rng.uniform(0, 0.9),
                    "p.batch": int(rng.choice([32, 64, 128])),
                }
            )
    runs = pd.DataFrame(rows).sort_values("val_acc", ascending=goal != "maximize").reset_index(drop=True)
    stages = [{"stage": k, "ranges": {"lr": LR, "dropout": DROPOUT, "batch": BATCH}} for k in (1, 2)]
    return SweepData("x", None, sweep, runs, stages, {})  # type: ignore[arg-type]


@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_the_parameter_that_decides_the_metric_is_the_most_important(goal):
    imp = importance(data_where_only_lr_matters(goal=goal))
    assert imp["available"] and "PED-ANOVA" in imp["method"]
    sweep = imp["sweep"]
    assert list(sweep)[0] == "lr" and sweep["lr"] > 0.6
    assert sum(sweep.values()) == pytest.approx(1.0)
    s1, s2 = imp["stages"]
    assert s1["runs"] == 60 and list(s1["importance"])[0] == "lr"
    assert s2["importance"] == {} and s2["note"] == f"6 finished run(s); importance needs at least {MIN_RUNS}"
    text = importance_text(imp)
    assert "whole sweep: lr 0." in text and "stage 2: (6 finished run(s)" in text


def test_parameters_that_never_varied_are_left_out_and_failed_runs_do_not_count():
    data = data_where_only_lr_matters()
    data.runs["p.dropout"] = 0.5
    data.runs.loc[:4, "status"] = "diverged"
    imp = importance(data)
    assert set(imp["sweep"]) == {"lr", "batch"}
    assert imp["stages"][0]["runs"] == 60 - sum(data.runs.loc[:4, "stage"] == 1)


def test_a_conditional_parameter_left_out_is_named_in_the_note():
    """`momentum[optimizer=sgd]` has no value in the runs that took another optimizer: PED-ANOVA
    cannot compare it, and the note says so (it was dropped silently)."""
    data = data_where_only_lr_matters()
    assert importance(data)["note"] is None  # every parameter counted
    for s in data.stages:
        s["ranges"]["momentum[optimizer=sgd]"] = DROPOUT
    data.runs["p.momentum"] = [0.9 if i % 2 else float("nan") for i in range(len(data.runs))]
    imp = importance(data)
    assert "momentum" not in imp["sweep"] and set(imp["sweep"]) == {"lr", "dropout", "batch"}
    assert imp["note"] == "left out, not set in every run (conditional parameters): momentum"
    assert "(left out, not set in every run (conditional parameters): momentum)" in importance_text(imp)


def test_without_optuna_importance_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what an uninstalled package looks like
    imp = importance(data_where_only_lr_matters())
    assert imp["available"] is False and imp["sweep"] == {}
    assert "pip install 'hpsearch[importance]'" in imp["note"]
    plots = [stem for stem, _, _ in all_plots(data_where_only_lr_matters(), imp)]
    assert "importance" not in plots and "parallel_coordinates" in plots


def test_parallel_coordinates_one_line_per_finished_run_log_axes_labelled():
    data = data_where_only_lr_matters()
    data.runs.loc[0, "status"] = "failed"
    stem, _, fig = parallel_coordinates(data, ["lr", "dropout", "batch"])
    ax = fig.axes[0]
    assert stem == "parallel_coordinates"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lr\n(log)", "dropout", "batch", "val_acc"]
    runs = [line for line in ax.lines if len(line.get_xdata()) == 4]
    assert len(runs) == (data.runs["status"] == "finished").sum()
    # each line passes through its run's values, scaled to the axis (log10 for lr)
    fin = data.runs[data.runs["status"] == "finished"]
    lo, hi = np.log10(fin["p.lr"].min()), np.log10(fin["p.lr"].max())
    best = fin.iloc[0]
    top = runs[-1]  # drawn last: the best
    assert top.get_ydata()[0] == pytest.approx((np.log10(best["p.lr"]) - lo) / (hi - lo))
    assert top.get_ydata()[3] == pytest.approx(1.0)  # the best value sits at the top of the metric axis
    labels = [t.get_text() for t in ax.texts]
    assert sp.fmt(fin["p.lr"].min()) in labels and "32" in labels and "128" in labels


def test_importance_plot_bars_per_scope():
    imp = importance(data_where_only_lr_matters())
    _, _, fig = importance_plot(imp)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(imp["sweep"])
    assert ax.get_legend_handles_labels()[1] == ["whole sweep", "stage 1"]
    widths = [p.get_width() for p in ax.patches][: len(imp["sweep"])]
    assert widths == pytest.approx(list(imp["sweep"].values()))


def test_no_empty_plots_when_nothing_has_finished():
    data = data_where_only_lr_matters()
    data.runs["status"] = "running"
    data.runs["val_acc"] = float("nan")
    assert [stem for stem, _, _ in all_plots(data, importance(data))] == ["ranges"]


def test_a_big_scope_is_sampled_the_same_way_every_time(monkeypatch):
    import hpsearch.report.importance as imp_mod

    monkeypatch.setattr(imp_mod, "MAX_RUNS", 30)
    data = data_where_only_lr_matters(n1=200)
    first, again = importance(data), importance(data)
    assert first == again and list(first["sweep"])[0] == "lr"
    assert first["stages"][0]["runs"] == 200  # the count is of all runs; the estimate of a sample
