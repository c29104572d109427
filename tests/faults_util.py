"""Helpers for the fault tests: sweep files, the real CLI as subprocesses, journal checks, cleanup."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hpsearch import config
from hpsearch.master import Master, StartOptions
from hpsearch.progress import Progress
from hpsearch.store import Store

HPSEARCH = [sys.executable, "-m", "hpsearch"]


def noop_sweep(name: str = "faults", trials: int | list[int] = 8, epochs: int | list[int] = 2,
               sleep: float = 0.0, workers: int = 2, **extra: Any) -> str:
    """A sweep file's text: the noop trainable, fast failure detection, one stage per entry."""
    trials_l = trials if isinstance(trials, list) else [trials]
    epochs_l = epochs if isinstance(epochs, list) else [epochs] * len(trials_l)
    stages = "\n".join(f"  - {{trials: {n}, epochs: {e}}}" for n, e in zip(trials_l, epochs_l))
    settings = {"heartbeat": 0.2, "stale_after": 2, "workers": workers, **extra}
    lines = [f"name: {name}", "metric: {name: val_acc, goal: maximize}",
             f"trainable: {{builtin: noop, sleep: {sleep}}}",
             "parameters:", "  metric_value: {distribution: uniform, min: 0.1, max: 0.9}",
             "stages:", stages] + [f"{k}: {json.dumps(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def write_sweep(tmp: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def plan(sweep_file: Path, root: Path) -> Store:
    """Create the sweep directory and plan stage 1 in-process (no master loop, no workers)."""
    sweep, raw = config.load(sweep_file)
    m = Master(sweep, raw, sweep_file.read_text(), str(root), StartOptions(no_workers=True),
               Progress(open(os.devnull, "w")))
    m.open_directory()
    m.store.refresh()
    m.plan(1)
    return m.store


def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HPSEARCH, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, preexec_fn=preexec, cwd=cwd)


def spawn(*args: str, log: Path | None = None, new_session: bool = True) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([*HPSEARCH, *args], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=new_session)


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


def wait_for(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def count_events(root: Path, kind: str) -> int:
    try:
        return sum(1 for ev in events(root) if ev.get("ev") == kind)
    except FileNotFoundError:
        return 0


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
