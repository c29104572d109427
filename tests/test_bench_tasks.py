"""The quality bench's own trainables are fair to every method: a promoted run resumed from its
checkpoint trains on as if it had never stopped (bench/tasks.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's bench package

from bench import tasks as tk  # noqa: E402
from hpsearch.errors import StopTrial  # noqa: E402


class Recorder:
    """What fit_convnet reads of a hpsearch Trial: seed, epoch_range, resume_state, report, stop_reason."""

    def __init__(self, epochs: range, resume_state: dict[str, Any] | None = None) -> None:
        self.seed, self.epoch_range, self.resume_state = 3, epochs, resume_state
        self.stop_reason: str | None = None
        self.reports: list[dict[str, Any]] = []

    def report(self, epoch: int, **metrics: Any) -> None:
        self.reports.append({"epoch": epoch, **metrics})


def run(params: dict[str, Any], trial: Recorder) -> Recorder:
    try:
        tk.fit_convnet(params, trial)
    except StopTrial:
        pass
    return trial


@pytest.mark.parametrize("lr", [0.05, 0.13])
def test_a_resumed_convnet_is_judged_against_its_own_first_loss(tmp_path, lr):
    """Before the fix every promotion 'diverged' on its first epoch after the resume: the first
    batch loss after it (small: the model is trained) was the divergence test's reference."""
    params = {**tk.prepare(tk.TASKS["digits_convnet"], tmp_path), "lr": lr, "reg": 1e-4, "width": 13}
    first = run(params, Recorder(range(1, 3)))
    assert first.stop_reason is None and len(first.reports) == 2
    resumed = run(params, Recorder(range(3, 7), resume_state=first.reports[-1]["state"]))
    assert resumed.stop_reason is None and [r["epoch"] for r in resumed.reports] == [3, 4, 5, 6]
    assert resumed.reports[-1]["val_acc"] >= first.reports[-1]["val_acc"] - 0.02
