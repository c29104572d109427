"""Coarse-to-fine decisions, pure: rank runs, flag border values, narrow or move ranges, plan a stage.

Nothing here touches the disk: inputs are the validated sweep and the runs' records, outputs are
plain data the master writes down. Progress is derived from those records, never kept as state.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from hpsearch.gcpause import bulk
from hpsearch.search import budget, divergence, evidence, sampler, updateratio
from hpsearch.search import conditional as cond
from hpsearch.search import enqueue as eq
from hpsearch.search import space as sp
from hpsearch.search.config import Metric, Stage, Sweep


class Run(NamedTuple):
    """What ranking needs to know of one trial (a tuple: a stage of 100,000 builds fast)."""

    trial: str
    config: str  # trials that are repeats of one configuration share this
    params: dict[str, Any]
    status: str  # planned | running | finished | pruned | diverged | failed
    best: float | None = None
    best_epoch: int | None = None
    seed: int = 0
    update_ratio: float | None = None  # median update-to-weight ratio of its epochs (search/updateratio.py)
    epochs_done: int | None = None  # epochs it trained, its parent's included (None: not known)
    parent: str | None = None  # the trial it continues from a checkpoint (a promotion)
    resumable: bool = True  # False: it left no state to continue from; its promotion trains from epoch 1
    diverged_reported: bool = False  # diverged in an epoch it reported: `epochs_done` counts that epoch


@bulk
def runs_from(trials: Any) -> list[Run]:
    """Runs of trial records (journal.TrialRecord, or anything with the same fields)."""
    return [
        Run(
            t.trial,
            t.config,
            t.params,
            t.state.value,
            t.best,
            t.best_epoch,
            t.seed,
            t.update_ratio,
            t.epochs_done,
            t.parent,
            t.resumable,
            t.diverged_reported,
        )
        for t in trials
    ]


class Ranked(NamedTuple):
    """One configuration's standing: mean (and spread) of its repeats' best metric."""

    config: str
    trials: tuple[str, ...]
    params: dict[str, Any]
    mean: float
    std: float
    count: int  # type: ignore[assignment]  # the field shadows tuple.count; named for the report column
    best_epoch: int | None
    pruned: bool = False  # a repeat was stopped early: ranks after every configuration that finished


@dataclass(frozen=True)
class BorderFlag:
    param: str
    side: str  # "low" | "high"
    value: Any
    position: float  # 0 = low edge, 1 = high edge, in the range's own scale
    dim: sp.Numeric
    extends: bool  # whether the next stage moves the range outward on that side
    final: bool = False  # flagged after the last stage: there is no next stage to move
    noise: bool = False  # the stage's ranking was noise (its lr too low throughout): the range is kept

    @property
    def message(self) -> str:
        pct = (1 - self.position if self.side == "high" else self.position) * 100
        where = "top" if self.side == "high" else "bottom"
        scale = "a log" if self.dim.log else "a linear"
        # an integer range as integers: hidden 498 of [32, 512], not 5e+02 of [3.2e+01, 5.1e+02]
        show = _whole if self.dim.integer else sp.sci if self.dim.log else sp.fmt
        rng = f"[{show(self.dim.low)}, {show(self.dim.high)}]"
        way = "upward" if self.side == "high" else "downward"
        then = (
            f"the next stage extends the range {way}"
            if self.extends and not self.final
            else f"this was the last stage: extend the range {way} in a follow-up sweep"
            if self.extends
            else self._why_held()
        )
        if not 0 <= self.position <= 1:  # an enqueued value outside the range
            side = "above" if self.side == "high" else "below"
            return f"best {self.param} {show(self.value)} lies {side} {rng} ({scale} scale): {then}"
        return f"best {self.param} {show(self.value)} lies in the {where} {pct:.0f}% of {rng} on {scale} scale: {then}"

    def _why_held(self) -> str:
        """Why a flagged side does not move: on_border: keep, a hard bound, or what the range's
        kind allows (a log range stays > 0, of integers >= 1; a non-negative range stays >= 0)."""
        if self.noise:
            return NOISE_HELD
        floor, ceil = _grid_limits(self.dim)
        reached = self.dim.low <= floor if self.side == "low" else self.dim.high >= ceil
        if self.dim.on_border == "keep" or not reached:  # the parameter's own, or the sweep's
            return "the range is held by on_border: keep"
        edge = _limits(self.dim)[0 if self.side == "low" else 1]
        why = self._limit_why(edge)
        on_grid = floor if self.side == "low" else ceil
        if on_grid != edge:
            step = f"multiple of q={sp.fmt(self.dim.q)}" if self.dim.q else "integer"
            why += f"; {sp.fmt(on_grid)} is the farthest {step} within that"
        return why

    def _limit_why(self, edge: float) -> str:
        """What `_limits` holds the flagged side to (`edge`), in words."""
        if self.dim.bounds is not None and edge == (self.dim.bounds[0] if self.side == "low" else self.dim.bounds[1]):
            return f"the range cannot move past its hard bound {sp.fmt(edge)} (bounds:)"
        if self.side == "low" and self.dim.log:
            kind = "a log range of integers stays >= 1" if self.dim.integer else "a log range stays > 0"
            if self.dim.q:
                kind = f"a log range on multiples of q={sp.fmt(self.dim.q)} stays >= q"
            return f"the range cannot move lower ({kind})"
        if self.side == "low":
            kind = (
                "its values are positive integers" if self.dim.integer and edge >= 1 else "its values are not negative"
            )
            return f"the range cannot move below {sp.fmt(edge)} ({kind})"
        return "the range cannot move past its hard bound or on_border: keep"


# why a flagged side is kept when the update ratio moved the learning rate (`noise_kept`)
NOISE_HELD = "the range is kept: the stage's ranking was noise (its learning rates were all too low)"


def _whole(x: Any) -> str:
    return str(round(x))


USABLE = "finished"
# Runs that rank: finished ones, then pruned ones (stopped early by the stage's rule, ranked by the
# best value they reached, after every finished configuration: a run that reached fewer epochs is
# not compared with full runs on equal terms, so it steers the next ranges only where too few finished)
RANKED_STATUSES = frozenset({USABLE, "pruned"})

# Fewest finished configurations a stage narrows its ranges from. One run has no spread and two
# span one interval: `margin` x their span would shrink a range around noise. Below this, ranges
# are kept (moved only past a flagged border) and the plan says why.
MIN_TO_NARROW = 3

WARM = "warm:"  # prefix of the trial and config ids of runs carried in from another sweep (warm_start)
# How far a flagged side moves past its old edge, as a fraction of the range's width (in its own
# scale). A best value on the border says the optimum may lie well outside: 0.1 moved a 2-decade
# lr range by 0.2 decades a stage, too little to reach it at equal budget (bench quality, out of range).
EXTEND = 0.5


@bulk
def rank(runs: list[Run], metric: Metric) -> list[Ranked]:
    """Rank configurations by the mean of their best metric; failed and diverged runs never rank.

    Configurations with a pruned run (early stopping) rank after all the others, by their mean too."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        if r.status in RANKED_STATUSES and r.best is not None and math.isfinite(r.best):
            groups.setdefault(r.config, []).append(r)
    ranked = []
    for config, rs in groups.items():
        if len(rs) == 1:  # the common case, kept cheap: numpy's mean and std cost ~40 us per call
            r = rs[0]
            ranked.append(
                Ranked(config, (r.trial,), r.params, float(r.best), 0.0, 1, r.best_epoch, r.status != USABLE)  # type: ignore[arg-type]
            )
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
                any(r.status != USABLE for r in rs),
            )
        )
    sign = -1.0 if metric.goal == "maximize" else 1.0
    ranked.sort(key=lambda r: (r.pruned, sign * r.mean, r.config))
    return ranked


