"""The follow-up sweep and the ensemble's members, pure: ranges, stages, warm runs, members."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpsearch.search import followup, stages
from hpsearch.search import space as sp
from hpsearch.search.config import Stage, parse
from hpsearch.search.ensemble import top_configs
from hpsearch.search.paramspec import parse_parameters

RAW = {
    "name": "s",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "trainable": {"builtin": "noop"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
        "drop": {"distribution": "uniform", "min": 0.0, "max": 0.8, "bounds": [0, 0.9]},
        "width": {"distribution": "int_log_uniform_values", "min": 8, "max": 512},
        "opt": {"values": ["sgd", "adam", "rmsprop"]},
        "nested": {"parameters": {"m": {"distribution": "uniform", "min": 0.5, "max": 0.99}}},
    },
    "stages": [{"trials": 12, "epochs": 1}, {"trials": 6, "epochs": 4}],
}


def run(i: int, best: float, **params) -> stages.Run:
    return stages.Run(f"s2-t{i:04d}", f"s2-t{i:04d}", params, "finished", best, 4, i)


@given(
    low=st.floats(1e-6, 1.0),
    decades=st.floats(0.1, 6),
    integer=st.booleans(),
    log=st.booleans(),
)
def test_param_spec_reads_back_as_the_same_range(low: float, decades: float, integer: bool, log: bool) -> None:
    hi = low * 10**decades
    if integer:
        low, hi = float(max(1, round(low * 100))), float(max(2, round(hi * 100) + 1))
    dim = sp.Numeric(low, hi, log=log, integer=integer, bounds=(0.0, 1e9))
    problems: list[str] = []
    back = parse_parameters({"x": followup.param_spec(dim, {"bounds": [0.0, 1e9]})}, problems, [])["x"]
    assert problems == []
    assert isinstance(back, sp.Numeric) and (back.log, back.integer) == (log, integer)
    assert back.low == pytest.approx(dim.low, rel=1e-5) and back.high == pytest.approx(dim.high, rel=1e-5)
    assert back.bounds == (0.0, 1e9)


@given(
    q=st.sampled_from([2, 16, 0.05, 0.25]),
    first=st.integers(1, 50),
    steps=st.integers(1, 40),
    log=st.booleans(),
)
def test_a_quantized_range_keeps_its_grid_in_the_follow_up(q: float, first: int, steps: int, log: bool) -> None:
    """A q grid (integer q on integer edges, as `batch: {q_uniform, q: 16}`; or a float q) reads back
    with the same q: the follow-up of an integer grid wrote int_uniform and sampled every integer."""
    low, high = first * q, (first + steps) * q
    integer = isinstance(q, int)
    dim = sp.Numeric(float(low), float(high), log=log, integer=integer, q=q)
    spec = followup.param_spec(dim, {})
    problems: list[str] = []
    back = parse_parameters({"x": spec}, problems, [])["x"]
    assert problems == [], spec
    assert isinstance(back, sp.Numeric) and (back.q, back.integer, back.log) == (q, integer, log), spec
    assert back.low == pytest.approx(low) and back.high == pytest.approx(high)


def test_follow_up_narrows_moves_flagged_edges_and_continues() -> None:
    sweep = parse(RAW)
    last = dict(sweep.space)
    runs = [
        run(0, 0.95, lr=1.1e-4, drop=0.4, width=64, opt="adam", **{"nested.m": 0.9}),  # best lr on the low edge
        run(1, 0.93, lr=3e-4, drop=0.35, width=90, opt="adam", **{"nested.m": 0.8}),
        run(2, 0.92, lr=2e-4, drop=0.45, width=70, opt="sgd", **{"nested.m": 0.85}),
        run(3, 0.10, lr=0.9, drop=0.1, width=500, opt="rmsprop", **{"nested.m": 0.6}),
    ]
    space, flags, ranked, _ = followup.next_space(sweep, last, runs)
    assert [r.config for r in ranked][:3] == ["s2-t0000", "s2-t0001", "s2-t0002"]
    assert {(f.param, f.side) for f in flags} == {("lr", "low")}
    assert space["lr"].low < 1e-4  # moved past the flagged edge
    assert 0.0 < space["drop"].low < 0.35 and 0.45 < space["drop"].high < 0.8  # narrowed around the top 3
    assert set(space["opt"].values) == {"sgd", "adam"}
    doc = followup.followup_doc(RAW, sweep, space, sweep.stages[-1], warm_start="/runs/s")
    new = parse(doc)  # a valid sweep file
    assert new.name == "s-next" and new.seed == sweep.seed + 1 and doc["warm_start"] == "/runs/s"
    assert new.space["drop"].bounds == (0, 0.9) and "m" in doc["parameters"]["nested"]["parameters"]
    assert [(s.trials, s.epochs) for s in new.stages] == [(10, 4), (5, 8)]
    assert RAW["parameters"]["lr"]["min"] == 1e-4  # the finished sweep's mapping is left alone


def test_no_finished_run_keeps_the_ranges() -> None:
    sweep = parse(RAW)
    space, flags, ranked, _ = followup.next_space(sweep, dict(sweep.space), [])
    assert space == dict(sweep.space) and flags == [] and ranked == []


def test_fewer_than_three_finished_keep_the_ranges_as_the_master_does() -> None:
    """Two finished configurations, one at chance: too few to say where the good region is, so the
    follow-up keeps the ranges (moving only a flagged border), as `plan_stage` does between stages."""
    sweep = parse(RAW)
    last = dict(sweep.space)
    runs = [
        run(0, 0.95, lr=1.1e-4, drop=0.4, width=64, opt="adam", **{"nested.m": 0.9}),  # lr on the low edge
        run(1, 0.09, lr=3e-2, drop=0.7, width=300, opt="sgd", **{"nested.m": 0.6}),
    ]
    space, flags, ranked, lines = followup.next_space(sweep, last, runs)
    assert len(ranked) == 2 and {(f.param, f.side) for f in flags} == {("lr", "low")}
    assert space["lr"].low < 1e-4 and space["lr"].high == last["lr"].high  # moved past the flag only
    assert all(space[k] == last[k] for k in ("drop", "width", "opt", "nested.m"))
    assert lines[0].startswith("only 2 configuration(s) finished, fewer than 3: the ranges are not narrowed")


def test_the_follow_up_leaves_out_where_most_runs_diverged() -> None:
    """As between stages (`evidence.refine`): the best run sits at lr 0.28, and every run at lr >=
    0.3 diverged, so the follow-up's lr range stops at 0.3 and says so (narrowing alone padded it
    up to 1.0, the region `report` says to leave out)."""
    sweep = parse(RAW)
    base = {"drop": 0.3, "width": 64, "opt": "adam", "nested.m": 0.9}
    ok = [run(i, 0.95 - i / 100, lr=lr, **base) for i, lr in enumerate([0.28, 1e-3, 3e-3, 1e-2, 3e-2])]
    bad = [
        stages.Run(f"s2-t00{10 + i}", f"s2-t00{10 + i}", {**base, "lr": lr}, "diverged", None, None, 10 + i)
        for i, lr in enumerate([0.3, 0.5, 0.9])
    ]
    space, flags, ranked, lines = followup.next_space(sweep, dict(sweep.space), ok + bad)
    assert 0.28 <= space["lr"].high <= 0.3
    assert any(line.startswith("lr: most runs at lr >= 3e-01 diverged") for line in lines)
    assert parse(followup.followup_doc(RAW, sweep, space, sweep.stages[-1])).space["lr"].high <= 0.3


def test_a_follow_up_of_a_mostly_diverged_range_reaches_a_decade_below() -> None:
    """Every run at lr >= 0.12 of [0.1, 1] diverged: the follow-up's range reaches down to 0.012
    (a decade below where the runs diverged), not only [0.1, 0.12], and says why."""
    raw = {
        **RAW,
        "parameters": {**RAW["parameters"], "lr": {"distribution": "log_uniform_values", "min": 0.1, "max": 1.0}},
    }
    sweep = parse(raw)
    base = {"drop": 0.3, "width": 64, "opt": "adam", "nested.m": 0.9}
    ok = [run(i, 0.6 - i / 100, lr=lr, **base) for i, lr in enumerate([0.11, 0.105, 0.115])]
    bad = [
        stages.Run(f"s2-t00{10 + i}", f"s2-t00{10 + i}", {**base, "lr": lr}, "diverged", None, None, 10 + i)
        for i, lr in enumerate([0.12, 0.2, 0.4, 0.8])
    ]
    space, _flags, _ranked, lines = followup.next_space(sweep, dict(sweep.space), ok + bad)
    assert space["lr"].low == pytest.approx(0.012) and space["lr"].high <= 0.12
    assert any(line.endswith("lr's range reaches down to 1.2e-02, a decade below") for line in lines)


def test_a_budget_sweep_follows_up_as_a_valid_sweep() -> None:
    """`stages: auto` is kept with its budget and epochs (planned again in the new ranges); a budget
    beside written-out stages counted the finished sweep's, so it is left out (the follow-up's
    stages train more than it). Both parse: `hpsearch next` refused its own output before."""
    runs = [
        run(i, 0.9 - i / 100, lr=1e-3 * (i + 1), drop=0.3, width=64, opt="adam", **{"nested.m": 0.9}) for i in range(4)
    ]
    auto = {**RAW, "stages": "auto", "budget": 64, "epochs": 8}
    sweep = parse(auto)
    space, *_ = followup.next_space(sweep, dict(sweep.space), runs)
    doc = followup.followup_doc(auto, sweep, space, sweep.stages[-1])
    new = parse(doc)
    assert new.auto and new.budget == 64 and doc["epochs"] == 8 and new.stages == sweep.stages
    written = {**RAW, "budget": 36}  # 12 x 1 + 6 x 4
    sweep = parse(written)
    doc = followup.followup_doc(written, sweep, space, sweep.stages[-1])
    assert "budget" not in doc and [(s.trials, s.epochs) for s in parse(doc).stages] == [(10, 4), (5, 8)]


COND = {
    **RAW,
    "parameters": {
        "optimizer": {
            "values": ["adam", "sgd", "nesterov"],
            "branches": {
                "adam": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}},
                "sgd": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0}},
                "nesterov": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0}},
            },
        },
        "momentum": {"min": 0.5, "max": 0.99, "when": {"optimizer": ["sgd", "nesterov"]}},
        "net": {"parameters": {"drop": {"min": 0.0, "max": 0.8}}},
    },
}


def test_a_follow_up_of_conditional_parameters_narrows_each_branch_in_place() -> None:
    """Each branch's range narrows around that branch's own top runs and is written back where it
    was declared (under `branches:`, beside its `when:`); the choice that carries branches keeps
    its values. `hpsearch next` crashed on such a sweep (KeyError 'lr[optimizer=adam]')."""
    sweep = parse(COND)
    runs = [run(i, 0.9 - i / 100, optimizer="adam", lr=1e-3 * (1 + i / 10), **{"net.drop": 0.2}) for i in range(4)]
    runs += [
        run(10 + i, 0.8 - i / 100, optimizer="sgd", lr=0.1 * (1 + i / 10), momentum=0.9, **{"net.drop": 0.3})
        for i in range(4)
    ]
    space, flags, ranked, lines = followup.next_space(sweep, dict(sweep.space), runs)
    # around each branch's own top runs (adam's at 1.0-1.3e-3, sgd's at 0.10-0.13), padded
    assert 5e-4 < space["lr[optimizer=adam]"].low < 1e-3 and 1.3e-3 < space["lr[optimizer=adam]"].high < 3e-3
    assert 0.05 < space["lr[optimizer=sgd]"].low < 0.1 and 0.13 < space["lr[optimizer=sgd]"].high < 0.3
    assert space["lr[optimizer=nesterov]"] == sweep.space["lr[optimizer=nesterov]"]  # no run: kept
    assert space["optimizer"] == sweep.space["optimizer"]  # carries branches: kept whole
    doc = followup.followup_doc(COND, sweep, space, sweep.stages[-1])
    new = parse(doc)  # a valid sweep file
    assert new.space["lr[optimizer=sgd]"].low == pytest.approx(space["lr[optimizer=sgd]"].low, rel=1e-5)
    assert doc["parameters"]["momentum"]["when"] == {"optimizer": ["sgd", "nesterov"]}
    assert doc["parameters"]["optimizer"]["branches"]["adam"]["lr"]["max"] < 1e-2
    assert "drop" in doc["parameters"]["net"]["parameters"] and "branches" in doc["parameters"]["optimizer"]
    # warm runs need only the parameters of the branch they took
    assert len(followup.warm_runs(runs, new.space)) == len(runs)


@given(st.integers(1, 40), st.integers(1, 300))
def test_next_stages_continue_at_equal_then_double_epochs(trials: int, epochs: int) -> None:
    first, second = followup.next_stages(Stage(trials=trials, epochs=epochs))
    assert first["epochs"] == epochs and second["epochs"] == 2 * epochs
    assert first["trials"] >= 10 and 3 <= second["trials"] <= first["trials"]
    assert "repeats" not in first and "repeats" not in second
    again = followup.next_stages(Stage(trials=trials, epochs=epochs, repeats=3))
    assert [s["repeats"] for s in again] == [3, 3]  # a sweep with repeats follows up with them


def test_warm_runs_are_finished_complete_and_marked() -> None:
    space = {"lr": sp.Numeric(1e-3, 1.0, log=True), "k": sp.Constant(3)}
    runs = [
        run(0, 0.9, lr=0.1),
        stages.Run("s2-t0001", "s2-t0001", {"lr": 0.2}, "diverged", None, None, 1),
        run(2, 0.8, other=1),  # lacks lr: cannot steer lr's narrowing
    ]
    warm = followup.warm_runs(runs, space)
    assert [(r.trial, r.config) for r in warm] == [("warm:s2-t0000", "warm:s2-t0000")]


def test_warm_runs_are_ranked_but_never_promoted() -> None:
    sweep = parse({**RAW, "stages": [{"trials": 2, "epochs": 1}, {"trials": 0, "epochs": 2, "promote": 2}]})
    own = [run(0, 0.5, lr=0.01, drop=0.1, width=16, opt="sgd", **{"nested.m": 0.7})]
    own = [r._replace(trial="s1-t0000", config="s1-t0000") for r in own]
    warm = followup.warm_runs([run(1, 0.99, lr=0.02, drop=0.2, width=32, opt="adam", **{"nested.m": 0.8})], sweep.space)
    plan = stages.plan_stage(sweep, 2, dict(sweep.space), own + warm)
    assert [r.config for r in plan.ranked] == ["warm:s2-t0001", "s1-t0000"]
    assert [t["parent"] for t in plan.trials] == ["s1-t0000"]


def test_ensemble_members_one_per_config_in_ranking_order() -> None:
    ranked = [
        ("s2-t0001-r0", "s2-t0001", "a.pt"),
        ("s2-t0001-r1", "s2-t0001", "b.pt"),  # a repeat of the same configuration
        ("s2-t0003", "s2-t0003", "gone.pt"),  # deleted
        ("s2-t0004", "s2-t0004", None),  # no checkpoint
        ("s1-t0002", "s1-t0002", "c.pt"),
        ("s1-t0005", "s1-t0005", "d.pt"),
    ]
    members = top_configs(ranked, 3, lambda name: name != "gone.pt")
    assert members == [("s2-t0001-r0", "a.pt"), ("s1-t0002", "c.pt"), ("s1-t0005", "d.pt")]
    assert top_configs(ranked, 1, lambda name: True) == [("s2-t0001-r0", "a.pt")]
