"""Ranking, border detection and narrowing: the coarse-to-fine maths."""

from __future__ import annotations

import math

import pytest

from hpsearch.search import space as sp
from hpsearch.search import stages
from hpsearch.search.config import Metric, parse

MAX = Metric("val_acc", "maximize")


def run(i: int, best: float | None, status: str = "finished", config: str | None = None, **params):
    return stages.Run(f"s1-t{i:04d}", config or f"s1-t{i:04d}", params, status, best, 1, seed=i)


def test_rank_orders_by_goal_and_ignores_failed_and_diverged():
    runs = [
        run(0, 0.5, lr=1),
        run(1, 0.9, lr=2),
        run(2, 0.99, "diverged", lr=3),
        run(3, None, "failed", lr=4),
        run(4, 0.7, lr=5),
    ]
    assert [r.config for r in stages.rank(runs, MAX)] == ["s1-t0001", "s1-t0004", "s1-t0000"]
    assert [r.config for r in stages.rank(runs, Metric("loss", "minimize"))] == ["s1-t0000", "s1-t0004", "s1-t0001"]


def test_rank_uses_mean_of_repeats():
    runs = [run(0, 0.9, config="a"), run(1, 0.5, config="a"), run(2, 0.8, config="b"), run(3, 0.75, config="b")]
    ranked = stages.rank(runs, MAX)
    assert [r.config for r in ranked] == ["b", "a"]
    assert ranked[0].mean == pytest.approx(0.775) and ranked[0].count == 2
    assert ranked[1].std == pytest.approx(0.2)


def test_border_flag_top_of_log_range_with_message():
    space = {"lr": sp.Numeric(1e-6, 10.0, log=True), "reg": sp.Numeric(1e-5, 1.0, log=True)}
    flags = stages.border_flags(space, {"lr": 4.1, "reg": 1e-3}, 0.1)
    assert [(f.param, f.side) for f in flags] == [("lr", "high")]
    f = flags[0]
    assert f.position == pytest.approx((math.log10(4.1) + 6) / 7)
    assert f.message == (
        "best lr 4.1e+00 lies in the top 6% of [1e-06, 1e+01] on a log scale: the next stage extends the range upward"
    )
    # 0.41 is 80% up the range in log10: not a border value, though it is near the top linearly
    assert stages.border_flags(space, {"lr": 0.41, "reg": 1e-3}, 0.1) == []


def test_border_flag_of_an_integer_range_says_integers():
    space = {"hidden": sp.Numeric(32.0, 512.0, log=True, integer=True)}
    (f,) = stages.border_flags(space, {"hidden": 498}, 0.1)
    assert f.message.startswith("best hidden 498 lies in the top 1% of [32, 512] on a log scale")


def test_a_held_border_says_what_holds_it():
    def said(dim, side, value, on_border="extend"):
        (f,) = stages.border_flags({"x": dim}, {"x": value}, 0.1, on_border)
        assert f.side == side and not f.extends
        return f.message.split(": ", 1)[1]

    assert said(sp.Numeric(1.0, 100.0, log=True, integer=True), "low", 1) == (
        "the range cannot move lower (a log range of integers stays >= 1)"
    )
    assert said(sp.Numeric(0.0, 0.95, bounds=(0.0, 0.95)), "high", 0.94) == (
        "the range cannot move past its hard bound 0.95 (bounds:)"
    )
    assert said(sp.Numeric(1e-4, 1.0, log=True), "high", 0.9, "keep") == "the range is held by on_border: keep"
    assert said(sp.Numeric(1e-4, 1.0, log=True, on_border="keep"), "low", 1e-4) == (
        "the range is held by on_border: keep"
    )
    # a grid's last point short of the limit holds it too (it said "on_border: keep" for batch q=16)
    assert said(sp.Numeric(16.0, 128.0, integer=True, q=16), "low", 16) == (
        "the range cannot move below 1 (its values are positive integers); "
        "16 is the farthest multiple of q=16 within that"
    )
    assert said(sp.Numeric(16.0, 96.0, integer=True, q=16, bounds=(0.0, 100.0)), "high", 96) == (
        "the range cannot move past its hard bound 100 (bounds:); 96 is the farthest multiple of q=16 within that"
    )
    assert said(sp.Numeric(16.0, 256.0, log=True, integer=True, q=16), "low", 16) == (
        "the range cannot move lower (a log range on multiples of q=16 stays >= q)"
    )


def test_border_measured_in_the_parameters_own_scale():
    # 0.5 is near the top of [1e-6, 1] linearly, but in the middle-upper part on a log scale
    log = {"lr": sp.Numeric(1e-6, 1.0, log=True)}
    lin = {"lr": sp.Numeric(1e-6, 1.0)}
    assert stages.border_flags(log, {"lr": 2e-6}, 0.1)[0].side == "low"
    assert stages.border_flags(lin, {"lr": 2e-6}, 0.1)[0].side == "low"
    assert stages.border_flags(log, {"lr": 1e-3}, 0.1) == []
    assert stages.border_flags(lin, {"lr": 0.95}, 0.1)[0].side == "high"


def test_narrow_without_flags_stays_inside_and_spans_top():
    dim = sp.Numeric(1e-6, 10.0, log=True)
    new = stages.narrow(dim, [1e-3, 1e-2, 3e-2], [], margin=0.25)
    assert dim.low <= new.low < 1e-3 and 3e-2 < new.high <= dim.high
    assert math.log10(new.high / new.low) < 7 / 2


def test_narrow_moves_flagged_side_outward():
    dim = sp.Numeric(1e-6, 1e-2, log=True)
    flags = stages.border_flags({"lr": dim}, {"lr": 9e-3}, 0.1)
    new = stages.narrow(dim, [9e-3, 5e-3, 2e-3], flags, margin=0.25)
    assert new.high > dim.high * 1.5  # moved up past the old edge
    assert new.low > dim.low  # narrowed on the other side


