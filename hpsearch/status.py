"""`hpsearch master status`: the sweep's picture, read from the directory (any host can run it)."""
from __future__ import annotations

import time

from .journal import State
from .report import open_sweep
from .space import fmt


def status_text(root: str) -> str:
    store, sweep = open_sweep(root)
    st = store.state
    k = st.current_stage
    lines = [f"{sweep.name} in {root}: " + ("finished" if st.done else "stopped" if st.stop else
                                          f"stage {k} of {len(sweep.stages)}" if k else "not planned yet")]
    if k:
        trials = st.stage_trials(k)
        c: dict[str, int] = {}
        for t in trials:
            c[t.state.value] = c.get(t.state.value, 0) + 1
        lines.append(f"stage {k}: {len(trials)} trial(s): " + ", ".join(f"{v} {s}" for s, v in sorted(c.items())))
        best = [t for t in st.trials.values() if t.state is State.FINISHED and t.best is not None]
        if best:
            b = (max if sweep.metric.goal == "maximize" else min)(best, key=lambda t: t.best)  # type: ignore[arg-type,return-value]
            lines.append(f"best so far: {sweep.metric.name} {b.best:.4f} ({b.trial})")
    now = time.time()
    hbs = store.heartbeats()
    if hbs:
        lines.append("workers (last heartbeat by the worker's clock):")
        for w, hb in sorted(hbs.items()):
            age = now - float(hb.get("time", 0))
            state = hb.get("state", "?")
            doing = f" {hb.get('trial')} epoch {hb.get('epoch')} {sweep.metric.name} {fmt(hb.get('metric'))}" if hb.get("trial") else ""
            lines.append(f"  {w}: {state}{doing} on {hb.get('device', '?')}, seen {age:.0f}s ago")
    left = sum(1 for t in st.trials.values() if not t.state.is_finished)
    lines.append(f"left: {left} trial(s) not finished; {len(sweep.stages) - len(st.stages_done)} stage(s) to go")
    return "\n".join(lines)
