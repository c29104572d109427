"""Plots, the HTML report (opened in headless Chromium), and the scripting formats, on a real sweep."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import run_cli, write_sweep

from hpsearch import __version__
from hpsearch.cli import main
from hpsearch.report.plots import metric_vs_param, ranges_per_stage
from hpsearch.report.sweepdata import SweepData
from hpsearch.run.master import Master, StartOptions
from hpsearch.run.progress import Progress
from hpsearch.search.config import parse
from hpsearch.store.sweepfile import load

SWEEP = """
name: tiny-digits
metric: {name: val_acc, goal: maximize}
seed: 3
trainable: {builtin: classifier, dataset: digits, hidden: [32], optimizer: momentum, max_batches: 6}
parameters:
  lr:       {distribution: log_uniform_values, min: 1.0e-4, max: 30}
  reg:      {distribution: log_uniform_values, min: 1.0e-5, max: 1}
  dropout:  {distribution: uniform, min: 0.0, max: 0.5, bounds: [0, 0.95]}
  batch:    {values: [32, 64]}
  momentum: {value: 0.9}
stages:
  - {trials: 10, epochs: 1}
  - {trials: 3, epochs: 3, top: 3}
workers: 1
heartbeat: 0.2
stale_after: 5
"""
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> str:
    """A real two-stage sweep of the built-in classifier, run by `hpsearch master start`."""
    d = tmp_path_factory.mktemp("visual")
    root = str(d / "run")
    r = run_cli("master", "start", str(write_sweep(d, SWEEP, "tiny.yaml")), "--dir", root, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\033" not in r.stdout  # captured, not a terminal: plain lines only
    return root


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_plots_are_written_as_pngs(sweep_dir, tmp_path):
    out = tmp_path / "plots"
    r = invoke("report", sweep_dir, "--plots", str(out))
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "metric_vs_lr.png",
            "metric_vs_reg.png",
            "metric_vs_dropout.png",
            "metric_by_batch.png",
            "loss_curves.png",
            "accuracy_curves.png",
            "update_ratio.png",
            "ranges.png",
            "parallel_coordinates.png",
            "importance.png",
        ]
    )
    from matplotlib.image import imread

    for p in out.iterdir():
        assert p.read_bytes().startswith(PNG)
        assert imread(p).std() > 0.05, p  # drawn on, not an empty canvas


def test_html_is_one_self_contained_file(sweep_dir, tmp_path):
    html = tmp_path / "sub dir" / "report.html"
    r = invoke("report", sweep_dir, "--html", str(html))
    assert r.exit_code == 0, r.output
    text = html.read_text()
    imgs = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,([^']+)'>", text)
    assert len(imgs) == 10
    assert "id='plot-parallel_coordinates'" in text and "id='plot-importance'" in text
    assert "<table id='importance'>" in text and "PED-ANOVA" in text
    assert all(base64.b64decode(b64).startswith(PNG) for _, b64 in imgs)
    # nothing fetched from anywhere: no external src/href, no scripts
    assert not re.search(r"(src|href)=['\"](?!data:)", text) and "<script" not in text
    assert "<table id='ranking'>" in text and "<table id='ranges'>" in text
    assert "id='diagnostics'" in text and "id='border-flags'" in text
    assert html.stat().st_mode & 0o044 == 0o044  # readable by group and others (a report is for sharing)


def test_missing_matplotlib_is_one_line_and_exit_2(sweep_dir, tmp_path, monkeypatch):
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an uninstalled package looks like to import
    r = CliRunner().invoke(main, ["report", sweep_dir, "--html", str(tmp_path / "r.html")])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "pip install 'hpsearch[plots]'" in r.output
    assert not (tmp_path / "r.html").exists()


def test_table_report_shows_diagnostics(sweep_dir):
    r = invoke("report", sweep_dir)
    assert r.exit_code == 0
    assert "Diagnostics:" in r.output and "Ranges per stage:" in r.output
    assert "<NA>" not in r.output


def test_csv_loads_into_pandas(sweep_dir):
    r = invoke("report", sweep_dir, "--format", "csv")
    assert r.exit_code == 0
    df = pd.read_csv(io.StringIO(r.output))
    assert len(df) == 13 and {"rank", "trial", "status", "val_acc", "p.lr", "checkpoint"} <= set(df.columns)
    assert df["rank"].tolist() == list(range(1, 14))
    fin = df[df["status"] == "finished"]["val_acc"]
    assert fin.is_monotonic_decreasing and fin.dtype == float


def test_json_follows_schema_1(sweep_dir):
    r = invoke("report", sweep_dir, "--format", "json", "--top", "5")
    doc = json.loads(r.output)
    assert doc["schema"] == 1 and doc["sweep"] == "tiny-digits"
    assert doc["metric"] == {"name": "val_acc", "goal": "maximize"}
    assert len(doc["runs"]) == 5
    run = doc["runs"][0]
    for key in (
        "rank",
        "stage",
        "trial",
        "config",
        "status",
        "val_acc",
        "value",
        "best_epoch",
        "epochs",
        "of_epochs",
        "attempts",
        "reason",
        "checkpoint",
        "parent",
        "params",
    ):
        assert key in run, key
    assert run["value"] == run["val_acc"] and set(run["params"]) >= {"lr", "reg", "dropout", "batch"}
    assert [s["stage"] for s in doc["stages"]] == [1, 2]
    for key in ("ranges", "ranking", "border_flags", "status"):
        assert key in doc["stages"][0]
    assert doc["diagnostics"]  # the demo-like sweep has at least its border and update-ratio findings
    for f in doc["diagnostics"]:
        assert set(f) == {"scope", "kind", "message", "advice"}


def test_empty_sweep_exits_0_with_an_empty_table_and_a_note(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(SWEEP)
    sweep, raw = load(f)
    root = str(tmp_path / "empty")
    Master(sweep, raw, SWEEP, root, StartOptions(), out=Progress(io.StringIO())).open_directory()
    r = invoke("report", root)
    assert r.exit_code == 0 and "rank" in r.output and "note: tiny-digits: no runs yet" in r.output
    r = CliRunner().invoke(main, ["report", root, "--format", "csv"])
    assert r.exit_code == 0 and r.output.splitlines()[0].startswith("rank,")
    r = CliRunner().invoke(main, ["report", root, "--format", "json"])
    assert r.exit_code == 0 and "note: tiny-digits: no runs yet" in r.output
    doc = json.loads(r.output[: r.output.rindex("}") + 1])
    assert doc["runs"] == [] and doc["stages"] == []


def test_version_and_every_verb_shows_an_example():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == f"hpsearch, version {__version__}"

    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    paths = list(walk(main, []))
    assert ["master", "start"] in paths and ["report"] in paths and ["worker"] in paths
    for path in paths:
        r = invoke(*path, "--help")
        assert r.exit_code == 0, path
        assert re.search(r"(Examples?|Quick start)( \(.*\))?:\n\s+hpsearch ", r.output), f"no example in {path} --help"


# -- plot content, on hand-made data (no store needed) -------------------------------------
def synthetic_data() -> SweepData:
    sweep = parse(
        {
            "name": "s",
            "metric": {"name": "val_acc", "goal": "maximize"},
            "trainable": {"builtin": "noop"},
            "parameters": {"metric_value": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1}},
            "stages": [{"trials": 3, "epochs": 1}, {"trials": 3, "epochs": 1}],
        }
    )
    rng = {"kind": "numeric", "low": 1e-3, "high": 1.0, "log": True, "integer": False, "q": None, "bounds": None}
    rng2 = dict(rng, low=0.1, high=10.0)
    runs = pd.DataFrame(
        [
            {"trial": "s1-t0000", "stage": 1, "status": "finished", "val_acc": 0.9, "p.metric_value": 0.95},
            {"trial": "s1-t0001", "stage": 1, "status": "finished", "val_acc": 0.5, "p.metric_value": 0.01},
            {"trial": "s1-t0002", "stage": 1, "status": "diverged", "val_acc": None, "p.metric_value": 0.002},
            {"trial": "s2-t0000", "stage": 2, "status": "finished", "val_acc": 0.7, "p.metric_value": 3.0},
        ]
    )
    stages = [
        {
            "stage": 1,
            "ranges": {"metric_value": rng},
            "ranking": [{"params": {"metric_value": 0.95}}],
            "border_flags": [
                {
                    "param": "metric_value",
                    "side": "high",
                    "value": 0.95,
                    "position": 0.99,
                    "extends": True,
                    "message": "m",
                }
            ],
        },
        {"stage": 2, "ranges": {"metric_value": rng2}, "ranking": [], "border_flags": []},
    ]
    return SweepData("x", None, sweep, runs, stages, {})  # type: ignore[arg-type]


def test_metric_vs_param_draws_bands_best_border_and_log_axis():
    name, _, fig = metric_vs_param(synthetic_data(), "metric_value")
    ax = fig.axes[0]
    assert name == "metric_vs_metric_value" and ax.get_xscale() == "log"
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["stage 1", "stage 2", "diverged/failed", "best 0.95"]
    assert len(ax.patches) == 2  # one band per stage's range
    assert [a.get_xdata()[0] for a in ax.lines if a.get_color() == "red"] == [1.0]  # the flagged edge
    assert any("stage 1: best on upper border" in t.get_text() for t in ax.texts)


def test_metric_vs_param_draws_pruned_runs_hollow_at_their_best():
    """Pruned runs were missing from the plot: the early-stopped half of a sweep looked unsampled."""
    data = synthetic_data()
    pruned = {"trial": "s2-t0001", "stage": 2, "status": "pruned", "val_acc": 0.4, "p.metric_value": 5.0}
    data.runs = pd.concat([data.runs, pd.DataFrame([pruned])], ignore_index=True)
    _, _, fig = metric_vs_param(data, "metric_value")
    ax = fig.axes[0]
    assert "pruned (best before it stopped)" in ax.get_legend_handles_labels()[1]
    points = [tuple(xy) for c in ax.collections for xy in c.get_offsets().tolist()]
    assert (5.0, 0.4) in points


def test_ranges_per_stage_one_bar_per_stage():
    _, _, fig = ranges_per_stage(synthetic_data(), ["metric_value"])
    ax = fig.axes[0]
    bars = [line for line in ax.lines if line.get_linewidth() == 7]
    assert [tuple(b.get_xdata()) for b in bars] == [(1e-3, 1.0), (0.1, 10.0)]
    assert ax.get_xscale() == "log"


# -- the HTML in a real browser --------------------------------------------------------------
def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    chromium() is None and os.environ.get("CI") != "true",
    reason="chromium not installed (apt-get install chromium); .ci/run installs it so CI runs this test",
)
def test_html_renders_in_headless_chromium(sweep_dir, tmp_path):
    assert chromium(), "CI=true but chromium is missing: .ci/run installs it as root"
    html = tmp_path / "report.html"
    assert invoke("report", sweep_dir, "--html", str(html)).exit_code == 0
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp()
    flags = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    try:
        r = subprocess.run(
            [*flags, f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert shot.exists(), r.stderr[-2000:]
        dom = subprocess.run(
            [*flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[:2] == (2400, 1280)
    assert img.std() > 0.05  # not a blank page
    # the top of the page holds text and the ranking table: many distinct rows of pixels
    assert len({tuple(row) for row in (img[:800, :, :3].mean(axis=1) * 255).astype(int)}) > 50
    assert '<table id="ranking">' in dom.stdout
    assert len(re.findall(r'<tr class="(finished|diverged|failed)', dom.stdout)) == 13  # all within the first 20
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', dom.stdout)) == 10
    assert 'id="plot-parallel_coordinates"' in dom.stdout and '<table id="importance">' in dom.stdout