def border_flags(
    space: sp.Space, best: dict[str, Any], fraction: float, on_border: str = "extend", final: bool = False
) -> list[BorderFlag]:
    """Flag each numeric parameter whose best value lies in the outer `fraction` of its range."""
    flags = []
    for name, dim in space.items():
        if not isinstance(dim, sp.Numeric) or name not in best or not valid_range(dim):
            continue  # a range an older version wrote with low 0 on a log scale has no position
        pos = dim.to_unit(best[name])
        side = "low" if pos < fraction else "high" if pos > 1 - fraction else None
        if side is None:
            continue
        flags.append(BorderFlag(name, side, best[name], pos, dim, _can_extend(dim, side, on_border), final))
    return flags


def all_border_flags(
    space: sp.Space, ranked: list[Ranked], fraction: float, on_border: str = "extend", final: bool = False
) -> list[BorderFlag]:
    """border_flags of the best configuration, and per branch: a conditional parameter
    (`lr[optimizer=adam]`) is judged by the best configuration of its own branch."""
    if not ranked:
        return []
    flags = border_flags(space, ranked[0].params, fraction, on_border, final)
    for key, dim in space.items():
        if cond.is_conditional(key):
            best = next((r for r in ranked if cond.active(key, r.params)), None)
            if best is not None:
                flags += border_flags({key: dim}, {key: best.params[cond.public(key)]}, fraction, on_border, final)
    return flags


