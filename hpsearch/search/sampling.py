"""A stage's draws: reproducible, and distinct while distinct configurations remain.

In a space of only discrete dimensions (categoricals, constants, integer and quantized ranges)
two trials of a stage can draw the same configuration; `repeats:` is the way to train one
configuration again, so a draw already in the stage (or continued into it by `promote`) is
drawn again. When the stage asks for more configurations than the space holds, every one is
tried once and the plan says so. A space with a continuous dimension never repeats a draw in
practice, and is sampled without the check (no cost on big stages).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from hpsearch.search import space as sp

REDRAWS = 50  # rejection draws before the unseen configurations are listed and one picked
LIST_LIMIT = 1_000_000  # spaces up to this many configurations may be listed


def dim_size(dim: sp.Dim) -> int | None:
    """How many distinct values a dimension can give; None when continuous (or unbounded)."""
    if isinstance(dim, sp.Constant):
        return 1
    if isinstance(dim, sp.Categorical):
        return len({key(v) for v in dim.values})
    if isinstance(dim, sp.Numeric) and dim.q:
        first, last = sp.grid_span(dim.low, dim.high, dim.q)
        return max(0, last - first + 1)
    if isinstance(dim, sp.Numeric) and dim.integer:
        return max(0, math.floor(dim.high) - math.ceil(dim.low) + 1)
    if isinstance(dim, sp.Beta) and dim.q:
        return math.floor(1 / dim.q + sp.GRID_TOL) + 1
    return None


def space_size(space: sp.Space) -> int | None:
    """Distinct configurations of a space (a product), or None when one dimension is continuous."""
    total = 1
    for dim in space.values():
        n = dim_size(dim)
        if n is None:
            return None
        total *= n
    return total


def dim_values(dim: sp.Dim) -> list[Any]:
    """Every value of a discrete dimension (see `dim_size`), as its sampler gives them."""
    if isinstance(dim, sp.Constant):
        return [dim.value]
    if isinstance(dim, sp.Categorical):
        return list({key(v): v for v in dim.values}.values())
    if isinstance(dim, sp.Numeric):
        if dim.q:
            first, last = sp.grid_span(dim.low, dim.high, dim.q)
            vals = [sp.on_grid(k, dim.q) for k in range(first, last + 1)]
            return [int(v) for v in vals] if dim.integer else [float(min(max(v, dim.low), dim.high)) for v in vals]
        return list(range(math.ceil(dim.low), math.floor(dim.high) + 1))
    assert isinstance(dim, sp.Beta) and dim.q
    return [float(sp.on_grid(k, dim.q)) for k in range(dim_size(dim) or 0)]


def configurations(space: sp.Space) -> Iterator[dict[str, Any]]:
    """Every configuration of a discrete space, in a fixed order."""
    names = list(space)
    values = [dim_values(space[n]) for n in names]

    def walk(i: int, acc: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(names):
            yield dict(acc)
            return
        for v in values[i]:
            acc[names[i]] = v
            yield from walk(i + 1, acc)

    yield from walk(0, {})


def key(value: Any) -> str:
    """A hashable identity of a value or a configuration (lists and dicts included)."""
    return repr(sorted(value.items())) if isinstance(value, dict) else repr(value)


class StageDraws(list[tuple[dict[str, Any], int]]):
    """(params, trial_seed) pairs; `available` is how many distinct configurations the stage could
    draw (None: unlimited), less than asked for when the space ran out."""

    available: int | None = None


def sample_stage(space: sp.Space, seed: int, stage: int, n: int, exclude: Iterable[dict[str, Any]] = ()) -> StageDraws:
    """Reproducible draws for a stage: n (params, trial_seed) pairs from (sweep seed, stage),
    no configuration twice and none of `exclude` (the configurations promoted into the stage)."""
    rng = np.random.default_rng([seed, stage])
    out = StageDraws()
    size = space_size(space)
    seen = {key(p) for p in exclude} if size is not None else set()
    for _ in range(n):
        params = sp.sample(space, rng)
        if size is not None and key(params) in seen:
            again = _redraw(space, rng, seen, size)
            if again is None:  # every configuration is in the stage already
                out.available = len(out)
                break
            params = again
        if size is not None:
            seen.add(key(params))
        out.append((params, int(rng.integers(0, 2**31 - 1))))
    return out


def _redraw(space: sp.Space, rng: np.random.Generator, seen: set[str], size: int) -> dict[str, Any] | None:
    for _ in range(REDRAWS):  # the sampler's own distribution (probabilities, log scale), unseen draws only
        params = sp.sample(space, rng)
        if key(params) not in seen:
            return params
    if size > LIST_LIMIT:  # a huge space where REDRAWS all hit: keep the last draw (never seen in practice)
        return params
    left = [c for c in configurations(space) if key(c) not in seen]
    return left[int(rng.integers(len(left)))] if left else None
