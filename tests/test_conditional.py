"""Conditional and per-choice parameters: the YAML forms, sampling (inactive ones absent), ranking
and narrowing per branch, border flags per branch, enqueue, the command's arguments, the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import run_cli, write, write_sweep
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch.errors import ConfigError
from hpsearch.search import conditional as cond
from hpsearch.search import config, stages
from hpsearch.search import space as sp
from hpsearch.search.config import Metric
from hpsearch.trainables.command import check

LOG = "log_uniform_values"
PARAMS = {
    "optimizer": {
        "values": ["adam", "sgd", "nesterov"],
        "branches": {
            "adam": {"lr": {"distribution": LOG, "min": 1e-5, "max": 1e-2}, "beta2": {"values": [0.99, 0.999]}},
            "sgd": {"lr": {"distribution": LOG, "min": 1e-3, "max": 1.0}},
            "nesterov": {"lr": {"distribution": LOG, "min": 1e-3, "max": 1.0}},
        },
    },
    "momentum": {"min": 0.5, "max": 0.99, "when": {"optimizer": ["sgd", "nesterov"]}},
    "reg": {"distribution": LOG, "min": 1e-5, "max": 1e-1},
}


def sweep(params: dict | None = None, **extra: object) -> config.Sweep:
    doc = {"trainable": "noop", "parameters": params or PARAMS, "stages": [{"trials": 40}, {"trials": 10, "top": 4}]}
    return config.parse({**doc, **extra})


def test_branches_and_when_become_keys_with_their_conditions() -> None:
    s = sweep()
    assert list(s.space) == [
        "optimizer",
        "reg",
        "lr[optimizer=adam]",
        "beta2[optimizer=adam]",
        "lr[optimizer=sgd]",
        "lr[optimizer=nesterov]",
        "momentum[optimizer=sgd|nesterov]",
    ]
    assert s.space["lr[optimizer=adam]"] == sp.Numeric(1e-5, 1e-2, log=True)
    assert s.space["lr[optimizer=sgd]"] == sp.Numeric(1e-3, 1.0, log=True)
    assert cond.public_names(s.space) == ["optimizer", "reg", "lr", "beta2", "momentum"]


def test_nested_w_and_b_parameters_and_a_branch_inside_a_branch() -> None:
    s = sweep(
        {
            "arch": {
                "parameters": {
                    "depth": {
                        "values": [1, 2],
                        "branches": {
                            2: {"width2": {"values": [8, 16], "branches": {16: {"drop": {"min": 0.0, "max": 0.5}}}}}
                        },
                    },
                }
            },
            "x": {"min": 0.0, "max": 1.0},
        }
    )
    assert set(s.space) == {"arch.depth", "x", "arch.width2[arch.depth=2]", "arch.drop[arch.depth=2][arch.width2=16]"}
    assert cond.resolve(
        s.space,
        {"arch.depth": 1, "x": 0.5, "arch.width2[arch.depth=2]": 16, "arch.drop[arch.depth=2][arch.width2=16]": 0.1},
    ) == {"arch.depth": 1, "x": 0.5}
    assert cond.resolve(
        s.space,
        {"arch.depth": 2, "x": 0.5, "arch.width2[arch.depth=2]": 16, "arch.drop[arch.depth=2][arch.width2=16]": 0.1},
    ) == {"arch.depth": 2, "x": 0.5, "arch.width2": 16, "arch.drop": 0.1}


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"x": {"min": 0, "max": 1}, "y": {"min": 0, "max": 1, "when": {"x": 1}}},
            "its condition names 'x', which is not a categorical",
        ),
        ({"y": {"min": 0, "max": 1, "when": {"opt": "sgd"}}}, "its condition names 'opt', which is not a categorical"),
        (
            {"opt": {"values": ["a", "b"]}, "y": {"min": 0, "max": 1, "when": {"opt": "c"}}},
            "when opt is 'c': not one of opt's values (a, b)",
        ),
        (
            {"opt": {"values": ["a", "b"], "branches": {"c": {"y": {"min": 0, "max": 1}}}}},
            "branches.c: not one of the values (a, b)",
        ),
        ({"opt": {"min": 0, "max": 1, "branches": {"a": {}}}}, "branches: needs values: [...]"),
        (
            {
                "opt": {"values": ["a", "b"], "branches": {"a": {"lr": {"min": 0, "max": 1}}}},
                "lr": {"min": 0, "max": 1},
            },
            "defined both always and under a condition",
        ),
        (
            {
                "opt": {"values": ["a", "b"]},
                "lr": {"min": 0, "max": 1, "when": {"opt": ["a", "b"]}},
                "z": {"values": [1]},
                "w": {"values": [1, 2]},
            }
            | {"opt2": {"values": ["a"], "branches": {"a": {"lr": {"min": 0, "max": 2}}}}},
            "two definitions can hold at once",
        ),
        (
            {"a": {"values": [1, 2], "when": {"b": 1}}, "b": {"values": [1, 2], "when": {"a": 1}}},
            "its conditions depend on itself",
        ),
        ({"opt": {"values": ["a"]}, "y": {"min": 0, "max": 1, "when": "opt"}}, "when: must be a mapping"),
        (
            {"opt": {"values": ["a"], "branches": {"a": {"lr": {"min": 1, "max": 0}}}}},
            "parameters.lr: min must be below max",
        ),
    ],
)
def test_mistakes_are_one_config_error(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        sweep(params)
    assert message in str(e.value)


@settings(max_examples=60)
@given(st.integers(0, 2**31 - 1))
def test_inactive_parameters_are_absent_never_none(seed: int) -> None:
    s = sweep()
    draw = sp.sample(s.space, np.random.default_rng(seed))
    p = cond.resolve(s.space, draw)
    assert None not in p.values()
    assert ("beta2" in p) is (p["optimizer"] == "adam")
    assert ("momentum" in p) is (p["optimizer"] in ("sgd", "nesterov"))
    key = cond.keys_for(s.space, "lr", p)
    assert key == f"lr[optimizer={p['optimizer']}]" and p["lr"] == draw[key]
    assert s.space[key].low <= p["lr"] <= s.space[key].high
    assert list(p) == [n for n in cond.public_names(s.space) if n in p]


def test_stage_plans_have_only_each_trials_own_parameters() -> None:
    plan = stages.plan_stage(sweep(), 1, None, [])
    seen = {t["params"]["optimizer"] for t in plan.trials}
    assert seen == {"adam", "sgd", "nesterov"}
    for t in plan.trials:
        assert set(t["params"]) == {
            "optimizer",
            "reg",
            "lr",
            *(("beta2",) if t["params"]["optimizer"] == "adam" else ("momentum",)),
        }


def _run(i: int, optimizer: str, lr: float, value: float) -> stages.Run:
    params = {
        "optimizer": optimizer,
        "reg": 1e-3,
        "lr": lr,
        **({"beta2": 0.99} if optimizer == "adam" else {"momentum": 0.9}),
    }
    return stages.Run(f"s1-t{i:04d}", f"s1-t{i:04d}", params, "finished", value, 1)


def test_each_branch_narrows_and_is_flagged_on_its_own_runs() -> None:
    s = sweep()
    runs = [
        _run(0, "adam", 9.5e-3, 0.95),  # the best run: adam, lr at the top edge of adam's range
        _run(1, "adam", 9.0e-3, 0.90),
        _run(2, "sgd", 0.03, 0.80),
        _run(3, "sgd", 0.05, 0.75),
        _run(4, "nesterov", 0.2, 0.70),
        _run(5, "adam", 2e-5, 0.10),
        _run(6, "sgd", 0.9, 0.05),
    ]
    ranked = stages.rank(runs, Metric())
    flags = stages.all_border_flags(s.space, ranked, 0.1)
    assert [(f.param, f.side) for f in flags] == [("lr[optimizer=adam]", "high")]
    plan = stages.plan_stage(s, 2, s.space, runs)
    adam, sgd = plan.space["lr[optimizer=adam]"], plan.space["lr[optimizer=sgd]"]
    assert adam.high > 1e-2  # moved past the flagged edge
    # top 4 runs overall, but sgd's range comes from sgd's own top runs (0.03, 0.05 and 0.9: all 3 of them)
    assert sgd.low <= 0.03 and sgd.high >= 0.9 * 0.99
    assert plan.space["optimizer"] == sp.Categorical(("adam", "sgd"))  # the choices among the top 4
    # a branch out of the top keeps its own runs' range for later stages (or a return of its choice)
    assert plan.space["lr[optimizer=nesterov]"].low <= 0.2 <= plan.space["lr[optimizer=nesterov]"].high


def test_a_branch_with_one_run_is_not_narrowed_and_keeps_its_incumbents() -> None:
    """nesterov has one finished configuration: one run has no spread, so its lr range is not
    narrowed around it (as a stage with fewer than 3 is not), and the incumbents of its branch stay
    inside it: a single lucky value no longer shrinks a branch's range to 5% of its width."""
    s = sweep()
    runs = [
        _run(0, "adam", 1e-3, 0.95),
        _run(1, "adam", 2e-3, 0.93),
        _run(2, "adam", 3e-3, 0.91),
        _run(3, "nesterov", 0.3, 0.90),
        _run(4, "sgd", 0.02, 0.85),
        _run(5, "sgd", 0.05, 0.84),
        _run(6, "sgd", 0.09, 0.83),
    ]
    plan = stages.plan_stage(s, 2, s.space, runs)
    assert plan.space["lr[optimizer=nesterov]"] == s.space["lr[optimizer=nesterov]"]
    adam = plan.space["lr[optimizer=adam]"]
    assert adam.low <= 1e-3 and adam.high >= 3e-3 and adam.high < 1e-2  # three runs: narrowed around them
    # stage 3 after a stage-2 adam run that narrowed adam's range elsewhere: stage 1's adam incumbent stays
    moved = sp.Numeric(4e-3, 6e-3, log=True)
    s2 = [stages.Run("s2-t0000", "s2-t0000", {**runs[0].params, "lr": 5e-3}, "finished", 0.5, 1, 9)]
    space2 = {**plan.space, "lr[optimizer=adam]": moved}
    plan3 = stages.plan_stage(s, 2, space2, s2, None, runs + s2)
    assert plan3.space["lr[optimizer=adam]"].low <= 1e-3  # the best adam run so far is inside