def branch_top_values(key: str, ranked: list[Ranked], top: list[Ranked], stage: Stage) -> list[Any]:
    """The values of one parameter among the top configurations that steer its next range: the
    stage's top for a plain parameter; for a conditional one, the top of its own branch's runs
    (as many as `top` would take of them)."""
    if not cond.is_conditional(key):
        return [r.params[key] for r in top]
    branch = [r for r in ranked if cond.active(key, r.params)]
    return [r.params[cond.public(key)] for r in branch[: top_count(stage, len(branch))]] if branch else []


def _can_extend(dim: sp.Numeric, side: str, on_border: str) -> bool:
    if on_border == "keep" or dim.on_border == "keep":  # the sweep's setting, or the parameter's own
        return False
    floor, ceil = _grid_limits(dim)
    return dim.low > floor if side == "low" else dim.high < ceil


def _grid_limits(dim: sp.Numeric) -> tuple[float, float]:
    """`_limits`, on a grid range (multiples of q, or integers) the farthest grid points within them."""
    floor, ceil = _limits(dim)
    if dim.q or dim.integer:
        step = dim.q or 1.0
        first, last = sp.grid_span(floor, ceil, step)
        floor, ceil = float(sp.on_grid(first, step)), float(sp.on_grid(last, step))
    return floor, ceil


# The farthest any range may move, so that every value, its log10 and the range's width stay finite.
HUGE = 1e300


def _limits(dim: sp.Numeric) -> tuple[float, float]:
    """How far a range may ever move: within its hard bounds and the values its distribution allows.

    A log range stays > 0 (>= 1 for integers, >= q on a grid: 0 has no log); a range that starts
    non-negative stays non-negative (positive integers stay >= 1); nothing passes +-1e300 (integers: +-2**53).
    """
    floor, ceil = (-sp.MAX_INT, sp.MAX_INT) if dim.integer else (-HUGE, HUGE)
    if dim.log:
        floor = max(1.0 if dim.integer else 1 / HUGE, dim.q or 0.0)
    elif dim.low >= 0:
        floor = 1.0 if dim.integer and dim.low >= 1 else 0.0
    if dim.bounds is not None:
        floor, ceil = max(floor, dim.bounds[0]), min(ceil, dim.bounds[1])
    return floor, ceil


def _snap(dim: sp.Numeric, low: float, high: float, sides: set[str]) -> tuple[float, float]:
    """Put [low, high] on the dimension's grid (multiples of q, or integers): outward, within the
    limits and, on a side that does not extend, within the old range; at least two points."""
    step = dim.q or 1.0
    floor, ceil = _limits(dim)
    lim_first, lim_last = sp.grid_span(floor, ceil, step)
    old_first, old_last = sp.grid_span(dim.low, dim.high, step)
    first = max(math.floor(low / step + sp.GRID_TOL), lim_first if "low" in sides else old_first)
    last = min(math.ceil(high / step - sp.GRID_TOL), lim_last if "high" in sides else old_last)
    lo_cap, hi_cap = min(lim_first, old_first), max(lim_last, old_last)
    if last - first < 1:  # widen to two points, inside what is allowed
        last = min(first + 1, hi_cap)
        first = min(first, last - 1)
    first, last = max(first, lo_cap), min(last, hi_cap)
    return float(sp.on_grid(first, step)), float(sp.on_grid(last, step))


