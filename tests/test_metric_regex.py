"""An unmodified script tuned by the metrics it prints: `metric_regex` for command trainables."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from helpers import claimed_trial, run_cli, write, write_sweep

import hpsearch
from hpsearch.errors import ConfigError
from hpsearch.search import config
from hpsearch.trainables.command import ProgramFailed, check, make_runner, regex_problems

PY = sys.executable
# what pytorch/examples' mnist/main.py prints, left exactly as it is (it knows nothing of hpsearch)
MNIST_LIKE = """
import argparse, math, sys
ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, default=1.0)
ap.add_argument("--epochs", type=int, default=3)
args = ap.parse_args()
for epoch in range(1, args.epochs + 1):
    for batch in range(0, 60000, 20000):
        loss = 2.3 / (epoch * (1 + batch / 60000)) * (1 + abs(math.log10(args.lr)))
        print(f"Train Epoch: {epoch} [{batch}/60000 ({100. * batch / 60000:.0f}%)]\\tLoss: {loss:.6f}")
    correct = int(10000 * (1 - 0.5 / epoch * (1 + abs(math.log10(args.lr)))) // 1)
    correct = max(0, min(10000, correct))
    print(f"\\nTest set: Average loss: {1 / epoch:.4f}, Accuracy: {correct}/10000 ({100. * correct / 10000:.0f}%)\\n")
    sys.stdout.flush()
"""
REGEXES = [
    r"Train Epoch: \d+ .*Loss: (?P<train_loss>[0-9.]+)",
    r"Test set: Average loss: (?P<test_loss>[0-9.]+), Accuracy: (?P<correct>\d+)/\d+ \((?P<test_acc>[0-9.]+)%\)",
]


def _sweep(tmp_path: Path, metric: str = "test_acc", **trainable: object) -> config.Sweep:
    return config.parse(
        {
            "metric": {"name": metric, "goal": "maximize"},
            "trainable": {"command": [PY, "mnist.py"], **trainable},
            "stages": [{"trials": 1, "epochs": 1}],
            "parameters": {"lr": {"min": 0.1, "max": 1.0}},
        },
        source_dir=str(tmp_path),
    )


def test_regex_problems_are_caught_at_the_door(tmp_path):
    write(tmp_path / "mnist.py", "pass\n")
    check(_sweep(tmp_path, metric_regex=REGEXES))
    check(_sweep(tmp_path, metric_regex=REGEXES[1]))  # one expression is enough
    cases = {
        "(?P<test_acc>[0-9": "not a valid regular expression",
        "Accuracy: ([0-9.]+)": "has no named group",
        "Loss: (?P<train_loss>[0-9.]+)": "no expression has a group named after the sweep's metric 'test_acc'",
    }
    for spec, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            check(_sweep(tmp_path, metric_regex=spec))
    assert regex_problems([], "test_acc") and regex_problems(7, "test_acc") and regex_problems(["x", 3], "m")


def test_metrics_come_from_the_printed_lines(tmp_path):
    src = tmp_path / "src"
    write(src / "mnist.py", MNIST_LIKE)
    trial = claimed_trial(tmp_path / "sweep", epochs=3, params={"lr": 0.1})
    trial.metric = "test_acc"
    fit = make_runner([PY, "mnist.py", "--lr", "0.1", "--epochs", "3"], str(src), {"metric_regex": REGEXES})
    fit(trial.params, trial)
    lines = trial.store.metrics(trial.id)
    assert [x["epoch"] for x in lines] == [1, 2, 3]  # epochs counted by the lines holding the metric
    for e, line in enumerate(lines, start=1):
        correct = int(10000 * (1 - 0.5 / e * 2) // 1)
        assert line["test_acc"] == round(100 * correct / 10000)
        assert line["test_loss"] == pytest.approx(round(1 / e, 4))
        assert line["correct"] == correct
        # the epoch's last training line before its test line
        assert line["train_loss"] == pytest.approx(round(2.3 / (e * (1 + 40000 / 60000)) * 2, 6))
    assert "Test set: Average loss" in (trial.trial_dir / "worker.log").read_text()  # the log keeps it all


def test_a_group_that_is_no_number_fails_the_trial(tmp_path):
    src = tmp_path / "src"
    write(src / "p.py", "print('Accuracy: n/a')\n")
    trial = claimed_trial(tmp_path / "sweep", epochs=1)
    fit = make_runner([PY, "p.py"], str(src), {"metric_regex": r"Accuracy: (?P<val_acc>\S+)"})
    with pytest.raises(ProgramFailed, match=r"group 'val_acc' matched 'n/a', not a number"):
        fit(trial.params, trial)


def test_an_unmodified_script_is_tuned_end_to_end(tmp_path):
    write(tmp_path / "mnist.py", MNIST_LIKE)
    sweep = {
        "name": "mnist-like",
        "metric": {"name": "test_acc", "goal": "maximize"},
        "trainable": {
            "command": ["${interpreter}", "mnist.py", "--lr", "{lr}", "--epochs", "{epochs}"],
            "metric_regex": REGEXES,
        },
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 10}},
        "stages": [{"trials": 4, "epochs": 2}],
        "workers": 2,
        "heartbeat": 0.2,
        "stale_after": 5,
    }
    root = tmp_path / "run"
    r = run_cli("master", "start", str(write_sweep(tmp_path, sweep)), "--dir", str(root), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # a program that only prints saves no state: the last line says so (it once read "checkpoint None")
    assert "; no checkpoint (the trainable saved no state)" in r.stdout and "checkpoint None" not in r.stdout
    sw = hpsearch.open(str(root))
    assert (sw.runs["status"] == "finished").all() and (sw.runs["epochs"] == 2).all()
    best = sw.best
    assert best is not None and best["metric"] == "test_acc"
    assert abs(best["params"]["lr"] - 1) == min(abs(v - 1) for v in sw.runs["p.lr"])  # lr near 1 scores best
    h = sw.history(best["trial"])
    assert {"test_acc", "test_loss", "train_loss"} <= set(h.columns) and h["epoch"].tolist() == [1, 2]
    report = run_cli("report", str(root), timeout=120)
    assert "test_acc" in report.stdout and "Diagnostics:" in report.stdout


def test_bad_metric_regex_through_the_cli_is_one_line_and_nothing_written(tmp_path):
    write(tmp_path / "mnist.py", MNIST_LIKE)
    sweep = {
        "metric": {"name": "test_acc", "goal": "maximize"},
        "trainable": {"command": ["${interpreter}", "mnist.py"], "metric_regex": "Accuracy: (\\d+"},
        "parameters": {"lr": {"min": 0.1, "max": 1.0}},
        "stages": [{"trials": 1, "epochs": 1}],
    }
    root = tmp_path / "run"
    r = run_cli("master", "start", str(write_sweep(tmp_path, sweep)), "--dir", str(root), timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "trainable.metric_regex" in r.stderr and "not a valid regular expression" in r.stderr
    assert not root.exists()
    json.dumps(sweep)  # the sweep is plain data


@pytest.mark.slow
def test_the_printed_metrics_example_runs_as_shipped(tmp_path):
    """examples/printed_metrics: a real PyTorch script, unmodified, tuned from what it prints."""
    import yaml
    from helpers import ROOT

    folder = tmp_path / "ex"
    shutil.copytree(ROOT / "examples" / "printed_metrics", folder)
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
    sweep["stages"] = [{"trials": 3, "epochs": 2}]
    write_sweep(folder, sweep)
    r = run_cli("master", "start", "sweep.yaml", "--dir", "run", cwd=folder, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    sw = hpsearch.open(str(folder / "run"))
    assert (sw.runs["status"] == "finished").all()
    for trial in sw.runs["trial"]:
        log = (folder / "run" / "trials" / trial / "worker.log").read_text()
        printed = [float(x) for x in re.findall(r"Accuracy: \d+/\d+ \(([0-9.]+)%\)", log)]
        assert sw.history(trial)["test_acc"].tolist() == printed  # what it printed, epoch by epoch
