"""Workers as one Slurm job array: `sbatch --array`, watched with `squeue`, stopped with `scancel`.

The job ids we submitted are recorded in `workers/slurm-jobs.json`, so a restarted master (or
`hpsearch master stop`) finds them again; we only ever cancel those ids. Job state comes from
`squeue -t all` (which remembers a finished job for MinJobAge, 300 s by default) plus the
`.exit` file each task writes (see slurm_script.py), so `sacct` is not needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.run.launchers import Launcher, LaunchSpec
from hpsearch.run.launchers.slurm_script import DEFAULT_MAX_RESUBMITS, batch_script
from hpsearch.store.sweepdir import atomic_write_json, read_json

# states in which a task is gone for good; anything else (PENDING, RUNNING, COMPLETING, ...) is listed
ENDED = {
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
    "SPECIAL_EXIT",
}
FAIL_FAST_S = 60  # a task that exits non-zero sooner than this "fails at once": stop and say why
NO_SBATCH = (
    "sbatch not found on PATH: is Slurm installed, and are you on a login node of the cluster? "
    "(launcher: slurm; use --launcher local to run workers on this machine)"
)


@dataclass
class Task:
    array: str  # the array's job id (what sbatch printed)
    index: int  # SLURM_ARRAY_TASK_ID
    state: str = "PENDING"
    job: str = ""  # the task's own job id (not arithmetic from the array id)


def _run(argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise HpsearchError(f"{argv[0]} not found on PATH: is Slurm installed, and are you on a login node?") from None
    except subprocess.TimeoutExpired:
        raise HpsearchError(
            f"`{' '.join(argv[:3])} ...` did not answer within {timeout:.0f} s "
            "(is the Slurm controller up? try `scontrol ping`)"
        ) from None


def tail(path: Path, lines: int = 6) -> str:
    """The last non-empty lines of a log, joined on one line (errors are one line)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log {path})"
    got = [x.strip() for x in text.splitlines() if x.strip()][-lines:]
    return " | ".join(got) if got else f"({path} is empty)"


