"""What three new-user trials of 2026-12-01 found, each through the real CLI or the real store: the
HTML report's missing sections, early stopping's planned epochs, a stop on the last epoch, the dry
run beside a live master, `open(DIR, stage=k).best`."""

from __future__ import annotations

from pathlib import Path

from helpers import run_cli, write_sweep


def noop_sweep(name: str, stages: list, metric_value: dict | None = None, **extra: object) -> dict:
    """A one-worker sweep of the noop built-in, ranked by val_acc (maximized)."""
    return {
        "name": name,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop"},
        "parameters": {"metric_value": metric_value or {"min": 0.1, "max": 0.9}},
        "stages": stages,
        "workers": 1,
        **extra,
    }


def test_html_has_the_configurations_and_enqueued_sections(tmp_path: Path) -> None:
    doc = noop_sweep("sections", [{"trials": 3, "epochs": 1, "repeats": 2}], enqueue=[{"metric_value": 0.95}])
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
    doc = noop_sweep(
        "inherit",
        [
            {"trials": 3, "epochs": 2},
            {"trials": 0, "epochs": 6, "promote": 2, "early_stop": {"type": "asha", "min_epochs": 3}},
        ],
    )
    d = tmp_path / "run"
    dry = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), "--dry-run", check=True)
    assert "8 epoch(s) to train" in dry.stdout
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    text = run_cli("report", str(d), check=True).stdout
    assert "of 8 planned epochs saved" in text, text


def test_a_stop_that_comes_with_the_last_epoch_leaves_the_trial_finished(tmp_path: Path) -> None:
    """`master stop` during a trial's last epoch released it with all its epochs done; resumed, fit
    was called with an empty epoch_range (new-user trial, 2026-12-01). Now report() returns at the
    last epoch, and before it the stop still stops the trial."""
    import pytest
    from helpers import claimed_trial

    from hpsearch import StopTrial

    trial = claimed_trial(tmp_path / "run", epochs=2)
    trial.report(1, val_acc=0.5)
    trial._stop_event.set()  # what SIGTERM or `master stop` sets in the worker
    trial.report(2, val_acc=0.6)  # the last epoch: no StopTrial, the trainable returns as usual
    assert trial.stop_reason is None
    early = claimed_trial(tmp_path / "run2", epochs=3)
    early._stop_event.set()
    with pytest.raises(StopTrial, match="stopped"):
        early.report(1, val_acc=0.5)
    assert early.stop_reason == "stopped"


def test_dry_run_beside_a_live_master_says_a_real_start_is_refused(tmp_path: Path) -> None:
    import json
    import os
    import time

    from hpsearch.store.liveness import HOST

    doc = noop_sweep("busy", [{"trials": 2, "epochs": 1}])
    f = write_sweep(tmp_path, doc)
    d = tmp_path / "run"
    run_cli("master", "start", str(f), "--dir", str(d), check=True)
    # this test's own process stands for a live master (master.json as a master writes it)
    (d / "master.json").write_text(json.dumps({"host": HOST, "pid": os.getpid(), "time": time.time()}))
    p = run_cli("master", "start", str(f), "--dir", str(d), "--dry-run", check=True)
    assert f"{d} already has a live master (pid {os.getpid()}" in p.stdout and "a real start refuses" in p.stdout
    real = run_cli("master", "start", str(f), "--dir", str(d))
    assert real.returncode == 2 and "already has a live master" in real.stderr


def test_open_for_one_stage_gives_that_stages_best_with_an_absolute_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import hpsearch

    doc = noop_sweep("staged", [{"trials": 4, "epochs": 1}, {"trials": 0, "epochs": 3, "promote": 2}])
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(tmp_path / "run"), check=True)
    monkeypatch.chdir(tmp_path)  # a relative directory, as a user types it
    whole, first = hpsearch.open("run"), hpsearch.open("run", stage=1)
    assert whole.best["stage"] == 2 and first.best["stage"] == 1  # it gave stage 2's for stage=1
    assert first.best["trial"] == first.runs.iloc[0]["trial"]
    for best in (whole.best, first.best):
        assert Path(best["checkpoint"]).is_absolute() and Path(best["checkpoint"]).is_file()


def test_report_json_gives_every_float_exactly(tmp_path: Path) -> None:
    import json

    from hpsearch.store.sweepdir import Store

    doc = noop_sweep(
        "exact", [{"trials": 4, "epochs": 1}], {"distribution": "log_uniform_values", "min": 0.01, "max": 0.9}
    )
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    rows = json.loads(run_cli("report", str(d), "--format", "json", check=True).stdout)["runs"]
    trials = Store(d).refresh().trials
    assert rows and all(r["params"]["metric_value"] == trials[r["trial"]].params["metric_value"] for r in rows)
    assert all(r["value"] == trials[r["trial"]].best for r in rows)


def test_next_written_away_from_a_python_trainables_folder_says_it_will_not_start(tmp_path: Path) -> None:
    """`hpsearch next -o OTHER/next.yaml` said "run it with: hpsearch master start OTHER/next.yaml",
    which then could not import the trainable's module (it is found from the sweep file's folder)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "mytrain.py").write_text(
        "def fit(params, trial):\n    for e in trial.epoch_range:\n        trial.report(e, val_acc=params['x'])\n"
    )
    doc = {**noop_sweep("py", [{"trials": 3, "epochs": 1}]), "trainable": {"python": "mytrain:fit"}}
    doc["parameters"] = {"x": {"min": 0.1, "max": 0.9}}
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(proj, doc)), "--dir", str(d), check=True)
    away = run_cli("next", str(d), "-o", str(tmp_path / "other" / "next.yaml"), check=True).stdout
    assert "does not start as it is" in away and "no module 'mytrain'" in away
    assert "see the note above before you run it" in away and "run it with" not in away
    beside = run_cli("next", str(d), "-o", str(proj / "next.yaml"), check=True).stdout
    assert "does not start" not in beside and f"run it with: hpsearch master start {proj / 'next.yaml'}" in beside


def test_a_second_master_stop_adds_no_second_stop_event(tmp_path: Path) -> None:
    import io

    from helpers import count_events

    from hpsearch.run.master import Master, StartOptions
    from hpsearch.run.progress import Progress
    from hpsearch.store.sweepfile import load

    f = write_sweep(tmp_path, noop_sweep("twice", [{"trials": 4, "epochs": 2}]))
    sweep, raw = load(f)
    root = str(tmp_path / "run")
    m = Master(sweep, raw, f.read_text(), root, StartOptions(no_workers=True), out=Progress(io.StringIO()))
    m.open_directory()
    m.plan(1)  # a sweep under way, no master alive
    first = run_cli("master", "stop", root, check=True).stdout
    second = run_cli("master", "stop", root, check=True).stdout
    assert "Stop requested" in first and "no master is running" in first
    assert "the sweep was already asked to stop (hpsearch master stop); no master is running" in second
    assert count_events(Path(root), "stop") == 1
