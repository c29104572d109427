"""The report a user reads: parameters with --top 1, parents of promoted trials, the final line's
parameters, --html printing its path; and the Quick start's advice after `make demo`."""

from __future__ import annotations

import re

import pytest
from helpers import ROOT, run_cli, write_sweep

import hpsearch
from hpsearch.search.space import fmt

SWEEP = """
name: user-report
metric: {name: val_acc, goal: maximize}
seed: 1
trainable: {builtin: noop, target: {lr: 0.01, width: 64}}
parameters:
  lr:    {distribution: log_uniform_values, min: 1.0e-4, max: 1}
  width: {distribution: int_uniform, min: 8, max: 128}
  act:   {values: [relu, tanh]}
stages:
  - {trials: 8, epochs: 1}
  - {trials: 2, epochs: 2, top: 3, promote: 2}
workers: 1
heartbeat: 0.2
stale_after: 5
"""


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    root = d / "run"
    r = run_cli("master", "start", str(write_sweep(d, SWEEP)), "--dir", str(root), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return root, r.stdout


def test_done_line_gives_the_best_parameters(done):
    root, out = done
    # the best configuration of the last stage (README "Repeats"), with its parameters and checkpoint
    line = r"Done\. Best val_acc (\S+): (s\d-t\d{4}) of stage 2, lr=(\S+), width=(\d+), act=(\w+); checkpoint (\S+?)\. "
    m = re.search(line, out)
    assert m, out[-600:]
    sw = hpsearch.open(str(root))
    best = sw.runs[sw.runs["stage"] == 2].iloc[0]  # the ranked runs of stage 2, best first
    assert m.group(2) == best["trial"] and m.group(5) == best["p.act"]
    assert int(m.group(4)) == best["p.width"] and m.group(3) == fmt(best["p.lr"])
    assert float(m.group(1)) == pytest.approx(best["val_acc"], abs=5e-5)
    assert (root / "checkpoints" / m.group(6)).is_file()


def test_top_1_still_shows_the_parameters(done):
    root, _ = done
    r = run_cli("report", str(root), "--top", "1", timeout=120)
    assert r.returncode == 0
    header = next(line for line in r.stdout.splitlines() if line.startswith("rank"))
    assert all(f"p.{p}" in header for p in ("lr", "width", "act")), header


def test_table_shows_the_parent_of_promoted_trials(done):
    root, _ = done
    r = run_cli("report", str(root), "--stage", "2", timeout=120)
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("rank"))
    cols = header.split()
    assert cols[:4] == ["rank", "stage", "trial", "parent"]
    rows = [line.split() for line in lines[lines.index(header) + 2 :] if re.match(r"\s*\d+\s+2\s+s2-", line)]
    parents = [row[3] for row in rows]
    assert len(rows) == 4 and sorted(p for p in parents if p != "-")[:2] == sorted(
        p for p in parents if p.startswith("s1-")
    )
    assert sum(p.startswith("s1-t") for p in parents) == 2 and parents.count("-") == 2


def test_html_prints_its_path_not_the_table(done, tmp_path):
    root, _ = done
    out = tmp_path / "r.html"
    r = run_cli("report", str(root), "--html", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote {out}" and out.is_file()
    both = run_cli("report", str(root), "--html", str(out), "--format", "csv", timeout=300)
    assert both.stdout.startswith("rank,") and both.stdout.strip().endswith(f"wrote {out}")


def test_readme_quick_start_says_how_to_reach_the_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start") : readme.index("## The sweep file")]
    assert "source .venv/bin/activate" in quick and "command not found" in quick
    assert "source $(VENV)/bin/activate" in (ROOT / "Makefile").read_text()
