"""Next ranges follow the evidence: incumbents kept, border moves by the top runs, the divergence region cut."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch.search import divergence, evidence, stages
from hpsearch.search import space as sp
from hpsearch.search.config import Metric, parse

MAX = Metric("val_acc", "maximize")


def run(stage: int, i: int, best: float | None, status: str = "finished", seed: int | None = None, **params):
    tid = f"s{stage}-t{i:04d}"
    return stages.Run(tid, tid, params, status, best, 1, seed if seed is not None else 1000 * stage + i)


def sweep(stages_: list[dict], lr=(1e-5, 1.0), **extra):
    return parse(
        {
            "trainable": "noop",
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": lr[0], "max": lr[1]},
                "reg": {"distribution": "log_uniform_values", "min": 1e-6, "max": 0.1},
            },
            "stages": stages_,
            "method": "random",
            **extra,
        }
    )


# -- the issue's sweep: a lucky stage-1 run on the border, an unlucky stage 2 -------------------
def issue_case():
    sw = sweep(
        [{"trials": 16, "epochs": 1}, {"trials": 8, "epochs": 3, "top": 5}, {"trials": 4, "epochs": 6, "top": 3}]
    )
    s1 = [
        run(1, 0, 0.918, lr=0.34, reg=1e-4),  # the sweep's best: near the top of [1e-5, 1]
        run(1, 1, 0.80, lr=0.012, reg=1e-3),
        run(1, 2, 0.78, lr=0.02, reg=1e-5),
        run(1, 3, 0.70, lr=0.005, reg=1e-2),
        run(1, 4, 0.60, lr=0.05, reg=1e-4),
        *[run(1, 5 + i, 0.2 + 0.01 * i, lr=10 ** (-5 + 0.3 * i), reg=1e-3) for i in range(9)],
        run(1, 14, None, "diverged", lr=0.9, reg=1e-3),
    ]
    p2 = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    s2 = [
        run(2, 0, 0.84, lr=0.004, reg=1e-4),
        run(2, 1, 0.83, lr=0.006, reg=1e-4),
        run(2, 2, 0.82, lr=0.01, reg=1e-3),
        run(2, 3, 0.80, lr=0.008, reg=1e-3),
        run(2, 4, 0.75, lr=0.012, reg=1e-3),
        run(2, 5, None, "diverged", lr=2.5, reg=1e-4),
        run(2, 6, None, "diverged", lr=4.0, reg=1e-4),
    ]
    return sw, s1, p2, s2


def test_stage_two_moves_less_when_only_a_lone_best_run_sits_on_the_border():
    sw, s1, p2, _ = issue_case()
    lr = p2.space["lr"]
    # the old rule moved the top edge half the width (2.5 decades) to 316; the top runs' median
    # (0.02) lies 1.7 of the 5 decades inside, so the edge moves 0.5 * (1 - FALL * 1.7 / 5) of the width
    inside = -math.log10(0.02) / 5
    assert lr.high == pytest.approx(10 ** (5 * 0.5 * (1 - evidence.FALL * inside)))
    assert lr.high < 100
    assert lr.low <= 0.005  # the top runs' region is kept
    assert [f.side for f in p2.flags if f.param == "lr"] == ["high"]


def test_incumbent_of_an_earlier_stage_stays_inside_every_later_range():
    sw, s1, p2, s2 = issue_case()
    p3 = stages.plan_stage(sw, 3, p2.space, s2, history=s1 + s2)
    lr = p3.space["lr"]
    # stage 2's best (0.84) lies near 4e-3, but the sweep's best (0.918, stage 1) had lr 0.34
    assert lr.low <= 0.004 and lr.high >= 0.34
    # without the history, stage 3 narrows around stage 2 alone and loses it (the issue's bug)
    assert stages.plan_stage(sw, 3, p2.space, s2).space["lr"].high < 0.34


def test_divergence_region_is_cut_from_the_next_range():
    sw, s1, p2, s2 = issue_case()
    p3 = stages.plan_stage(sw, 3, p2.space, s2, history=s1 + s2)
    # lr 0.9, 2.5 and 4.0 diverged: the threshold is 0.9 (all runs at or above it diverged)
    assert divergence.thresholds(p2.space, s1 + s2) == {"lr": 0.9}
    assert p3.space["lr"].high <= 0.9


def test_promotion_takes_the_best_of_every_earlier_stage():
    sw = sweep([{"trials": 6, "epochs": 1}, {"trials": 4, "epochs": 3}, {"trials": 0, "epochs": 8, "promote": 2}])
    s1 = [run(1, i, 0.5 + 0.01 * i, lr=10 ** (-4 + 0.5 * i), reg=1e-3) for i in range(6)]
    s1[0] = run(1, 0, 0.95, lr=1e-3, reg=1e-3)  # better than anything stage 2 found
    s2 = [run(2, i, 0.6 + 0.01 * i, lr=10 ** (-3 + 0.2 * i), reg=1e-3) for i in range(4)]
    p3 = stages.plan_stage(sw, 3, sw.space, s2, history=s1 + s2)
    assert [t["parent"] for t in p3.trials] == ["s1-t0000", "s2-t0003"]
    # the previous stage only, as before, without a history
    assert [t["parent"] for t in stages.plan_stage(sw, 3, sw.space, s2).trials] == ["s2-t0003", "s2-t0002"]


def test_a_configuration_whose_continuation_diverged_is_not_promoted_or_held_again():
    """Breast cancer, best lr below the range (quality bench): stage 1's best run was promoted,
    diverged in its third epoch, and the last stage promoted it again from the same checkpoint
    and seed, to diverge again. Its lineage now leaves the incumbents."""
    sw = sweep(
        [{"trials": 6, "epochs": 1}, {"trials": 4, "epochs": 3, "promote": 1}, {"trials": 0, "epochs": 8, "promote": 2}]
    )
    s1 = [run(1, i, 0.5 + 0.01 * i, lr=10 ** (-4 + 0.5 * i), reg=1e-3) for i in range(6)]
    s1[0] = run(1, 0, 0.95, lr=1e-3, reg=1e-3)  # the best after one epoch
    s2 = [run(2, i, 0.6 + 0.01 * i, lr=10 ** (-3 + 0.2 * i), reg=1e-3) for i in range(4)]
    s2.append(
        stages.Run(
            "s2-t0004",
            "s2-t0004",
            dict(s1[0].params),
            "diverged",
            0.95,
            1,
            s1[0].seed,
            epochs_done=2,
            parent="s1-t0000",
        )
    )
    p3 = stages.plan_stage(sw, 3, sw.space, s2, history=s1 + s2)
    assert [t["parent"] for t in p3.trials] == ["s2-t0003", "s2-t0002"]
    seeds = {r.trial: r.seed for r in s1 + s2}
    ranked = stages.rank(s1 + s2, MAX)
    assert ranked[0].config == "s1-t0000"
    assert "s1-t0000" not in [r.config for r in evidence.without_diverged(ranked, s1 + s2, seeds)]
    # a fresh run that diverged with other parameters or another seed leaves every lineage alone
    other = stages.Run("s2-t0005", "s2-t0005", dict(s1[0].params), "diverged", None, None, 7, None, 0)
    assert evidence.without_diverged(ranked, [*s1, *s2[:4], other], seeds) == ranked


def test_a_promoted_child_and_its_parent_count_once():
    s1 = [run(1, 0, 0.9, lr=0.1), run(1, 1, 0.5, lr=0.2)]
    child = stages.Run("s2-t0000", "s2-t0000", {"lr": 0.1}, "finished", 0.9, 2, s1[0].seed)
    ranked = stages.rank([*s1, child], MAX)
    inc = evidence.incumbents(ranked, 5, {r.trial: r.seed for r in [*s1, child]})
    assert [r.config for r in inc] == ["s2-t0000", "s1-t0001"]  # tie: the later stage's, trained longer


def test_border_move_follows_the_top_runs_median():
    dim = sp.Numeric(1e-5, 1.0, log=True)  # 5 decades
    at_edge = [0.9, 0.8, 0.7]
    inside = [0.9, 1e-3, 1e-3]
    fall = evidence.FALL
    assert evidence.border_move(dim, at_edge, "high", 0.5) == pytest.approx(5 * 0.5 * (1 - fall * -math.log10(0.8) / 5))
    assert evidence.border_move(dim, inside, "high", 0.5) == pytest.approx(
        5 * max(evidence.MIN_MOVE, 0.5 * (1 - fall * 0.6))
    )
    assert evidence.border_move(dim, [1e-5, 1e-5, 1e-5], "high", 0.5) == pytest.approx(5 * evidence.MIN_MOVE)
    assert evidence.border_move(dim, [1e-5, 2e-5], "low", 0.5) > evidence.border_move(dim, [1e-5, 1e-2], "low", 0.5)


def test_cap_slides_a_range_lying_wholly_above_the_threshold_below_it():
    dim = sp.Numeric(0.1, 10.0, log=True)
    capped = divergence.cap(dim, 0.05, [])
    assert capped.high == pytest.approx(0.05) and capped.low == pytest.approx(5e-4)
    assert divergence.cap(dim, 0.5, [2.0]).high == 2.0  # an incumbent that finished at 2.0 stays
    assert divergence.cap(dim, 20.0, []) is dim


# -- properties of the range arithmetic ----------------------------------------------------------
finite = st.floats(min_value=-6, max_value=3, allow_nan=False)


@st.composite
def log_range_and_values(draw):
    a, b = sorted([draw(finite), draw(finite)])
    if b - a < 0.1:
        b = a + 0.1
    dim = sp.Numeric(10**a, 10**b, log=True)
    values = draw(st.lists(st.floats(min_value=-7, max_value=4), min_size=1, max_size=6))
    return dim, [10**v for v in values]


@settings(max_examples=200, deadline=None)
@given(log_range_and_values(), st.floats(min_value=0, max_value=2))
def test_keep_incumbents_always_holds_every_incumbent(case, margin):
    dim, values = case
    kept = evidence.keep_incumbents(dim, dim, values, margin)
    assert isinstance(kept, sp.Numeric) and 0 < kept.low < kept.high
    assert kept.low <= dim.low * (1 + 1e-9) and kept.high >= dim.high * (1 - 1e-9)
    for v in values:
        assert kept.low <= v * (1 + 1e-9) and v <= kept.high * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 0.9), st.floats(0.05, 1.0), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5))
def test_keep_incumbents_never_crosses_hard_bounds_or_zero(lo, width, values):
    dim = sp.Numeric(lo, min(lo + width, 1.0) if lo + width > lo else lo + 0.05, bounds=(0.0, 1.0))
    kept = evidence.keep_incumbents(dim, dim, values, 0.5)
    assert isinstance(kept, sp.Numeric) and 0.0 <= kept.low < kept.high <= 1.0


@settings(max_examples=200, deadline=None)
@given(log_range_and_values(), st.sampled_from(["low", "high"]))
def test_border_move_lies_between_the_minimum_and_the_old_rule(case, side):
    dim, values = case
    width = math.log10(dim.high) - math.log10(dim.low)
    move = evidence.border_move(dim, values, side, 0.5)
    assert evidence.MIN_MOVE * width - 1e-9 <= move <= 0.5 * width + 1e-9


@settings(max_examples=200, deadline=None)
@given(log_range_and_values(), st.floats(min_value=-7, max_value=4))
def test_divergence_cap_gives_a_valid_range_under_the_threshold_or_an_incumbent(case, t):
    dim, values = case
    capped = divergence.cap(dim, 10**t, values[:1])
    assert 0 < capped.low < capped.high
    assert capped.high <= max(10**t, values[0], dim.low) * (1 + 1e-9) or capped is dim


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-6, 0), st.floats(0.0, 1.0), st.booleans()), min_size=3, max_size=30),
    st.integers(0, 3),
)
def test_plan_keeps_the_best_run_of_any_stage_in_the_next_range(rows, split):
    """Whatever the runs, every lr and reg of the sweep's best configuration lies in the next stage's range."""
    sw = sweep([{"trials": 8, "epochs": 1}, {"trials": 8, "epochs": 2}, {"trials": 4, "epochs": 4}], lr=(1e-6, 1.0))
    s1 = [run(1, i, acc, "diverged" if d else "finished", lr=10**x, reg=1e-3) for i, (x, acc, d) in enumerate(rows)]
    p2 = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    s2 = [run(2, 0, 0.5, lr=p2.space["lr"].low, reg=1e-3)]
    p3 = stages.plan_stage(sw, 3, p2.space, s2, history=s1 + s2)
    ranked = stages.rank(s1 + s2, MAX)
    best = ranked[0].params["lr"]
    for plan in (p2, p3):
        lr = plan.space["lr"]
        assert lr.low <= best * (1 + 1e-9) and best <= lr.high * (1 + 1e-9)
        assert 0 < lr.low < lr.high


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.lists(st.integers(1, 4096), min_size=1, max_size=5), st.floats(0, 3))
def test_keep_incumbents_keeps_an_integer_log_range_valid(a, w, values, margin):
    dim = sp.Numeric(a, a + w, log=True, integer=True)
    kept = evidence.keep_incumbents(dim, dim, values, margin)
    assert isinstance(kept, sp.Numeric) and 1 <= kept.low < kept.high
    assert float(kept.low).is_integer() and float(kept.high).is_integer()
    assert all(kept.low <= v <= kept.high for v in values)


def test_an_integer_log_range_moved_down_stays_at_least_one():
    sw = parse(
        {
            "trainable": "noop",
            "parameters": {"width": {"distribution": "int_log_uniform_values", "min": 2, "max": 512}},
            "stages": [{"trials": 8, "epochs": 1}, {"trials": 4, "epochs": 2}],
            "method": "random",
        }
    )
    s1 = [run(1, i, 0.9 - 0.1 * i, width=w) for i, w in enumerate([2, 2, 3, 2, 400])]
    plan = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    width = plan.space["width"]
    assert width.low >= 1 and width.low < 2 < width.high  # moved down past 2, but never to 0
    assert all(t["params"]["width"] >= 1 for t in plan.trials)


@pytest.mark.parametrize("hold, own", [(True, "extend"), (False, "keep")])
def test_on_border_keep_holds_the_incumbents_padding_inside_the_sweeps_range(hold, own):
    """With on_border: keep (the sweep's, or the parameter's own) the padding around an incumbent at the
    edge of the sweep's range stops at that edge (found by a user trial: [1e-7, 1e-5] became [7.1e-8, 8.3e-6])."""
    original = sp.Numeric(1e-7, 1e-5, log=True, on_border=own)
    narrowed = sp.Numeric(1e-6, 8e-6, log=True, on_border=own)
    kept = evidence.keep_incumbents(narrowed, original, [1e-7, 1e-5], 0.25, hold)
    assert kept.low == pytest.approx(1e-7) and kept.high == pytest.approx(1e-5)
    loose = evidence.keep_incumbents(sp.Numeric(1e-6, 8e-6, log=True), sp.Numeric(1e-7, 1e-5, log=True), [1e-7], 0.25)
    assert loose.low < 1e-7  # without keep the padding may pass the edge, as narrowing pads


