"""The sanity checks' verdicts (pure) and measurements (real models on the bundled digits)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpsearch.search import preflight as pf
from hpsearch.search import space as sp
from hpsearch.search.builtins import CLASSIFIER_DEFAULTS
from hpsearch.trainables import preflight as tp


# -- verdicts ---------------------------------------------------------------------------------------
@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_rel_error_is_symmetric_and_bounded(a: float, n: float) -> None:
    e = pf.rel_error(a, n)
    assert e == pf.rel_error(n, a)
    assert 0 <= e <= 2
    assert pf.rel_error(a, a) == 0


def test_gradient_thresholds_are_the_notes() -> None:
    ok = [False] * 3
    assert pf.gradient_verdict([1e-9, 1e-8, 5e-8], ok, "x").status == pf.PASS
    assert "good" in pf.gradient_verdict([1e-9, 1e-8, 5e-8], ok, "x").message
    assert pf.gradient_verdict([1e-9, 1e-6, 5e-8], ok, "x").status == pf.PASS
    assert pf.gradient_verdict([1e-9, 1e-3, 5e-8], ok, "x").status == pf.WARN
    wrong = pf.gradient_verdict([1e-9, 0.5, 5e-8], ok, "x")
    assert wrong.status == pf.FAIL and "probably wrong" in wrong.message
    # an error that only a kinked step shows is a warning naming the kinks, not a failure
    kinked = pf.gradient_verdict([1e-9, 0.5, 5e-8], [False, True, False], "x")
    assert kinked.status == pf.WARN and "kink" in kinked.message
    assert "kink" in pf.gradient_verdict([1e-9, 3e-4, 5e-8], [False, True, False], "x").message


def test_initial_loss_against_ln_c() -> None:
    good = pf.initial_loss_verdict(2.31, 10, 2.9, 1e-2)
    assert good.status == pf.PASS and "ln(10) = 2.303" in good.message
    huge = pf.initial_loss_verdict(57.0, 10)
    assert huge.status == pf.FAIL and "check the initialization or the last layer" in huge.message
    assert pf.initial_loss_verdict(2.9, 10).status == pf.WARN
    no_raise = pf.initial_loss_verdict(2.30, 10, 2.30, 1e-2)
    assert no_raise.status == pf.FAIL and "did not raise it" in no_raise.message


def test_overfit_names_the_causes() -> None:
    won = [{"lr": 0.1, "steps": 30, "train_acc": 1.0, "first_loss": 2.3, "last_loss": 0.5, "exploded": False}]
    assert pf.overfit_verdict(won, 20).status == pf.PASS
    lost = [
        {"lr": 0.1, "steps": 300, "train_acc": 0.4, "first_loss": 2.3, "last_loss": 2.0, "exploded": False},
        {"lr": 1.0, "steps": 3, "train_acc": 0.1, "first_loss": 2.3, "last_loss": 9.0, "exploded": True},
    ]
    v = pf.overfit_verdict(lost, 20)
    assert v.status == pf.FAIL
    assert "too high" in v.message and "learning rate too low" in v.message and "capacity" in v.message


def _range(n: int, lo: float, hi: float, low_at: float, rise: float) -> tuple[list[float], list[float]]:
    """A range test's curve: flat at 2.3, falling to 0.2 around `low_at`, rising `rise`-fold after."""
    lrs = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    out = []
    for lr in lrs:
        t = math.log10(lr / low_at)
        out.append(0.2 + 2.1 / (1 + math.exp(4 * t + 6)) if t < 0 else 0.2 * rise ** min(t * 4, 3))
    return lrs, out


@given(low_at=st.floats(1e-4, 1e-1), rise=st.floats(3, 50))
def test_lr_range_suggests_a_range_below_divergence(low_at: float, rise: float) -> None:
    lrs, losses = _range(150, 1e-6, 10, low_at, rise)
    v = pf.lr_range_verdict(lrs, losses, (1e-6, 10.0))
    lo, hi = v.data["suggested"]
    assert lo < hi and hi >= 10 * lo * (1 - 1e-9)
    assert lo <= v.data["steepest_lr"] <= v.data["min_loss_lr"]
    if v.data["diverged_lr"] is not None:
        assert v.data["diverged_lr"] >= v.data["min_loss_lr"]
    assert v.status in (pf.PASS, pf.WARN)


def test_lr_range_fails_when_the_loss_never_falls() -> None:
    lrs = [1e-6 * 10 ** (i / 20) for i in range(140)]
    v = pf.lr_range_verdict(lrs, [2.3] * 140, None)
    assert v.status == pf.FAIL and "never fell" in v.message


def test_lr_range_counts_a_non_finite_loss_as_divergence() -> None:
    lrs, losses = _range(100, 1e-5, 1, 1e-2, 1.0)
    losses[80:] = [math.inf] * 20
    v = pf.lr_range_verdict(lrs, losses, None)
    assert v.data["diverged_lr"] == pytest.approx(lrs[79])


