"""One answer to "which configuration is best": the master's `Done.` line, `hpsearch best`,
`hpsearch ensemble`'s members and `hpsearch.open().best` follow one ranking
(`report.repeats.configurations`), through the real CLI, with promotions and repeats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_cli, write, write_sweep
from test_recipe_cli import DIGITS

import hpsearch
from hpsearch.store.sweepdir import Store

NOISY = """
import random

def fit(params, trial):
    noise = random.Random(trial.seed).uniform(-0.05, 0.05)  # repeats differ: a lucky seed is not a better configuration
    for epoch in trial.epoch_range:
        trial.report(epoch, val_acc=params["quality"] * (1 - 0.5 ** epoch) + noise, state={"epoch": epoch})
"""


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranking")
    write(tmp / "noisy.py", NOISY)
    doc = {
        "name": "ranking",
        "seed": 3,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"python": "noisy:fit"},
        "parameters": {"quality": {"min": 0.5, "max": 0.9}},
        "stages": [{"trials": 8, "epochs": 1}, {"trials": 2, "epochs": 3, "promote": 2, "top": 4, "repeats": 3}],
        "workers": 2,
        "heartbeat": 0.2,
        "stale_after": 3,
    }
    d = tmp / "run"
    p = run_cli("master", "start", str(write_sweep(tmp, doc)), "--dir", str(d), check=True, timeout=300)
    return d, p.stdout


def test_done_line_best_and_open_name_the_same_configuration(repeated) -> None:
    d, out = repeated
    done = next(line for line in out.splitlines() if line.startswith("Done. Best val_acc"))
    rows = json.loads(run_cli("best", str(d), "--top", "20", "--format", "json", check=True).stdout)
    first = rows[0]
    # the best configuration is one of stage 2's, ranked by the mean of its 3 repeats
    assert first["stage"] == 2 and first["repeats"] == 3 and "mean of 3 repeats" in done
    m = re.search(r"configuration (s2-t\d+) \(([^)]*)\)", done)
    assert m and first["trial"] in m.group(2).split(", ")
    assert first["val_acc"] == max(Store(d).refresh().trials[t].best for t in m.group(2).split(", "))
    assert hpsearch.open(str(d)).best["trial"] == first["trial"]
    # every configuration once: a promoted one at its latest stage, never beside its stage-1 parent
    keys = [json.dumps(r["params"], sort_keys=True) for r in rows]
    assert len(keys) == len(set(keys)) == 8 + 2  # 8 drawn in stage 1, 2 fresh in stage 2
    st = Store(d).refresh()
    promoted = [t for t in st.trials.values() if t.parent]
    assert promoted and {t.parent for t in promoted}.isdisjoint(r["trial"] for r in rows)
    # in ranking order: by the mean of the repeats where there are some, else by the run's value
    score = [r.get("mean", r["val_acc"]) for r in rows]
    assert score == sorted(score, reverse=True)


def test_ensemble_members_are_distinct_configurations_after_promotions(tmp_path: Path) -> None:
    """`stages: auto` promotes: a promoted run and its parent are one model trained further, so an
    ensemble holds one of them (it used to hold both, and `hpsearch best` listed both)."""
    doc = {
        **DIGITS,
        "name": "promoted",
        "seed": 1,
        "parameters": {k: v for k, v in DIGITS["parameters"].items() if k in ("lr", "reg")},
        "stages": "auto",
        "budget": 40,
        "epochs": 6,
        "workers": 1,
        "heartbeat": 0.2,
        "checkpoints": "best_last",
    }
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True, timeout=300)
    st = Store(d).refresh()
    assert any(t.parent for t in st.trials.values())
    run_cli("ensemble", str(d), "--top", "6", check=True)
    members = json.loads((d / "ensemble.json").read_text())["curves"][0]["points"][-1]["members"]
    params = [json.dumps(st.trials[m].params, sort_keys=True) for m in members]
    assert len(members) == 6 and len(set(params)) == 6
    rows = json.loads(run_cli("best", str(d), "--top", "6", "--format", "json", check=True).stdout)
    assert [r["trial"] for r in rows] == members  # the same ranking, checkpoints all kept
    # "checkpoints of the best run" are its lineage's: a promoted run's best epoch may be its parent's
    lineage = _lineage(st, members[0])
    kept = [c for c in Store(d).checkpoint_names() if c.trial in lineage]
    single = json.loads((d / "ensemble.json").read_text())["curves"][1]["points"]
    assert len(lineage) > 1 and len(single) == min(6, len({c.epoch for c in kept}))
    assert rows[0]["checkpoint"].rsplit("/", 1)[-1] in {c.name for c in kept}
    # and the follow-up of a budget sweep is a sweep that starts (`next` refused its own output before)
    n = run_cli("next", str(d), "-o", str(tmp_path / "next.yaml"), check=True)
    assert "Stages: auto, planned again from budget: 40" in n.stdout
    assert "stages: auto" in (tmp_path / "next.yaml").read_text()
    run_cli("master", "start", str(tmp_path / "next.yaml"), "--dir", str(tmp_path / "next"), "--dry-run", check=True)


@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_a_promoted_run_that_ties_its_parent_is_named_everywhere(goal: str) -> None:
    """A promoted run that never beat its parent's epochs ties with it: the report's table, the
    status line, and the ranking of `hpsearch best` all name the child (it trained longer)."""
    from hpsearch.report import frames, picture
    from hpsearch.report.repeats import configurations
    from hpsearch.search.config import Metric
    from hpsearch.store.fold import State, SweepState, TrialRecord

    st = SweepState()
    value = 0.9 if goal == "maximize" else 0.1
    for tid, stage, parent, best in [
        ("s1-t0000", 1, None, 0.5),
        ("s2-t0004", 2, None, value),
        ("s3-t0000", 3, "s2-t0004", value),
    ]:
        params = {"lr": 0.3} if tid != "s1-t0000" else {"lr": 0.01}
        st.trials[tid] = TrialRecord(
            tid,
            stage,
            tid,
            params,
            seed=1,
            epochs=3 * stage,
            parent=parent,
            state=State.FINISHED,
            best=best,
            best_epoch=3,
            epochs_done=3 * stage,
        )
    metric = Metric("val_acc", goal)
    assert frames.runs_frame(st, metric)["trial"].tolist()[:2] == ["s3-t0000", "s2-t0004"]
    pic = picture.snapshot(st, {}, name="x", metric="val_acc", goal=goal, stages=3, stale_after=10)
    assert pic.best_trial == "s3-t0000"
    ranking = configurations(st, metric)
    assert [s.run.trial for s in ranking] == ["s3-t0000", "s1-t0000"]  # the parent is the same configuration


def _lineage(st, trial: str) -> list[str]:
    out = []
    while trial and trial not in out:
        out.append(trial)
        trial = st.trials[trial].parent
    return out