# -- most of the range diverged: the next range reaches a decade below the threshold -----------
def mostly_diverged_stage():
    """The quality suite's deeper MLP, best lr a decade below [0.1, 10] (seed 3 at 64 epochs): the
    runs diverge from 0.11 up, the few that finish lie in [0.1, 0.25] and the best of them (0.21)
    is not on the border, so neither the cap nor a border move looks below 0.1."""
    sw = sweep([{"trials": 12, "epochs": 1}, {"trials": 6, "epochs": 3}], lr=(0.1, 10.0))
    s1 = [
        run(1, 0, 0.42, lr=0.21, reg=6e-4),
        run(1, 1, 0.40, lr=0.12, reg=5e-5),
        run(1, 2, 0.25, lr=0.24, reg=8e-3),
        run(1, 3, 0.24, lr=0.14, reg=4e-6),
        *[run(1, 4 + i, None, "diverged", lr=10 ** (-0.96 + 0.25 * i), reg=1e-4) for i in range(8)],
    ]
    return sw, s1


def test_a_range_that_mostly_diverged_reaches_a_decade_below_the_threshold():
    sw, s1 = mostly_diverged_stage()
    t = divergence.thresholds(sw.space, s1)["lr"]
    assert t == pytest.approx(10**-0.96)
    p2 = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    lr = p2.space["lr"]
    assert lr.low == pytest.approx(t / divergence.BELOW)
    assert lr.high >= 0.21  # the incumbent that finished above the threshold stays inside
    assert not any(f.param == "lr" and f.extends for f in p2.flags)  # no border flag moved it
    assert [n for n in p2.notes if "a decade below" in n] == [
        "stage 2: most runs at lr >= 1.1e-01 diverged and the range held less than a decade below that: "
        "lr's range reaches down to 1.1e-02, a decade below"
    ]


