"""Loading a user's `module:function`: every mistake is one ConfigError that says what to fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import write

import hpsearch
from hpsearch.errors import ConfigError
from hpsearch.trainables.python import load


@pytest.fixture(autouse=True)
def _forget_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("ut_"):
            del sys.modules[name]


def test_loads_from_the_sweep_folder(tmp_path: Path) -> None:
    write(tmp_path / "ut_pkg" / "__init__.py", "")
    write(tmp_path / "ut_pkg" / "train.py", "def fit(params, trial):\n    return params['x'] * 2\n")
    fit = load("ut_pkg.train:fit", str(tmp_path))
    assert fit({"x": 21}, None) == 42


@pytest.mark.parametrize(
    "source, spec, message",
    [
        ("", "ut_missing:fit", "no module 'ut_missing'"),
        ("def fit(params, trial):\n  pass\n", "ut_a:nope", "has no 'nope'"),
        ("fit = 3\n", "ut_b:fit", "is not callable"),
        ("def fit(params):\n  pass\n", "ut_c:fit", r"must accept two arguments"),
        ("def fit(params, trial)\n  pass\n", "ut_d:fit", r"SyntaxError: .*line 1"),
        (
            "import ut_not_installed_dep\n",
            "ut_e:fit",
            "importing 'ut_e' failed: No module named 'ut_not_installed_dep'",
        ),
        ("raise RuntimeError('no GPU here')\n", "ut_f:fit", r"RuntimeError: no GPU here \(.*ut_f.py, line 1\)"),
    ],
)
def test_mistakes_are_config_errors(tmp_path: Path, source: str, spec: str, message: str) -> None:
    if source:
        write(tmp_path / f"{spec.split(':')[0]}.py", source)
    with pytest.raises(ConfigError, match=message):
        load(spec, str(tmp_path))


def test_trial_is_exported_and_typed() -> None:
    assert hpsearch.Trial.__module__ == "hpsearch.trainables.trial" and "Trial" in hpsearch.__all__
    assert "resume_state" in hpsearch.Trial.__doc__ and "StopTrial" in hpsearch.Trial.report.__doc__
    assert hpsearch.Trial.report.__annotations__["epoch"] == "int"
