"""Sampling maths: every distribution maps uniforms correctly; log-uniform is uniform in log10."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpsearch.search import sampling
from hpsearch.search import space as sp


def draws(dim: sp.Dim, n: int = 20000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([dim.from_unit(float(u)) for u in rng.random(n)])


def ks_uniform(x: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of samples in [0, 1] from the uniform distribution."""
    x = np.sort(x)
    n = len(x)
    return float(max(np.max(np.arange(1, n + 1) / n - x), np.max(x - np.arange(n) / n)))


def test_log_uniform_is_uniform_in_log10():
    dim = sp.Numeric(1e-6, 10.0, log=True)
    x = draws(dim)
    assert x.min() >= 1e-6 and x.max() <= 10
    d = ks_uniform((np.log10(x) + 6) / 7)
    assert d < 1.36 / math.sqrt(len(x)) * 1.5  # well within the 5% KS critical value
    # and clearly NOT uniform in linear space: most mass in small values
    assert np.mean(x < 1.0) > 0.8


def test_linear_uniform_is_uniform():
    x = draws(sp.Numeric(-2.0, 3.0))
    assert ks_uniform((x + 2) / 5) < 0.015


def test_int_uniform_gives_every_integer_equal_mass():
    x = draws(sp.Numeric(32, 35, integer=True), n=40000)
    counts = np.bincount(x.astype(int) - 32)
    assert len(counts) == 4 and set(np.unique(x)) == {32, 33, 34, 35}
    assert counts.min() / counts.max() > 0.93
    assert all(isinstance(v, int) for v in [sp.Numeric(1, 5, integer=True).from_unit(0.3)])


def test_int_log_uniform_covers_range_on_log_scale():
    x = draws(sp.Numeric(32, 512, log=True, integer=True))
    assert x.min() >= 32 and x.max() <= 512
    assert abs(np.mean(x < 128) - 0.5) < 0.03  # 128 is the geometric middle of [32, 512]


def test_categorical_and_probabilities():
    x = draws(sp.Categorical((1, 2, 3)), n=30000)
    assert abs(np.mean(x == 2) - 1 / 3) < 0.02
    y = draws(sp.Categorical(("a", "b"), (0.9, 0.1)), n=20000)
    assert abs(np.mean(y == "a") - 0.9) < 0.01


def test_normal_and_beta_and_constant():
    x = draws(sp.Normal(1.0, 2.0))
    assert abs(x.mean() - 1) < 0.06 and abs(x.std() - 2) < 0.06
    b = draws(sp.Beta(2.0, 5.0), n=10000)
    assert abs(b.mean() - 2 / 7) < 0.01
    assert sp.Constant(0.9).from_unit(0.3) == 0.9


def test_quantized_values_are_multiples_of_q():
    x = draws(sp.Numeric(0.0, 1.0, q=0.25), n=2000)
    assert set(np.round(x / 0.25, 9)) <= {0, 1, 2, 3, 4}


def test_to_unit_inverts_from_unit_on_log_scale():
    dim = sp.Numeric(1e-4, 1.0, log=True)
    for u in (0.0, 0.25, 0.5, 0.9):
        assert dim.to_unit(dim.from_unit(u)) == pytest.approx(u)


def test_sample_stage_is_reproducible_and_seed_dependent():
    space = {"lr": sp.Numeric(1e-5, 1.0, log=True), "b": sp.Categorical((16, 32))}
    a = sampling.sample_stage(space, seed=7, stage=1, n=5)
    assert a == sampling.sample_stage(space, seed=7, stage=1, n=5)
    assert a != sampling.sample_stage(space, seed=8, stage=1, n=5)
    assert a != sampling.sample_stage(space, seed=7, stage=2, n=5)
    assert len({s for _, s in a}) == 5


def test_serialisation_round_trip():
    space = {
        "lr": sp.Numeric(1e-5, 1.0, log=True, bounds=(1e-8, 10.0)),
        "c": sp.Categorical((1, "x")),
        "k": sp.Constant(3),
        "n": sp.Normal(0.0, 1.0, log=True),
        "b": sp.Beta(1.0, 2.0),
    }
    assert sp.space_from_dict(sp.space_to_dict(space)) == space
