"""Issue 12, kind 2: q_* distributions stay on their grid, round(x / q) * q (W&B), in every stage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hpsearch.errors import ConfigError
from hpsearch.search import space as sp
from hpsearch.search import stages
from hpsearch.search.config import parse


def dim_of(spec: dict[str, Any]) -> sp.Dim:
    sweep = parse({"trainable": "noop", "parameters": {"p": spec}, "stages": [{"trials": 1}]})
    return sweep.space["p"]


def draws(dim: sp.Dim, n: int = 4000, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [dim.from_unit(float(u)) for u in rng.random(n)]


@pytest.mark.parametrize(
    "spec, grid",
    [
        ({"distribution": "q_uniform", "min": 16, "max": 256, "q": 16}, list(range(16, 257, 16))),
        ({"distribution": "q_uniform", "min": 0, "max": 100, "q": 10}, list(range(0, 101, 10))),
        ({"distribution": "q_uniform", "min": -50, "max": 50, "q": 25}, [-50, -25, 0, 25, 50]),
        ({"distribution": "q_uniform", "min": 3, "max": 20}, list(range(3, 21))),  # W&B: q defaults to 1
        ({"distribution": "q_log_uniform_values", "min": 8, "max": 64, "q": 8}, list(range(8, 65, 8))),
    ],
)
def test_integer_grids_give_every_grid_point_and_nothing_else(spec: dict[str, Any], grid: list[int]) -> None:
    values = draws(dim_of(spec))
    assert all(type(v) is int for v in values)
    assert sorted(set(values)) == grid


@pytest.mark.parametrize(
    "spec, grid",
    [
        ({"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1}, [round(0.1 * k, 1) for k in range(11)]),
        ({"distribution": "q_uniform", "min": 0.5, "max": 2.0, "q": 0.25}, [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]),
        ({"distribution": "q_log_uniform_values", "min": 0.01, "max": 0.1, "q": 0.01}, [k / 100 for k in range(1, 11)]),
    ],
)
def test_float_grids_are_exact_multiples(spec: dict[str, Any], grid: list[float]) -> None:
    values = draws(dim_of(spec))
    assert all(type(v) is float for v in values)
    assert sorted(set(values)) == pytest.approx(grid)
    assert set(values) <= {round(g, 10) for g in grid}  # 0.3, never 0.30000000000000004


@pytest.mark.parametrize(
    "spec",
    [
        {"distribution": "q_normal", "mu": 0, "sigma": 20, "q": 5},
        {"distribution": "q_log_normal", "mu": 2, "sigma": 1, "q": 4},
        {"distribution": "q_log_uniform", "min": 0, "max": 6, "q": 3},
    ],
)
def test_unbounded_and_exponent_grids_give_integer_multiples(spec: dict[str, Any]) -> None:
    values = draws(dim_of(spec))
    assert all(type(v) is int and v % spec["q"] == 0 for v in values)


def test_q_beta_stays_on_its_grid() -> None:
    values = draws(dim_of({"distribution": "q_beta", "a": 2, "b": 2, "q": 0.25}))
    assert set(values) <= {0.0, 0.25, 0.5, 0.75, 1.0} and len(set(values)) >= 4


@pytest.mark.parametrize(
    "spec",
    [
        {"distribution": "q_uniform", "min": 16, "max": 256, "q": 16},
        {"distribution": "q_uniform", "min": 0, "max": 100, "q": 10},
        {"distribution": "q_log_uniform_values", "min": 16, "max": 4096, "q": 16},
        {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.05},
    ],
)
@pytest.mark.parametrize("best", [0.0, 0.5, 0.999])
def test_narrowed_and_moved_ranges_keep_the_grid(spec: dict[str, Any], best: float) -> None:
    dim = dim_of(spec)
    q = spec["q"]
    for _stage in range(4):
        assert isinstance(dim, sp.Numeric)
        top = [dim.from_unit(best), dim.from_unit(min(best + 0.1, 0.999))]
        flags = stages.border_flags({"p": dim}, {"p": top[0]}, 0.1)
        dim = stages.narrow(dim, top, flags, 0.25)
        assert isinstance(dim, sp.Numeric) and dim.q == q
        for edge in (dim.low, dim.high):
            assert abs(edge / q - round(edge / q)) < 1e-9, dim
        values = draws(dim, 500)
        assert all(abs(v / q - round(v / q)) < 1e-9 and dim.low <= v <= dim.high for v in values)
        assert all(type(v) is (int if isinstance(q, int) else float) for v in values)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"distribution": "q_uniform", "min": 1, "max": 5, "q": 10}, r"holds 0 multiple\(s\) of q=10"),
        ({"distribution": "q_uniform", "min": 1, "max": 15, "q": 10}, r"holds 1 multiple\(s\) of q=10"),
        ({"distribution": "int_log_uniform_values", "min": 1.2, "max": 1.8}, "fewer than two integers"),
        ({"distribution": "q_uniform", "min": 0, "max": 1, "q": -1}, "q: must be a positive number"),
    ],
)
def test_a_range_without_two_grid_points_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dim_of(spec)
