"""`sampler: tpe` on a stage: Optuna's TPE told the sweep's earlier trials, inside hpsearch's ranges,
reproducible from the seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import run_cli, write_sweep

from hpsearch.errors import ConfigError
from hpsearch.run import master
from hpsearch.search import conditional as cond
from hpsearch.search import config, stages
from hpsearch.search import space as sp

pytest.importorskip("optuna")

DOC = {
    "trainable": "noop",
    "seed": 4,
    "parameters": {
        "x": {"distribution": "uniform", "min": 0.0, "max": 1.0},
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
        "n": {"distribution": "int_uniform", "min": 1, "max": 9},
        "opt": {"values": ["a", "b"], "branches": {"a": {"y": {"min": 0.0, "max": 1.0}}}},
    },
    "stages": [{"trials": 40}, {"trials": 20, "sampler": "tpe"}],
}


def history(n: int = 40) -> list[stages.Run]:
    """Stage 1 as random search would run it, scored by closeness of x to 0.3."""
    s = config.parse(DOC)
    plan = stages.plan_stage(s, 1, None, [])
    return [
        stages.Run(t["trial"], t["config"], t["params"], "finished", 1 - abs(t["params"]["x"] - 0.3), 1, t["seed"])
        for t in plan.trials[:n]
    ]


def test_tpe_plan_is_reproducible_keeps_the_seeds_and_stays_in_the_ranges() -> None:
    s = config.parse(DOC)
    runs = history()
    a = stages.plan_stage(s, 2, s.space, runs, history=runs)
    b = stages.plan_stage(s, 2, s.space, runs, history=runs)
    assert a.trials == b.trials
    plain = stages.plan_stage(config.parse({**DOC, "stages": [{"trials": 40}, {"trials": 20}]}), 2, s.space, runs)
    assert [t["seed"] for t in a.trials] == [t["seed"] for t in plain.trials]  # the seeds' stream is kept
    assert [t["params"] for t in a.trials] != [t["params"] for t in plain.trials]
    for t in a.trials:
        p = t["params"]
        for name, value in p.items():
            key = cond.keys_for(a.space, name, p)
            dim = a.space[key]
            if isinstance(dim, sp.Numeric):
                assert dim.low <= value <= dim.high and (not dim.integer or isinstance(value, int))
        assert ("y" in p) is (p["opt"] == "a")


def test_tpe_follows_what_it_was_told() -> None:
    """Told that x near 0.3 scores best, TPE's x lie nearer 0.3 than random draws in the same ranges."""
    s = config.parse(DOC)
    runs = history()
    space = dict(s.space)  # the same ranges for both (no narrowing), so only the sampler differs
    tpe = stages.plan_stage(s, 2, None, [], history=runs)
    rnd = stages.plan_stage(config.parse({**DOC, "stages": [{"trials": 40}, {"trials": 20}]}), 2, None, [])
    assert tpe.space == rnd.space == space
    dist = [sum(abs(t["params"]["x"] - 0.3) for t in p.trials) / len(p.trials) for p in (tpe, rnd)]
    assert dist[0] < 0.6 * dist[1], dist


def test_trials_outside_the_stage_ranges_are_not_told() -> None:
    from hpsearch.search import tpe

    space = {"x": sp.Numeric(0.2, 0.4), "opt": sp.Categorical(("a", "b"))}
    dists = {"x": object(), "opt": object()}
    assert tpe._inside(space, dists, {"x": 0.3, "opt": "b"}) == {"x": pytest.approx(0.5), "opt": 1}
    assert tpe._inside(space, dists, {"x": 0.5, "opt": "b"}) is None
    assert tpe._inside(space, dists, {"x": 0.3, "opt": "c"}) is None


def test_sampler_key_is_checked_and_optuna_is_required_at_the_door(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"stages\[2\].sampler: must be one of random, tpe, got 'bayes'"):
        config.parse({**DOC, "stages": [{"trials": 4}, {"trials": 2, "sampler": "bayes"}]})
    from hpsearch.search import tpe

    monkeypatch.setattr(tpe, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"sampler: tpe needs Optuna, which is not installed: pip install"):
        master.check_trainable(config.parse(DOC))


def test_tpe_stage_through_the_cli(tmp_path: Path) -> None:
    doc = {
        "name": "tpe",
        "seed": 1,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop", "target": {"x": 0.3}},
        "parameters": {"x": {"distribution": "uniform", "min": 0.0, "max": 1.0}},
        "stages": [{"trials": 12, "epochs": 1}, {"trials": 6, "epochs": 1, "sampler": "tpe"}],
    }
    f = write_sweep(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    d = tmp_path / "run"
    run_cli("master", "start", str(f), "--dir", str(d), check=True)
    stage2 = json.loads((d / "stages" / "stage-2.json").read_text())
    lo, hi = stage2["ranges"]["x"]["low"], stage2["ranges"]["x"]["high"]
    xs = [json.loads((d / "trials" / f"s2-t{i:04d}" / "params.json").read_text())["params"]["x"] for i in range(6)]
    assert all(lo <= x <= hi for x in xs) and len(set(xs)) == 6
