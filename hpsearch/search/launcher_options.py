"""Checks of the sweep file's `launcher:` block for Slurm, run with every other check at the door.

Pure: a mapping in, a list of problems out. The batch script that uses these options is built by
`run.launchers.slurm_script`; the limits below follow sbatch(1) (`--time` formats, `--gres=gpu:N`).
"""

from __future__ import annotations

import re
from typing import Any

TIME_RE = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^\d+-\d+$|^(UNLIMITED|INFINITE)$", re.IGNORECASE)
GPUS_RE = re.compile(r"^([A-Za-z0-9_.-]+:)?\d+$")
SINGLE_LINE = ("partition", "account", "qos", "time", "mem", "constraint", "python")


def check_options(opts: dict[str, Any]) -> list[str]:
    """Problems with a `launcher: {type: slurm, ...}` mapping (empty when it is valid)."""
    problems = []
    for key in SINGLE_LINE:
        v = opts.get(key)
        if v is None:
            continue
        if key == "time" and not isinstance(v, str):
            problems.append(
                f'launcher.time: write it quoted, e.g. "2:00:00" or "1-00:00:00" (unquoted, YAML '
                f"reads 1:00:00 as the number 3600), got {v!r}"
            )
        elif key == "mem" and isinstance(v, int) and not isinstance(v, bool) and v > 0:
            pass  # megabytes, as sbatch reads a bare number
        elif not isinstance(v, str) or not v.strip() or "\n" in v:
            problems.append(f"launcher.{key}: must be a non-empty one-line string, got {v!r}")
        elif key == "time" and not TIME_RE.match(v.strip()):
            problems.append(
                f'launcher.time: must be a Slurm time limit like "30" (minutes), "2:00:00" or "1-12:00:00", got {v!r}'
            )
    gpus = opts.get("gpus_per_worker")
    if gpus is not None and not ((_is_int(gpus) and gpus >= 0) or (isinstance(gpus, str) and GPUS_RE.match(gpus))):
        problems.append(
            f"launcher.gpus_per_worker: must be a number of GPUs (e.g. 1) or TYPE:N (e.g. a100:1), got {gpus!r}"
        )
    for key, minimum in (("cpus_per_worker", 1), ("max_resubmits", 0), ("signal_seconds", 0)):
        v = opts.get(key)
        if v is not None and not (_is_int(v) and v >= minimum):
            problems.append(f"launcher.{key}: must be an integer >= {minimum}, got {v!r}")
    extra = opts.get("extra", [])
    if not isinstance(extra, list) or not all(isinstance(x, str) and x.strip() and "\n" not in x for x in extra):
        problems.append(
            f'launcher.extra: must be a list of one-line sbatch options, e.g. ["--exclusive", '
            f'"--mail-type=END"], got {extra!r}'
        )
    setup = opts.get("setup", [])
    if not (isinstance(setup, str) or (isinstance(setup, list) and all(isinstance(x, str) for x in setup))):
        problems.append(f"launcher.setup: must be shell lines (a string or a list of strings), got {setup!r}")
    return problems


def _is_int(x: Any) -> bool:
    """An int that is not a bool (YAML reads `yes` as True)."""
    return isinstance(x, int) and not isinstance(x, bool)
