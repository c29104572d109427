"""Progress while a stage runs: a block redrawn in place on a terminal, timestamped plain lines elsewhere.

On a TTY the block is a headline (stage k/n, counts, the stage's best, ETA) and one line per running trial
(worker, device, epoch, latest metric), redrawn with ANSI cursor moves. Anywhere else (CI,
nohup, Slurm logs) it prints the headline and the running trials as one timestamped line at
most every `interval` seconds, with no control characters at all.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from typing import Any, TextIO

from hpsearch.report.picture import Picture, Running, eta, headline, progress_units, running_line, running_summary

MAX_RUNNING_LINES = 12  # beyond this the block would scroll on small terminals


class Progress:
    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self._last_line = ""
        self._last_time = -math.inf
        self._block = 0  # lines of the block now on screen (TTY)
        self._shown: list[str] = []
        self._started = time.monotonic()
        self._done0: float | None = None

    def stage_started(self) -> None:
        self._started = time.monotonic()
        self._done0 = None

    def update(
        self,
        stage: int,
        stages: int,
        counts: dict[str, int],
        total: int,
        best: Any,
        metric: str,
        running: list[Running] | None = None,
    ) -> None:
        running = running or []
        units = progress_units(counts, running)
        if self._done0 is None:  # trials done before this master started (resume) say nothing of its speed
            self._done0 = units
        left = eta(time.monotonic() - self._started, units - self._done0, total - self._done0)
        pic = Picture(
            name="",
            metric=metric,
            phase="stage",
            stage=stage,
            stages=stages,
            counts=counts,
            total=total,
            best=best,
            best_scope="stage",
            eta=left,
            running=running,
        )
        head = headline(pic)
        if self.tty:
            block = [head, *self._running_lines(running, metric)]
            if self._block and block == self._shown:
                return  # nothing changed: redrawing would only flicker
            self._draw(block)
            self._shown = block
            self._last_line = head
            return
        line = head + ("; " + running_summary(running, metric) if running else "")
        now = time.monotonic()
        if line != self._last_line and (now - self._last_time >= self.interval or pic.done == total):
            self.stream.write(time.strftime("%H:%M:%S ") + line + "\n")
            self.stream.flush()
            self._last_time = now
            self._last_line = line

    def _running_lines(self, running: list[Running], metric: str) -> list[str]:
        lines = ["  " + running_line(r, metric) for r in running[:MAX_RUNNING_LINES]]
        if len(running) > MAX_RUNNING_LINES:
            lines.append(f"  ... and {len(running) - MAX_RUNNING_LINES} more running")
        return lines

    def _width(self) -> int:
        try:
            cols = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            cols = 0
        return max(20, cols - 1) if cols else 119  # a fresh pty may say 0 columns: unknown

    def _draw(self, lines: list[str]) -> None:
        # cut to the terminal's width: a wrapped line would break the cursor-up count
        w = self._width()
        text = "\n".join(line[:w] for line in lines)
        self._erase()
        self.stream.write(text)
        self.stream.flush()
        self._block = len(lines)

    def _erase(self) -> None:
        """Move to the start of the block and clear to the end of the screen."""
        if self._block:
            up = f"\033[{self._block - 1}A" if self._block > 1 else ""
            self.stream.write(up + "\r\033[J")
            self._block = 0

    def close_line(self) -> None:
        """Leave the last block on screen and go on below it."""
        if self.tty and self._block:
            self.stream.write("\n")
            self.stream.flush()
            self._block = 0
            self._last_line = ""

    def warn(self, text: str) -> None:
        """`warning: TEXT` on standard error (a stream given in place of stdout gets it too, for tests
        and captured logs), so that a sweep's output piped to a file or a pager still shows it."""
        if self.stream is not sys.stdout:
            self.say(f"warning: {text}")
            return
        self.close_line()
        sys.stderr.write(f"warning: {text}\n")
        sys.stderr.flush()

    def say(self, text: str) -> None:
        if self.tty and self._block:
            self._erase()  # the block is redrawn below the message at the next update
        self.stream.write(text + ("\n" if not text.endswith("\n") else ""))
        self.stream.flush()