class SlurmLauncher(Launcher):
    """Workers as tasks of Slurm job arrays; `alive()` counts our pending and running tasks."""

    poll_s = 2.0  # at most one squeue call per this many seconds (the master polls much faster)

    def __init__(self, spec: LaunchSpec, options: dict[str, Any] | None = None, name: str = "sweep") -> None:
        super().__init__(spec)
        self.opts = {k: v for k, v in (options or {}).items() if k != "type"}
        self.name = name
        self.max_restarts = int(self.opts.get("max_resubmits", DEFAULT_MAX_RESUBMITS))
        self.workers_dir = Path(spec.root).resolve() / "workers"
        self.record = self.workers_dir / "slurm-jobs.json"
        self.logs = str(self.workers_dir / "slurm-*.out")  # named in the master's errors
        self.tasks: dict[tuple[str, int], Task] = {}
        self.arrays: list[dict[str, Any]] = list((read_json(self.record) or {}).get("jobs", []))
        self._checked: set[tuple[str, int]] = set()
        self._codes: list[int] = []
        self._polled = 0.0
        self._adopted = False

    # -- the script --------------------------------------------------------------------------
    def script(self, tasks: int) -> str:
        python = str(self.opts.get("python") or sys.executable)
        threads = int(self.opts.get("cpus_per_worker") or 1)  # torch threads = the CPUs Slurm gave us
        return batch_script(
            self.opts,
            name=self.name,
            root=self.spec.root,
            tasks=tasks,
            python=python,
            threads=threads,
            device=self.spec.device,
        )

    # -- Launcher ----------------------------------------------------------------------------
    def start(self, n: int) -> None:
        if not shutil.which("sbatch"):
            raise HpsearchError(NO_SBATCH)
        if not self._adopted:
            # a restarted master adopts the tasks its predecessor left queued or running
            self._adopted = True
            n -= self._poll(force=True, report=False)
        if n <= 0:
            return
        self.workers_dir.mkdir(parents=True, exist_ok=True)
        path = self.workers_dir / f"slurm-{len(self.arrays) + 1}.sbatch"
        path.write_text(self.script(n))
        p = _run(["sbatch", "--parsable", str(path)])
        if p.returncode != 0:
            reason = " ".join(x.strip() for x in p.stderr.splitlines() if x.strip()) or f"exit status {p.returncode}"
            raise HpsearchError(f"Slurm rejected the worker job array ({path}): {reason}")
        array = p.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"
        if not array.isdigit():
            raise HpsearchError(f"sbatch printed {p.stdout.strip()!r} instead of a job id ({path})")
        self.arrays.append({"job": array, "tasks": n, "script": path.name, "submitted": time.time()})
        atomic_write_json(self.record, {"jobs": self.arrays})
        for i in range(n):
            self.tasks[(array, i)] = Task(array, i)

    def alive(self) -> int:
        """Tasks pending or running (a task whose worker has exited and that is completing is not)."""
        self._poll()
        return sum(1 for t in self.tasks.values() if t.state not in ENDED and t.state != "COMPLETING")

    def exit_codes(self) -> list[int]:
        self._poll()
        return list(self._codes)

    def active_ids(self) -> list[str]:
        """Array ids with a task still listed by squeue (after a fresh look); reports no failure."""
        self._poll(force=True, report=False)
        return sorted({t.array for t in self.tasks.values() if t.state not in ENDED}, key=int)

    def stop(self, grace: float = 30.0) -> None:
        """Pending tasks: cancelled. Running ones: USR1 (release the trial), then scancel after `grace`."""
        ids = self.active_ids()
        if not ids:
            return
        _run(["scancel", "--state=PENDING", *ids])
        _run(["scancel", "--batch", "--signal=USR1", "--state=RUNNING", *ids])
        deadline = time.monotonic() + grace
        while self.active_ids() and time.monotonic() < deadline:
            time.sleep(1.0)
        ids = self.active_ids()
        if ids:
            _run(["scancel", *ids])
            deadline = time.monotonic() + 30  # TERM, KillWait, KILL: leave nothing in squeue
            while self.active_ids() and time.monotonic() < deadline:
                time.sleep(1.0)

    def kill(self) -> None:
        """Second Ctrl-C: cancel every job of ours now, without waiting."""
        ids = [a["job"] for a in self.arrays]
        if ids and shutil.which("scancel"):
            subprocess.run(["scancel", *ids], capture_output=True, timeout=30)

    def describe(self) -> str:
        where = ", ".join(f"{k} {self.opts[k]}" for k in ("partition", "time", "gpus_per_worker") if self.opts.get(k))
        return f"{self.spec.workers} Slurm worker task(s)" + (f" ({where})" if where else "")

    # -- watching ----------------------------------------------------------------------------
    def _poll(self, force: bool = False, report: bool = True) -> int:
        """Refresh task states from squeue (rate-limited); raise if a task failed at once."""
        now = time.monotonic()
        if not force and now - self._polled < self.poll_s:
            return self._active()
        self._polled = now
        live = [a for a in self.arrays if not self._over(a["job"])]
        if live:
            ids = [a["job"] for a in live]
            p = _run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", "%F|%K|%T|%A"])
            if p.returncode != 0 and "Invalid job id" not in p.stderr:
                return self._active()  # the controller is busy or restarting: keep what we knew
            rows: dict[str, list[list[str]]] = {}
            for line in p.stdout.splitlines():
                parts = line.strip().split("|")
                if len(parts) == 4:
                    rows.setdefault(parts[0], []).append(parts)
            for a in live:
                self._update(a, rows.get(a["job"], []))
        if report:
            self._check_ended()
        else:  # adopted from an earlier master: their old exits are not news
            self._checked |= {k for k, t in self.tasks.items() if t.state in ENDED}
        return self._active()

    def _update(self, array: dict[str, Any], rows: list[list[str]]) -> None:
        job = array["job"]
        split = {int(k): (state, jid) for _, k, state, jid in rows if k.isdigit()}
        # tasks not split out (cancelled while pending) share one row with a task id like N/A or 2-3
        rest = next((state for _, k, state, _ in rows if not k.isdigit()), None)
        for i in range(int(array["tasks"])):
            t = self.tasks.setdefault((job, i), Task(job, i))
            if i in split:
                t.state, t.job = split[i]
            elif rest is not None:
                t.state = rest
            else:  # no longer known to squeue (ended over MinJobAge ago)
                t.state = "COMPLETED" if self._exit_file(t).exists() else "CANCELLED"

    def _over(self, job: str) -> bool:
        mine = [t for t in self.tasks.values() if t.array == job]
        return bool(mine) and all(t.state in ENDED for t in mine)

    def _active(self) -> int:
        return sum(1 for t in self.tasks.values() if t.state not in ENDED)

    def _exit_file(self, t: Task) -> Path:
        return self.workers_dir / f"slurm-{t.array}_{t.index}.exit"

    def _check_ended(self) -> None:
        for key, t in self.tasks.items():
            if t.state not in ENDED or key in self._checked:
                continue
            self._checked.add(key)
            log = self.workers_dir / f"slurm-{t.array}_{t.index}.out"
            try:
                rc, seconds = (int(x) for x in self._exit_file(t).read_text().split()[:2])
            except (OSError, ValueError):
                if t.state in ("FAILED", "BOOT_FAIL", "NODE_FAIL") and not log.exists():
                    raise HpsearchError(
                        f"Slurm worker task {t.array}_{t.index} ended {t.state} before its "
                        f"script ran (can the compute node write {self.workers_dir}?)"
                    ) from None
                continue  # killed (time limit, scancel, preemption): a dead worker, resubmitted while work remains
            self._codes.append(rc)
            # 138/143: ended by our own USR1/TERM (a stop), not a failure
            if rc not in (0, 3, 128 + 10, 128 + 15) and seconds < FAIL_FAST_S:
                raise HpsearchError(
                    f"Slurm worker task {t.array}_{t.index} (job {t.job or '?'}) failed at once: "
                    f"exit status {rc} after {seconds} s; last lines of {log}: {tail(log)}"
                )


def dry_run(sweep_file: str, root: str | None, workers: int | None) -> str:
    """The batch script `master start --launcher slurm` would submit (nothing is submitted)."""
    from hpsearch.store import sweepfile

    sweep, _ = sweepfile.load(sweep_file)
    root = os.path.abspath(root or os.path.join("runs", sweep.name))
    n = workers or sweep.workers
    launcher = SlurmLauncher(LaunchSpec(root, n), sweep.launcher, name=sweep.name)
    return (
        f"# hpsearch master start --dry-run: would write {root}/workers/slurm-1.sbatch and run\n"
        f"#   sbatch --parsable {root}/workers/slurm-1.sbatch\n" + launcher.script(n)
    )


def cancel_pending(root: str) -> list[str]:
    """`master stop` with no master running: drop our tasks still waiting in the queue (running ones
    see the stop in the journal and leave by themselves). Returns the array ids asked about."""
    jobs = (read_json(Path(root) / "workers" / "slurm-jobs.json") or {}).get("jobs", [])
    ids = [str(j["job"]) for j in jobs if str(j.get("job", "")).isdigit()]
    if ids and shutil.which("scancel"):
        subprocess.run(["scancel", "--state=PENDING", *ids], capture_output=True, timeout=30)
    return ids