def narrow(dim: sp.Dim, top_values: list[Any], flags: list[BorderFlag], margin: float) -> sp.Dim:
    """Next range of one parameter from the values of the top runs.

    Always valid and samplable (tests/test_range_moves.py checks it over random ranges): low <
    high and both finite; a log range stays > 0 (an integer one >= 1); integer and quantized ranges
    keep at least two of their points; hard `bounds` hold. When no valid narrower range exists the
    old one is kept.
    """
    if isinstance(dim, sp.Categorical):
        seen = [v for v in dim.values if v in top_values]
        return sp.Categorical(tuple(seen)) if seen else dim
    if isinstance(dim, sp.Normal):
        # a quantized log-normal can draw 0, which has no log: such values say nothing of the scale
        vals = np.array([math.log(v) if dim.log else v for v in top_values if not dim.log or v > 0], dtype=float)
        if len(vals) == 0:
            return dim
        sigma = max(float(vals.std()) * (1 + margin), dim.sigma * 0.1) if len(vals) > 1 else dim.sigma * 0.5
        sigma = min(sigma, dim.sigma)  # narrowing never widens: a growing log-normal would overflow
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
    # clip in the range's own scale first: 10 ** 400 would overflow before a clip in values could act
    w_floor, w_ceil = dim.warp(floor), dim.warp(ceil)
    # a side that stays where it was keeps its value exactly: 10 ** log10(x) can differ from x
    low = dim.low if lo == lo_old else dim.unwarp(min(max(lo, w_floor), w_ceil))
    high = dim.high if hi == hi_old else dim.unwarp(min(max(hi, w_floor), w_ceil))
    low, high = max(low, floor), min(high, ceil)
    if dim.integer or dim.q:
        low, high = _snap(dim, low, high, sides)
    new = sp.Numeric(
        float(low), float(high), log=dim.log, integer=dim.integer, q=dim.q, bounds=dim.bounds, on_border=dim.on_border
    )
    return new if valid_range(new) else dim


def narrow_space(
    space: sp.Space, ranked: list[Ranked], top: list[Ranked], flags: list[BorderFlag], stage: Stage, margin: float
) -> sp.Space:
    """Each range narrowed around the `top` configurations' values (`narrow`), moved past its
    flagged border. With fewer than MIN_TO_NARROW ranked configurations, in the stage or (for a
    conditional parameter, `lr[optimizer=adam]`) in its own branch, a range is not narrowed (one
    run has no spread): it moves only past a flagged border."""
    out: sp.Space = {}
    for name, dim in space.items():
        own = [f for f in flags if f.param == name]
        branch = len(ranked) if not cond.is_conditional(name) else sum(cond.active(name, r.params) for r in ranked)
        if branch < MIN_TO_NARROW:
            edges = [dim.low, dim.high] if isinstance(dim, sp.Numeric) else []
            out[name] = narrow(dim, edges, own, margin) if own and edges else dim
        else:
            out[name] = narrow(dim, branch_top_values(name, ranked, top, stage), own, margin)
    return out


class NextRanges(NamedTuple):
    """The ranges `next_ranges` gives, with what moved them: the border flags, the learning-rate
    ranges the update ratio moved (`off`) and the lines saying where it could not (`held`), and a
    line for each learning rate that reaches a decade below where its runs diverged (`lowered`)."""

    space: sp.Space
    flags: list[BorderFlag]
    off: list[updateratio.Misplaced]
    held: list[str]
    lowered: list[str]
    kept: list[str] = []


def next_ranges(
    sweep: Sweep,
    prev_space: sp.Space,
    ranked: list[Ranked],
    stage: Stage,
    history: list[Run],
    overall: list[Ranked],
    seeds: dict[str, int],
) -> NextRanges:
    """The ranges that follow `prev_space` from its (non-empty) ranking, as between two stages and
    for `hpsearch next`: narrowed around the stage's top (`narrow_space`, `stage` saying how many),
    then the evidence rules of every earlier run, `history` (`evidence.refine`: border moves by
    where the top runs lie, the incumbents of `overall` kept, a too-low lr range moved, the region
    where runs diverged left out, or reached a decade below when most of the range diverged),
    each held to `narrow`'s guarantees (`legal`)."""
    top = ranked[: top_count(stage, len(ranked))]
    flags = all_border_flags(prev_space, ranked, sweep.border, sweep.on_border)
    narrowed = narrow_space(prev_space, ranked, top, flags, stage, sweep.margin)
    off, held = too_low_moves(prev_space, history, sweep.on_border)
    narrowed, flags, kept = noise_kept(prev_space, narrowed, flags, off)
    caps = divergence.thresholds(prev_space, history)
    below = {
        name: low
        for name, t in caps.items()
        if isinstance(dim := prev_space[name], sp.Numeric) and (low := divergence.reach_below(dim, t)) is not None
    }
    refined = evidence.refine(
        prev_space,
        narrowed,
        sweep.space,
        {name: branch_top_values(name, ranked, top, stage) for name in prev_space},
        {f.param: {g.side for g in flags if g.param == f.param and g.extends} for f in flags if f.extends},
        caps,
        evidence.incumbents(overall, len(top), seeds),
        sweep.margin,
        EXTEND,
        {m.param: (m.low, m.high) for m in off},
        sweep.on_border == "keep",
        below,
    )
    space = {name: legal(dim, narrowed[name]) for name, dim in refined.items()}
    return NextRanges(space, flags, off, held, _lowered_lines(prev_space, space, below, caps, sweep), kept)