def test_lr_range_warns_when_most_of_the_declared_range_diverges() -> None:
    lrs, losses = _range(150, 1e-6, 100, 1e-2, 20.0)
    ok = pf.lr_range_verdict(lrs, losses, (1e-5, 1.0))
    d = ok.data["diverged_lr"]
    assert d is not None and ok.status == pf.PASS  # the range reaches a little past divergence: normal
    hot = pf.lr_range_verdict(lrs, losses, (d / 2, d * 20))
    assert hot.status == pf.WARN and "most of the declared range lies above where the loss diverges" in hot.message
    assert pf.mostly_diverges((0.1, 10.0), 0.5) and not pf.mostly_diverges((0.1, 10.0), 2.0)
    assert not pf.mostly_diverges((0.1, 10.0), 20.0)


def test_lr_range_fails_a_range_wholly_above_divergence_and_warns_one_wholly_below_the_suggestion() -> None:
    """A new user's [10, 1000] (every run diverged) got WARN and "go on"; [1e-7, 1e-5], far below
    the suggested range, got PASS."""
    lrs, losses = _range(150, 1e-8, 1000, 1e-2, 20.0)
    d = pf.lr_range_verdict(lrs, losses, None).data["diverged_lr"]
    hot = pf.lr_range_verdict(lrs, losses, (d * 1.5, d * 100))
    assert hot.status == pf.FAIL and "the whole declared range lies at or above where the loss diverges" in hot.message
    low = pf.lr_range_verdict(lrs, losses, (1e-7, 1e-5))
    assert low.data["suggested"][0] > 1e-5
    assert low.status == pf.WARN and "the whole declared range lies below the suggested one" in low.message
    edge = pf.lr_range_verdict(lrs, losses, (1e-7, low.data["suggested"][0] * 1.01))  # reaches into it: no word
    assert edge.status == pf.PASS


def test_representative_takes_only_the_branch_its_choice_takes() -> None:
    """A configuration as a trial gets it: plain names, the first choice's branch only (`hpsearch
    check` listed `lr[optimizer=sgd]=...` beside optimizer=adam, and its lr range test had no lr)."""
    from hpsearch.search import conditional as cond

    space = cond.parse_space(
        {
            "optimizer": {
                "values": ["adam", "sgd"],
                "branches": {
                    "adam": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}},
                    "sgd": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0}, "m": {"value": 0.9}},
                },
            }
        },
        [],
        [],
    )
    r = pf.representative(space)
    assert set(r) == {"optimizer", "lr"} and r["optimizer"] == "adam" and r["lr"] == pytest.approx(1e-3)
    key = cond.keys_for(space, "lr", r)  # the configuration's own branch
    assert key == "lr[optimizer=adam]" and pf.declared_range(space, key) == pytest.approx((1e-5, 1e-1))


def test_representative_is_each_ranges_middle_in_its_scale() -> None:
    space = {
        "lr": sp.Numeric(1e-6, 1.0, log=True),
        "dropout": sp.Numeric(0.0, 0.8),
        "batch": sp.Categorical((32, 64)),
        "momentum": sp.Constant(0.9),
    }
    r = pf.representative(space)
    assert r["lr"] == pytest.approx(1e-3) and r["dropout"] == pytest.approx(0.4)
    assert r["batch"] == 32 and r["momentum"] == 0.9


# -- measurements on the bundled digits ------------------------------------------------------------
P = {**CLASSIFIER_DEFAULTS, "hidden": [16], "batch": 64}


def test_population_backward_agrees_with_centred_differences() -> None:
    errors, kinks = tp.classifier_gradients(P, ".", seed=3)
    assert len(errors) == len(kinks) == 4 * tp.GRAD_COORDS  # W0, b0, W1, b1 of both members
    v = pf.gradient_verdict(errors, kinks, "population")
    assert v.status == pf.PASS, v.message
    assert max(e for e, k in zip(errors, kinks) if not k) < pf.GRAD_SUSPICIOUS


def test_a_huge_initialization_fails_the_initial_loss() -> None:
    probe = tp.classifier_probe({**P, "init_scale": 5.0}, ".", seed=0)
    loss, with_reg = tp.initial_loss(probe)
    assert pf.initial_loss_verdict(loss, 10, with_reg).status == pf.FAIL
    probe = tp.classifier_probe(P, ".", seed=0)
    loss, with_reg = tp.initial_loss(probe)
    assert pf.initial_loss_verdict(loss, 10, with_reg).status == pf.PASS


@pytest.mark.slow  # up to 1,200 SGD steps; test_recipe_cli checks the same through the CLI
def test_no_capacity_cannot_overfit_twenty_examples() -> None:
    assert pf.overfit_verdict(tp.overfit(tp.classifier_probe(P, ".", 0)), 20).status == pf.PASS
    tiny = tp.classifier_probe({**P, "hidden": [1]}, ".", 0)
    assert pf.overfit_verdict(tp.overfit(tiny), 20).status == pf.FAIL
