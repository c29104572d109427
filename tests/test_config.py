"""Sweep-file validation: W&B spellings accepted, our keys checked, every problem reported at once."""

from __future__ import annotations

import math

import pytest

from hpsearch.errors import ConfigError
from hpsearch.search import space as sp
from hpsearch.store.sweepfile import parse

ISSUE_EXAMPLE = {
    "name": "digits-mlp",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "seed": 0,
    "trainable": {"builtin": "classifier", "dataset": "digits", "hidden": [100], "optimizer": "momentum"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1.0e-6, "max": 10},
        "reg": {"distribution": "log_uniform_values", "min": 1.0e-5, "max": 10},
        "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.9},
        "hidden": {"distribution": "int_uniform", "min": 32, "max": 512},
        "batch": {"values": [32, 64, 128]},
        "momentum": {"value": 0.9},
    },
    "stages": [
        {"trials": 60, "epochs": 1},
        {"trials": 30, "epochs": 5, "top": 10},
        {"trials": 10, "epochs": 20, "top": 5},
    ],
    "workers": 2,
}


def problems(doc) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse(doc)
    return e.value.problems


def test_issue_example_parses():
    s = parse(ISSUE_EXAMPLE)
    assert s.space["lr"] == sp.Numeric(1e-6, 10.0, log=True)
    assert s.space["hidden"] == sp.Numeric(32, 512, integer=True)
    assert s.space["batch"] == sp.Categorical((32, 64, 128))
    assert s.space["momentum"] == sp.Constant(0.9)
    assert [st.trials for st in s.stages] == [60, 30, 10] and s.stages[1].top == 10
    assert s.workers == 2 and s.metric.goal == "maximize"
    assert s.fixed_settings()["optimizer"] == "momentum"


def test_wandb_file_runs_with_trainable_and_stages_added_and_warns_on_unused_keys():
    wandb = {
        "program": "train.py",
        "method": "bayes",
        "project": "x",
        "entity": "me",
        "early_terminate": {"type": "hyperband", "min_iter": 3},
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {
            "learning_rate": {"distribution": "log_uniform", "min": -9.2, "max": -2.3},  # natural-log exponents
            "batch_size": {"distribution": "q_log_uniform_values", "q": 1, "min": 16, "max": 256},
            "epochs": {"value": 5},
            "optimizer": {"values": ["adam", "sgd"], "probabilities": [0.7, 0.3]},
            "dropout": {"min": 0.1, "max": 0.5},  # inferred uniform
            "layers": {"min": 1, "max": 4},  # inferred int_uniform
            "wd": {"distribution": "inv_log_uniform_values", "min": 1e-5, "max": 1e-2},
            "noise": {"distribution": "normal", "mu": 0, "sigma": 1},
            "arch": {"parameters": {"width": {"values": [64, 128]}}},  # nested
        },
        "trainable": {"command": ["python", "train.py", "${args}"]},
        "stages": [{"trials": 4, "epochs": 1}],
    }
    s = parse(wandb)
    assert s.space["learning_rate"].low == pytest.approx(math.exp(-9.2)) and s.space["learning_rate"].log
    assert s.space["batch_size"].integer and s.space["batch_size"].log
    assert s.space["dropout"] == sp.Numeric(0.1, 0.5)
    assert s.space["layers"].integer
    assert s.space["wd"].log and s.space["noise"].kind == "normal"
    assert "arch.width" in s.space
    assert {w.split("'")[1] for w in s.warnings if w.startswith("W&B key")} == {
        "program",
        "method",
        "project",
        "entity",
    }
    assert any("no rung below the stage's 1 epoch" in w for w in s.warnings)  # min_iter 3 > the stage's epochs
    # early_terminate is honoured, not warned about: W&B's hyperband bands from min_iter 3, eta 3
    assert s.early_stop.rule == "asha" and s.early_stop_for(1).rungs(30) == (3, 9, 27)
    # epochs: a searched parameter named like a placeholder wins, with a warning (see test_names)
    assert "epochs" in {w.split("'")[1] for w in s.warnings if not w.startswith("W&B key")}


