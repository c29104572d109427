"""Issue 12, kinds 4 and 5: names as W&B, Hydra and argparse users write them.

Metric names (`val/loss`, `train.loss`...), parameter names (`training.lr`, `batch-size`), W&B keys
hpsearch does not use, log_uniform's exponents, and parameters named like hpsearch's placeholders
(the user's parameter wins everywhere, with a warning at load).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import noop_sweep, run_cli, write, write_sweep

from hpsearch.errors import ConfigError
from hpsearch.search import space as sp
from hpsearch.search.config import TRIAL_NAMES, parse
from hpsearch.store.sweepdir import format_checkpoint, metric_file_form, parse_checkpoint

METRICS = ["val/loss", "eval/accuracy", "val0/JaccardIndex", "train.loss", "val-acc", "top1", "acc@1", "μ/ß", "a~b"]


def sweep_doc(**over: Any) -> dict[str, Any]:
    return {
        "trainable": {"python": "m:fit"},
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "stages": [{"trials": 1}],
    }


@pytest.mark.parametrize("name", METRICS)
def test_metric_names_as_wandb_users_write_them_are_accepted(name: str) -> None:
    assert parse({**sweep_doc(), "metric": {"name": name, "goal": "minimize"}}).metric.name == name


@pytest.mark.parametrize("name", ["", "   ", "epoch", "attempt", "checkpoint", "a\nb", "x" * 101, 3])
def test_metric_names_that_cannot_work_are_refused(name: Any) -> None:
    with pytest.raises(ConfigError, match="metric.name"):
        parse({**sweep_doc(), "metric": {"name": name}})


@pytest.mark.parametrize("metric", METRICS + ["val_acc"])
@pytest.mark.parametrize("value", [0.5231, -12.5, 10.0, float("nan"), float("inf"), float("-inf")])
def test_checkpoint_names_are_file_safe_and_map_back(metric: str, value: float) -> None:
    name = format_checkpoint("s1-t0042-r1", 3, metric, value)
    assert "/" not in name and os.sep not in name and name.isascii() and len(name.encode()) < 255
    c = parse_checkpoint(name, metric)
    assert c is not None and (c.trial, c.epoch, c.metric) == ("s1-t0042-r1", 3, metric)
    assert c.value == pytest.approx(value, abs=5e-5, nan_ok=True)
    if not metric[-1].isdigit():  # without the metric given, a name ending in a digit is ambiguous
        c2 = parse_checkpoint(name)
        assert c2 is not None and c2.metric == metric


def test_the_file_form_is_readable_and_an_identifier_is_unchanged() -> None:
    assert metric_file_form("val/loss") == "val~2Floss"
    assert metric_file_form("train.loss") == "train.loss" and metric_file_form("val-acc") == "val-acc"
    assert format_checkpoint("s1-t0001", 3, "val_acc", 0.5) == "s1-t0001_ep003_val_acc0.5000.pt"


@pytest.mark.parametrize("name", ["training.lr", "batch-size", "model.encoder.num-layers", "_x", "lr2"])
def test_dotted_and_dashed_parameter_names_are_accepted(name: str) -> None:
    assert name in parse({**sweep_doc(), "parameters": {name: {"values": [1, 2]}}}).space


@pytest.mark.parametrize("name", ["1lr", "a..b", "a.", ".a", "a b", "-a", "a/b", "a.1b", ""])
def test_other_parameter_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ConfigError, match="names start with a letter"):
        parse({**sweep_doc(), "parameters": {name: {"values": [1, 2]}}})


def test_a_name_given_nested_and_dotted_is_refused() -> None:
    params = {"training": {"parameters": {"lr": {"values": [1]}}}, "training.lr": {"values": [2]}}
    with pytest.raises(ConfigError, match="'training.lr' is given twice"):
        parse({**sweep_doc(), "parameters": params})


@pytest.mark.parametrize("key", ["scheduler", "description", "job", "run_cap", "entity"])  # early_terminate: honoured
def test_wandb_keys_we_do_not_use_are_accepted(key: str) -> None:
    s = parse({**sweep_doc(), key: {"job": "x"} if key != "description" else "text"})
    assert key == "description" or any(f"'{key}'" in w for w in s.warnings)


@pytest.mark.parametrize("dist", ["log_uniform", "inv_log_uniform", "q_log_uniform"])
def test_log_uniform_with_small_bounds_keeps_wandbs_meaning_and_warns_with_the_fix(dist: str) -> None:
    spec: dict[str, Any] = {"distribution": dist, "min": 1e-5, "max": 1e-1}
    if dist.startswith("q_"):
        spec["q"] = 0.01
    s = parse({**sweep_doc(), "parameters": {"lr": spec}})
    lr = s.space["lr"]
    assert isinstance(lr, sp.Numeric) and lr.low > 0.9 and lr.high < 1.2  # W&B's meaning, kept
    (w,) = s.warnings
    assert "natural-log exponents" in w and f"{dist.replace('log_uniform', 'log_uniform_values')}" in w
    assert not parse({**sweep_doc(), "parameters": {"lr": {**spec, "min": -9, "max": -2, "q": 1e-5}}}).warnings


@pytest.mark.parametrize("name", TRIAL_NAMES)
def test_a_parameter_named_like_a_placeholder_warns_at_load(name: str) -> None:
    s = parse({**sweep_doc(), "parameters": {name: {"values": [1, 2]}}})
    assert any(w.startswith(f"parameters.{name}: your '{name}'") for w in s.warnings)


PROGRAM = """
import json, os, sys
with open(os.path.join(os.environ["HPSEARCH_TRIAL_DIR"], "seen.json"), "w") as f:
    env = {k: v for k, v in os.environ.items() if k.startswith("HPSEARCH_")}
    json.dump({"argv": sys.argv[1:], "env": env}, f)
