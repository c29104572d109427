"""Coarse-to-fine decisions, pure: rank runs, flag border values, narrow or move ranges, plan a stage.

Nothing here touches the disk: inputs are the validated sweep and the runs' records, outputs are
plain data the master writes down. Progress is derived from those records, never kept as state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from hpsearch.gcpause import bulk
from hpsearch.search import budget, evidence, sampler
from hpsearch.search import space as sp
from hpsearch.search.config import Metric, Stage, Sweep


class Run(NamedTuple):
    """What ranking needs to know of one trial (a tuple: a stage of 100,000 builds fast)."""

    trial: str
    config: str  # trials that are repeats of one configuration share this
    params: dict[str, Any]
    status: str  # planned | running | finished | diverged | failed
    best: float | None = None
    best_epoch: int | None = None
    seed: int = 0


@bulk
def runs_from(trials: Any) -> list[Run]:
    """Runs of trial records (journal.TrialRecord, or anything with the same fields)."""
    return [Run(t.trial, t.config, t.params, t.state.value, t.best, t.best_epoch, t.seed) for t in trials]


class Ranked(NamedTuple):
    """One configuration's standing: mean (and spread) of its repeats' best metric."""

    config: str
    trials: tuple[str, ...]
    params: dict[str, Any]
    mean: float
    std: float
    count: int  # type: ignore[assignment]  # the field shadows tuple.count; named for the report column
    best_epoch: int | None


@dataclass(frozen=True)
class BorderFlag:
    param: str
    side: str  # "low" | "high"
    value: Any
    position: float  # 0 = low edge, 1 = high edge, in the range's own scale
    dim: sp.Numeric
    extends: bool  # whether the next stage moves the range outward on that side
    final: bool = False  # flagged after the last stage: there is no next stage to move

    @property
    def message(self) -> str:
        pct = (1 - self.position if self.side == "high" else self.position) * 100
        where = "top" if self.side == "high" else "bottom"
        scale = "a log" if self.dim.log else "a linear"
        show = sp.sci if self.dim.log else sp.fmt
        rng = f"[{show(self.dim.low)}, {show(self.dim.high)}]"
        way = "upward" if self.side == "high" else "downward"
        then = (
            f"the next stage extends the range {way}"
            if self.extends and not self.final
            else f"this was the last stage: extend the range {way} in a follow-up sweep"
            if self.extends
            else "the range cannot move past its hard bound or on_border: keep"
        )
        return f"best {self.param} {show(self.value)} lies in the {where} {pct:.0f}% of {rng} on {scale} scale: {then}"


USABLE = "finished"
# How far a flagged side moves past its old edge, as a fraction of the range's width (in its own
# scale). A best value on the border says the optimum may lie well outside: 0.1 moved a 2-decade
# lr range by 0.2 decades a stage, too little to reach it at equal budget (bench quality, out of range).
EXTEND = 0.5


@bulk
def rank(runs: list[Run], metric: Metric) -> list[Ranked]:
    """Rank configurations by the mean of their best metric; failed and diverged runs never rank."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        if r.status == USABLE and r.best is not None and math.isfinite(r.best):
            groups.setdefault(r.config, []).append(r)
    ranked = []
    for config, rs in groups.items():
        if len(rs) == 1:  # the common case, kept cheap: numpy's mean and std cost ~40 us per call
            r = rs[0]
            ranked.append(Ranked(config, (r.trial,), r.params, float(r.best), 0.0, 1, r.best_epoch))  # type: ignore[arg-type]
            continue
        vals = np.array([r.best for r in rs], dtype=float)
        best_run = rs[int(vals.argmax() if metric.goal == "maximize" else vals.argmin())]  # the first best, as max()
        ranked.append(
            Ranked(
                config,
                tuple(r.trial for r in rs),
                rs[0].params,
                float(vals.mean()),
                float(vals.std()),
                len(rs),
                best_run.best_epoch,
            )
        )
    sign = -1.0 if metric.goal == "maximize" else 1.0
    ranked.sort(key=lambda r: (sign * r.mean, r.config))
    return ranked


def border_flags(
    space: sp.Space, best: dict[str, Any], fraction: float, on_border: str = "extend", final: bool = False
) -> list[BorderFlag]:
    """Flag each numeric parameter whose best value lies in the outer `fraction` of its range."""
    flags = []
    for name, dim in space.items():
        if not isinstance(dim, sp.Numeric) or name not in best:
            continue
        pos = dim.to_unit(best[name])
        side = "low" if pos < fraction else "high" if pos > 1 - fraction else None
        if side is None:
            continue
        flags.append(BorderFlag(name, side, best[name], pos, dim, _can_extend(dim, side, on_border), final))
    return flags