def test_hard_bounds_stop_the_move():
    dim = sp.Numeric(0.0, 0.9, bounds=(0.0, 1.0))
    flags = stages.border_flags({"d": dim}, {"d": 0.89}, 0.1)
    new = stages.narrow(dim, [0.89, 0.8], flags, margin=0.25)
    assert 0.9 < new.high <= 1.0
    assert stages.narrow(dim, [0.89, 0.8], flags, margin=5.0).high == 1.0  # clipped at the bound
    at_bound = sp.Numeric(0.0, 1.0, bounds=(0.0, 1.0))
    f = stages.border_flags({"d": at_bound}, {"d": 0.99}, 0.1)
    assert f and not f[0].extends and "cannot move" in f[0].message


def test_on_border_keep_never_extends():
    dim = sp.Numeric(1e-6, 1e-2, log=True)
    flags = stages.border_flags({"lr": dim}, {"lr": 9e-3}, 0.1, on_border="keep")
    assert not flags[0].extends
    assert stages.narrow(dim, [9e-3], flags, 0.25).high <= dim.high


def test_nonnegative_and_int_ranges_keep_their_sign():
    dim = sp.Numeric(0.0, 0.5)
    flags = stages.border_flags({"d": dim}, {"d": 0.01}, 0.1)
    assert stages.narrow(dim, [0.01], flags, 0.25).low == 0.0
    idim = sp.Numeric(1, 10, integer=True)
    flags = stages.border_flags({"h": idim}, {"h": 1}, 0.1)
    new = stages.narrow(idim, [1, 2], flags, 0.25)
    assert new.low >= 1 and isinstance(new.low, float) and new.high > new.low


def test_categorical_keeps_values_seen_among_top():
    dim = sp.Categorical((16, 32, 64, 128))
    assert stages.narrow(dim, [32, 128, 32], [], 0.25).values == (32, 128)


def test_plan_stage_two_narrows_around_best_and_extends_flagged_lr():
    sweep = parse(
        {
            "name": "t",
            "trainable": {"builtin": "noop"},
            "seed": 3,
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-2},
                "reg": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1},
            },
            "stages": [{"trials": 20, "epochs": 1}, {"trials": 8, "epochs": 2, "top": 3}],
        }
    )
    plan1 = stages.plan_stage(sweep, 1, None, [])
    assert len(plan1.trials) == 20 and plan1.trials[0]["trial"] == "s1-t0000"
    # score favours high lr: the best run sits at the top edge of the lr range
    runs = [
        stages.Run(t["trial"], t["config"], t["params"], "finished", math.log10(t["params"]["lr"]), 1, t["seed"])
        for t in plan1.trials
    ]
    plan2 = stages.plan_stage(sweep, 2, plan1.space, runs)
    assert ("lr", "high") in [(f.param, f.side) for f in plan2.flags]
    assert plan2.space["lr"].high > 1e-2
    assert len(plan2.trials) == 8 and all(t["epochs"] == 2 for t in plan2.trials)
    for t in plan2.trials:
        assert plan2.space["lr"].low <= t["params"]["lr"] <= plan2.space["lr"].high


def test_plan_promotes_top_and_names_repeats():
    sweep = parse(
        {
            "name": "t",
            "trainable": {"builtin": "noop"},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1}},
            "stages": [{"trials": 4, "epochs": 1}, {"trials": 2, "epochs": 3, "promote": 2, "repeats": 2}],
        }
    )
    p1 = stages.plan_stage(sweep, 1, None, [])
    runs = [
        stages.Run(t["trial"], t["config"], t["params"], "finished", float(i), 1, t["seed"])
        for i, t in enumerate(p1.trials)
    ]
    p2 = stages.plan_stage(sweep, 2, p1.space, runs)
    promoted = [t for t in p2.trials if t["parent"]]
    assert [t["parent"] for t in promoted] == ["s1-t0003", "s1-t0002"]
    # every configuration has the stage's 2 repeats (issue 12): a promoted one continues its single
    # run as r0 and gains a new seed, trained afresh, as r1
    assert [t["trial"] for t in p2.trials] == [f"s2-t000{c}-r{r}" for c in range(4) for r in range(2)]
    assert [t["parent"] for t in p2.trials[:4]] == ["s1-t0003", None, "s1-t0002", None]
    for i in range(0, 8, 2):
        assert p2.trials[i]["params"] == p2.trials[i + 1]["params"]
        assert p2.trials[i]["seed"] != p2.trials[i + 1]["seed"]
        assert p2.trials[i]["config"] == p2.trials[i + 1]["config"]


def test_parameter_on_border_keep_never_extends_that_parameter():
    sweep = parse(
        {
            "name": "t",
            "trainable": {"builtin": "noop"},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-2, "on_border": "keep"}},
            "stages": [{"trials": 2}],
        }
    )
    dim = sweep.space["lr"]
    flags = stages.border_flags({"lr": dim}, {"lr": 9e-3}, 0.1)
    assert flags and not flags[0].extends
    assert stages.narrow(dim, [9e-3], flags, 0.25).high <= dim.high


def test_promote_fraction_one_promotes_every_configuration():
    ranked = [stages.Ranked(f"c{i}", (f"s1-t{i:04d}",), {}, 1.0, 0.0, 1, 1) for i in range(5)]
    assert len(stages._promoted(stages.Stage(trials=0, epochs=2, promote=1.0), ranked)) == 5
    assert len(stages._promoted(stages.Stage(trials=0, epochs=2, promote=1), ranked)) == 1
