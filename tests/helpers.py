"""Plain helpers shared by the tests: the real CLI, sweep files, polling, processes, journal reads."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hpsearch.run.master import Master, StartOptions
from hpsearch.run.progress import Progress
from hpsearch.store import sweepfile
from hpsearch.store.sweepdir import Store
from hpsearch.trainables.trial import Trial

ROOT = Path(__file__).resolve().parents[1]
HPSEARCH = [sys.executable, "-m", "hpsearch"]


# -- the CLI as a user runs it ------------------------------------------------------------------
def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # unbuffered: a child's output reaches its pipe or log as it is written, also when it is killed
    return {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    check: bool = False,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`hpsearch ARGS` to the end: a real process, real exit code, real stdout and stderr.

    `env` is added to this process's environment; `check` fails the test on a non-zero exit.
    """
    p = subprocess.run(
        [*HPSEARCH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env(env), preexec_fn=preexec
    )
    if check and p.returncode != 0:
        raise AssertionError(f"hpsearch {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def spawn(
    *args: str, log: Path | None = None, capture: bool = False, cwd: Path | None = None, new_session: bool = True
) -> subprocess.Popen[Any]:
    """`hpsearch ARGS` in the background: output appended to `log`, or (`capture`) to text pipes
    (stdout and stderr apart, read them with communicate()), or dropped."""
    out = open(log, "ab") if log else None  # noqa: SIM115 (the child's output)
    try:
        if capture:
            return subprocess.Popen(
                [*HPSEARCH, *args],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=_env(),
                start_new_session=new_session,
            )
        return subprocess.Popen(
            [*HPSEARCH, *args],
            cwd=cwd,
            stdout=out or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
            start_new_session=new_session,
        )
    finally:
        if out:
            out.close()  # the child holds its own copy


def wait_for(
    cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.05, proc: subprocess.Popen[Any] | None = None
) -> Any:
    """Poll `cond` until it returns something true, and return that; fail after `timeout` s, or
    at once if `proc` (the process that should make it true) exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = "".join(x for x in proc.communicate() if x)  # what it printed, if captured
            raise AssertionError(f"process exited {proc.returncode} while waiting for {what}:\n{out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


# -- files and sweep files ----------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    """Write an indented triple-quoted text (dedented), creating the folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def write_sweep(folder: Path, doc: dict[str, Any] | str, name: str = "sweep.yaml") -> Path:
    """A sweep file `folder/name` from a dict (keys in the dict's order) or a YAML text."""
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    return write(folder / name, text)


def noop_sweep(
    name: str = "faults",
    trials: int | list[int] = 8,
    epochs: int | list[int] = 2,
    sleep: float = 0.0,
    workers: int = 2,
    **extra: Any,
) -> str:
    """A sweep file's text: the noop trainable, fast failure detection, one stage per entry."""
    trials_l = trials if isinstance(trials, list) else [trials]
    epochs_l = epochs if isinstance(epochs, list) else [epochs] * len(trials_l)
    stages = "\n".join(f"  - {{trials: {n}, epochs: {e}}}" for n, e in zip(trials_l, epochs_l))
    settings = {"heartbeat": 0.2, "stale_after": 2, "workers": workers, **extra}
    lines = [
        f"name: {name}",
        "metric: {name: val_acc, goal: maximize}",
        f"trainable: {{builtin: noop, sleep: {sleep}}}",
        "parameters:",
        "  metric_value: {distribution: uniform, min: 0.1, max: 0.9}",
        "stages:",
        stages,
    ] + [f"{k}: {json.dumps(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


# -- sweep directories and trials built in-process -----------------------------------------------
def plan(sweep_file: Path, root: Path) -> Store:
    """Create the sweep directory and plan stage 1 in-process (no master loop, no workers)."""
    return planned_master(sweep_file, root).store


def planned_master(sweep_file: Path, root: Path) -> Master:
    """The in-process Master that `plan` uses, stage 1 planned (its launcher is None)."""
    sweep, raw = sweepfile.load(sweep_file)
    m = Master(
        sweep,
        raw,
        sweep_file.read_text(),
        str(root),
        StartOptions(no_workers=True),
        Progress(open(os.devnull, "w")),  # noqa: SIM115
    )
    m.open_directory()
    m.store.refresh()
    m.plan(1)
    return m


def claimed_trial(
    root: Path,
    trial: str = "s1-t0000",
    epochs: int = 3,
    params: dict[str, Any] | None = None,
    keep: str = "best_last",
    parent: str | None = None,
    plan: bool = True,
) -> Trial:
    """Plan (once) and claim one trial in a real store; the Trial handle a worker would build."""
    store = Store(root)
    store.layout.ensure()
    if plan:
        stage = int(trial[1:].split("-")[0])
        store.journal.append(
            [
                {
                    "ev": "stage",
                    "stage": stage,
                    "space": {},
                    "trials": [
                        {
                            "trial": trial,
                            "config": trial.split("-r")[0],
                            "params": params or {},
                            "seed": 7,
                            "epochs": epochs,
                            "parent": parent,
                        }
                    ],
                }
            ]
        )
    rec = store.claim("w")[0]
    store.trial_files_ready(rec)
    return Trial(store, rec, params=dict(params or {}), metric="val_acc", goal="maximize", keep=keep)


def release(trial: Trial) -> None:
    trial.store.release(trial.id, trial.attempt, "test", lost=True)


# -- reading a sweep directory -------------------------------------------------------------------
def events(root: Path) -> list[dict[str, Any]]:
    """Every parseable journal event (a torn line is skipped, as readers do)."""
    out = []
    for line in (root / "journal.jsonl").read_bytes().split(b"\n"):
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        out.append(ev)
    return out


def count_events(root: Path, kind: str) -> int:
    try:
        return sum(1 for ev in events(root) if ev.get("ev") == kind)
    except FileNotFoundError:
        return 0


def metrics(root: Path, trial: str) -> list[dict[str, Any]]:
    """Every line of a trial's metrics.jsonl, as written (none if there is no file yet)."""
    p = root / "trials" / trial / "metrics.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def tree_hash(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (symlinks by target)."""
    out = {}
    if not root.exists():
        return out
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "->" + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = "dir"
    return out


# -- processes -----------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    """Running and not a zombie (zombies linger; /proc tells the truth)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def worker_pids(root: Path) -> list[int]:
    """Pids of the workers that ever wrote a heartbeat into the directory."""
    pids = []
    for hb in (root / "workers").glob("*.json"):
        try:
            pids.append(int(json.loads(hb.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            continue
    return pids


def kill_pids(pids: list[int]) -> None:
    """Tear-down: SIGKILL the given processes (ours, started by the test) that still run."""
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_master(sweep: Path, root: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`hpsearch master start SWEEP --dir ROOT` to the end; any worker it leaves behind is killed
    (tear-down, whatever the outcome)."""
    try:
        return run_cli("master", "start", str(sweep), "--dir", str(root), timeout=timeout)
    finally:
        kill_pids(worker_pids(root))


def stop_released_or_finished(root: Path) -> bool:
    """After a stop: every release says "stopped" (none lost), and every trial that was claimed is
    either released or finished with all its epochs (a trial in its last epoch when the stop came
    finishes it instead of being released with every epoch done)."""
    from hpsearch.store.fold import State

    st = Store(root).refresh()
    evs = events(root)
    released = {e["trial"] for e in evs if e.get("ev") == "release" and not e["lost"] and "stopped" in e["reason"]}
    if any(e.get("ev") == "release" and e["trial"] not in released for e in evs):
        return False
    claimed = {e["trial"] for e in evs if e.get("ev") == "claim"}
    done = {
        t for t in claimed if st.trials[t].state is State.FINISHED and st.trials[t].epochs_done == st.trials[t].epochs
    }
    return bool(claimed) and claimed <= released | done
