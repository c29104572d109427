"""The HTML report holds what the text report holds: the repeats' configurations table and the
enqueued configurations (a new user found both missing, 2026-12-01)."""

from __future__ import annotations

from pathlib import Path

from helpers import run_cli, write_sweep


def test_html_has_the_configurations_and_enqueued_sections(tmp_path: Path) -> None:
    doc = {
        "name": "sections",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop"},
        "parameters": {"metric_value": {"min": 0.1, "max": 0.9}},
        "enqueue": [{"metric_value": 0.95}],
        "stages": [{"trials": 3, "epochs": 1, "repeats": 2}],
        "workers": 1,
    }
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    text = run_cli("report", str(d), check=True).stdout
    assert "Configurations (ranked by the mean" in text and "Enqueued configurations:" in text
    page = tmp_path / "r.html"
    run_cli("report", str(d), "--html", str(page), check=True)
    html = page.read_text()
    assert "<table id='configurations'>" in html and "mean of their repeats" in html
    assert "<ul id='enqueued'><li>stage 1: s1-t0000-r0 (metric_value: 0.95 lies outside the range" in html
    assert html.count("<tr>", html.index("id='configurations'")) >= 3  # the 3 configurations


def test_planned_epochs_of_an_early_stopping_stage_leave_out_what_promoted_trials_inherited(tmp_path: Path) -> None:
    """A stage that promotes 2 runs from 2 to 6 epochs plans 2 x 4 epochs (as the dry run says), not 2 x 6."""
    doc = {
        "name": "inherit",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop"},
        "parameters": {"metric_value": {"min": 0.1, "max": 0.9}},
        "stages": [
            {"trials": 3, "epochs": 2},
            {"trials": 0, "epochs": 6, "promote": 2, "early_stop": {"type": "asha", "min_epochs": 3}},
        ],
        "workers": 1,
    }
    d = tmp_path / "run"
    dry = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), "--dry-run", check=True)
    assert "8 epoch(s) to train" in dry.stdout
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    text = run_cli("report", str(d), check=True).stdout
    assert "of 8 planned epochs saved" in text, text
