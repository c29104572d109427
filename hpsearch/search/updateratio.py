"""Whether a learning-rate range is too low, from the update-to-weight ratio. Pure.

The notes' rule of thumb (CS231n, "Neural Networks Part 3", Ratio of weights:updates): the ratio
of the magnitude of a step's parameter update to the magnitude of the parameters "should be
somewhere around 1e-3. If it is lower than this then the learning rate might be too low. If it is
higher then the learning rate is likely too high." The built-in classifier reports it every epoch
(`update_ratio`), a python trainable may too; the worker records each trial's median in the
journal (`result.update_ratio`).

Why the planner needs it: after a 1-epoch first stage whose learning rates are all a decade or
more too low, the validation metric is noise (a network that has learned nothing scores near
chance whatever its lr), so neither the ranking nor the border rule sees that the optimum lies
above the range. The update ratio does: it grows with the learning rate, about in proportion
(log10 ratio against log10 lr has a slope near 1 for SGD; measured on the quality suite's noisy
digits, 0.9-1.0), and is not noisy after one epoch.

The rule (`misplaced`): fit log10(ratio) = a + b log10(lr) by least squares over every earlier
run that reported a ratio (MIN_RUNS at least, with a positive slope b >= MIN_SLOPE). If even the
top of the last stage's lr range gives a fitted ratio below TARGET * REACH (~3e-3: below the
notes' 1e-3, or less than half a decade above it), the range is too low: the next stage samples
the band where the fitted ratio lies within a decade of TARGET, [lr(TARGET / BAND), lr(TARGET *
BAND)] (the notes' "around 1e-3"). A range that reaches further up is left to the other rules.

Why half a decade above the target, not the target itself: a range whose top gives a ratio just
above 1e-3 has the notes' good rate on its upper border and most of the band above it. It is the
border rule's situation (the best value on the border: the optimum may lie past it), seen by the
ratio where the metric cannot see it. Measured on the quality suite's breast cancer task with the
best lr a decade above the range ([1e-6, 1e-3], 10 seeds): its runs' fitted ratio at lr 1e-3 was
1.3e-3 (the good rates give ~1e-2 there). After 1 epoch its runs' accuracy ranks their random
initialisation (the best one, 0.874, at lr 2e-5), so with the trigger at 1e-3 the range stayed
below 1e-3: median / worst seed 0.937 / 0.881 at 64 epochs and 0.972 / 0.937 at 200. With the
trigger at 2e-3 or 3.2e-3: 0.965 / 0.930 and 0.972 / 0.965; at 1e-2 (the band's top): 0.958 /
0.930 and 0.972 / 0.958. The other real tasks' 24 cells repeated their figures to the digit (their
ranges either reach far past the target or lie wholly below it), but for one median (the deeper
MLP at 200 epochs above the range, 0.743 -> 0.747).

Only "too low" is acted on. A range wholly too high was tried the same way (bottom ratio above
TARGET * BAND) and made the quality suite worse (noisy digits, best lr a decade below the range,
10 seeds, 64 epochs: median 0.930 against 0.945 without it): runs at a too-high lr still learn, so
their metric ranks them, and the divergence cap (search/divergence.py) and the border moves
already take such a range down on that evidence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpsearch.search import space as sp
from hpsearch.search.divergence import learning_rates, values_of

TARGET = 1e-3  # the notes' "somewhere around 1e-3"
BAND = 10.0  # the next range spans the ratios [TARGET / BAND, TARGET * BAND]
REACH = math.sqrt(BAND)  # a range whose top ratio is below TARGET * REACH (half a decade above) moves
MIN_RUNS = 5  # fewest runs with a ratio the fit is made from
MIN_SLOPE = 0.25  # below it the ratio hardly follows the lr (or falls with it): no conclusion
_TARGET_TEXT = f"{TARGET:.0e}".replace("e-0", "e-")  # 1e-3


@dataclass(frozen=True)
class Misplaced:
    """A learning-rate range the update ratio says is too low as a whole.

    Attributes:
        param: the learning-rate parameter (one of divergence.LR_NAMES).
        ratio: the fitted ratio at the top of the range (below TARGET * REACH).
        low, high: the next range, in lr units: where the fitted ratio is within a decade of TARGET.
        n: the runs the fit was made on.
        clipped: the move was held by the range's hard bounds (`within`).
    """

    param: str
    ratio: float
    low: float
    high: float
    n: int
    clipped: bool = False

    @property
    def message(self) -> str:
        """One line for the stage plan's notes."""
        return self.says("the next stage")

    def says(self, who: str) -> str:
        """The finding and the move, with `who` samples the new range ("the next stage", "the follow-up")."""
        where = "as near as its bounds allow to where" if self.clipped else "where"
        return (
            f"{self.too_low}; {who} samples [{sp.sci(self.low)}, {sp.sci(self.high)}], {where} the "
            f"ratio is within a decade of {_TARGET_TEXT}"
        )

    @property
    def too_low(self) -> str:
        """The finding alone, e.g. for a range that may not move or a sweep that has ended."""
        where = (
            f"below the notes' ~{_TARGET_TEXT}"
            if self.ratio < TARGET
            else f"less than half a decade above the notes' ~{_TARGET_TEXT}, most of the band around it above the range"
        )
        return (
            f"{self.param}: the update-to-weight ratio at the top of the range is {self.ratio:.1e} "
            f"(fitted on {self.n} runs), {where}: the range is too low"
        )


