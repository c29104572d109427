"""Issue 12, kind 6: no configuration is drawn twice in a stage while distinct ones remain."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli, write, write_sweep

from hpsearch.search import sampling
from hpsearch.search import space as sp
from hpsearch.search.config import parse
from hpsearch.search.stages import plan_stage

SMALL = {"optimizer": {"values": ["adam", "sgd"]}, "batch": {"values": [32, 64]}}


def space_of(params: dict[str, Any]) -> sp.Space:
    return parse({"trainable": "noop", "parameters": params, "stages": [{"trials": 1}]}).space


def keys(draws: list[tuple[dict[str, Any], int]]) -> list[str]:
    return [sampling.key(p) for p, _ in draws]


@pytest.mark.parametrize("seed", range(20))
def test_four_trials_over_four_configurations_try_each_once(seed: int) -> None:
    draws = sampling.sample_stage(space_of(SMALL), seed, 1, 4)
    assert len(draws) == 4 and len(set(keys(draws))) == 4 and draws.available is None


@pytest.mark.parametrize(
    "params, size",
    [
        (SMALL, 4),
        ({"layers": {"min": 1, "max": 3}, "act": {"values": ["relu", "gelu"]}, "w": {"value": 1}}, 6),
        ({"width": {"distribution": "q_uniform", "min": 16, "max": 64, "q": 16}, "flag": {"values": [True, False]}}, 8),
        ({"h": {"values": [[64], [64, 64], [128]]}, "p": {"values": [1, 2], "probabilities": [0.95, 0.05]}}, 6),
        ({"d": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.5}}, 3),
    ],
)
def test_a_stage_asking_for_more_than_the_space_holds_tries_every_point_once(params: dict, size: int) -> None:
    space = space_of(params)
    assert sampling.space_size(space) == size
    draws = sampling.sample_stage(space, 3, 2, size + 5)
    assert len(draws) == size and draws.available == size
    assert sorted(keys(draws)) == sorted(sampling.key(c) for c in sampling.configurations(space))
    assert draws == sampling.sample_stage(space, 3, 2, size + 5)  # still reproducible


def test_promoted_configurations_are_not_drawn_again() -> None:
    space = space_of(SMALL)
    promoted = [{"optimizer": "adam", "batch": 64}]
    draws = sampling.sample_stage(space, 0, 2, 4, exclude=promoted)
    assert len(draws) == 3 and sampling.key(promoted[0]) not in keys(draws)


def test_a_continuous_space_is_sampled_as_before() -> None:
    space = space_of({"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1}, **SMALL})
    assert sampling.space_size(space) is None
    draws = sampling.sample_stage(space, 0, 1, 50)
    assert len(draws) == 50 and draws.available is None


def test_the_plan_says_when_the_space_ran_out() -> None:
    sweep = parse({"trainable": "noop", "parameters": SMALL, "stages": [{"trials": 6, "repeats": 2}]})
    plan = plan_stage(sweep, 1, None, [])
    configs = Counter(sampling.key(t["params"]) for t in plan.trials)
    assert len(configs) == 4 and set(configs.values()) == {2}  # each configuration once, with its 2 repeats
    (note,) = plan.notes
    assert "holds 4 configuration(s)" in note and "4 of the 6 trial(s)" in note


def test_end_to_end_no_stage_trains_a_configuration_twice(tmp_path: Path) -> None:
    write(
        tmp_path / "ut_distinct.py",
        """
        def fit(params, trial):
            score = {"adam": 0.5, "sgd": 0.3}[params["optimizer"]] + params["batch"] / 1000
            trial.report(1, val_acc=score)
        """,
    )
    write_sweep(
        tmp_path,
        """
        name: distinct
        trainable: {python: "ut_distinct:fit"}
        parameters:
          optimizer: {values: [adam, sgd]}
          batch: {values: [32, 64]}
        stages: [{trials: 4, epochs: 1}, {trials: 4, epochs: 1, top: 2}]
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        """,
        "s.yaml",
    )
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    for k in (1, 2):
        params = [sampling.key(x["params"]) for x in doc["runs"] if x["stage"] == k]
        assert len(params) == len(set(params)), (k, params)
    assert len([x for x in doc["runs"] if x["stage"] == 1]) == 4
    # stage 2 narrows to the top 2 configurations' values: {adam} x {32, 64} holds 2 configurations
    assert len([x for x in doc["runs"] if x["stage"] == 2]) == 2
    assert "stage 2: the search space holds 2 configuration(s)" in r.stdout
