"""Steps 1-2 of `hpsearch check` for a command program, through environment flags it may honour.

The program runs once, as for a trial (same placeholders and HPSEARCH_* variables, in a
temporary folder), with three more variables:
    HPSEARCH_CHECK=1        this is a sanity check, not a trial
    HPSEARCH_SUBSET=20      train on the first 20 training examples only
    HPSEARCH_NO_REG=1       turn regularization (L2, dropout, augmentation) off
for HPSEARCH_EPOCHS = `epochs`. Its metrics lines may carry `initial_loss` (the loss before the
first update) and `classes` (for the ln(C) comparison) and `train_acc` (the overfit check reads
the last one). What it does not report is skipped with a line saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.trainables.command import RUNNER_KEYS, expand, log_tail

CHECK_EPOCHS = 50
TIMEOUT_S = 300


def run_check_program(
    argv: list[str], source_dir: str, params: dict[str, Any], seed: int, metric: str, epochs: int = CHECK_EPOCHS
) -> list[dict[str, Any]]:
    """Run the program once under the check flags; its metrics lines, in order.

    Raises:
        HpsearchError: it could not start, exited non-zero or ran past TIMEOUT_S (with its log's tail).
    """
    user = {k: v for k, v in params.items() if k not in RUNNER_KEYS}
    with tempfile.TemporaryDirectory(prefix="hpsearch-check-") as tmp:
        work = Path(tmp)
        (work / "checkpoints").mkdir()
        metrics = work / "metrics.jsonl"
        metrics.touch()
        values = {
            **user,
            "trial": "check",
            "seed": seed,
            "epochs": epochs,
            "start_epoch": 0,
            "stage": 0,
            "attempt": 1,
            "metric": metric,
            "device": "cpu",
            "trial_dir": str(work),
            "metrics_file": str(metrics),
            "checkpoint_dir": str(work / "checkpoints"),
            "resume_from": "",
        }
        try:
            args = expand(argv, values, user)
        except KeyError as e:
            raise HpsearchError(f"trainable.command: unknown placeholder {e.args[0]!r}") from None
        env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_RESUME_FROM"}
        env.update(
            HPSEARCH_TRIAL_ID="check",
            HPSEARCH_TRIAL_DIR=str(work),
            HPSEARCH_METRICS_FILE=str(metrics),
            HPSEARCH_CHECKPOINT_DIR=str(work / "checkpoints"),
            HPSEARCH_PARAMS=json.dumps(user, default=str),
            HPSEARCH_EPOCHS=str(epochs),
            HPSEARCH_START_EPOCH="0",
            HPSEARCH_SEED=str(seed),
            HPSEARCH_METRIC=metric,
            HPSEARCH_DEVICE="cpu",
            HPSEARCH_CHECK="1",
            HPSEARCH_SUBSET="20",
            HPSEARCH_NO_REG="1",
        )
        log = work / "check.log"
        with open(log, "wb") as out:
            try:
                proc = subprocess.run(
                    args,
                    cwd=source_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=TIMEOUT_S,
                )
            except OSError as e:
                raise HpsearchError(f"cannot start {args[0]!r} (in {source_dir}): {e.strerror}") from None
            except subprocess.TimeoutExpired:
                raise HpsearchError(f"{args[0]} ran longer than {TIMEOUT_S} s under the check flags") from None
        if proc.returncode != 0:
            raise HpsearchError(
                f"{args[0]} exited with code {proc.returncode} under the check flags; last lines: {log_tail(log)}"
            )
        lines = []
        for line in metrics.read_text().splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                lines.append(obj)
        return lines