def noise_kept(
    prev_space: sp.Space, narrowed: sp.Space, flags: list[BorderFlag], off: list[updateratio.Misplaced]
) -> tuple[sp.Space, list[BorderFlag], list[str]]:
    """When the update ratio moved a learning rate (`off`: its whole range was too low), the stage's
    ranking was noise: a network that learned nothing scores near chance, or by its initialisation,
    whatever its other parameters. So every other parameter keeps its range: not narrowed around
    the noisy top, no border moved by the noisy best (its flags are kept as `noise`). Returns the
    ranges, the flags and a line for the plan's notes (none when nothing moved).

    Measured (quality bench, best lr above the range, 10 seeds): breast cancer at 64 epochs went
    from 0.965 / 0.930 (median / worst seed) to 0.969 / 0.958, its worst seed's reg range no longer
    thrown up to 9.7 by a 1-epoch best at reg 0.033; worst seeds rose on noisy digits at 200 epochs
    (0.935 -> 0.947) and the deeper MLP (0.471 -> 0.487, 0.688 -> 0.732); medians moved by -0.005 to
    +0.004; no in-range or below-range cell changed."""
    if not off:
        return narrowed, flags, []
    moved = {m.param for m in off}
    others = [n for n in prev_space if n not in moved and sp.is_searched(prev_space[n])]
    kept = {n: d if n in moved else prev_space[n] for n, d in narrowed.items()}
    flags = [f if f.param in moved else dataclasses.replace(f, extends=False, noise=True) for f in flags]
    line = (
        f"the update ratio says {', '.join(sorted(moved))} was too low throughout, so the ranking was noise: "
        f"{', '.join(others)} keep their ranges (not narrowed, no border moved)"
    )
    return kept, flags, [line] if others else []


def _lowered_lines(
    prev_space: sp.Space, space: sp.Space, below: dict[str, float], caps: dict[str, float], sweep: Sweep
) -> list[str]:
    """A line for each learning rate whose low end `divergence.reach_below` moved below the range its
    runs were drawn in (none where a border move took it lower still, or its floor held it)."""
    lines = []
    for name, low in below.items():
        dim, prev = space[name], prev_space[name]
        if not isinstance(dim, sp.Numeric) or not isinstance(prev, sp.Numeric):
            continue
        floor = divergence.floor(dim, sweep.space.get(name, dim), sweep.on_border == "keep")
        if not math.isclose(dim.low, max(low, floor), rel_tol=1e-9) or dim.low >= prev.low:
            continue
        where = "a decade below" if floor <= low else "as near a decade below as its bounds allow"
        lines.append(
            f"most runs at {name} >= {sp.sci(caps[name])} diverged and the range held less than a decade "
            f"below that: {name}'s range reaches down to {sp.sci(dim.low)}, {where}"
        )
    return lines


def few_note(n_ranked: int, flags: list[BorderFlag], of: str = "") -> str:
    """What a stage with fewer than MIN_TO_NARROW ranked configurations did to the ranges."""
    moved = sorted({f.param for f in flags if f.extends})
    return f"only {n_ranked} configuration(s){of} finished, fewer than {MIN_TO_NARROW}: the ranges are not narrowed" + (
        f", moved only past the flagged border of {', '.join(moved)}" if moved else ""
    )


def legal(dim: sp.Dim, fallback: sp.Dim) -> sp.Dim:
    """A range the evidence rules gave (search/evidence.py), held to `narrow`'s guarantees: within
    its limits, on its grid (multiples of q, or integers), and valid (`valid_range`); else `fallback`
    (the narrowed range, which holds them already)."""
    if not isinstance(dim, sp.Numeric):
        return dim
    floor, ceil = _limits(dim)
    low, high = max(dim.low, floor), min(dim.high, ceil)
    if dim.integer or dim.q:
        low, high = _snap(dim, low, high, {"low", "high"})
    new = sp.Numeric(
        float(low), float(high), log=dim.log, integer=dim.integer, q=dim.q, bounds=dim.bounds, on_border=dim.on_border
    )
    return new if valid_range(new) else fallback