with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
    for epoch in range(1, int(os.environ["HPSEARCH_EPOCHS"]) + 1):
        f.write(json.dumps({"epoch": epoch, "val/loss": 1.0 / epoch}) + "\\n")
"""


def test_command_names_and_placeholders_follow_one_rule(tmp_path: Path) -> None:
    write(tmp_path / "prog.py", PROGRAM)
    write_sweep(
        tmp_path,
        f"""
        name: names
        metric: {{name: val/loss, goal: minimize}}
        trainable:
          command: [{sys.executable}, prog.py, "${{args}}", "--", "${{args_no_hyphens}}", "{{seed}}", "{{stage}}",
                    "{{batch-size}}", "{{training.lr}}"]
          stage: heavy
        parameters:
          training.lr: {{distribution: log_uniform_values, min: 1e-4, max: 1e-1}}
          batch-size: {{values: [32, 64]}}
          seed: {{values: [33, 34]}}
        stages: [{{trials: 2, epochs: 2}}]
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        """,
        "s.yaml",
    )
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: parameters.seed: your 'seed'" in r.stderr and "warning: trainable.stage" in r.stderr
    for seen_file in sorted((tmp_path / "run" / "trials").glob("*/seen.json")):
        seen = json.loads(seen_file.read_text())
        argv, env = seen["argv"], seen["env"]
        params = json.loads(env["HPSEARCH_PARAMS"])
        lr, batch, seed = params["training.lr"], params["batch-size"], params["seed"]
        assert seed in (33, 34) and batch in (32, 64) and params["stage"] == "heavy"
        dashes, rest = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
        assert f"--batch-size={batch}" in dashes and f"--training.lr={lr}" in dashes
        assert f"--seed={seed}" in dashes and "--stage=heavy" in dashes
        assert f"training.lr={lr}" in rest and f"batch-size={batch}" in rest
        assert rest[-4:] == [str(seed), "heavy", str(batch), str(lr)]  # {seed}, {stage}: the user's values
        assert env["HPSEARCH_STAGE"] == "1" and env["HPSEARCH_SEED"] not in ("33", "34")  # hpsearch's own
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    assert len(doc["runs"]) == 2 and all(x["val/loss"] == 0.5 for x in doc["runs"])
    assert all(x["params"]["batch-size"] in (32, 64) and "training.lr" in x["params"] for x in doc["runs"])


TRAIN = """
def fit(params, trial):
    for epoch in trial.epoch_range:
        trial.report(epoch, state={"epoch": epoch}, **{"val/loss": params["x"] / epoch, "train.loss": 1.0})
"""


def test_a_python_trainable_with_a_slashed_metric_writes_file_safe_checkpoints(tmp_path: Path) -> None:
    write(tmp_path / "ut_names.py", TRAIN)
    write_sweep(
        tmp_path,
        """
        name: slashed
        metric: {name: val/loss, goal: minimize}
        trainable: {python: "ut_names:fit"}
        parameters:
          x: {min: 0.1, max: 0.9}
        stages: [{trials: 3, epochs: 2}]
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        """,
        "s.yaml",
    )
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names and all("_val~2Floss" in n for n in names)
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    for x in doc["runs"]:
        c = parse_checkpoint(x["checkpoint"], "val/loss")
        assert c is not None and c.metric == "val/loss" and c.value == pytest.approx(x["val/loss"], abs=5e-5)
        assert x["checkpoint"] in names
    assert "val/loss" in run_cli("report", "run", cwd=tmp_path).stdout


# -- found by a new user's trial: W&B's goal default, and the name of an unnamed sweep -----------
def test_a_metric_without_goal_is_minimized_as_wandb_does_and_says_so() -> None:
    s = parse({"metric": {"name": "loss"}, "trainable": {"builtin": "noop"}, "stages": [{"trials": 1, "epochs": 1}]})
    assert s.metric.goal == "minimize"
    assert any(w.startswith("metric.goal: not given") and "'loss' is minimized" in w for w in s.warnings)
    # with the goal given, or with no metric block at all (the built-in val_acc), nothing is said
    given = parse(
        {
            "metric": {"name": "acc", "goal": "maximize"},
            "trainable": {"builtin": "noop"},
            "stages": [{"trials": 1, "epochs": 1}],
        }
    )
    assert given.metric.goal == "maximize" and not any("metric.goal" in w for w in given.warnings)
    default = parse({"trainable": {"builtin": "noop"}, "stages": [{"trials": 1, "epochs": 1}]})
    assert (default.metric.name, default.metric.goal) == ("val_acc", "maximize")


def test_a_sweep_file_without_name_is_named_after_its_file_by_every_reader(tmp_path: Path) -> None:
    text = noop_sweep(trials=2, epochs=1, workers=1).replace("name: faults\n", "")
    write_sweep(tmp_path, text, "mysweep.yaml")
    r = run_cli("master", "start", "mysweep.yaml", "--dir", "run", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path, check=True).stdout)
    assert doc["sweep"] == "mysweep"
    assert "mysweep" in run_cli("master", "status", "run", cwd=tmp_path, check=True).stdout
