"""Learning-rate schedules: the notes' step, exponential and 1/t decay, per epoch, pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpsearch.search.schedules import SCHEDULES, lr_at, schedule_problems
from hpsearch.search.space import Categorical, Constant, Numeric


def test_each_schedule_by_hand() -> None:
    assert [lr_at({"lr": 1.0}, e) for e in (1, 2, 3)] == [1.0, 1.0, 1.0]
    assert [lr_at({"lr": 1.0, "lr_decay": 0.5}, e) for e in (1, 2, 3)] == [1.0, 0.5, 0.25]
    step = {"lr": 1.0, "lr_schedule": "step", "lr_step": 2, "lr_drop": 0.1}
    assert [lr_at(step, e) for e in (1, 2, 3, 4, 5)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    exp = {"lr": 2.0, "lr_schedule": "exponential", "lr_k": 0.5}
    assert lr_at(exp, 3) == pytest.approx(2.0 * math.exp(-1.0))
    inv = {"lr": 3.0, "lr_schedule": "inverse_time", "lr_k": 1.0}
    assert [lr_at(inv, e) for e in (1, 2, 3)] == pytest.approx([3.0, 1.5, 1.0])


@given(
    kind=st.sampled_from(SCHEDULES),
    lr=st.floats(1e-6, 10),
    k=st.floats(0, 5),
    drop=st.floats(0.01, 1),
    step=st.integers(1, 10),
    epoch=st.integers(1, 200),
)
def test_schedules_start_at_lr_and_never_rise(
    kind: str, lr: float, k: float, drop: float, step: int, epoch: int
) -> None:
    p = {"lr": lr, "lr_schedule": kind, "lr_k": k, "lr_drop": drop, "lr_step": step, "lr_decay": drop}
    assert lr_at(p, 1) == pytest.approx(lr)
    assert 0 <= lr_at(p, epoch + 1) <= lr_at(p, epoch) * (1 + 1e-12)


def test_problems_name_the_setting_and_rule() -> None:
    bad = {"lr_schedule": "cosine", "lr_drop": 0, "lr_step": 0.5, "lr_k": -1, "ema": 1.0}
    problems = schedule_problems(bad, {})
    assert len(problems) == 5
    assert "trainable.lr_schedule: must be one of constant, step, exponential, inverse_time" in problems[0]
    searched = {
        "lr_schedule": Categorical(("step", "cosine")),
        "ema": Numeric(0.9, 1.0),
        "lr_step": Constant(2),
        "lr_k": Numeric(0.0, 1.0),
    }
    assert schedule_problems({**bad, "lr_drop": 0.5}, searched) == [
        "parameters.lr_schedule: every value must be one of constant, step, exponential, inverse_time, got 'cosine'",
        "parameters.ema: every value must be in [0, 1): 0 is off, 0.999 a typical decay, got 1.0",
    ]