def test_yaml_style_exponent_strings_are_numbers():
    doc = {**ISSUE_EXAMPLE, "parameters": {"lr": {"distribution": "log_uniform_values", "min": "1e-6", "max": "1e1"}}}
    assert parse(doc).space["lr"].low == 1e-6


def test_every_problem_is_reported_at_once():
    doc = {
        "name": "../../x",
        "colour": 1,
        "metric": {"name": "val_acc", "goal": "maximise"},
        "trainable": {"builtin": "classifier", "datset": "digits"},
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 0, "max": 1},
            "reg": {"distribution": "uniform", "min": 2, "max": 1},
            "wd": {"distribution": "gaussian", "min": 1, "max": 2},
            "x": {"distribution": "uniform", "mim": 0, "max": 1},
        },
        "stages": [{"trials": 0, "epochs": 1}],
    }
    p = problems(doc)
    text = "\n".join(p)
    for fragment in [
        "name: must be letters",
        "unknown key 'colour' (valid keys:",
        "metric.goal: must be 'maximize' or 'minimize'",
        "trainable.datset: not a setting of the classifier built-in (valid:",
        "parameters.lr: a log range needs min > 0",
        "parameters.reg: min must be below max",
        "parameters.wd.distribution: unknown 'gaussian'",
        "parameters.x: unknown key 'mim'",
        "stages[1]: has zero trials",
    ]:
        assert fragment in text, fragment
    assert len(p) >= 9


@pytest.mark.parametrize(
    "stages", [None, [], "fast", [{"trials": 5, "epochs": 0}], [{"trials": -1}], [{"trials": 2, "promote": 2}]]
)
def test_bad_stages(stages):
    doc = {**ISSUE_EXAMPLE, "stages": stages}
    if stages is None:
        del doc["stages"]
    assert any(p.startswith("stages") for p in problems(doc))


def test_missing_trainable_and_npz_dataset(tmp_path):
    doc = {k: v for k, v in ISSUE_EXAMPLE.items() if k != "trainable"}
    assert problems(doc)[0].startswith("trainable: missing")
    doc = {**ISSUE_EXAMPLE, "trainable": {"builtin": "classifier", "dataset": "npz:nothere.npz"}}
    assert "npz data not found" in problems(doc)[0]


def test_hard_bounds_must_enclose_range():
    doc = {**ISSUE_EXAMPLE, "parameters": {"dropout": {"min": 0.0, "max": 0.9, "bounds": [0.1, 1]}}}
    assert "bounds" in problems(doc)[0]
    ok = {**ISSUE_EXAMPLE, "parameters": {"dropout": {"min": 0.0, "max": 0.9, "bounds": [0, 1]}}}
    assert parse(ok).space["dropout"].bounds == (0.0, 1.0)


def test_classifier_parameter_typo_lists_valid_settings():
    doc = {**ISSUE_EXAMPLE, "parameters": {"learning_rate": {"min": 0.1, "max": 1.0}}}
    assert problems(doc)[0].startswith(
        "parameters.learning_rate: not a setting of the classifier built-in (valid: batch,"
    )


def test_the_promote_warning_names_every_promoting_stage() -> None:
    s = parse(
        {
            "trainable": {"python": "m:fit"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            "stages": [
                {"trials": 6, "epochs": 1},
                {"trials": 2, "epochs": 3, "promote": 2},
                {"trials": 0, "epochs": 9, "promote": 1},
            ],
        }
    )
    (w,) = [w for w in s.warnings if ".promote" in w]
    assert w.startswith("stages[2] and stages[3].promote (stages counted from 1): ") and "can ignore this" in w


def test_the_promote_warning_of_stages_auto_names_no_stage_the_file_lacks() -> None:
    """It said "stages[2] and stages[3].promote" of a file whose stages: is the word auto."""
    s = parse(
        {
            "trainable": {"python": "m:fit"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            "stages": "auto",
            "budget": 200,
            "epochs": 20,
        }
    )
    (w,) = [w for w in s.warnings if "resumable state" in w]
    promoting = [i for i, st in enumerate(s.stages, 1) if st.promote]
    assert promoting and w.startswith(f"stages: auto promotes into its stage(s) {' and '.join(map(str, promoting))}")
    assert "stages[" not in w
