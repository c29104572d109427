"""`hpsearch master status`: the sweep's picture, read from the directory (any host can run it)."""

from __future__ import annotations

import os
import time
from typing import Any

from hpsearch.errors import StoreError
from hpsearch.report.failures import no_usable_run
from hpsearch.report.frames import open_sweep
from hpsearch.report.picture import Picture, duration, latest_lines, picture_lines, snapshot
from hpsearch.store.liveness import describe_master, elsewhere, local_process_alive, master_alive
from hpsearch.store.sweepdir import Store, read_json


def master_line(store: Store, sweep: Any, now: float | None = None) -> str:
    """Whether a master is alive: 'master: alive (pid 4711 on node7, last beat 2 s ago)', or when
    none is, since when and how to resume (on this host a master's process is checked in /proc)."""
    now = time.time() if now is None else now
    try:
        info = read_json(store.layout.master)
    except StoreError:
        info = None
    if not isinstance(info, dict):
        return "master: none has run here yet"
    other = elsewhere(info, store.layout.root)
    if other is not None:  # `cp -r` of a running sweep: the recorded processes run the original
        return (
            f"master: none here: this directory is a copy of {other} (its master.json names that sweep's master, "
            f"{describe_master(info, now)}); start its own with: hpsearch master start SWEEP.yaml --dir "
            f"{store.layout.root}"
        )
    if master_alive(info, sweep.stale_after, now):
        return f"master: alive ({describe_master(info, now)})"
    st = store.state
    beat = float(info.get("time", 0) or 0)
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(beat))
    ago = duration(max(0.0, now - beat))
    who = f"{info.get('host', '?')}, pid {info.get('pid', '?')}"
    if info.get("state") == "exited":
        line = f"master: none alive; the last one ({who}) exited at {at} ({ago} ago)"
    else:
        line = f"master: none alive since {at} ({ago} ago): the last one ({who}) stopped beating or was killed"
    if not st.done:
        # paths as seen from here: the master recorded its sweep file's absolute path
        recorded = info.get("sweep_file")
        sweep_file = _from_here(recorded) if recorded and os.path.isabs(recorded) else recorded or "SWEEP.yaml"
        k = st.current_stage
        trials = st.stage_trials(k) if k else []
        if st.stop and no_usable_run(trials):
            # the master stopped the sweep as failed: resuming would fail again (run/master.py, _failed)
            line += (
                f"; the sweep failed ({st.stop_reason or 'every trial of stage ' + str(k) + ' failed'}): fix the "
                f"cause, then run it in a new directory: hpsearch master start {sweep_file} --dir NEW_DIR"
            )
        else:
            hand = " --no-workers" if info.get("no_workers") else ""
            line += f"; resume with: hpsearch master start {sweep_file} --dir {store.layout.root}{hand}"
    return line


def _from_here(path: str) -> str:
    """An absolute path as short as it stays valid from this folder: relative below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def picture_of(store: Store, sweep: Any) -> Picture:
    """The picture of a store whose state was just refreshed."""
    st = store.state
    hbs = store.heartbeats()
    gone = {w for w, hb in hbs.items() if local_process_alive(hb) is False or elsewhere(hb, store.layout.root)}
    return snapshot(
        st,
        hbs,
        name=sweep.name,
        metric=sweep.metric.name,
        goal=sweep.metric.goal,
        stages=len(sweep.stages),
        stale_after=sweep.stale_after,
        latest=latest_lines(store, st, st.current_stage) if st.current_stage else None,
        gone=gone,
        master=master_line(store, sweep),
    )


def status_text(root: str) -> str:
    store, sweep = open_sweep(root)
    return "\n".join(picture_lines(picture_of(store, sweep), root))
