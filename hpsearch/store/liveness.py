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


class Liveness:
    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self._seen: dict[str, tuple[Any, float]] = {}  # worker -> (last beat, when it changed)

    def gone(self, worker: str, hb: dict[str, Any] | None, now: float | None = None) -> str | None:
        """Why the worker counts as gone, or None while it is alive (or not yet judged)."""
        now = time.monotonic() if now is None else now
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