def too_low_moves(space: sp.Space, history: list[Run], on_border: str) -> tuple[list[updateratio.Misplaced], list[str]]:
    """The learning-rate ranges the update-to-weight ratio says are too low as a whole
    (`search.updateratio`), each held to its limits (`updateratio.within`: hard bounds, scale), and
    one line for each that may not move (`on_border: keep`, sweep-wide or its own; its top at its bound)."""
    moves, held = [], []
    for m in updateratio.misplaced(space, history):
        dim = space[m.param]
        assert isinstance(dim, sp.Numeric)  # misplaced judges numeric log ranges only
        if on_border == "keep" or dim.on_border == "keep":
            held.append(f"{m.too_low}; on_border: keep holds it")
            continue
        moved = updateratio.within(m, dim, *_limits(dim))
        if moved is None:
            held.append(f"{m.too_low}; its bounds hold it")
        else:
            moves.append(moved)
    return moves, held


def valid_range(dim: sp.Numeric) -> bool:
    """Whether a numeric range can be sampled and flagged: finite, low < high, > 0 on a log scale,
    two points at least when integer or quantized, inside its hard bounds."""
    low, high = dim.low, dim.high
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        return False
    if dim.log and (low <= 0 or not math.isfinite(math.log10(high) - math.log10(low))):
        return False
    if not math.isfinite(high - low):
        return False
    if dim.bounds is not None and not dim.bounds[0] <= low <= high <= dim.bounds[1]:
        return False
    if dim.q:
        first, last = sp.grid_span(low, high, dim.q)
        return last - first >= 1
    if dim.integer:
        return math.floor(high) - math.ceil(low) >= 1
    return True


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
    notes: list[str] = field(default_factory=list)  # what the user should know of the plan (one line each)


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
    the ones promoted, its diverged runs cut the learning rate's range (`search.evidence`), and a
    `sampler: tpe` stage is told them."""
    stage = sweep.stages[k - 1]
    space = dict(sweep.space)
    flags: list[BorderFlag] = []
    notes: list[str] = []
    off: list[updateratio.Misplaced] = []
    history = prev_runs if history is None else history
    seeds = {r.trial: r.seed for r in history}
    overall: list[Ranked] = []
    if k > 1 and prev_space is not None:
        ranked = rank(prev_runs, sweep.metric) if ranked is None else ranked
        overall = ranked if history is prev_runs else rank(history, sweep.metric)
        overall = evidence.without_diverged(overall, history, seeds)
        if ranked:
            space, flags, off, held, lowered, kept = next_ranges(
                sweep, prev_space, ranked, stage, history, overall, seeds
            )
            if len(ranked) < MIN_TO_NARROW:
                notes.append(f"stage {k}: {few_note(len(ranked), flags, f' of stage {k - 1}')}")
            notes += [f"stage {k}: {m.message}" for m in off] + [f"stage {k}: {line}" for line in held]
            notes += [f"stage {k}: {line}" for line in kept + lowered]
        else:
            space = dict(prev_space)  # nothing finished: keep the ranges
    ranked = ranked or []
    by_trial = {r.trial: r for r in [*history, *prev_runs]}
    # (one candidate per lineage, only when the stage promotes: 100,000 runs would cost ~0.3 s)
    candidates = evidence.incumbents(overall, len(overall), seeds) if stage.promote else []
    promoted = _promoted(stage, candidates, sweep, len(ranked))
    eligible = len(promoted)  # before the budget's say
    fresh = stage.trials
    explore = False
    if sweep.budget is not None:
        # a promote-only stage of `stages: auto` (the bracket's last) whose ranges moved also samples where they moved
        moved = sorted({m.param for m in off} | {f.param for f in flags if f.extends})
        explore = sweep.auto and not stage.trials and bool(moved) and bool(promoted)
        spare = budget.balance(sweep.stages[: k - 1], history) if k > 1 else 0
        # `promoted` is the head of every configuration that may be promoted; the rest wait in order
        reserve = _promoted(stage, candidates, sweep, len(ranked), every=True)[len(promoted) :]
        restart = {r.trial for r in history if not r.resumable}
        promoted, fresh = _within_budget(sweep, k, promoted, explore, spare, reserve, restart)
        if explore and fresh:
            notes.append(
                f"stage {k}: the range of {', '.join(moved)} moved: {fresh} fresh trial(s) sample it, "
                f"besides {len(promoted)} promoted configuration(s)"
            )
        if spare > 0:
            share = budget.share(sweep.stages, k)
            notes.append(
                f"stage {k}: {spare} epoch(s) earlier stages were counted for but did not train (runs that "
                f"stopped early, each charged the epoch it stopped in; trials their share could not buy) join "
                f"the {share} planned for it; with them it trains {fresh} fresh trial(s) and {len(promoted)} "
                f"promoted configuration(s)"
            )
        elif spare < 0:
            notes.append(
                f"stage {k}: earlier stages trained {-spare} epoch(s) more than planned (promoted runs without "
                f"resumable state started again from epoch 1); its share pays them: {fresh} fresh trial(s), "
                f"{len(promoted)} promoted"
            )
    few = None if explore else _fewer_promoted(stage, k, len(promoted), eligible, len(ranked))
    if few:
        notes.append(few)
    trials = _promoted_trials(stage, promoted, by_trial)
    drawn = sampler.sample_stage(space, sweep.seed, k, fresh, sweep.method, exclude=[t["params"] for t in trials])
    if drawn.available is not None:
        notes.append(
            f"stage {k}: the search space holds {drawn.available} configuration(s) not yet in the stage; "
            f"each is tried once: {len(drawn)} of the {fresh} trial(s) asked for "
            f"(repeats: trains a configuration with more seeds)"
        )
    draws: list[tuple[dict[str, Any], int]] = list(drawn)
    if stage.sampler == "tpe" and fresh:
        from hpsearch.search import tpe  # imports Optuna: only for a stage that asks for it

        told = [(r.params, r.best) for r in history if r.status in RANKED_STATUSES and r.best is not None]
        draws = tpe.suggest(space, draws, told, sweep.metric.goal == "maximize", sweep.seed, k)
    # stage 1 runs the enqueued configurations first, on the first draws (the seeds' stream is kept)
    known = eq.apply(space, draws, sweep.enqueue if k == 1 else ())
    for i, (params, seed, enqueued) in enumerate(known):
        for r in range(stage.repeats):
            trials.append(
                dict(
                    params=params,
                    seed=(seed + 1_000_003 * r) % (2**31 - 1),
                    group=i,
                    repeat=r,
                    repeats=stage.repeats,
                    fresh=True,
                )
            )
            if enqueued:
                trials[-1]["enqueued"] = True
    return StagePlan(k, space, _name_trials(k, trials, stage.epochs), flags, ranked, notes)


def _promoted_trials(stage: Stage, promoted: list[Ranked], by_trial: dict[str, Run]) -> list[dict[str, Any]]:
    """The trials that continue the `promoted` configurations (see `_promoted`), `stage.repeats` of
    each, like every fresh configuration of the stage (so means over repeats compare like with
    like): its first finished repeats continue from their checkpoints; missing ones start afresh
    with new seeds (a configuration promoted from a stage without repeats gains seeds)."""
    trials: list[dict[str, Any]] = []
    for parent in promoted:
        runs = sorted((by_trial[tid] for tid in parent.trials), key=lambda run: run.trial)[: stage.repeats]
        used = {run.seed for run in runs}
        for r in range(stage.repeats):
            if r < len(runs):
                params, seed, from_trial = runs[r].params, runs[r].seed, runs[r].trial
            else:
                params, from_trial = runs[0].params, None
                seed = next(
                    x for i in range(1, 10**6) if (x := (runs[0].seed + 1_000_003 * i) % (2**31 - 1)) not in used
                )
                used.add(seed)
            trials.append(
                dict(params=params, seed=seed, parent=from_trial, group=parent.config, repeat=r, repeats=stage.repeats)
            )
    return trials


def _promoted(
    stage: Stage, ranked: list[Ranked], sweep: Sweep | None = None, n_prev: int | None = None, every: bool = False
) -> list[Ranked]:
    """The best configurations of every earlier stage (`ranked`, one per parameter set), up to
    `promote` of them (a fraction counts the previous stage's `n_prev` ranked configurations;
    `every`: all that may be promoted, in order)."""
    if not stage.promote:
        return []
    ranked = [r for r in ranked if not r.config.startswith(WARM)]  # their checkpoints live in another sweep
    # a configuration is promoted only when it still has epochs to train (README: "one that already
    # trained the stage's epochs is skipped"; a stage with fewer epochs than the previous one promotes none)
    n_prev = len(ranked) if n_prev is None else n_prev
    if sweep is not None:
        ranked = [r for r in ranked if _epochs(sweep, evidence.stage_of(r.trials[0])) < stage.epochs]
    # an int is a count; a float is a fraction (config accepts floats only in (0, 1]), so 1.0 means all
    n = stage.promote if isinstance(stage.promote, int) else math.ceil(stage.promote * n_prev)
    return ranked if every else ranked[:n]


def _fewer_promoted(stage: Stage, k: int, n: int, eligible: int, n_prev: int) -> str | None:
    """The plan's note when stage k promotes `n` configurations, fewer than its `promote:` asks
    (None when it promotes what it asks): `eligible` could continue (finished or pruned, with epochs
    left to train; see `_promoted`), and the budget may have paid for fewer still."""
    if not stage.promote:
        return None
    asked = stage.promote if isinstance(stage.promote, int) else math.ceil(stage.promote * n_prev)
    if n >= asked:
        return None
    if eligible < asked:
        why = (
            f"only {eligible} configuration(s) of earlier stages can continue (runs that diverged or failed are "
            f"not promoted, nor those already trained to {stage.epochs} epoch(s))"
        )
    else:
        why = f"the budget pays for {n} (promoted runs of earlier stages have more epochs to train)"
    return f"stage {k}: {n} configuration(s) promoted, not the {asked} planned: {why}"


def _within_budget(
    sweep: Sweep,
    k: int,
    promoted: list[Ranked],
    explore: bool = False,
    spare: int = 0,
    reserve: list[Ranked] | None = None,
    restart: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[Ranked], int]:
    """Promotions and fresh trials that keep stage k within what the plan counted for it, plus the
    `spare` epochs earlier stages did not train (`budget.balance`; negative: what they trained past
    their count, which this stage pays): an incumbent of an earlier stage than the previous one has
    more epochs to train, paid for with fresh trials (or, in a stage without them, left out for a
    cheaper one). A configuration whose run is in `restart` (it left no resumable state) trains
    again from epoch 1 when promoted and is priced so.

    `explore`: the stage promotes only, but its ranges moved (a border flag, a too-low learning
    rate), so the configurations it would continue all lie where the evidence says the optimum is
    not. The incumbent is still promoted; `budget.EXPLORE_SHARE` of what is left buys fresh trials
    in the moved ranges (at least one when the stage affords it), the rest the next incumbents.

    What is left once the planned promotions are paid buys fresh trials, up to the stage's own
    count plus what `spare` pays for; a stage that draws none (promote-only) spends it on the
    next configurations of `reserve` (the incumbents after `promoted`, in order) first.
    """
    stage = sweep.stages[k - 1]
    one = stage.epochs * stage.repeats
    allowance = budget.share(sweep.stages, k) + spare

    def price(p: Ranked) -> int:
        # its first repeats continue (the epochs they lack) unless they left no state; seeds it gains
        # train the whole stage
        going_on = min(len(p.trials), stage.repeats)
        restarts = sum(t in restart for t in sorted(p.trials)[:going_on])  # the parents _promoted_trials picks
        before = _epochs(sweep, evidence.stage_of(p.trials[0]))
        return budget.promoted_epochs(before, going_on - restarts, stage.epochs, stage.repeats)

    reserved = 0
    if explore and (first := price(promoted[0])) <= allowance:  # explore: there is an incumbent to promote
        reserved = budget.explore_epochs(allowance - first, one)
    # a promote-only stage that does not explore spends what is spare on the next incumbents
    queue = promoted if explore or stage.trials else [*promoted, *(reserve or [])]
    kept, spent = [], 0
    for p in queue:
        c = price(p)
        if spent + c <= allowance - reserved:
            kept.append(p)
            spent += c
    if explore:
        return kept, max(0, (allowance - spent) // one)
    return kept, max(0, min(stage.trials + spare // one, (allowance - spent) // one))


def _epochs(sweep: Sweep, k: int) -> int:
    return sweep.stages[k - 1].epochs if 1 <= k <= len(sweep.stages) else 0


def _name_trials(k: int, trials: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    """Ids: s<k>-t<NNNN> per configuration, with -r<R> per repeat when a configuration has several."""
    out, index, last = [], -1, None
    for t in trials:
        key = (t.get("fresh", False), t["group"])
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
        if t.get("enqueued"):
            out[-1]["enqueued"] = True  # from `enqueue:` (the stage event and stage file say so)
    return out
