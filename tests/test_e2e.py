"""The CLI end to end: real master, real worker processes, a real shared directory."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import yaml
from helpers import run_cli, spawn, wait_for, write_sweep

from hpsearch.store.sweepdir import Store, parse_checkpoint

SMALL = {
    "name": "small",
    "seed": 1,
    "metric": {"name": "val_acc", "goal": "maximize"},
    "trainable": {"builtin": "classifier", "dataset": "digits", "hidden": [32], "max_batches": 4},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
        "reg": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        "batch": {"values": [32, 64]},
    },
    "stages": [{"trials": 8, "epochs": 1}, {"trials": 4, "epochs": 2, "top": 3}],
    "workers": 2,
    "heartbeat": 0.5,
}


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    # keys sorted, as this file was always written: the order of the parameters fixes the draws
    f = write_sweep(tmp, yaml.safe_dump(SMALL), "small.yaml")
    d = tmp / "run dir with spaces"
    p = run_cli("master", "start", str(f), "--dir", str(d), timeout=300)
    return f, d, p


def test_sweep_finishes_with_ranked_table_and_ranges(small_sweep):
    _, d, p = small_sweep
    assert p.returncode == 0, p.stderr
    assert "Stage 1 done" in p.stdout and "Stage 2 done" in p.stdout
    assert "Ranges for stage 2 (old -> new):" in p.stdout
    assert "Border:" in p.stdout and "Done. Best val_acc" in p.stdout
    assert "\x1b" not in p.stdout  # not a terminal: plain lines only
    st = Store(d).refresh()
    assert len(st.trials) == 12 and all(t.state.value in ("finished", "diverged") for t in st.trials.values())
    assert {1, 2} <= st.stages_done and st.done
    for k in (1, 2):
        doc = json.loads((d / "stages" / f"stage-{k}.json").read_text())
        assert doc["status"] == "done" and "ranking" in doc and "border_flags" in doc
    assert "next_ranges" in json.loads((d / "stages" / "stage-1.json").read_text())


def test_each_trial_claimed_once_by_one_of_two_workers(small_sweep):
    _, d, _ = small_sweep
    claims = [json.loads(line) for line in (d / "journal.jsonl").read_text().splitlines() if '"ev":"claim"' in line]
    trials = [c["trial"] for c in claims]
    assert len(trials) == len(set(trials)) == 12
    assert len({c["worker"] for c in claims}) == 2  # both workers did work


def test_checkpoint_names_parse_back_to_metrics(small_sweep):
    _, d, _ = small_sweep
    store = Store(d)
    names = sorted(p.name for p in (d / "checkpoints").iterdir())
    assert names and all(parse_checkpoint(n) for n in names)
    by_name = {}
    for trial_dir in (d / "trials").iterdir():
        for line in store.metrics(trial_dir.name):
            by_name[line["checkpoint"]] = line
    for n in names:
        c = parse_checkpoint(n)
        line = by_name[n]
        assert c.trial == n.split("_ep")[0] and c.epoch == line["epoch"]
        assert c.value == pytest.approx(line["val_acc"], abs=5e-5)
        ck = torch.load(d / "checkpoints" / n, weights_only=True)
        assert ck["epoch"] == c.epoch and ck["trial"] == c.trial and "model" in ck["state"]


def test_metrics_lines_have_the_statistics(small_sweep):
    _, d, _ = small_sweep
    lines = Store(d).metrics("s2-t0000")
    assert [x["epoch"] for x in lines] == [1, 2]
    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "update_ratio", "seconds", "losses"):
        assert key in lines[0], key
    assert 0 < lines[0]["update_ratio"] < 10


def test_report_formats(small_sweep):
    _, d, _ = small_sweep
    t = run_cli("report", str(d), "--top", "5", check=True).stdout
    assert "rank" in t and "Ranges per stage:" in t and t.count("finished") >= 5
    csv = run_cli("report", str(d), "--format", "csv", check=True).stdout
    from io import StringIO

    df = pd.read_csv(StringIO(csv))
    assert len(df) == 12 and list(df["rank"]) == list(range(1, 13))
    fin = df[df.status == "finished"]["val_acc"].tolist()
    assert fin == sorted(fin, reverse=True)
    js = json.loads(run_cli("report", str(d), "--format", "json", "--stage", "2", check=True).stdout)
    assert js["metric"] == {"name": "val_acc", "goal": "maximize"} and len(js["runs"]) == 4
    assert set(js["runs"][0]["params"]) >= {"lr", "reg", "batch"}


def test_border_flag_moves_next_range_up(tmp_path):
    """The best lr is pinned to the upper edge of a deliberately low range: flagged, and stage 2 moves up."""
    doc = {
        "name": "edge",
        "seed": 0,
        "trainable": {"builtin": "noop", "target": {"lr": 10.0}},
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-3}},
        "stages": [{"trials": 12, "epochs": 1}, {"trials": 10, "epochs": 1, "top": 4}],
        "workers": 2,
    }
    f = write_sweep(tmp_path, doc, "edge.yaml")
    p = run_cli("master", "start", str(f), "--dir", str(tmp_path / "run"), check=True)
    assert "best lr" in p.stdout and "the next stage extends the range upward" in p.stdout
    s1 = json.loads((tmp_path / "run" / "stages" / "stage-1.json").read_text())
    s2 = json.loads((tmp_path / "run" / "stages" / "stage-2.json").read_text())
    assert s1["border_flags"][0]["param"] == "lr" and s1["border_flags"][0]["side"] == "high"
    assert s2["ranges"]["lr"]["high"] > 1e-3
    assert math.log10(s2["ranges"]["lr"]["high"] / s2["ranges"]["lr"]["low"]) < 3  # narrower than 3 decades
    st = Store(tmp_path / "run").refresh()
    above = [t for t in st.stage_trials(2) if t.params["lr"] > 1e-3]
    assert len(above) >= 3  # stage 2 really samples above the old edge


def test_worker_started_by_hand_joins(tmp_path):
    """`--no-workers` master + two hand-started workers on the same directory."""
    doc = {
        "name": "hand",
        "trainable": {"builtin": "noop", "sleep": 0.05},
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1}},
        "stages": [{"trials": 10, "epochs": 2}],
        "heartbeat": 0.2,
    }
    f = write_sweep(tmp_path, doc, "hand.yaml")
    d = tmp_path / "run"
    master = spawn("master", "start", str(f), "--dir", str(d), "--no-workers", capture=True)
    try:
        wait_for(
            lambda: (d / "journal.jsonl").exists() and Store(d).refresh().trials,
            60,
            "stage 1 planned",
            poll=0.1,
            proc=master,
        )
        workers = [spawn("worker", "--dir", str(d)) for _ in range(2)]
        out, err = master.communicate(timeout=120)
        assert master.returncode == 0, err
        for w in workers:
            assert w.wait(timeout=60) == 0
    finally:
        if master.poll() is None:
            master.kill()
    st = Store(d).refresh()
    assert st.done and all(t.state.value == "finished" for t in st.trials.values())
    assert len({t.worker for t in st.trials.values()}) == 2


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("name: [unclosed\n", "not valid YAML: line 2"),
        ("- just\n- a list\n", "must be a mapping"),
        (
            "trainable: {builtin: classifier}\nparameters: {lr: {min: 1, max: 0.1}}\nstages: [{trials: 2}]\n",
            "min must be below max",
        ),
        ("trainable: {builtin: classifier}\nstages: []\n", "stages: must be a non-empty list"),
        ("trainable: {builtin: classifier}\nmetric: {goal: up}\nstages: [{trials: 1}]\n", "metric.goal"),
    ],
)
def test_malformed_sweep_exits_2_with_one_line(tmp_path, text, fragment):
    f = write_sweep(tmp_path, text, "bad.yaml")
    p = run_cli("master", "start", str(f), "--dir", str(tmp_path / "run"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: error:") and fragment in lines[0], p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "run").exists()