def fit(lrs: list[float], ratios: list[float]) -> tuple[float, float]:
    """Least-squares (a, b) of log10(ratio) = a + b log10(lr). Inputs: equal lengths >= 2, all > 0."""
    x, y = np.log10(lrs), np.log10(ratios)
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def misplaced(space: sp.Space, runs: Iterable[Any]) -> list[Misplaced]:
    """The learning-rate ranges of `space` that the runs' update ratios say are too low as a whole.

    Args:
        space: the last stage's ranges. runs: every earlier run (`stages.Run`: params, update_ratio);
            runs without a ratio, or without a positive lr, are ignored.
    Returns:
        One Misplaced per log-scaled learning rate (`divergence.learning_rates`: nested names and
        each branch of a choice too, fitted on that branch's runs) whose top gives a fitted ratio
        below TARGET * REACH, in `space`'s order; empty when no ratio was reported (the synthetic
        family, most programs).
    """
    runs = [r for r in runs if _positive(getattr(r, "update_ratio", None))]
    out = []
    for name in learning_rates(space):
        dim = space[name]
        if not isinstance(dim, sp.Numeric) or not dim.log:
            continue
        pts = [(lr, float(r.update_ratio)) for r, lr in values_of(name, runs)]
        if len(pts) < MIN_RUNS or len({p[0] for p in pts}) < 2:
            continue
        a, b = fit([p[0] for p in pts], [p[1] for p in pts])
        if not b >= MIN_SLOPE:
            continue
        top = _pow10(a + b * math.log10(dim.high))
        low, high = (_pow10((math.log10(r) - a) / b) for r in (TARGET / BAND, TARGET * BAND))
        if top < TARGET * REACH and math.isfinite(low) and math.isfinite(high) and 0 < low < high:
            out.append(Misplaced(name, top, low, high, len(pts)))
    return out


def within(m: Misplaced, dim: sp.Numeric, floor: float, ceil: float) -> Misplaced | None:
    """The move held to how far the range may go ([floor, ceil]: its hard bounds and scale), or None
    when it cannot rise at all (its top is at the ceiling already).

    A band wholly above the ceiling gives the top decade below it, [max(ceil / BAND, low), ceil]:
    as close to the band as the bounds allow, like a border move stopped by a bound."""
    low, high = max(m.low, floor), min(m.high, ceil)
    if high <= dim.high:
        return None
    if low >= high:
        low = max(ceil / BAND, dim.low, floor)
    if not low < high:
        return None
    return dataclasses.replace(m, low=low, high=high, clipped=(low, high) != (m.low, m.high))


def _pow10(x: float) -> float:
    """10 ** x, inf past the largest float instead of OverflowError (a fit on odd runs can ask for it)."""
    return math.inf if x > 308 else 10.0**x


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < math.inf
