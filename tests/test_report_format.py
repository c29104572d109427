"""report's ranking, table and CSV: the fast column-wise code must give what the plain definitions give."""

from __future__ import annotations

import io
import math
import random

import pandas as pd
import pytest

from hpsearch.report import frames
from hpsearch.report import tables as report
from hpsearch.search.config import Metric
from hpsearch.store.fold import State, SweepState, TrialRecord


def mixed_state(n: int = 400, seed: int = 0) -> SweepState:
    """Trials of every status, many tied metrics, in an order that is not their ids' order, a
    promoted child, odd text in `reason`."""
    rng = random.Random(seed)
    st = SweepState()
    ids = [f"s1-t{i:04d}" for i in range(n)] + ["s1-t10000", "s2-t0000", "s10-t0000"]
    rng.shuffle(ids)  # the state's order is not the id order: ties must be broken by id
    for i, tid in enumerate(ids):
        status = rng.choice(list(State))
        best = (
            None
            if status in (State.PLANNED, State.FAILED) and rng.random() < 0.8
            else rng.choice([0.5, 0.25, 0.75, float("nan"), round(rng.random(), 4)])
        )
        st.trials[tid] = TrialRecord(
            tid,
            int(tid[1 : tid.index("-")]),
            tid,
            {"lr": 10 ** rng.uniform(-6, 1), "batch": rng.choice([32, 64]), "opt": rng.choice(["sgd", "adam"])},
            seed=i,
            epochs=5,
            parent="s1-t0001" if tid == "s2-t0000" else None,
            state=status,
            attempt=rng.randint(0, 3),
            best=best,
            best_epoch=None if best is None else rng.randint(1, 5),
            epochs_done=rng.randint(0, 5),
            device=rng.choice([None, "cpu", "cuda:0 (GPU 1)"]),
            reason=rng.choice([None, "loss is NaN", 'said "stop", then, left\nearly']),
        )
    return st


@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_ranking_order_is_status_then_metric_then_later_stage_then_trial_id(goal):
    st = mixed_state()
    df = frames.runs_frame(st, Metric("val_acc", goal))
    sign = -1 if goal == "maximize" else 1

    def key(t: TrialRecord):
        missing = t.best is None or math.isnan(t.best)
        return (frames.STATUS_ORDER[t.state.value], missing, 0.0 if missing else sign * t.best, -t.stage, t.trial)

    expected = [t.trial for t in sorted(st.trials.values(), key=key)]
    assert df["trial"].tolist() == expected
    assert df["rank"].tolist() == list(range(1, len(expected) + 1))
    # the ties really are exercised: equal metrics within a status, and NaN/None groups
    assert df.duplicated(["status", "val_acc"]).sum() > 50


def test_ranking_of_one_stage_and_of_an_empty_state():
    st = mixed_state()
    df = frames.runs_frame(st, Metric(), stage=2)
    assert df["trial"].tolist() == ["s2-t0000"]
    assert frames.runs_frame(SweepState(), Metric()).empty


def test_csv_text_is_what_pandas_writes():
    st = mixed_state()
    df = frames.runs_frame(st, Metric())
    assert report.csv_text(df) == df.to_csv(index=False).rstrip("\n")
    odd = pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.1, float("nan"), 1e-300],
            "n": pd.array([1, None, 3], dtype="Int64"),
            "s": ["a,b", 'q"uote', "plain"],
            "o": [None, True, 2.5],
            "e": ["", None, "x\ry"],
            "comma,name": [1.0, 2.0, 3.0],
        }
    )
    assert report.csv_text(odd) == odd.to_csv(index=False).rstrip("\n")
    assert pd.read_csv(io.StringIO(report.csv_text(df)))["trial"].tolist() == df["trial"].tolist()


def reference_table(df: pd.DataFrame, columns: list[str], max_width: int = 60) -> str:
    """The table by its definition, cell by cell: format_value (sp.fmt for parameters' values), cut at
    max_width; a column right-aligned when every cell reads as a number or "-", except the last."""
    from hpsearch.search import space as sp

    def cell(v, c):
        param = c.startswith("p.") and isinstance(v, float) and not math.isnan(v)  # NaN: a parameter it lacks, "-"
        return (sp.fmt(v) if param else report.format_value(v))[:max_width]

    def isnum(s):
        try:
            float(s)
            return True
        except ValueError:
            return s == "-"

    rows = [[cell(r[c], c) if c in df else "-" for c in columns] for r in df.to_dict("records")]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    right = [i < len(columns) - 1 and all(isnum(r[i]) for r in rows) for i in range(len(columns))]
    out = [[c.rjust(w) if a else c.ljust(w) for c, w, a in zip(columns, widths, right)], ["-" * w for w in widths]]
    out += [[s.rjust(w) if a else s.ljust(w) for s, w, a in zip(r, widths, right)] for r in rows]
    return "\n".join("  ".join(r) for r in out)


def test_text_table_matches_its_definition():
    st = mixed_state()
    df = frames.add_checkpoints(frames.runs_frame(st, Metric(), checkpoints=False), st, "val_acc")
    cols = [*report.ranking_columns(df, "val_acc"), "reason", "attempts", "missing_column"]
    assert report.text_table(df, cols) == reference_table(df, cols)
    assert report.text_table(df, cols, max_width=6) == reference_table(df, cols, max_width=6)
    # parameter floats of every size, zero, inf and NaN, and text that reads as numbers
    odd = pd.DataFrame(
        {
            "p.x": [0.0, 1e-7, 0.5, 12345.0, math.inf, float("nan"), -3e-3],
            "v": [0.0, 1e-7, 0.5, 12345.0, -math.inf, float("nan"), 2.0],
            "t": ["1", "2.5", "-", "4", "5", "6", "7"],
            "last": list("abcdefg"),
        }
    )
    assert report.text_table(odd, list(odd.columns)) == reference_table(odd, list(odd.columns))
    lines = report.text_table(odd, list(odd.columns)).splitlines()
    assert lines[0] == "     p.x        v    t  last" and lines[2].endswith("a   ")  # numbers right, last left


def test_checkpoint_names_of_promoted_trials_point_at_the_parent_for_inherited_epochs():
    st = mixed_state()
    child, parent = st.trials["s2-t0000"], st.trials["s1-t0001"]
    child.best, child.best_epoch, parent.epochs_done = 0.5, 2, 3
    assert frames.best_checkpoint(st, child, "val_acc") == "s1-t0001_ep002_val_acc0.5000.pt"
    child.best_epoch = 4
    assert frames.best_checkpoint(st, child, "val_acc") == "s2-t0000_ep004_val_acc0.5000.pt"


def test_a_parameter_a_run_does_not_have_shows_as_a_dash():
    """A conditional parameter (`momentum` only with sgd) is NaN in the runs without it: "-", not "nan"."""
    from hpsearch.report.tables import text_table

    df = pd.DataFrame({"trial": ["a", "b"], "p.momentum": [0.9, float("nan")], "p.opt": ["sgd", "adam"]})
    rows = text_table(df, ["trial", "p.momentum", "p.opt"]).splitlines()[2:]
    assert rows[0].split() == ["a", "0.9", "sgd"] and rows[1].split() == ["b", "-", "adam"]
    df = pd.DataFrame({"trial": ["a", "b"], "p.momentum": [0.9, float("nan")], "p.width": [64, None]})
    assert "nan" not in text_table(df, ["trial", "p.momentum", "p.width"])
