"""A W&B sweep file as it is, with only `trainable` and `stages` added: its agent command, its fixed
`epochs` parameter, its metric block (new-user trial of 2026-12-01), through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import run_cli, write_sweep

from hpsearch.errors import ConfigError
from hpsearch.search import config
from hpsearch.store.sweepdir import Store
from hpsearch.trainables.command import expand

# A W&B-style program: argparse over --name=value, trains `--epochs` epochs whatever the stage says,
# and reports each epoch the way hpsearch reads a program (a JSON line to HPSEARCH_METRICS_FILE).
PROGRAM = """
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--learning_rate", type=float)
p.add_argument("--epochs", type=int, default=10)
a = p.parse_args()
start = int(os.environ.get("HPSEARCH_START_EPOCH", "0"))
for epoch in range(start + 1, a.epochs + 1):
    with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"epoch": epoch, "val_loss": 1.0 / (epoch * a.learning_rate)}) + "\\n")
"""

WANDB = {
    "program": "train.py",
    "method": "bayes",
    "metric": {"name": "val_loss", "goal": "minimize"},
    "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 0.01, "max": 1.0},
        "epochs": {"value": 3},
    },
    "command": ["${env}", "${interpreter}", "${program}", "${args}"],
}


def test_the_wandb_command_runs_in_trainable_and_the_stages_bound_the_epochs(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(PROGRAM)
    doc = {
        **WANDB,
        "trainable": {"command": WANDB["command"]},  # W&B's command, pasted as it is
        "stages": [{"trials": 3, "epochs": 1}, {"trials": 0, "epochs": 2, "promote": 1}],
        "workers": 1,
    }
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    assert "W&B key 'command' is not used" in p.stderr and "W&B key 'program'" not in p.stderr
    st = Store(d).refresh()
    s1 = st.stage_trials(1)
    # the program was told --epochs=3 but each stage-1 trial counts (and trained) its 1 epoch
    assert [t.epochs_done for t in s1] == [1, 1, 1] and all(t.state.value == "finished" for t in s1)
    assert all(t.reason.startswith("stopped after its 1 epoch(s)") for t in s1)
    assert "3 run(s) (s1-t0000, s1-t0001, s1-t0002) reported epochs past the stage's 1" in p.stdout
    (s2,) = st.stage_trials(2)
    assert s2.epochs_done == 2
    lines = [json.loads(x) for x in (d / "trials" / s2.trial / "metrics.jsonl").read_text().splitlines()]
    assert max(x["epoch"] for x in lines) == 2  # epoch 3, which the program went on to, was not recorded


def test_program_macro_needs_the_program_key_and_env_is_left_out(tmp_path: Path) -> None:
    sw = config.parse(
        {
            "program": "train.py",
            "trainable": {"command": ["${env}", "python3", "${program}", "${args}"]},
            "metric": {"name": "m"},
            "stages": [{"trials": 1}],
            "parameters": {"x": {"values": [1]}},
        },
        source_dir=str(tmp_path),
    )
    assert sw.trainable["command"] == ["python3", "train.py", "${args}"]
    with pytest.raises(ConfigError, match=r"\$\{program\} needs the file's program: key"):
        config.parse({"trainable": {"command": ["python3", "${program}"]}, "stages": [{"trials": 1}]})


def test_wandb_argument_forms() -> None:
    params = {"lr": 0.1, "amp": True, "ema": False}
    values = {**params, "trial_dir": "/tmp/t"}
    assert expand(["${args_no_boolean_flags}"], values, params) == ["--lr=0.1", "--amp"]
    assert expand(["x", "${args_json_file}"], values, params) == ["x", "/tmp/t/args.json"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"metric": {"goal": "minimize"}}, "metric.name: missing"),
        ({"trainable": {"command": ["python3", "trian.py", "${args}"]}}, "script 'trian.py' not found"),
    ],
)
def test_bad_wandb_inputs_exit_2_with_one_line_and_nothing_written(tmp_path: Path, change, fragment) -> None:
    (tmp_path / "train.py").write_text(PROGRAM)
    doc = {**WANDB, "trainable": {"command": ["python3", "train.py", "${args}"]}, "stages": [{"trials": 1}], **change}
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, yaml.safe_dump(doc))), "--dir", str(d))
    assert p.returncode == 2 and fragment in p.stderr, p.stderr
    assert len([ln for ln in p.stderr.splitlines() if ln.startswith("hpsearch: error")]) == 1
    assert not d.exists()


def test_metric_target_ends_the_sweep_after_the_stage_that_reached_it(tmp_path: Path) -> None:
    doc = {
        "name": "target",
        "metric": {"name": "val_acc", "goal": "maximize", "target": 0.25},
        "trainable": {"builtin": "noop"},
        "parameters": {"metric_value": {"min": 0.6, "max": 0.9}},
        "stages": [{"trials": 3, "epochs": 1}, {"trials": 3, "epochs": 2}, {"trials": 2, "epochs": 3}],
        "workers": 1,
    }
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    st = Store(d).refresh()
    assert st.done and sorted(st.stages) == [1]  # stage 1 reached 0.25: stages 2 and 3 never planned
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("metric.target 0.25 reached: s1-t"))
    assert line.endswith("the sweep ends after stage 1 of 3 (remove target: to run every stage)")
    assert "Done. Best val_acc" in p.stdout
    unreached = {**doc, "name": "far", "metric": {**doc["metric"], "target": 0.99}}
    d2 = tmp_path / "run2"
    p2 = run_cli("master", "start", str(write_sweep(tmp_path, unreached, "far.yaml")), "--dir", str(d2), check=True)
    assert sorted(Store(d2).refresh().stages) == [1, 2, 3] and "metric.target" not in p2.stdout
    with pytest.raises(ConfigError, match="metric.target: must be a number"):
        config.parse({**doc, "metric": {"name": "val_acc", "target": "high"}})