def test_enqueue_names_a_branch_by_its_choice() -> None:
    s = sweep(enqueue=[{"optimizer": "sgd", "lr": 0.5, "momentum": 0.95}, {"optimizer": "adam", "lr": 0.5}])
    assert any("enqueue[2].lr: 0.5 lies outside the range [1.0e-05, 0.01] log" in w for w in s.warnings)
    plan = stages.plan_stage(s, 1, None, [])
    a, b = plan.trials[0]["params"], plan.trials[1]["params"]
    assert a["optimizer"] == "sgd" and a["lr"] == 0.5 and a["momentum"] == 0.95 and "beta2" not in a
    assert b["optimizer"] == "adam" and b["lr"] == 0.5 and "beta2" in b and "momentum" not in b
    for entry, message in [
        ({"lr": 0.1}, "enqueue[1].lr: exists only under a condition on optimizer: give that value too"),
        (
            {"optimizer": "adam", "momentum": 0.9},
            "enqueue[1].momentum: does not exist for this entry's values (only when optimizer=sgd|nesterov)",
        ),
    ]:
        with pytest.raises(ConfigError) as e:
            sweep(enqueue=[entry])
        assert message in str(e.value)


def test_builtin_classifier_accepts_conditional_settings() -> None:
    s = config.parse(
        {
            "trainable": {"builtin": "classifier", "dataset": "digits"},
            "parameters": {
                "optimizer": {
                    "values": ["adam", "momentum"],
                    "branches": {
                        "adam": {"lr": {"distribution": LOG, "min": 1e-4, "max": 1e-2}},
                        "momentum": {"lr": {"distribution": LOG, "min": 1e-2, "max": 1}},
                    },
                },
                "momentum": {"min": 0.5, "max": 0.99, "when": {"optimizer": "momentum"}},
            },
            "stages": [{"trials": 2}],
        }
    )
    assert cond.public_names(s.space) == ["optimizer", "lr", "momentum"]


