"""`enqueue:`: known configurations run first in stage 1, counted in its trials, ranked with the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import run_cli, write_sweep
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch.errors import ConfigError
from hpsearch.search import config, stages
from hpsearch.store.sweepdir import Store

DOC = {
    "trainable": "noop",
    "seed": 5,
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "width": {"distribution": "int_uniform", "min": 8, "max": 64},
        "opt": {"values": ["adam", "sgd"]},
        "drop": {"distribution": "uniform", "min": 0.0, "max": 0.5, "bounds": [0, 1]},
        "arch": {"parameters": {"depth": {"values": [1, 2, 3]}}},
    },
    "stages": [{"trials": 6, "epochs": 1, "repeats": 2}, {"trials": 3, "epochs": 1}],
}


def parse(enqueue: object) -> config.Sweep:
    return config.parse({**DOC, "enqueue": enqueue})


def test_entries_flatten_nested_parameters_and_outside_values_are_warnings() -> None:
    s = parse([{"lr": 0.5, "arch": {"depth": 2}}, {"arch.depth": 7, "opt": "rmsprop", "width": 16}])
    assert s.enqueue == ({"lr": 0.5, "arch.depth": 2}, {"arch.depth": 7, "opt": "rmsprop", "width": 16})
    notes = [w for w in s.warnings if w.startswith("enqueue")]
    assert notes == [
        "enqueue[1].lr: 0.5 lies outside the range [1.0e-04, 0.1] log; it runs as given",
        "enqueue[2].arch.depth: 7 is not one of the values {1, 2, 3}; it runs as given",
        "enqueue[2].opt: 'rmsprop' is not one of the values {adam, sgd}; it runs as given",
    ]


def test_a_value_off_a_q_grid_is_a_warning() -> None:
    doc = {
        **DOC,
        "parameters": {**DOC["parameters"], "batch": {"distribution": "q_uniform", "min": 16, "max": 128, "q": 16}},
    }
    s = config.parse({**doc, "enqueue": [{"batch": 40}, {"batch": 48}]})
    assert [w for w in s.warnings if w.startswith("enqueue")] == [
        "enqueue[1].batch: 40 is not a multiple of q=16; it runs as given"
    ]


@pytest.mark.parametrize(
    "enqueue, message",
    [
        ({"lr": 0.1}, "enqueue: must be a list of parameter mappings"),
        ([{"lr": 0.1}, 3], "enqueue: must be a list of parameter mappings"),
        ([{}], "enqueue[1]: is empty"),
        ([{"momentum": 0.9}], "enqueue[1].momentum: not a parameter of this sweep (parameters: arch.depth, drop,"),
        ([{"lr": "fast"}], "enqueue[1].lr: must be a number"),
        ([{"lr": 0}], "enqueue[1].lr: must be > 0 (the range is on a log scale)"),
        ([{"width": 16.5}], "enqueue[1].width: must be an integer"),
        ([{"drop": 1.5}], "enqueue[1].drop: 1.5 lies outside the parameter's hard bounds [0.0, 1]"),
        ([{"lr": 0.01}] * 7, "enqueue: 7 configurations, but stage 1 has trials: 6"),
    ],
)
def test_bad_entries_are_config_errors(enqueue: object, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(enqueue)
    assert message in str(e.value)


def test_stage_one_runs_them_first_and_keeps_every_other_draw() -> None:
    plain = config.parse(DOC)
    s = parse([{"lr": 0.5, "opt": "sgd"}, {"width": 40}])
    p0, p1 = stages.plan_stage(plain, 1, None, []), stages.plan_stage(s, 1, None, [])
    assert len(p1.trials) == len(p0.trials) == 12  # counted in the stage's 6 configurations x 2 repeats
    a, b = p0.trials, p1.trials
    assert [t["params"] for t in b[:2]] == [{**a[0]["params"], "lr": 0.5, "opt": "sgd"}] * 2  # both repeats
    assert [t["params"] for t in b[2:4]] == [{**a[2]["params"], "width": 40}] * 2
    assert [t.get("enqueued") for t in b] == [True] * 4 + [None] * 8
    assert [(t["trial"], t["seed"]) for t in b] == [(t["trial"], t["seed"]) for t in a]
    assert b[4:] == a[4:]
    # later stages never enqueue
    assert not any(t.get("enqueued") for t in stages.plan_stage(s, 2, p1.space, []).trials)


@settings(max_examples=40)
@given(st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=6))
def test_enqueued_values_are_exact_and_other_trials_unchanged(lrs: list[float]) -> None:
    doc = {**DOC, "stages": [{"trials": 6, "epochs": 1}]}
    plain = stages.plan_stage(config.parse(doc), 1, None, []).trials
    got = stages.plan_stage(config.parse({**doc, "enqueue": [{"lr": x} for x in lrs]}), 1, None, []).trials
    assert [t["params"]["lr"] for t in got[: len(lrs)]] == lrs
    assert got[len(lrs) :] == plain[len(lrs) :]


def test_enqueue_through_the_cli(tmp_path: Path) -> None:
    doc = {
        "name": "enq",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop"},
        "parameters": {"metric_value": {"distribution": "uniform", "min": 0.1, "max": 0.5}},
        "enqueue": [{"metric_value": 0.95}, {"metric_value": 0.3}],
        "stages": [{"trials": 5, "epochs": 1}, {"trials": 2, "epochs": 1}],
    }
    f = write_sweep(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    d = tmp_path / "run"
    p = run_cli("master", "start", str(f), "--dir", str(d), check=True)
    assert (
        "warning: enqueue[1].metric_value: 0.95 lies outside the range [0.1, 0.5] linear; it runs as given" in p.stderr
    )
    st1 = Store(d).refresh().stage_trials(1)
    assert len(st1) == 5 and [t.params["metric_value"] for t in st1[:2]] == [0.95, 0.3]
    assert json.loads((d / "trials" / "s1-t0000" / "params.json").read_text())["params"] == {"metric_value": 0.95}
    stage = json.loads((d / "stages" / "stage-1.json").read_text())
    assert [e["trial"] for e in stage["enqueued"]] == ["s1-t0000", "s1-t0001"]
    assert stage["enqueued"][0]["outside"] == ["metric_value: 0.95 lies outside the range [0.1, 0.5] linear"]
    assert stage["enqueued"][1]["outside"] == []
    assert stage["ranking"][0]["config"] == "s1-t0000"  # ranked with the rest: the best here
    assert "best metric_value 0.95 lies above [0.1, 0.5]" in p.stdout
    r = run_cli("report", str(d), check=True)
    assert "Enqueued configurations:\n  stage 1: s1-t0000 (metric_value: 0.95 lies outside" in r.stdout
    assert "  stage 1: s1-t0001 (inside the ranges)" in r.stdout
