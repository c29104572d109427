"""Issue 12, kind 1: the sweep file is read with YAML 1.2's float rule everywhere (`1e-4` is a float)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli, write, write_sweep

from hpsearch.search import space as sp
from hpsearch.store import sweepfile

SWEEP = """
name: y12
metric: {name: val_acc, goal: maximize}
parameters:
  lr: {values: [1e-4, 3E-5, 1e+3]}
  eps: {value: 1e-8}
  wd: {distribution: log_uniform_values, min: 1e-6, max: 1e-2}
  tag: {values: ["1e-4", 2e0]}
trainable: {python: "ut_y12:fit", weight_decay: 1e-5, note: "3e-5", scales: [1e1, -2E-2]}
stages: [{trials: 3, epochs: 1}]
heartbeat: 0.2
stale_after: 3
workers: 1
"""


@pytest.mark.parametrize(
    "text, value",
    [("1e-4", 0.0001), ("3E-5", 3e-05), ("1e+3", 1000.0), ("-2e4", -20000.0), ("+5E0", 5.0), ("1.5e-3", 0.0015)],
)
def test_exponent_without_a_dot_is_a_float(text: str, value: float) -> None:
    got = sweepfile.read_yaml(f"x: {text}\n")["x"]
    assert type(got) is float and got == value


@pytest.mark.parametrize("text", ['"1e-4"', "'3E-5'", "1e", "e5", "1e-", "1e4x", "v1e4"])
def test_quoted_and_non_numbers_stay_strings(text: str) -> None:
    assert isinstance(sweepfile.read_yaml(f"x: {text}\n")["x"], str)


def test_integers_stay_integers() -> None:
    assert sweepfile.read_yaml("x: [10, -3, 0, 1_000]\n")["x"] == [10, -3, 0, 1000]
    assert all(type(v) is int for v in sweepfile.read_yaml("x: [10, -3, 0]\n")["x"])


def test_values_constants_and_trainable_settings_are_floats(tmp_path: Path) -> None:
    sweep, raw = sweepfile.load(write_sweep(tmp_path, SWEEP))
    lr = sweep.space["lr"]
    assert isinstance(lr, sp.Categorical) and lr.values == (0.0001, 3e-05, 1000.0)
    assert all(type(v) is float for v in lr.values)
    assert sweep.space["eps"] == sp.Constant(1e-08)
    assert sweep.space["tag"] == sp.Categorical(("1e-4", 2.0))  # quoted: the user meant a string
    settings = sweep.fixed_settings()
    assert settings["weight_decay"] == 1e-05 and type(settings["weight_decay"]) is float
    assert settings["note"] == "3e-5" and settings["scales"] == [10.0, -0.02]
    assert raw["parameters"]["eps"]["value"] == 1e-08  # the raw mapping (fingerprint, report) agrees


def test_the_trainable_receives_floats(tmp_path: Path) -> None:
    write(
        tmp_path / "ut_y12.py",
        """
        import json

        def fit(params, trial):
            with open(trial.trial_dir / "types.json", "w") as f:
                json.dump({k: [type(v).__name__, v] for k, v in params.items()}, f)
            trial.report(1, val_acc=0.5)
        """,
    )
    write_sweep(tmp_path, SWEEP, "s.yaml")
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "trials").glob("*/types.json"))]
    assert len(seen) == 3
    for types in seen:
        assert types["lr"][0] == "float" and types["lr"][1] in (0.0001, 3e-05, 1000.0)
        assert types["eps"] == ["float", 1e-08]
        assert types["weight_decay"] == ["float", 1e-05]
        assert types["wd"][0] == "float" and 1e-6 <= types["wd"][1] <= 1e-2
        assert types["note"] == ["str", "3e-5"]