def test_command_placeholder_of_a_conditional_parameter_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("")
    s = sweep(trainable={"command": [sys.executable, str(tmp_path / "x.py"), "--momentum", "{momentum}", "--lr={lr}"]})
    with pytest.raises(ConfigError) as e:
        check(s)
    assert "{lr} names a conditional parameter" in str(e.value) and "{momentum} names a conditional" in str(e.value)
    check(sweep(trainable={"command": [sys.executable, str(tmp_path / "x.py"), "${args}", "{reg}"]}))  # plain: fine


def test_conditional_sweep_through_the_cli(tmp_path: Path) -> None:
    write(
        tmp_path / "prog.py",
        """
        import json, math, os, sys
        args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
        with open(os.path.join(os.environ["HPSEARCH_TRIAL_DIR"], "args.json"), "w") as f:
            json.dump(args, f)
        best = {"adam": -3.0, "sgd": -1.0, "nesterov": -1.0}[args["optimizer"]]
        score = 1 - abs(math.log10(float(args["lr"])) - best) / 5
        with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
            f.write(json.dumps({"epoch": 1, "val_acc": score}) + "\\n")
        """,
    )
    doc = {
        "name": "cond",
        "seed": 2,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"command": ["${interpreter}", "prog.py", "${args}"]},
        "parameters": PARAMS,
        "stages": [{"trials": 18, "epochs": 1}, {"trials": 6, "epochs": 1, "top": 6}],
        "workers": 2,
    }
    f = write_sweep(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    d = tmp_path / "run"
    p = run_cli("master", "start", str(f), "--dir", str(d), check=True)
    assert "lr[optimizer=adam]" in p.stdout  # the ranges per branch, old -> new
    for t in (d / "trials").iterdir():
        params = json.loads((t / "params.json").read_text())["params"]
        args = json.loads((t / "args.json").read_text())
        assert set(args) == set(params)  # ${args}: only the parameters this trial has
        assert ("momentum" in args) is (params["optimizer"] != "adam") and ("beta2" in args) is (
            params["optimizer"] == "adam"
        )
    stage1 = json.loads((d / "stages" / "stage-1.json").read_text())
    assert {"lr[optimizer=adam]", "lr[optimizer=sgd]", "momentum[optimizer=sgd|nesterov]"} <= set(stage1["next_ranges"])
    r = run_cli("report", str(d), check=True)
    assert "Branches (conditional parameters):" in r.stdout and "optimizer=adam" in r.stdout
    j = json.loads(run_cli("report", str(d), "--format", "json", check=True).stdout)
    assert {b["value"] for b in j["branches"]} == {"adam", "sgd", "nesterov"}
    assert sum(b["runs"] for b in j["branches"] if b["parent"] == "optimizer") == 24
    run_cli("report", str(d), "--plots", str(tmp_path / "plots"), check=True)
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"metric_vs_lr__optimizer_adam.png", "metric_vs_momentum__optimizer_sgd_or_nesterov.png"} <= names
