"""Next ranges that follow the evidence of every earlier stage, not only the last one's luck.

Pure. `stages.plan_stage` narrows each range around the previous stage's top runs (`stages.narrow`);
`refine` then applies three rules to the result, in this order:

1. A flagged border moves by what the top runs show (`border_move`): half the old width (the old
   fixed amount, `stages.EXTEND`) when the top runs' median sits on the flagged edge, linearly less
   as the median lies further inside, at least MIN_MOVE of the width. A lone lucky best run on the border,
   with the other top runs well inside, no longer throws the range half its width outward.
2. The incumbents are kept (`keep_incumbents`): every range still holds the values of the best
   configurations found in ANY earlier stage, padded like a narrowed range, so a stage whose draws
   were unlucky cannot steer the search away from a better region found before it. This is the
   elitism of evolutionary search (De Jong 1975) and the incumbent of SMAC/BOHB (Hutter et al. 2011,
   Falkner et al. 2018), applied to ranges: the next stage always samples around the best so far.
3. The region where most runs diverged is left out (`divergence.cap`, the threshold the
   diagnostics report), padding included, unless an incumbent finished there; and when most of
   the previous range lay above that threshold, with less than a decade below it, the range
   reaches a decade below the threshold (`divergence.reach_below`).

Before rule 2, a learning-rate range that the runs' update-to-weight ratios show to be too low as
a whole (`search.updateratio`, the notes' ~1e-3 rule of thumb) is replaced by the band
where that ratio is near 1e-3: after a 1-epoch stage of too-low rates the metric is noise, and
neither rule 1 nor the border flags can see which way to go. Rule 2 then does not hold that range
to the incumbents (their ranking was the noise; a promoting stage still continues them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from hpsearch.search import conditional as cond
from hpsearch.search import divergence
from hpsearch.search import space as sp

# A flagged side moves at least this fraction of the old width (in the range's own scale): a best
# value on the border is evidence that the optimum may lie outside, however it got there.
MIN_MOVE = 0.1
# The move falls linearly to MIN_MOVE as the top runs' median lies further inside (at the far edge:
# 1 / FALL of the width). Measured on the synthetic family (bench quality, 50 seeds, 6 cells): FALL 1
# beat FALL 2 in 4 of 6 cells' medians and 5 of 6 worst seeds; against the old fixed half-width move
# it was better with the best lr below the range and at 200 epochs above it, worse at 64 epochs
# above it (median 0.912 vs 0.918, worst seed 0.725 vs 0.774).
FALL = 1.0
_STAGE = re.compile(r"^s(\d+)-")


def border_move(dim: sp.Numeric, top_values: Sequence[Any], side: str, extend: float) -> float:
    """How far (in the range's own scale: log10 for log ranges) a flagged side moves past its edge.

    `extend * width` when the median of the top runs' values lies on the flagged edge, falling
    linearly to MIN_MOVE * width as the median lies 1 / FALL of the width inside (or further)."""
    lo, hi = dim.warp(dim.low), dim.warp(dim.high)
    width = hi - lo
    med = float(np.median([dim.warp(v) for v in top_values]))
    inside = (hi - med) / width if side == "high" else (med - lo) / width  # 0 = on the edge
    frac = extend * max(0.0, 1.0 - FALL * min(max(inside, 0.0), 1.0))
    return max(MIN_MOVE, frac) * width


def moved(
    old: sp.Numeric, narrowed: sp.Dim, top_values: Sequence[Any], sides: set[str], extend: float, margin: float
) -> sp.Dim:
    """The narrowed range with each flagged side pulled back to `border_move` past the old edge.

    `stages.narrow` moved a flagged side by `extend` of the width (within the range's limits); the
    move is only ever shortened here, so the result stays within those limits."""
    if not isinstance(narrowed, sp.Numeric) or not sides or not top_values:
        return narrowed
    lo_old, hi_old = old.warp(old.low), old.warp(old.high)
    width = hi_old - lo_old
    t = [old.warp(v) for v in top_values]
    low, high = narrowed.low, narrowed.high
    if "high" in sides:
        pad = max(margin * (max(t) - min(t)), 0.05 * width)
        high = min(high, old.unwarp(hi_old + max(border_move(old, top_values, "high", extend), pad)))
    if "low" in sides:
        pad = max(margin * (max(t) - min(t)), 0.05 * width)
        low = max(low, old.unwarp(lo_old - max(border_move(old, top_values, "low", extend), pad)))
    if narrowed.integer:
        low, high = math.floor(low), math.ceil(high)
    if high <= low:
        return narrowed
    return _numeric(narrowed, low, high)


def incumbents(ranked: Sequence[Any], n: int, seeds: dict[str, int] | None = None) -> list[Any]:
    """The n best configurations of every earlier stage (ranked over all of them), one per lineage.

    A promoted trial repeats its parent's parameters and seed (`seeds`: each trial's): the better
    of the two counts (on a tie, the later stage's, which has trained longer)."""
    seen: dict[str, int] = {}
    out: list[Any] = []
    for r in ranked:
        key = lineage(r.params, (seeds or {}).get(r.trials[0], r.config))
        if key in seen:
            i = seen[key]
            if r.mean == out[i].mean and stage_of(r.trials[0]) > stage_of(out[i].trials[0]):
                out[i] = r
            continue
        seen[key] = len(out)
        out.append(r)
        if len(out) >= n:
            break
    return out


def configuration_key(params: dict[str, Any]) -> str:
    """One configuration's identity across stages: its parameters (a promoted trial repeats its
    parent's, a repeat its siblings')."""
    return repr(sorted(params.items()))


def lineage(params: dict[str, Any], seed: Any) -> str:
    """A run's lineage key: a promoted trial repeats its parent's parameters and seed (and goes on
    from its checkpoint), so the two share one; repeats of a configuration differ by their seeds."""
    return repr((configuration_key(params), seed))


def without_diverged(ranked: Sequence[Any], runs: Sequence[Any], seeds: dict[str, int]) -> list[Any]:
    """`ranked` (configurations, each with `trials`, `params`) less those a run of whose lineage
    diverged (`runs`: each with `params`, `seed`, `status`). Such a configuration finished its
    earlier stage well, but its continuation diverged when trained longer; promoting it again
    repeats the same parameters, seed and checkpoint, so it would diverge again, and the region it
    marks is not one to hold the ranges to."""
    bad = {lineage(r.params, r.seed) for r in runs if r.status == "diverged"}
    if not bad:
        return list(ranked)
    return [c for c in ranked if not any(lineage(c.params, seeds.get(t, c.config)) in bad for t in c.trials)]


def stage_of(trial: str) -> int:
    """The stage in a trial id (`s2-t0003` -> 2; 0 for an id without one, such as a warm run's)."""
    m = _STAGE.match(trial)
    return int(m.group(1)) if m else 0


def keep_incumbents(dim: sp.Dim, original: sp.Dim, values: Sequence[Any], margin: float, hold: bool = False) -> sp.Dim:
    """The range widened to hold every incumbent value, padded by `margin` of their span (at least
    5% of the range's width, as `stages.narrow` pads), never past the hard bounds or below zero
    for a range that started non-negative, and with `on_border: keep` (the parameter's, or the
    sweep's: `hold`) never past the sweep's own range (`original`). A categorical gets the
    incumbents' values back."""
    if not values:
        return dim
    if isinstance(dim, sp.Categorical) and isinstance(original, sp.Categorical):
        wanted = set(map(repr, dim.values)) | set(map(repr, values))
        if len(wanted) == len(dim.values):
            return dim
        return sp.Categorical(tuple(v for v in original.values if repr(v) in wanted))
    if not isinstance(dim, sp.Numeric):
        return dim
    lo, hi = dim.warp(dim.low), dim.warp(dim.high)
    t = [dim.warp(v) for v in values]
    if min(t) >= lo and max(t) <= hi:
        return dim
    pad = max(margin * (max(t) - min(t)), 0.05 * (hi - lo))
    low, high = dim.low, dim.high
    if min(t) < lo:
        low = dim.unwarp(min(t) - pad)
    if max(t) > hi:
        high = dim.unwarp(max(t) + pad)
    floor, ceil = dim.bounds if dim.bounds is not None else (-math.inf, math.inf)
    if isinstance(original, sp.Numeric) and original.low >= 0:
        floor = max(floor, 0.0)
    if isinstance(original, sp.Numeric) and (hold or dim.on_border == "keep"):
        floor, ceil = max(floor, original.low), min(ceil, original.high)
    low, high = max(low, floor), min(high, ceil)
    if dim.integer:
        low, high = math.floor(low), math.ceil(high)
        if dim.log:
            low = max(low, 1)  # an integer log range stays >= 1
    if dim.log and low <= 0:
        low = min(min(values), dim.low)
    return _numeric(dim, low, high) if high > low else dim


def refine(
    prev_space: sp.Space,
    narrowed: sp.Space,
    original: sp.Space,
    top_values: dict[str, list[Any]],
    extending: dict[str, set[str]],
    caps: dict[str, float],
    best: Sequence[Any],
    margin: float,
    extend: float,
    misplaced: dict[str, tuple[float, float]] | None = None,
    hold: bool = False,
    below: dict[str, float] | None = None,
) -> sp.Space:
    """Apply the three rules of the module docstring to the narrowed next ranges.

    Args:
        prev_space: the previous stage's ranges; narrowed: `stages.narrow`'s next ranges.
        original: the sweep's own ranges (a categorical's values and order come from it).
        top_values: per parameter, the previous stage's top runs' values.
        extending: per parameter, the sides flagged that may move ("low", "high").
        caps: per learning-rate parameter, the divergence threshold of every run of the earlier
            stages (`divergence.thresholds`).
        best: the incumbents (`incumbents`), best first.
        margin: the sweep's margin; extend: the largest move, as a fraction of the width.
        misplaced: per learning-rate parameter whose whole range the update ratio says is too low
            or too high (search/updateratio.py), the (low, high) it moves to; rule 1 then gives
            way to it, and rules 2 and 3 apply as to any range.
        hold: the sweep's `on_border: keep`: rule 2 never widens a range past the sweep's own.
        below: per learning-rate parameter, the low end rule 3 reaches down to (`divergence.reach_below`).
    """
    out = {}
    for name, dim in narrowed.items():
        old = prev_space.get(name)
        if isinstance(old, sp.Numeric) and name in extending:
            dim = moved(old, dim, top_values.get(name, []), extending[name], extend, margin)
        # a conditional parameter (`lr[optimizer=adam]`) keeps the incumbents that took its branch
        keep = [
            r.params[cond.public(name)] for r in best if cond.active(name, r.params) and cond.public(name) in r.params
        ]
        if misplaced and name in misplaced and isinstance(dim, sp.Numeric):
            # the incumbents were ranked by a metric that is noise when every lr is too low (or
            # high): they are not kept inside this range (promotion still continues them)
            dim = _numeric(dim, *misplaced[name])
        else:
            dim = keep_incumbents(_positive(dim), original.get(name, dim), keep, margin, hold)
        if name in caps and isinstance(dim, sp.Numeric):  # after the padding: it never reaches past the cap
            dim = divergence.cap(dim, caps[name], [float(v) for v in keep])
        if below and name in below and isinstance(dim, sp.Numeric) and not (misplaced and name in misplaced):
            dim = divergence.lowered(dim, below[name], original.get(name, dim), hold)
        out[name] = dim
    return out


def _positive(dim: sp.Dim) -> sp.Dim:
    """An integer log range moved down to 0 (floor of a value below 1) starts at 1 again: log ranges
    stay positive, and a log-uniform integer needs at least 1."""
    if not isinstance(dim, sp.Numeric) or not dim.log or not dim.integer or dim.low >= 1:
        return dim
    return _numeric(dim, 1, max(dim.high, 2))


def _numeric(dim: sp.Numeric, low: float, high: float) -> sp.Numeric:
    return sp.Numeric(
        float(low), float(high), log=dim.log, integer=dim.integer, q=dim.q, bounds=dim.bounds, on_border=dim.on_border
    )
