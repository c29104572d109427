"""Plots and diagnostics read whatever metrics the trials report, and say what they could not check."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import run_cli, write, write_sweep

import hpsearch
from hpsearch.cli import main
from hpsearch.report.diagnostics import checks, diagnose, findings_text, metric_roles


@pytest.mark.parametrize(
    ("names", "metric", "expected"),
    [
        (
            ["val_acc", "train_loss", "val_loss", "train_acc", "lr"],
            "val_acc",
            {"train_loss": "train_loss", "val_loss": "val_loss", "train_acc": "train_acc", "val_acc": "val_acc"},
        ),
        (
            ["loss", "test_loss", "eval/accuracy", "train/accuracy"],
            "eval_score",
            {"train_loss": "loss", "val_loss": "test_loss", "train_acc": "train/accuracy", "val_acc": "eval/accuracy"},
        ),
        (
            ["trainLoss", "valLoss", "validation.top1", "bleu"],
            "bleu",
            {"train_loss": "trainLoss", "val_loss": "valLoss", "train_acc": None, "val_acc": "validation.top1"},
        ),
        (["bleu", "lr", "seconds"], "bleu", {"train_loss": None, "val_loss": None, "train_acc": None, "val_acc": None}),
        # the sweep's own metric wins over another of the same role
        (
            ["dev_acc", "test_acc"],
            "test_acc",
            {"train_loss": None, "val_loss": None, "train_acc": None, "val_acc": "test_acc"},
        ),
    ],
)
def test_metric_roles(names, metric, expected):
    assert metric_roles(names, metric) == expected


def test_diagnostics_use_any_accuracy_names_and_list_what_they_could_not_check():
    import pandas as pd

    runs = pd.DataFrame([{"trial": "s1-t0000", "stage": 1, "status": "finished", "score": 0.7, "best_epoch": 2}])
    curve = [
        {"epoch": 1, "train/accuracy": 0.8, "eval/accuracy": 0.7, "test_loss": 1.0, "score": 0.6},
        {"epoch": 2, "train/accuracy": 0.99, "eval/accuracy": 0.72, "test_loss": 0.9, "score": 0.7},
    ]
    curves = {"s1-t0000": curve}
    found = diagnose(runs, [{"stage": 1, "ranges": {}}], curves, 1, "score")
    assert [f.kind for f in found] == ["overfitting"]
    assert "train/accuracy 0.990 vs eval/accuracy 0.720 at epoch 2" in found[0].message
    done = checks(runs, [{"stage": 1}], curves, "score")
    assert dict(done)["train/val gap"] is None
    assert dict(done)["update ratio"] == "no update_ratio metric reported"
    text = findings_text([], done)
    assert "checked: border, divergence, train/val gap, underfitting" in text
    assert "not checked: update ratio (no update_ratio metric reported); first-epoch loss" in text
    # without a training accuracy the fit checks are not claimed
    no_train = {"s1-t0000": [{k: v for k, v in x.items() if k != "train/accuracy"} for x in curve]}
    assert diagnose(runs, [], no_train, 1, "score") == []
    assert dict(checks(runs, [], no_train, "score"))["train/val gap"] == (
        "needs a training and a held-out accuracy metric"
    )


PROGRAM = """
import json, os, sys
lr, epochs = float(sys.argv[1]), int(os.environ["HPSEARCH_EPOCHS"])
for epoch in range(1, epochs + 1):
    acc = min(0.99, 0.5 + 0.1 * epoch * lr)
    line = {"epoch": epoch, "score": acc, "eval/accuracy": acc, "train/accuracy": min(1.0, acc + 0.2),
            "test_loss": 1 / (epoch * lr + 1), "loss": 1.2 / (epoch * lr + 1)}
    with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
        f.write(json.dumps(line) + "\\n")
"""


@pytest.fixture(scope="module")
def own_names_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("names")
    write(d / "prog.py", PROGRAM)
    sweep = {
        "name": "own-names",
        "metric": {"name": "score", "goal": "maximize"},
        "trainable": {"command": ["${interpreter}", "prog.py", "{lr}"]},
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.1, "max": 3}},
        "stages": [{"trials": 4, "epochs": 3}],
        "workers": 2,
        "heartbeat": 0.2,
        "stale_after": 5,
    }
    root = str(d / "run")
    r = run_cli("master", "start", str(write_sweep(d, sweep)), "--dir", root, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def test_plots_draw_the_reported_names_and_leave_out_what_is_not_there(own_names_dir, tmp_path):
    out = tmp_path / "plots"
    r = CliRunner().invoke(main, ["report", own_names_dir, "--plots", str(out)])
    assert r.exit_code == 0, r.output
    names = sorted(p.stem for p in out.iterdir())
    # no update_ratio plot (none reported); the sweep's own metric `score` gets its per-epoch plot
    assert names == sorted(
        ["metric_vs_lr", "parallel_coordinates", "loss_curves", "accuracy_curves", "metric_curves", "ranges"]
    )
    from hpsearch.report.plots import accuracy_curves, loss_curves

    sw = hpsearch.open(own_names_dir)
    _, _, fig = accuracy_curves(sw)
    ax = fig.axes[0]
    assert "train/accuracy vs eval/accuracy" in ax.get_title()
    assert len(ax.lines) == 2 * len(sw.curves)  # a train and a held-out line per top run
    _, _, fig = loss_curves(sw)
    assert "loss and test_loss" in fig.axes[0].get_title() and len(fig.axes[0].lines) == 2 * len(sw.curves)


def test_report_says_what_it_could_not_check(own_names_dir):
    r = CliRunner().invoke(main, ["report", own_names_dir])
    assert r.exit_code == 0
    assert "not checked: update ratio (no update_ratio metric reported)" in r.output
    assert "train/accuracy" in r.output  # the overfitting finding names the user's metrics
    doc = json.loads(CliRunner().invoke(main, ["report", own_names_dir, "--format", "json"]).output)
    by = {c["check"]: c for c in doc["checks"]}
    assert by["update ratio"]["checked"] is False and by["train/val gap"]["checked"] is True
