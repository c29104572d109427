"""Progress while a stage runs: one redrawn line on a terminal, timestamped plain lines elsewhere."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .space import fmt


class Progress:
    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self._last_line = ""
        self._last_time = 0.0
        self._started = time.monotonic()

    def stage_started(self) -> None:
        self._started = time.monotonic()

    def update(self, stage: int, stages: int, counts: dict[str, int], total: int, best: Any, metric: str) -> None:
        done = counts.get("finished", 0) + counts.get("diverged", 0) + counts.get("failed", 0)
        elapsed = time.monotonic() - self._started
        eta = f", ~{elapsed / done * (total - done):.0f}s left" if done and done < total else ""
        line = (f"stage {stage}/{stages}: {done}/{total} done ({counts.get('running', 0)} running, "
                f"{counts.get('planned', 0)} queued, {counts.get('failed', 0)} failed, "
                f"{counts.get('diverged', 0)} diverged), best {metric} {fmt(best) if best is not None else '-'}{eta}")
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        elif line != self._last_line and (now - self._last_time >= self.interval or done == total):
            self.stream.write(time.strftime("%H:%M:%S ") + line + "\n")
            self.stream.flush()
            self._last_time = now
        self._last_line = line

    def close_line(self) -> None:
        if self.tty and self._last_line:
            self.stream.write("\n")
            self.stream.flush()
            self._last_line = ""

    def say(self, text: str) -> None:
        self.close_line()
        self.stream.write(text + ("\n" if not text.endswith("\n") else ""))
        self.stream.flush()