def _can_extend(dim: sp.Numeric, side: str, on_border: str) -> bool:
    if on_border == "keep" or dim.on_border == "keep":  # the sweep's setting, or the parameter's own
        return False
    floor, ceil = _limits(dim)
    return dim.low > floor if side == "low" else dim.high < ceil


def _limits(dim: sp.Numeric) -> tuple[float, float]:
    """How far a range may ever move: its hard bounds, else sign-preserving limits."""
    if dim.bounds is not None:
        return dim.bounds
    if dim.log:
        return (0.0, math.inf)
    floor = -math.inf
    if dim.low >= 0:  # a non-negative range stays non-negative; positive ints stay >= 1
        floor = 1.0 if dim.integer and dim.low >= 1 else 0.0
    return (floor, math.inf)


def narrow(dim: sp.Dim, top_values: list[Any], flags: list[BorderFlag], margin: float) -> sp.Dim:
    """Next range of one parameter from the values of the top runs."""
    if isinstance(dim, sp.Categorical):
        seen = [v for v in dim.values if v in top_values]
        return sp.Categorical(tuple(seen)) if seen else dim
    if isinstance(dim, sp.Normal):
        vals = np.array([math.log(v) if dim.log else v for v in top_values], dtype=float)
        if len(vals) == 0:
            return dim
        sigma = max(float(vals.std()) * (1 + margin), dim.sigma * 0.1) if len(vals) > 1 else dim.sigma * 0.5
        return sp.Normal(float(vals.mean()), sigma, log=dim.log, q=dim.q)
    if not isinstance(dim, sp.Numeric) or not top_values:
        return dim
    lo_old, hi_old = dim.warp(dim.low), dim.warp(dim.high)
    width = hi_old - lo_old
    t = [dim.warp(v) for v in top_values]
    pad = max(margin * (max(t) - min(t)), 0.05 * width)
    lo, hi = max(min(t) - pad, lo_old), min(max(t) + pad, hi_old)
    sides = {f.side for f in flags if f.extends}
    # On a flagged side the optimum probably lies beyond the edge: move past it (see EXTEND).
    if "low" in sides:
        lo = lo_old - max(pad, EXTEND * width)
    if "high" in sides:
        hi = hi_old + max(pad, EXTEND * width)
    floor, ceil = _limits(dim)
    low = max(dim.unwarp(lo), floor) if not (dim.log and floor == 0) else dim.unwarp(lo)
    high = min(dim.unwarp(hi), ceil)
    if dim.integer:
        low, high = math.floor(low), math.ceil(high)
        low = low if "low" in sides else max(low, math.ceil(dim.low))
        high = high if "high" in sides else min(high, math.floor(dim.high))
        if high <= low:
            high = low + 1
    elif high <= low:
        return dim
    return sp.Numeric(
        float(low), float(high), log=dim.log, integer=dim.integer, q=dim.q, bounds=dim.bounds, on_border=dim.on_border
    )


def top_count(stage: Stage, n_ranked: int) -> int:
    """How many of the previous stage's best configurations steer this stage's ranges."""
    k = stage.top if stage.top is not None else max(3, math.ceil(0.2 * n_ranked))
    return max(1, min(k, n_ranked))


@dataclass(frozen=True)
class StagePlan:
    """What the master writes down before a stage runs."""

    stage: int
    space: sp.Space
    trials: list[dict[str, Any]]
    flags: list[BorderFlag] = field(default_factory=list)  # flags of the previous stage
    ranked: list[Ranked] = field(default_factory=list)  # previous stage's ranking