def test_a_range_with_room_below_the_threshold_is_only_cut():
    # the issue's sweep: lr 0.9 and up diverged in [1e-5, 1]: five decades below it were searched
    sw, s1, p2, s2 = issue_case()
    p3 = stages.plan_stage(sw, 3, p2.space, s2, history=s1 + s2)
    assert not any("a decade below" in n for n in p2.notes + p3.notes)
    assert divergence.reach_below(sp.Numeric(1e-5, 1.0, log=True), 0.9) is None


def test_reach_below_needs_most_of_the_range_above_the_threshold_and_less_than_a_decade_below_it():
    dim = sp.Numeric(0.1, 10.0, log=True)
    assert divergence.reach_below(dim, 0.11) == pytest.approx(0.011)
    assert divergence.reach_below(dim, 0.5) == pytest.approx(0.05)
    assert divergence.reach_below(dim, 1.0) is None  # a decade below it was searched
    assert divergence.reach_below(sp.Numeric(0.1, 0.3, log=True), 0.2) is None  # half the range lies below
    assert divergence.reach_below(dim, 20.0) is None  # the threshold lies outside the range
    assert divergence.reach_below(dim, 0.05) is None  # (the cap slides such a range down)


def test_lowered_keeps_hard_bounds_and_on_border_keep():
    dim = sp.Numeric(0.1, 0.3, log=True)
    assert divergence.lowered(dim, 0.01, dim, False).low == pytest.approx(0.01)
    bounded = sp.Numeric(0.1, 0.3, log=True, bounds=(0.05, 10.0))
    assert divergence.lowered(bounded, 0.01, bounded, False).low == pytest.approx(0.05)
    assert divergence.lowered(dim, 0.01, dim, True) is dim  # the sweep's on_border: keep
    own = sp.Numeric(0.1, 0.3, log=True, on_border="keep")
    assert divergence.lowered(own, 0.01, own, False) is own
    assert divergence.lowered(dim, 0.2, dim, False) is dim  # nothing lower to reach


