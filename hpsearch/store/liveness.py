"""Which workers are gone: judged by the observer's own clock, so clocks of other hosts never matter.

A worker's heartbeat file carries a counter it bumps every `heartbeat` seconds. The observer
notes when it last saw each counter change, on its own monotonic clock; a counter that has not
moved for `stale_after` seconds means the worker is gone. A worker on this host whose process
no longer exists (checked in /proc, since zombies linger) is gone at once.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

HOST = socket.gethostname()


def process_start_time(pid: int) -> str | None:
    """Start time of a process from /proc (guards against pid reuse); None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def elsewhere(hb: dict[str, Any] | None, root: str | os.PathLike[str] | None) -> str | None:
    """The sweep directory a heartbeat or master.json written on this host beats for, when it is not
    `root` (its `root`, a real path, differs): `root` is a copy (`cp -r` of a running sweep), whose
    files name the original's processes, alive but working elsewhere. None when it is `root`, when
    the file comes from another host (mount points differ) or records no root (older versions)."""
    if not hb or root is None or hb.get("host") != HOST or not isinstance(hb.get("root"), str):
        return None
    return hb["root"] if hb["root"] != os.path.realpath(root) else None


class Liveness:
    def __init__(self, stale_after: float, root: str | os.PathLike[str] | None = None) -> None:
        self.stale_after = stale_after
        self.root = root  # the sweep directory judged: a worker beating for another one is gone from it
        self._seen: dict[str, tuple[Any, float]] = {}  # worker -> (last beat, when it changed)

    def gone(self, worker: str, hb: dict[str, Any] | None, now: float | None = None) -> str | None:
        """Why the worker counts as gone, or None while it is alive (or not yet judged)."""
        now = time.monotonic() if now is None else now
        other = elsewhere(hb, self.root)
        if other is not None:
            return f"worker {worker} works for {other}: this directory is a copy"
        if hb and hb.get("host") == HOST and isinstance(hb.get("pid"), int):
            start = process_start_time(hb["pid"])
            if start is None or (hb.get("pid_start") and start != hb.get("pid_start")):
                return f"worker {worker} (pid {hb['pid']} on {HOST}) has exited"
        if hb and hb.get("state") == "exited":
            return f"worker {worker} exited"
        beat = hb.get("beat") if hb else None
        last = self._seen.get(worker)
        if last is None or last[0] != beat:
            self._seen[worker] = (beat, now)
            return None
        if now - last[1] > self.stale_after:
            return f"no heartbeat from worker {worker} for {now - last[1]:.0f} s"
        return None


def lost_trials(state: Any, heartbeats: dict[str, dict[str, Any]], liveness: Liveness) -> dict[str, str]:
    """{trial: why} for running trials whose worker is gone."""
    out = {}
    for t in state.trials.values():
        if t.state.value == "running" and t.worker:
            why = liveness.gone(t.worker, heartbeats.get(t.worker))
            if why:
                out[t.trial] = why
    return out


def my_pid_start() -> str | None:
    return process_start_time(os.getpid())


def local_process_alive(hb: dict[str, Any]) -> bool | None:
    """For a heartbeat written on this host: whether its process still runs (pid and start time
    match); None when the heartbeat comes from another host (only its beats can tell)."""
    if hb.get("host") != HOST or not isinstance(hb.get("pid"), int):
        return None
    start = process_start_time(hb["pid"])
    return start is not None and (not hb.get("pid_start") or start == hb.get("pid_start"))


def master_alive(
    info: dict[str, Any] | None,
    stale_after: float,
    now: float | None = None,
    root: str | os.PathLike[str] | None = None,
) -> bool:
    """Whether the master that wrote `info` (master.json) is alive: not exited, its process running
    when it is on this host, and its last beat younger than `stale_after` seconds (by the master's
    clock against ours: between hosts only as good as the clocks agree, as for `master status`).
    With `root`, a master that runs another directory (`root` is a copy, `elsewhere`) is not alive here."""
    if not info or info.get("state") == "exited" or elsewhere(info, root) is not None:
        return False
    if local_process_alive(info) is False:
        return False
    now = time.time() if now is None else now
    return now - float(info.get("time", 0) or 0) <= stale_after


def describe_master(info: dict[str, Any], now: float | None = None) -> str:
    """'pid 4711 on node7, last beat 3 s ago' (plain words for status and refusals)."""
    now = time.time() if now is None else now
    age = max(0.0, now - float(info.get("time", 0) or 0))
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, last beat {age:.0f} s ago"