def plan_stage(
    sweep: Sweep,
    k: int,
    prev_space: sp.Space | None,
    prev_runs: list[Run],
    ranked: list[Ranked] | None = None,
    history: list[Run] | None = None,
) -> StagePlan:
    """Plan stage k (1-based): its ranges and trials, from the sweep and the previous stage's runs
    (`ranked`: their ranking, when the caller has it already). `history`: the runs of every earlier
    stage (default: the previous stage's); its best configurations stay inside every range and are
    the ones promoted, and its diverged runs cut the learning rate's range (`search.evidence`)."""
    stage = sweep.stages[k - 1]
    space, flags = dict(sweep.space), []
    history = prev_runs if history is None else history
    seeds = {r.trial: r.seed for r in history}
    overall: list[Ranked] = []
    if k > 1 and prev_space is not None:
        ranked = rank(prev_runs, sweep.metric) if ranked is None else ranked
        overall = ranked if history is prev_runs else rank(history, sweep.metric)
        if ranked:
            n = top_count(stage, len(ranked))
            flags = border_flags(prev_space, ranked[0].params, sweep.border, sweep.on_border)
            top = ranked[:n]
            space = {}
            for name, dim in prev_space.items():
                own = [f for f in flags if f.param == name]
                space[name] = narrow(dim, [r.params[name] for r in top], own, sweep.margin)
            space = evidence.refine(
                prev_space,
                space,
                sweep.space,
                {name: [r.params[name] for r in top] for name in prev_space},
                {f.param: {g.side for g in flags if g.param == f.param and g.extends} for f in flags if f.extends},
                history,
                evidence.incumbents(overall, n, seeds),
                sweep.margin,
                EXTEND,
            )
        else:
            space = dict(prev_space)  # nothing finished: keep the ranges
    ranked = ranked or []
    trials = []
    by_trial = {r.trial: r for r in history}
    # (one candidate per lineage, only when the stage promotes: 100,000 runs would cost ~0.3 s)
    candidates = evidence.incumbents(overall, len(overall), seeds) if stage.promote else []
    promoted = _promoted(stage, candidates, sweep, len(ranked))
    fresh = stage.trials
    if sweep.budget is not None:
        promoted, fresh = _within_budget(sweep, k, promoted)
    for parent in promoted:
        for r, tid in enumerate(parent.trials):
            run = by_trial[tid]
            trials.append(
                dict(
                    params=run.params,
                    seed=run.seed,
                    parent=tid,
                    group=parent.config,
                    repeat=r,
                    repeats=len(parent.trials),
                )
            )
    for i, (params, seed) in enumerate(sampler.sample_stage(space, sweep.seed, k, fresh, sweep.method)):
        for r in range(stage.repeats):
            trials.append(
                dict(params=params, seed=(seed + 1_000_003 * r) % (2**31 - 1), group=i, repeat=r, repeats=stage.repeats)
            )
    return StagePlan(k, space, _name_trials(k, trials, stage.epochs), flags, ranked)


def _promoted(
    stage: Stage, ranked: list[Ranked], sweep: Sweep | None = None, n_prev: int | None = None
) -> list[Ranked]:
    """The best configurations of every earlier stage (`ranked`, one per parameter set), up to
    `promote` of them (a fraction counts the previous stage's `n_prev` ranked configurations)."""
    if not stage.promote:
        return []
    # a configuration of an earlier stage than the previous one is promoted only when it still
    # has epochs to train (the previous stage's are promoted as before)
    n_prev = len(ranked) if n_prev is None else n_prev
    if sweep is not None:
        k = max((evidence.stage_of(r.trials[0]) for r in ranked), default=0)
        ranked = [r for r in ranked if (s := evidence.stage_of(r.trials[0])) >= k or _epochs(sweep, s) < stage.epochs]
    # an int is a count; a float is a fraction (config accepts floats only in (0, 1]), so 1.0 means all
    n = stage.promote if isinstance(stage.promote, int) else math.ceil(stage.promote * n_prev)
    return ranked[:n]


def _within_budget(sweep: Sweep, k: int, promoted: list[Ranked]) -> tuple[list[Ranked], int]:
    """Promotions and fresh trials that keep stage k within what the plan counted for it: an incumbent
    of an earlier stage than the previous one has more epochs to train, paid for with fresh trials
    (or, in a stage without them, left out for a cheaper one)."""
    stage = sweep.stages[k - 1]
    allowance = budget.cost(sweep.stages[:k]) - budget.cost(sweep.stages[: k - 1])
    kept, spent = [], 0
    for p in promoted:
        c = len(p.trials) * max(0, stage.epochs - _epochs(sweep, evidence.stage_of(p.trials[0])))
        if spent + c <= allowance:
            kept.append(p)
            spent += c
    return kept, budget.fresh_within(stage, allowance, spent)


def _epochs(sweep: Sweep, k: int) -> int:
    return sweep.stages[k - 1].epochs if 1 <= k <= len(sweep.stages) else 0


def _name_trials(k: int, trials: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """Ids: s<k>-t<NNNN> per configuration, with -r<R> per repeat when a configuration has several."""
    out, index, last = [], -1, None
    for t in trials:
        key = (t.get("parent") is not None, t["group"])
        if key != last:
            index, last = index + 1, key
        config = f"s{k}-t{index:04d}"
        trial = config if t["repeats"] == 1 else f"{config}-r{t['repeat']}"
        out.append(
            {
                "trial": trial,
                "config": config,
                "params": t["params"],
                "seed": t["seed"],
                "epochs": epochs,
                "parent": t.get("parent"),
            }
        )
    return out
