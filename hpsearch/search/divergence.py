"""Where runs diverge: the learning-rate threshold the diagnostics report and the next range leaves out.

Pure. The rule (also `report.diagnostics`, README "Reports and plots"): the threshold is the
smallest lr of a diverged run such that more than half (DIVERGED_MOST) of the runs at or above
it diverged, with at least DIVERGED_MIN of them. Divergence above a learning rate is the
classic sign that the rate is too high (CS231n notes, "Babysitting the learning process": a
loss that explodes means the learning rate is too high), so the region above the threshold is
left out of the next stage's range rather than sampled again.

When most of the range lay above the threshold, what is left below it may be a sliver that holds
none of the good rates: the next range then reaches a decade below the threshold (`reach_below`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from hpsearch.search import conditional as cond
from hpsearch.search import space as sp

DIVERGED_MOST = 0.5
DIVERGED_MIN = 2
LR_NAMES = ("lr", "learning_rate", "lr0")
# How far below the divergence threshold a range that held less than that below it reaches: a good
# lr lies up to a decade below where the loss blows up (the learning-rate range test: fastai's
# `lr_find` suggests the lr of the lowest loss divided by 10; `hpsearch check` suggests a stage-1
# range at least a decade wide below it, search/preflight.py). Measured on the quality suite
# (best lr a decade below the range, 10 seeds): the deeper MLP's worst seed 0.595 -> 0.733 at 64
# epochs, 0.684 -> 0.751 at 200 (README, Performance).
BELOW = 10.0


def divergence_threshold(lrs: list[float], diverged: list[bool]) -> float | None:
    """Smallest diverged lr above which most runs diverged (see the module docstring), or None."""
    pairs = sorted(zip(lrs, diverged))
    found, n_div = None, 0
    # one pass from the top: counts of runs (and diverged ones) at or above each lr; O(n log n)
    for i in range(len(pairs) - 1, -1, -1):
        lr, d = pairs[i]
        n_div += d
        if d and n_div >= DIVERGED_MIN and n_div / (len(pairs) - i) > DIVERGED_MOST:
            found = lr
    return found


def is_learning_rate(name: str) -> bool:
    """Whether a parameter is a learning rate: a name in LR_NAMES, also nested (`optim.lr`,
    `training.learning_rate`) and per branch of a choice (`lr[optimizer=adam]`)."""
    return cond.public(name).rsplit(".", 1)[-1] in LR_NAMES


def learning_rates(space: sp.Space) -> list[str]:
    """The keys of the space's numeric learning-rate parameters (`is_learning_rate`)."""
    return [k for k, dim in space.items() if isinstance(dim, sp.Numeric) and is_learning_rate(k)]


def values_of(key: str, runs: Iterable[Any]) -> list[tuple[Any, float]]:
    """(run, its value) for the runs where the parameter under `key` exists and is a positive number
    (a conditional key only where its branch was taken; values are read under the plain name)."""
    name = cond.public(key)
    return [(r, float(r.params[name])) for r in runs if cond.active(key, r.params) and _number(r.params.get(name))]


def thresholds(space: sp.Space, runs: Iterable[Any]) -> dict[str, float]:
    """The divergence threshold of each learning-rate parameter (`learning_rates`) of the space, where
    the runs (anything with `params` and `status`; finished and diverged ones count) show one."""
    runs = [r for r in runs if r.status in ("finished", "diverged")]
    out = {}
    for name in learning_rates(space):
        pairs = [(v, r.status == "diverged") for r, v in values_of(name, runs)]
        t = divergence_threshold([p[0] for p in pairs], [p[1] for p in pairs])
        if t is not None:
            out[name] = t
    return out


def cap(dim: sp.Numeric, threshold: float, keep: list[float]) -> sp.Numeric:
    """The range with the region at or above `threshold` left out (its top becomes the threshold).

    Values in `keep` (the incumbents') stay inside even above the threshold: a configuration that
    finished there is evidence too. A range lying wholly above the threshold slides down below
    it, keeping its width in its own scale (within its hard bounds)."""
    top = max([threshold, *keep])
    if dim.high <= top:
        return dim
    if dim.low < top:
        return _with(dim, dim.low, top)
    lo, hi = dim.warp(dim.low), dim.warp(dim.high)
    new_hi = dim.warp(top)
    new_lo = new_hi - (hi - lo)
    low = dim.unwarp(new_lo)
    if dim.bounds is not None:
        low = max(low, dim.bounds[0])
    if low >= top:
        return dim
    return _with(dim, low, top)


def reach_below(prev: sp.Numeric, threshold: float) -> float | None:
    """How low the next range reaches when the runs of `prev` (the range they were drawn in) diverged
    from `threshold` up: threshold / BELOW, when the threshold lies inside `prev`, more than half
    of `prev` lay above it (in its own scale) and `prev` held less than a factor BELOW below it;
    else None (the cap and the border moves are enough).

    Example: runs drawn in [0.1, 10] diverge from 0.11 up: the finished ones are the few near 0.1,
    none of them a decade below, and their ranking cannot tell that lower rates are better (the
    best of them need not lie on the border): the next range reaches down to 0.011."""
    if not (prev.low < threshold < prev.high) or threshold <= 0:
        return None
    lo, hi, t = prev.warp(prev.low), prev.warp(prev.high), prev.warp(threshold)
    if t - lo >= 0.5 * (hi - lo) or threshold >= BELOW * prev.low:
        return None
    return threshold / BELOW


def floor(dim: sp.Numeric, original: sp.Dim, hold: bool) -> float:
    """The lowest a range's low end may move to: its hard bound, and with `on_border: keep` (the
    parameter's, or the sweep's: `hold`) the sweep's own range's (`original`); else -inf."""
    out = dim.bounds[0] if dim.bounds is not None else -math.inf
    if isinstance(original, sp.Numeric) and (hold or dim.on_border == "keep"):
        out = max(out, original.low)
    return out


def lowered(dim: sp.Numeric, low: float, original: sp.Dim, hold: bool) -> sp.Numeric:
    """The range with its low end moved down to `low` (`reach_below`), never past its `floor`;
    unchanged when that leaves nothing lower."""
    low = max(low, floor(dim, original, hold))
    if low >= dim.low or (dim.log and low <= 0) or (dim.integer and math.floor(low) >= dim.low):
        return dim
    return _with(dim, low, dim.high)


def _with(dim: sp.Numeric, low: float, high: float) -> sp.Numeric:
    if dim.integer:
        low, high = math.floor(low), math.ceil(high)
        if high <= low:
            high = low + 1
    return sp.Numeric(
        float(low), float(high), log=dim.log, integer=dim.integer, q=dim.q, bounds=dim.bounds, on_border=dim.on_border
    )


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
