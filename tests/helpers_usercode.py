"""Shared by the user-code tests: a real sweep directory with claimed trials, and CLI runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from hpsearch.store import Store
from hpsearch.trial import Trial


def claimed_trial(root: Path, trial: str = "s1-t0000", epochs: int = 3, params: dict[str, Any] | None = None,
                  keep: str = "best_last", parent: str | None = None, plan: bool = True) -> Trial:
    """Plan (once) and claim one trial in a real store; the Trial handle a worker would build."""
    store = Store(root)
    store.layout.ensure()
    if plan:
        stage = int(trial[1:].split("-")[0])
        store.journal.append([{"ev": "stage", "stage": stage, "space": {}, "trials": [
            {"trial": trial, "config": trial.split("-r")[0], "params": params or {}, "seed": 7,
             "epochs": epochs, "parent": parent}]}])
    rec = store.claim("w")[0]
    store.trial_files_ready(rec)
    return Trial(store, rec, params=dict(params or {}), metric="val_acc", goal="maximize", keep=keep)


def release(trial: Trial) -> None:
    trial.store.release(trial.id, trial.attempt, "test", lost=True)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def hpsearch(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def metrics(root: Path, trial: str) -> list[dict[str, Any]]:
    p = root / "trials" / trial / "metrics.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def wait_for(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
