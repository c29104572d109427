"""Low-discrepancy draws: seeded and reproducible, uniform per dimension, same transform, same trial seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hpsearch.search import sampler, sampling
from hpsearch.search import space as sp
from hpsearch.search.config import parse

SPACE: sp.Space = {
    "lr": sp.Numeric(1e-5, 1.0, log=True),
    "dropout": sp.Numeric(0.0, 0.8),
    "hidden": sp.Numeric(16, 512, log=True, integer=True),
    "batch": sp.Categorical((32, 64, 128)),
    "momentum": sp.Constant(0.9),
}


@pytest.mark.parametrize("method", sampler.METHODS)
def test_draws_are_reproducible_from_seed_and_stage(method: str) -> None:
    a = sampler.sample_stage(SPACE, 3, 2, 20, method)
    assert a == sampler.sample_stage(SPACE, 3, 2, 20, method)
    assert a != sampler.sample_stage(SPACE, 4, 2, 20, method)
    assert a != sampler.sample_stage(SPACE, 3, 3, 20, method)


@pytest.mark.parametrize("method", ["sobol", "lhs"])
def test_every_method_keeps_the_random_samplers_trial_seeds(method: str) -> None:
    rnd = sampler.sample_stage(SPACE, 7, 1, 12, "random")
    other = sampler.sample_stage(SPACE, 7, 1, 12, method)
    assert [s for _, s in other] == [s for _, s in rnd]
    assert [p for p, _ in other] != [p for p, _ in rnd]


def test_random_is_exactly_the_existing_sampler() -> None:
    assert sampler.sample_stage(SPACE, 5, 1, 30, "random") == list(sampling.sample_stage(SPACE, 5, 1, 30))


@pytest.mark.parametrize("method", sampler.METHODS)
def test_each_dimension_is_uniform_ks(method: str) -> None:
    # pooled over 40 (seed, stage) pairs of 16 points: every coordinate must be U(0, 1)
    pts = np.vstack([sampler.unit_points(method, 4, 16, seed, 1) for seed in range(40)])
    assert pts.shape == (640, 4) and pts.min() >= 0.0 and pts.max() < 1.0
    for j in range(4):
        assert stats.kstest(pts[:, j], "uniform").pvalue > 1e-3, (method, j)


@pytest.mark.parametrize("method", ["sobol", "lhs"])
def test_low_discrepancy_points_cover_better_than_random(method: str) -> None:
    from scipy.stats import qmc

    def mean_discrepancy(m: str) -> float:
        return float(np.mean([qmc.discrepancy(sampler.unit_points(m, 3, 16, seed, 1)) for seed in range(30)]))

    assert mean_discrepancy(method) < 0.8 * mean_discrepancy("random")


def test_latin_hypercube_puts_one_point_in_each_slice_of_every_dimension() -> None:
    pts = sampler.unit_points("lhs", 3, 10, 0, 1)
    for j in range(3):
        assert sorted(np.floor(pts[:, j] * 10).astype(int)) == list(range(10))


def test_points_go_through_each_dimensions_from_unit() -> None:
    for params, _ in sampler.sample_stage(SPACE, 0, 1, 16, "sobol"):
        assert 1e-5 <= params["lr"] <= 1.0 and 0.0 <= params["dropout"] <= 0.8
        assert isinstance(params["hidden"], int) and 16 <= params["hidden"] <= 512
        assert params["batch"] in (32, 64, 128) and params["momentum"] == 0.9
    # the log range is uniform in log10: a median near the middle decade, not near 0.5
    lrs = [p["lr"] for s in range(10) for p, _ in sampler.sample_stage(SPACE, s, 1, 16, "sobol")]
    assert 10**-3.6 < float(np.median(lrs)) < 10**-1.4


def test_method_key_is_validated_at_the_door() -> None:
    base = {"trainable": "noop", "parameters": {"x": {"min": 0.0, "max": 1.0}}, "stages": [{"trials": 2}]}
    assert parse({**base, "method": "lhs"}).method == "lhs"
    assert parse(base).method == sampler.DEFAULT
    s = parse({**base, "method": "bayes"})
    assert s.method == sampler.DEFAULT and any("'method'" in w for w in s.warnings)
    with pytest.raises(Exception, match="method: must be one of random, sobol, lhs"):
        parse({**base, "method": "sobel"})
