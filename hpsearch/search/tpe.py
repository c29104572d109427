"""`sampler: tpe` on a stage: that stage's trials drawn by Optuna's TPE, used as a library.

Optuna (an optional extra: `pip install 'hpsearch[tpe]'`) gets a study in memory, is told every
earlier trial of the sweep whose values lie inside this stage's ranges (finished and pruned ones,
with their best metric), and is asked for the stage's trials one after the other (with its
`constant_liar`, so the asked trials spread out). Everything else stays hpsearch's: the stage's
ranges (narrowed or moved as usual) bound every suggestion, border flags and ranking work as for
random stages, and the plan is reproducible: the sampler's seed derives from the sweep's seed and
the stage, and each trial keeps the seed random sampling would give it.

TPE works in the unit space of each range (`Numeric.to_unit`, the range's own scale: log10 for a
log range, integers by `from_unit`), and on the index of a categorical's value; normal and beta
parameters keep their random draws. Conditional keys (`lr[optimizer=adam]`) are parameters of
their own, present in a told trial only where their branch was taken.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np

from hpsearch.search import conditional as cond
from hpsearch.search import space as sp

INSTALL = "pip install 'hpsearch[tpe]'"


def available() -> bool:
    """Whether Optuna can be imported (checked at the door, before a sweep starts)."""
    return importlib.util.find_spec("optuna") is not None


def _tpe_seed(seed: int, stage: int) -> int:
    return int(np.random.SeedSequence([seed, stage, 0x7E5]).generate_state(1)[0])


def _unit(dim: sp.Dim, value: Any) -> float | int | None:
    """A value's coordinate for TPE (unit position, or categorical index); None if outside the range."""
    if isinstance(dim, sp.Numeric):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not dim.low <= value <= dim.high:
            return None
        if dim.log and value <= 0:
            return None
        u = dim.to_unit(value)
        return min(max(u, 0.0), 1.0) if math.isfinite(u) else None
    if isinstance(dim, sp.Categorical):
        return dim.values.index(value) if value in dim.values else None
    return None


def suggest(
    space: sp.Space,
    draws: list[tuple[dict[str, Any], int]],
    history: list[tuple[dict[str, Any], float]],
    maximize: bool,
    seed: int,
    stage: int,
) -> list[tuple[dict[str, Any], int]]:
    """TPE's values for the stage's draws (draws over every key of the space, with their seeds).

    Args:
        space: the stage's ranges (conditional keys included).
        draws: `sampling.sample_stage`'s (draw, trial seed) pairs; their seeds are kept, and the values
            of normal, beta and constant dimensions too.
        history: (parameters under plain names, best metric) of earlier trials of the sweep.
        maximize: the metric's goal.
        seed, stage: the sweep's seed and this stage's number (the sampler's seed).
    Returns:
        (draw, seed) pairs in the same form, TPE's values in place of the random ones.
    Raises:
        ModuleNotFoundError: Optuna is not installed (the master checks `available()` first).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists: dict[str, Any] = {}
    for k, dim in space.items():
        if isinstance(dim, sp.Numeric):
            dists[k] = optuna.distributions.FloatDistribution(0.0, 1.0)
        elif isinstance(dim, sp.Categorical) and len(dim.values) > 1:
            dists[k] = optuna.distributions.CategoricalDistribution(list(range(len(dim.values))))
    sampler = optuna.samplers.TPESampler(seed=_tpe_seed(seed, stage), constant_liar=True)
    study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler)
    for params, value in history:
        told = _inside(space, dists, params)
        if told is not None and math.isfinite(value):
            study.add_trial(
                optuna.trial.create_trial(params=told, distributions={k: dists[k] for k in told}, value=value)
            )
    out = []
    for draw, trial_seed in draws:
        t = study.ask(dists)
        new = dict(draw)
        for k, x in t.params.items():
            dim = space[k]
            new[k] = dim.values[int(x)] if isinstance(dim, sp.Categorical) else dim.from_unit(float(x))
        out.append((new, trial_seed))
    return out


def _inside(space: sp.Space, dists: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """A told trial's coordinates, or None when one of its values lies outside the stage's ranges."""
    told: dict[str, Any] = {}
    for k in dists:
        name = cond.public(k)
        if name not in params or not cond.active(k, params):
            continue
        u = _unit(space[k], params[name])
        if u is None:
            return None
        told[k] = u
    return told or None