def test_on_border_keep_holds_a_mostly_diverged_range():
    sw, s1 = mostly_diverged_stage()
    held = sweep([{"trials": 12, "epochs": 1}, {"trials": 6, "epochs": 3}], lr=(0.1, 10.0), on_border="keep")
    p2 = stages.plan_stage(held, 2, held.space, s1, history=s1)
    assert p2.space["lr"].low >= 0.1
    assert not any("a decade below" in n for n in p2.notes)


@settings(max_examples=200, deadline=None)
@given(log_range_and_values(), st.floats(min_value=-7, max_value=4))
def test_reach_below_lies_a_decade_under_a_threshold_inside_the_range_and_lowered_stays_valid(case, t):
    dim, _ = case
    low = divergence.reach_below(dim, 10**t)
    if low is None:
        return
    assert dim.low < 10**t < dim.high and low == pytest.approx(10**t / divergence.BELOW)
    assert low < dim.low  # it only ever reaches lower than the range did
    new = divergence.lowered(dim, low, dim, False)
    assert 0 < new.low < new.high and new.high == dim.high and new.low == pytest.approx(low)


def test_a_hard_bound_stops_the_reach_below_and_the_line_says_so():
    sw, s1 = mostly_diverged_stage()
    bounded = parse(
        {
            "trainable": "noop",
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 0.1, "max": 10.0, "bounds": [0.05, 100]},
                "reg": {"distribution": "log_uniform_values", "min": 1e-6, "max": 0.1},
            },
            "stages": [{"trials": 12, "epochs": 1}, {"trials": 6, "epochs": 3}],
            "method": "random",
        }
    )
    p2 = stages.plan_stage(bounded, 2, bounded.space, s1, history=s1)
    assert p2.space["lr"].low == pytest.approx(0.05)
    assert any(
        n.endswith("lr's range reaches down to 5e-02, as near a decade below as its bounds allow") for n in p2.notes
    )
