"""Where a stage's draws fall in the unit cube: independent uniforms, scrambled Sobol or Latin hypercube.

Pure: a function of (space, sweep seed, stage, n, method). Every method yields points in [0, 1)^d
that go through each dimension's `from_unit`, the same transform as random draws (one normalised
space, no branch on the kind of distribution). The trial seeds are always those of the random
sampler (`sampling.sample_stage`'s stream): changing the method moves the points, never the seeds.

Why low-discrepancy points: with 8-30 trials a stage, independent draws leave gaps and clumps
(Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization", section 5, found
Sobol sequences cover a space better than random points at equal count). Scrambled Sobol
(Owen 1998) and Latin hypercube (McKay, Beckman & Conover 1979) both keep every point uniformly
distributed on its own, so each dimension stays uniform, and spread the stage's points evenly;
Latin hypercube puts exactly one point in each of n equal slices of every dimension. Both come
from `scipy.stats.qmc` (a well-kept implementation; imported only when used, ~0.5-0.8 s).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from hpsearch.search import sampling
from hpsearch.search import space as sp

METHODS = ("random", "sobol", "lhs")
# The default was chosen by `python -m bench quality` (README, "Performance"): see bench/quality.py.
DEFAULT = "sobol"
# A distinct stream for the points, so the trial seeds stay those of the random sampler.
_POINTS_STREAM = 7919


def unit_points(method: str, d: int, n: int, seed: int, stage: int) -> np.ndarray:
    """n points in [0, 1)^d, reproducible from (seed, stage); shape (n, d).

    Args:
        method: "random" (independent uniforms), "sobol" (scrambled Sobol, Owen scrambling) or
            "lhs" (Latin hypercube, one point per slice of width 1/n in every dimension).
        d: dimensions (the searched parameters).
        n: points.
        seed, stage: the sweep's seed and the stage number; the same pair gives the same points.
    """
    rng = np.random.default_rng([seed, stage, _POINTS_STREAM])
    if n == 0 or d == 0:
        return np.zeros((n, d))
    if method == "random":
        return rng.random((n, d))
    from scipy.stats import qmc  # lazily: a plan with random draws never pays its import

    engine: qmc.QMCEngine
    if method == "sobol":
        engine = qmc.Sobol(d, scramble=True, rng=rng)
    elif method == "lhs":
        engine = qmc.LatinHypercube(d, scramble=True, rng=rng)
    else:
        raise ValueError(f"unknown sampling method {method!r} (valid: {', '.join(METHODS)})")
    with warnings.catch_warnings():
        # Sobol's balance is exact at powers of two only; its first n points still spread better than
        # n random ones (scipy warns about any other n)
        warnings.simplefilter("ignore", UserWarning)
        pts = engine.random(n)
    return np.clip(pts, 0.0, np.nextafter(1.0, 0.0))


def sample_stage(
    space: sp.Space,
    seed: int,
    stage: int,
    n: int,
    method: str = "random",
    exclude: Iterable[dict[str, Any]] = (),
) -> sampling.StageDraws:
    """n (params, trial_seed) pairs for a stage, drawn with `method` (see METHODS).

    "random", and any method on a space of only discrete parameters, is `sampling.sample_stage`:
    random draws, no configuration twice in the stage and none of `exclude` (the configurations
    promoted into it); its `available` says when the space ran out. The other methods take their
    points from `unit_points` and keep the random sampler's trial seeds (so plans with `random`
    are unchanged, and a method moves the points, never the seeds).
    """
    drawn = sampling.sample_stage(space, seed, stage, n, exclude=exclude)
    if method == "random" or sampling.space_size(space) is not None:
        return drawn
    searched = [name for name, dim in space.items() if sp.is_searched(dim)]
    pts = unit_points(method, len(searched), n, seed, stage)
    out = sampling.StageDraws()
    for i, (_, trial_seed) in enumerate(drawn):
        at = dict(zip(searched, pts[i]))
        params = {name: dim.from_unit(float(at.get(name, 0.0))) for name, dim in space.items()}
        out.append((params, trial_seed))
    return out
