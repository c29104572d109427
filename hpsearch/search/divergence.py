"""Where runs diverge: the learning-rate threshold the diagnostics report and the next range leaves out.

Pure. The rule (also `report.diagnostics`, README "Reports and plots"): the threshold is the
smallest lr of a diverged run such that more than half (DIVERGED_MOST) of the runs at or above
it diverged, with at least DIVERGED_MIN of them. Divergence above a learning rate is the
classic sign that the rate is too high (CS231n notes, "Babysitting the learning process": a
loss that explodes means the learning rate is too high), so the region above the threshold is
left out of the next stage's range rather than sampled again.
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
