"""Early stopping's rules, pure: rung epochs, the asha and median decisions, W&B's early_terminate
mapping, the sweep-file keys; then the journal side: rung events, the first decision standing,
the pruned status in the fold, the snapshot and the ranking."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from helpers import claimed_trial, events, release
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch.errors import ConfigError, StopTrial
from hpsearch.search import config, stages
from hpsearch.search import earlystop as es
from hpsearch.search.config import Metric
from hpsearch.store import snapshot
from hpsearch.store.fold import State, SweepState
from hpsearch.store.sweepdir import Store
from hpsearch.trainables.trial import Trial

ASHA = es.EarlyStop("asha", min_epochs=1, eta=3.0)
MEDIAN = es.EarlyStop("median", min_epochs=1, min_trials=1)
values = st.floats(-1e6, 1e6, allow_nan=False)


# -- rung epochs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rule, epochs, rungs",
    [
        (es.EarlyStop("asha", 1, 3.0), 10, (1, 3, 9)),
        (es.EarlyStop("asha", 1, 3.0), 9, (1, 3)),  # the last epoch is never a rung
        (es.EarlyStop("asha", 2, 2.0), 20, (2, 4, 8, 16)),
        (es.EarlyStop("asha", 1, 1.5), 6, (1, 2, 3, 5)),  # 1, 1.5, 2.25, 3.375, 5.06: truncated, repeats dropped
        (es.EarlyStop("asha", 5, 3.0), 5, ()),
        (es.EarlyStop("median", 2), 5, (2, 3, 4)),
        (es.EarlyStop("asha", 1, 3.0, bands=(3, 9, 27)), 10, (3, 9)),
        (es.NONE, 10, ()),
    ],
)
def test_rungs(rule: es.EarlyStop, epochs: int, rungs: tuple[int, ...]) -> None:
    assert rule.rungs(epochs) == rungs


@given(st.integers(1, 20), st.floats(1.01, 10), st.integers(1, 500))
def test_asha_rungs_grow_by_eta_and_stay_below_the_last_epoch(min_epochs: int, eta: float, epochs: int) -> None:
    r = es.EarlyStop("asha", min_epochs, eta).rungs(epochs)
    assert list(r) == sorted(set(r)) and all(min_epochs <= x < epochs for x in r)
    want, x = set(), float(min_epochs)
    while x < epochs:
        want.add(int(x))
        x *= eta
    assert r == tuple(sorted(want))


# -- W&B's early_terminate ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, epochs, rungs",
    [
        ({"type": "hyperband", "min_iter": 3}, 100, (3, 9, 27, 81)),  # eta defaults to 3, as in W&B
        ({"type": "hyperband", "min_iter": 2, "eta": 2}, 20, (2, 4, 8, 16)),
        ({"type": "hyperband", "max_iter": 27, "s": 2}, 100, (3, 9)),  # 27/3, 27/9
        ({"type": "hyperband", "max_iter": 81, "s": 3, "eta": 3}, 81, (3, 9, 27)),
        ({"type": "hyperband", "max_iter": 5, "s": 2, "eta": 2}, 10, (1, 2)),  # W&B's docstring: int(2.5), int(1.25)
        ({"type": "hyperband", "max_iter": 9, "s": 5, "eta": 3, "strict": True}, 10, (1, 3)),  # 9/27 < 1: stops
    ],
)
def test_wandb_early_terminate_maps_to_asha_on_wandb_bands(raw: dict, epochs: int, rungs: tuple[int, ...]) -> None:
    problems: list[str] = []
    rule = es.wandb_rule(raw, problems)
    assert problems == []
    assert rule.rule == "asha" and rule.eta == raw.get("eta", 3) and rule.rungs(epochs) == rungs


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"type": "hyperband"}, "needs min_iter, or max_iter and s"),
        ({"type": "hyperband", "max_iter": 27}, "max_iter needs s"),
        ({"type": "envelope", "min_iter": 3}, "only early_terminate type is hyperband"),
        ({"type": "hyperband", "min_iter": 0}, "min_iter: must be an integer >= 1"),
        ({"type": "hyperband", "min_iter": 3, "eta": 1}, "eta: must be a number > 1"),
        ({"type": "hyperband", "max_iter": 2, "s": 1, "eta": 3}, "leaves no band"),
        ({"type": "hyperband", "min_iter": 3, "r": 0.5}, "unknown key 'r'"),
        ("hyperband", "must be a mapping"),
    ],
)
def test_wandb_early_terminate_mistakes(raw: object, message: str) -> None:
    problems: list[str] = []
    assert es.wandb_rule(raw, problems) == es.NONE
    assert any(message in p for p in problems), problems


# -- the asha decision ---------------------------------------------------------------------------
def test_asha_first_at_a_rung_always_continues() -> None:
    assert not es.decide(ASHA, 1, 0.01, [], maximize=True).stop


@pytest.mark.parametrize(
    "value, others, maximize, stop",
    [
        (0.5, [0.9], True, True),  # n = 2: ceil(2/3) = 1 continues, and 0.9 is better
        (0.95, [0.9], True, False),
        (0.9, [0.9], True, False),  # a tie continues
        (0.5, [0.9], False, False),  # minimize: 0.5 is the better one
        (0.5, [0.9, 0.8, 0.1], True, True),  # n = 4: top 2; two are better
        (0.85, [0.9, 0.8, 0.1], True, False),  # one better: second of 4, in the top 2
        (None, [0.9], True, True),  # no finite value: worse than any
        (float("nan"), [0.9], True, True),
        (None, [], True, False),
        (0.5, [float("nan"), float("inf")], True, False),  # others' non-finite values do not count
    ],
)
def test_asha_keeps_the_top_ceil_n_over_eta(
    value: float | None, others: list[float], maximize: bool, stop: bool
) -> None:
    assert es.decide(ASHA, 3, value, others, maximize).stop is stop


def test_asha_min_trials_waits_for_enough_trials_at_the_rung() -> None:
    rule = es.EarlyStop("asha", 1, 3.0, min_trials=3)
    assert not es.decide(rule, 1, 0.0, [0.9, 0.8], True).stop  # only 2 others: unjudged
    d = es.decide(rule, 1, 0.0, [0.9, 0.8, 0.7], True)
    assert d.stop and d.n == 4 and d.threshold == 0.8  # top ceil(4/3) = 2: the 2nd best is the bar


@given(values, st.lists(values, max_size=30), st.floats(1.01, 8), st.booleans())
def test_asha_stops_exactly_when_ceil_n_over_eta_others_are_strictly_better(
    v: float, others: list[float], eta: float, maximize: bool
) -> None:
    rule = es.EarlyStop("asha", 1, eta)
    d = es.decide(rule, 1, v, others, maximize)
    better = sum(1 for o in others if (o > v if maximize else o < v))
    assert d.stop is (better >= math.ceil((len(others) + 1) / eta))
    # the goal is a sign: minimizing v is maximizing -v
    assert es.decide(rule, 1, -v, [-o for o in others], not maximize).stop is d.stop
    # a value at least as good as every other always continues
    best = max(others, default=v) if maximize else min(others, default=v)
    assert not es.decide(rule, 1, best, others, maximize).stop


@given(values, values, st.lists(values, max_size=20), st.floats(1.01, 8))
def test_asha_is_monotone_a_better_value_never_stops_where_a_worse_one_continues(
    a: float, b: float, others: list[float], eta: float
) -> None:
    rule = es.EarlyStop("asha", 1, eta)
    lo, hi = sorted((a, b))
    if not es.decide(rule, 1, lo, others, True).stop:
        assert not es.decide(rule, 1, hi, others, True).stop


@given(st.lists(values, min_size=1, max_size=40, unique=True), st.floats(1.01, 6))
def test_asha_arrivals_best_first_continue_as_the_paper_counts(vals: list[float], eta: float) -> None:
    """Arriving best first, the i-th trial at a rung has i - 1 better ones: it continues iff
    i - 1 < ceil(i / eta). Arriving worst first, every trial is the best so far and continues."""
    rule = es.EarlyStop("asha", 1, eta)
    ordered = sorted(vals, reverse=True)
    got = [es.decide(rule, 1, v, ordered[:i], True).stop for i, v in enumerate(ordered)]
    assert got == [i >= math.ceil((i + 1) / eta) for i in range(len(ordered))]
    rising = ordered[::-1]
    assert not any(es.decide(rule, 1, v, rising[:i], True).stop for i, v in enumerate(rising))


# -- the median rule -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, others, maximize, stop",
    [
        (0.5, [0.4, 0.6, 0.9], True, True),  # median 0.6
        (0.6, [0.4, 0.6, 0.9], True, False),  # equal to the median: continues
        (0.5, [0.4, 0.6], True, False),  # even count: median 0.5
        (0.49, [0.4, 0.6], True, True),
        (0.5, [0.4, 0.6, 0.9], False, False),  # minimize: below the median 0.6 is better
        (None, [0.4], True, True),
        (0.1, [], True, False),  # nobody to compare with
    ],
)
def test_median_rule(value: float | None, others: list[float], maximize: bool, stop: bool) -> None:
    assert es.decide(MEDIAN, 2, value, others, maximize).stop is stop


def test_median_min_trials_defaults_to_five_as_optuna_startup_trials() -> None:
    rule = es.parse({"type": "median"}, "early_stop", [])
    assert rule.min_trials == 5
    assert not es.decide(rule, 1, 0.0, [1.0] * 4, True).stop
    assert es.decide(rule, 1, 0.0, [1.0] * 5, True).stop


@given(values, st.lists(values, min_size=1, max_size=30), st.booleans())
def test_median_stops_exactly_below_the_median_of_the_others(v: float, others: list[float], maximize: bool) -> None:
    d = es.decide(MEDIAN, 1, v, others, maximize)
    m = statistics.median(others)
    assert d.stop is (v < m if maximize else v > m)
    assert d.threshold == pytest.approx(m)


def test_none_never_stops() -> None:
    assert not es.decide(es.NONE, 1, -1e9, [1.0] * 100, True).stop


# -- the sweep file ------------------------------------------------------------------------------
BASE = {"trainable": "noop", "stages": [{"trials": 4, "epochs": 10}]}


def test_early_stop_forms_and_stage_override() -> None:
    s = config.parse({**BASE, "early_stop": "asha"})
    assert s.early_stop == es.EarlyStop("asha", 1, 3.0, 0, None, "early_stop")
    s = config.parse(
        {
            "trainable": "noop",
            "early_stop": {"type": "asha", "eta": 2, "min_epochs": 2},
            "stages": [{"trials": 4, "epochs": 10}, {"trials": 4, "epochs": 10, "early_stop": "none"}, {"trials": 2}],
        }
    )
    assert s.early_stop_for(1).rungs(10) == (2, 4, 8) and not s.early_stop_for(2).active
    assert s.early_stop_for(3) == s.early_stop  # no key of its own: the sweep's
    assert not config.parse(BASE).early_stop.active  # the default: none


def test_early_stop_problems_are_listed_together() -> None:
    with pytest.raises(ConfigError) as e:
        config.parse(
            {
                **BASE,
                "early_stop": {"type": "asha", "eta": 0.5, "min_epochs": "2", "grace": 1},
                "stages": [{"trials": 2, "epochs": 3, "early_stop": {"type": "median", "min_trials": -1}}],
            }
        )
    text = str(e.value)
    for part in ("early_stop.eta", "early_stop.min_epochs", "unknown key 'grace'", "stages[1].early_stop.min_trials"):
        assert part in text


def test_a_rule_without_a_rung_in_a_stage_is_a_warning() -> None:
    s = config.parse({"trainable": "noop", "early_stop": {"type": "asha", "min_epochs": 3}, "stages": [{"trials": 2}]})
    assert any("no rung below the stage's 1 epoch" in w for w in s.warnings)


# -- the journal: rung events, the pruned status ------------------------------------------------
def _trial(root: Path, rule: es.EarlyStop, trial: str = "s1-t0000", epochs: int = 5) -> Trial:
    t = claimed_trial(root, trial=trial, epochs=epochs)
    return Trial(t.store, t.record, params={}, metric="val_acc", goal="maximize", early_stop=rule)


def test_report_writes_a_rung_event_only_at_rung_epochs_with_the_best_value_so_far(tmp_path: Path) -> None:
    t = _trial(tmp_path, es.EarlyStop("asha", 1, 2.0), epochs=5)  # rungs 1, 2, 4
    for epoch, v in enumerate([0.3, 0.2, 0.5, 0.4, 0.6], 1):
        t.report(epoch, val_acc=v)
    rungs = [e for e in events(tmp_path) if e["ev"] == "rung"]
    assert [(e["epoch"], e["value"], e["stop"]) for e in rungs] == [(1, 0.3, False), (2, 0.3, False), (4, 0.5, False)]
    assert t.store.refresh().trials["s1-t0000"].rungs == [[1, 0.3, False], [2, 0.3, False], [4, 0.5, False]]


def test_a_pruned_trial_stops_keeps_its_epochs_and_checkpoints(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.layout.ensure()
    trials = [
        {"trial": f"s1-t{i:04d}", "config": f"s1-t{i:04d}", "params": {}, "seed": i, "epochs": 4, "parent": None}
        for i in range(2)
    ]
    store.journal.append([{"ev": "stage", "stage": 1, "space": {}, "trials": trials}])
    rule = es.EarlyStop("asha", 1, 3.0)
    recs = store.claim("w", n=2)
    for rec in recs:
        store.trial_files_ready(rec)
    first, second = (Trial(store, rec, params={}, metric="val_acc", goal="maximize", early_stop=rule) for rec in recs)
    first.report(1, state={"epoch": 1}, val_acc=0.9)  # state: a checkpoint is written only with one
    with pytest.raises(StopTrial, match="pruned at epoch 1 by asha"):
        second.report(1, state={"epoch": 1}, val_acc=0.2)
    assert second.stop_reason == "pruned" and "not in the top 1 of 2" in (second.prune_reason or "")
    assert (tmp_path / "checkpoints" / second.history[-1]["checkpoint"]).is_file()
    assert [line["epoch"] for line in store.metrics(second.id)] == [1]


def test_a_requeued_trial_keeps_its_first_decision_at_a_rung(tmp_path: Path) -> None:
    t = _trial(tmp_path, es.EarlyStop("median", 1, min_trials=0))
    t.report(1, state={"epoch": 1}, val_acc=0.4)  # resumable: attempt 2 goes on from epoch 1
    release(t)  # its worker vanished: requeued
    rec = t.store.claim("w2")[0]
    t2 = Trial(t.store, rec, params={}, metric="val_acc", goal="maximize", early_stop=t._early_stop)
    t2.report(2, val_acc=0.1)
    st = t.store.refresh()
    assert st.trials[t.id].rungs == [[1, 0.4, False], [2, 0.4, False]]
    # a stale attempt's rung event changes nothing
    st.apply({"ev": "rung", "trial": t.id, "attempt": 1, "epoch": 3, "value": 0.0, "stop": True})
    assert st.trials[t.id].rung(3) is None


def test_lost_claim_at_a_rung_stops_as_lost(tmp_path: Path) -> None:
    t = _trial(tmp_path, ASHA)
    t.store.journal.append([{"ev": "release", "trial": t.id, "attempt": t.attempt, "reason": "x", "lost": True}])
    with pytest.raises(StopTrial):
        t.report(1, val_acc=0.5)
    assert t.stop_reason == "lost"


def test_fold_pruned_is_finished_and_survives_the_snapshot() -> None:
    state = SweepState()
    trial = {"trial": "s1-t0000", "config": "s1-t0000", "params": {"x": 1}, "seed": 1, "epochs": 9, "parent": None}
    for ev in [
        {"ev": "stage", "stage": 1, "space": {}, "trials": [trial]},
        {"ev": "claim", "trial": "s1-t0000", "worker": "w", "attempt": 1},
        {"ev": "rung", "trial": "s1-t0000", "attempt": 1, "epoch": 1, "value": 0.25, "stop": True},
        {"ev": "result", "trial": "s1-t0000", "attempt": 1, "status": "pruned", "best": 0.25, "best_epoch": 1}
        | {"epochs_done": 1, "reason": "pruned at epoch 1"},
    ]:
        state.apply(ev)
    t = state.trials["s1-t0000"]
    assert t.state is State.PRUNED and t.state.is_finished and t.rungs == [[1, 0.25, True]]
    back = snapshot.decode(snapshot.encode(state, 100, "c"))
    assert back is not None and back[0].trials["s1-t0000"] == t


def test_ranking_puts_pruned_configurations_after_finished_ones() -> None:
    runs = [
        stages.Run("s1-t0000", "s1-t0000", {"x": 0}, "finished", 0.5, 9),
        stages.Run("s1-t0001", "s1-t0001", {"x": 1}, "pruned", 0.8, 1),  # better value, fewer epochs
        stages.Run("s1-t0002", "s1-t0002", {"x": 2}, "finished", 0.6, 9),
        stages.Run("s1-t0003-r0", "s1-t0003", {"x": 3}, "finished", 0.9, 9),
        stages.Run("s1-t0003-r1", "s1-t0003", {"x": 3}, "pruned", 0.7, 3),  # one repeat pruned
        stages.Run("s1-t0004", "s1-t0004", {"x": 4}, "failed", None, None),
    ]
    ranked = stages.rank(runs, Metric("val_acc", "maximize"))
    assert [(r.config, r.pruned) for r in ranked] == [
        ("s1-t0002", False),
        ("s1-t0000", False),
        ("s1-t0001", True),
        ("s1-t0003", True),
    ]
    assert ranked[3].mean == pytest.approx(0.8) and ranked[3].count == 2


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 3), values), max_size=40))
def test_rung_decisions_replay_from_the_journal(arrivals: list[tuple[str, int, float]]) -> None:
    """Decisions taken in arrival order, each from the rung values folded before it, are what a
    replay of the journal's rung events reproduces: the journal alone explains every prune."""
    state = SweepState()
    ids = {c: f"s1-t000{i}" for i, c in enumerate("abcd")}
    plan = [{"trial": t, "config": t, "params": {}, "seed": 0, "epochs": 4, "parent": None} for t in ids.values()]
    state.apply({"ev": "stage", "stage": 1, "space": {}, "trials": plan})
    for t in ids.values():
        state.apply({"ev": "claim", "trial": t, "worker": "w", "attempt": 1})
    journal = []
    for c, epoch, v in arrivals:
        tid = ids[c]
        if state.trials[tid].rung(epoch) is not None:
            continue
        d = es.decide(ASHA, epoch, v, state.rung_values(1, epoch, exclude=tid), True)
        ev = {"ev": "rung", "trial": tid, "attempt": 1, "epoch": epoch, "value": v, "stop": d.stop}
        state.apply(ev)
        journal.append(ev)
    seen: dict[int, list[float]] = {}
    for ev in journal:
        before = seen.setdefault(ev["epoch"], [])
        assert es.decide(ASHA, ev["epoch"], ev["value"], list(before), True).stop is ev["stop"]
        before.append(ev["value"])
