"""The Slurm batch script that runs hpsearch workers as a job array (its options are checked by
`search.launcher_options` when the sweep file is read).

Pure: builds text from (options, sweep directory); runs nothing. `slurm.py` submits it.

What the script does, per array task:
  1. runs the sweep's `setup` lines (module load, source a venv ...) with `set -e`;
  2. starts `python -m hpsearch worker --dir DIR` in the background and waits for it;
  3. forwards USR1 (Slurm's `--signal=B:USR1@N`, sent to this shell only) and TERM to the worker,
     which then stops at the end of its epoch, keeps the checkpoint and releases the trial;
  4. on exit writes `workers/slurm-<array>_<task>.exit` = "<status> <seconds run>", so the master
     can tell a worker that failed at once from one that ran out of time, without `sacct`.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

DEFAULT_SIGNAL_S = 300  # the worker stops at the end of an epoch: give it that long before the limit
DEFAULT_MAX_RESUBMITS = 10


def _directive_value(v: str) -> str:
    """sbatch splits #SBATCH lines on blanks but honours double quotes."""
    return f'"{v}"' if re.search(r"\s", v) else v


def sbatch_directives(opts: dict[str, Any], name: str, tasks: int, out_pattern: str, workdir: str) -> list[str]:
    """The `#SBATCH` options of the worker array (without the `#SBATCH ` prefix)."""
    lines = [
        f"--job-name=hpsearch-{name}",
        f"--array=0-{tasks - 1}",
        # '%' is a filename pattern to Slurm: a literal one in the path is written '%%'
        f"--output={_directive_value(out_pattern)}",
        f"--chdir={_directive_value(workdir.replace('%', '%%'))}",
        "--ntasks=1",
        f"--cpus-per-task={int(opts.get('cpus_per_worker') or 1)}",
        "--export=ALL",
    ]  # the same PATH, virtualenv and variables as the master (sbatch's default, stated)
    for key, flag in (
        ("partition", "partition"),
        ("account", "account"),
        ("qos", "qos"),
        ("time", "time"),
        ("mem", "mem"),
        ("constraint", "constraint"),
    ):
        if opts.get(key) not in (None, ""):
            lines.append(f"--{flag}={_directive_value(str(opts[key]).strip())}")
    gpus = opts.get("gpus_per_worker")
    if gpus not in (None, 0, "0"):
        lines.append(f"--gres=gpu:{gpus}")
    signal_s = opts.get("signal_seconds", DEFAULT_SIGNAL_S)
    if signal_s:
        # B: = to the batch shell; without it Slurm signals job steps only, and a worker is no step
        lines.append(f"--signal=B:USR1@{int(signal_s)}")
    for x in opts.get("extra") or []:
        x = x.strip()
        lines.append(x[len("#SBATCH") :].strip() if x.startswith("#SBATCH") else x)
    return lines


def batch_script(
    opts: dict[str, Any],
    *,
    name: str,
    root: str,
    tasks: int,
    python: str,
    threads: int,
    device: str | None = None,
    workdir: str | None = None,
) -> str:
    """The whole batch script for `tasks` workers on the sweep directory `root` (absolute)."""
    root = os.path.abspath(root)
    workers = os.path.join(root, "workers")
    out = os.path.join(workers.replace("%", "%%"), "slurm-%A_%a.out")
    head = [f"#SBATCH {d}" for d in sbatch_directives(opts, name, tasks, out, workdir or os.getcwd())]
    setup = opts.get("setup") or []
    setup_lines = setup.splitlines() if isinstance(setup, str) else list(setup)
    argv = [python, "-m", "hpsearch", "worker", "--dir", root, "--threads", str(threads)]
    if device:
        argv += ["--device", device]
    q = shlex.quote
    body = [
        "#!/bin/bash",
        f"# hpsearch workers for sweep {name!r}: one per array task. Written by `hpsearch master start`;",
        "# submitted with `sbatch --parsable THIS_FILE`. Logs: workers/slurm-<array id>_<task>.out",
        *head,
        "",
        "set -eu",
        "# USR1 before the worker can act on it (setup, Python start-up, torch import) would kill it: ignore it",
        "# until then (the worker installs its own handler; a stop also reaches it through the journal)",
        "trap '' USR1",
        "export PYTHONUNBUFFERED=1",
        f"exit_file={q(workers)}/slurm-${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.exit",
        "# status and seconds run, read by the master (a worker that fails at once is an error, not a resubmit)",
        "# (the worker's own status once it has ended: a late signal must not turn a clean exit into 138)",
        "worker_rc=",
        'trap \'st=$?; echo "${worker_rc:-$st} $SECONDS" > "$exit_file"; exit ${worker_rc:-$st}\' EXIT',
        'echo "hpsearch: array task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} = job ${SLURM_JOB_ID}'
        ' on $(hostname) at $(date -Is)"',
    ]
    if setup_lines:
        body += ["# setup from the sweep file (launcher.setup)", *setup_lines]
    body += [
        "set +e",
        'worker_id="slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}-r${SLURM_RESTART_COUNT:-0}-$(hostname -s)"',
        " ".join(q(a) for a in argv) + ' --id "$worker_id" &',
        "pid=$!",
        "# USR1 (end of time, scancel -b -s USR1) reaches only this shell: pass it on; the worker then",
        "# finishes its epoch, keeps the checkpoint and releases the trial. TERM (scancel, preemption) too.",
        "trap 'sig=1; kill -USR1 \"$pid\" 2>/dev/null' USR1",
        "trap 'sig=1; kill -TERM \"$pid\" 2>/dev/null' TERM",
        "while :; do",
        '  sig=0; wait "$pid"; rc=$?',
        "  # a trapped signal cuts `wait` short (status 128+N): wait again for the worker's own status",
        '  [ "$sig" = 1 ] || break',
        "done",
        "trap '' USR1 TERM  # the worker is gone: a signal now (a stop racing the end) has nothing to do",
        "worker_rc=$rc",
        'exit "$rc"',
    ]
    return "\n".join(body) + "\n"
