"""Shared helpers: run the real CLI in a subprocess, write sweep files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """`hpsearch ARGS` as a user would run it: a real process, real exit code, real stderr."""
    e = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    p = subprocess.run([sys.executable, "-m", "hpsearch", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"hpsearch {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def write_sweep(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def sweep_file(tmp_path: Path):
    def make(doc: dict[str, Any], name: str = "sweep.yaml") -> Path:
        return write_sweep(tmp_path / name, doc)
    return make
