"""`hpsearch report DIR --watch`: redraw the picture and the ranking until the sweep ends."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from hpsearch.report.frames import open_sweep
from hpsearch.report.picture import picture_lines
from hpsearch.report.status import picture_of
from hpsearch.report.sweepdata import SweepData, of_store
from hpsearch.report.tables import render

CLEAR = "\033[H\033[2J"  # cursor home, clear screen: only ever written to a terminal


def watch_report(
    root: str,
    interval: float = 10.0,
    stage: int | None = None,
    top: int | None = None,
    stream: TextIO | None = None,
    each: Callable[[SweepData], None] | None = None,
) -> int:
    """Print the status picture and the ranking every `interval` seconds until the sweep is
    finished or stopped (then once more, final). `each` runs after every round with that round's
    data (e.g. to rewrite the HTML). Returns 0; Ctrl-C ends it quietly with 130."""
    out = stream or sys.stdout
    tty = hasattr(out, "isatty") and out.isatty()
    store, sweep = open_sweep(root)  # kept: each round reads only what the journal gained since
    try:
        while True:
            store.refresh()
            pic = picture_of(store, sweep)
            data = of_store(root, store, sweep, stage)
            text = "\n".join(picture_lines(pic, root)) + "\n\n" + render(root, "table", stage=stage, top=top, data=data)
            if tty:
                out.write(CLEAR + text + f"\n\n(refreshing every {interval:g}s; Ctrl-C to quit)\n")
            else:
                out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n{text}\n")
            out.flush()
            if each is not None:
                each(data)
            if pic.phase in ("finished", "stopped"):
                return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        return 130
