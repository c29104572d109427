"""`hpsearch master status`: the sweep's picture, read from the directory (any host can run it)."""

from __future__ import annotations

from typing import Any

from hpsearch.report.frames import open_sweep
from hpsearch.report.picture import Picture, latest_lines, picture_lines, snapshot
from hpsearch.store.sweepdir import Store


def picture_of(store: Store, sweep: Any) -> Picture:
    """The picture of a store whose state was just refreshed."""
    st = store.state
    return snapshot(
        st,
        store.heartbeats(),
        name=sweep.name,
        metric=sweep.metric.name,
        goal=sweep.metric.goal,
        stages=len(sweep.stages),
        stale_after=sweep.stale_after,
        latest=latest_lines(store, st, st.current_stage) if st.current_stage else None,
    )


def status_text(root: str) -> str:
    store, sweep = open_sweep(root)
    return "\n".join(picture_lines(picture_of(store, sweep), root))
