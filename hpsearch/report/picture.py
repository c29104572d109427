"""The sweep at a glance, as data: stage, counts, running trials with their workers, best, ETA.

One pure function (`snapshot`) builds it from the folded journal and the heartbeat files, so the
live display of `master start`, `hpsearch master status` and `report --watch` show the same
picture. Heartbeat ages are measured against the worker's own `time` field, so on another host
they are only as good as the clocks agree; the master's requeue decision never uses them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hpsearch.search.space import fmt
from hpsearch.store.fold import State, SweepState


@dataclass(frozen=True)
class Running:
    """A trial being trained, and who trains it (from its worker's heartbeat)."""

    trial: str
    worker: str | None
    device: str | None
    epoch: int | None
    of_epochs: int
    metric: float | None


@dataclass(frozen=True)
class WorkerView:
    worker: str
    host: str | None
    state: str
    trial: str | None
    device: str | None
    age: float  # seconds since its last heartbeat, by the worker's clock
    alive: bool


@dataclass
class Picture:
    name: str
    metric: str
    phase: str  # "stage", "finished", "stopped", "not planned"
    stage: int
    stages: int
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    best: float | None = None
    best_trial: str | None = None
    best_scope: str = ""  # "stage" when `best` is the running stage's, "" for the sweep's ("sweep best")
    eta: float | None = None  # seconds left in this stage, None when unknown
    running: list[Running] = field(default_factory=list)
    workers: list[WorkerView] = field(default_factory=list)
    left: int = 0  # trials of planned stages not finished
    stages_left: int = 0
    stop_reason: str | None = None
    master: str | None = None  # one line about the master (alive, or gone since when); None: not known

    @property
    def done(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in State if s.is_finished)


def running_trials(
    state: SweepState,
    k: int,
    heartbeats: dict[str, dict[str, Any]],
    latest: dict[str, dict[str, Any]] | None = None,
    metric: str | None = None,
) -> list[Running]:
    """Running trials of stage k, with their latest epoch and metric.

    `latest` (trial -> last metrics.jsonl line, see `latest_lines`) is exact; without it the
    worker's heartbeat is used, which lags by up to one heartbeat interval."""
    out = []
    for t in state.stage_trials(k):
        if t.state is not State.RUNNING:
            continue
        hb = heartbeats.get(t.worker or "", {})
        # a worker training a population reports "t1,t2,..." as its trial: it trains them all
        mine = hb.get("trial") and t.trial in str(hb.get("trial")).split(",")
        line = (latest or {}).get(t.trial)
        epoch = line.get("epoch") if line else hb.get("epoch") if mine else None
        value = line.get(metric) if line and metric else hb.get("metric") if mine else None
        out.append(Running(t.trial, t.worker, hb.get("device"), epoch, t.epochs, value))
    return out


def latest_lines(store: Any, state: SweepState, k: int) -> dict[str, dict[str, Any]]:
    """The last metrics line of each running trial of stage k (one small file per running trial)."""
    out = {}
    for t in state.stage_trials(k):
        if t.state is State.RUNNING:
            lines = store.metrics(t.trial)
            if lines:
                out[t.trial] = lines[-1]
    return out


def worker_views(
    heartbeats: dict[str, dict[str, Any]],
    stale_after: float,
    now: float | None = None,
    state: SweepState | None = None,
    gone: set[str] | frozenset[str] = frozenset(),
) -> list[WorkerView]:
    """Every worker that ever beat. Alive when it has not exited, its last beat is younger than
    `stale_after`, and it is not in `gone` (workers on this host whose process is gone, which the
    caller checks). A worker shows a trial only while the journal (`state`) says it still owns
    it: a trial requeued from a killed worker is not shown as trained by it; and it shows the
    trials the journal says it runs also when its last beat predates them (a beat is written once
    a `heartbeat` period, so one from before its claim still says "starting" or "idle")."""
    now = time.time() if now is None else now
    running: dict[str, list[str]] = {}
    if state is not None:
        for tid, rec in state.trials.items():
            if rec.state is State.RUNNING and rec.worker:
                running.setdefault(rec.worker, []).append(tid)
    out = []
    for w, hb in sorted(heartbeats.items()):
        age = max(0.0, now - float(hb.get("time", 0) or 0))
        state_s = str(hb.get("state", "?"))
        alive = state_s != "exited" and age <= stale_after and w not in gone
        trial = hb.get("trial") or None
        if trial and state is not None:
            owned = [
                tid
                for tid in str(trial).split(",")
                if (t := state.trials.get(tid)) and t.worker == w and t.state is State.RUNNING
            ]
            trial = ",".join(owned) or None
        if trial is None and alive and running.get(w):
            trial, state_s = ",".join(sorted(running[w])), "training"
        out.append(WorkerView(w, hb.get("host"), state_s, trial, hb.get("device"), age, alive))
    return out


def eta(elapsed: float, done: float, total: float) -> float | None:
    """Seconds left at the rate so far; None before anything is done or once all is."""
    if done <= 0 or done >= total or elapsed <= 0:
        return None
    return elapsed / done * (total - done)


def progress_units(counts: dict[str, int], running: list[Running]) -> float:
    """Trials done, counting each running trial by the fraction of its epochs completed."""
    done = float(sum(counts.get(s.value, 0) for s in State if s.is_finished))
    for r in running:
        if r.epoch and r.of_epochs:
            done += min(r.epoch / r.of_epochs, 1.0) * 0.999  # never a whole trial until it is recorded
    return done


def snapshot(
    state: SweepState,
    heartbeats: dict[str, dict[str, Any]],
    *,
    name: str,
    metric: str,
    goal: str,
    stages: int,
    stale_after: float,
    now: float | None = None,
    latest: dict[str, dict[str, Any]] | None = None,
    gone: set[str] | frozenset[str] = frozenset(),
    master: str | None = None,
) -> Picture:
    """The whole picture, from the journal's state and the heartbeats (pure: reads nothing).
    `gone`: workers known dead (see worker_views); `master`: the line about the master."""
    now = time.time() if now is None else now
    k = state.current_stage
    phase = "finished" if state.done else "stopped" if state.stop else "stage" if k else "not planned"
    pic = Picture(
        name=name,
        metric=metric,
        phase=phase,
        stage=k,
        stages=stages,
        workers=worker_views(heartbeats, stale_after, now, state, gone),
        stop_reason=state.stop_reason if state.stop else None,
        master=master,
    )
    finished = [t for t in state.trials.values() if t.state is State.FINISHED and t.best is not None]
    if finished:
        sign = 1.0 if goal == "maximize" else -1.0
        # on a tie the later stage: a promoted run that did not beat its parent's epochs (as `report`)
        b = max(finished, key=lambda t: (sign * t.best, t.stage))  # type: ignore[operator]
        pic.best, pic.best_trial = b.best, b.trial
    pic.left = sum(1 for t in state.trials.values() if not t.state.is_finished)
    pic.stages_left = stages - len(state.stages_done)
    if k:
        trials = state.stage_trials(k)
        pic.total = len(trials)
        for t in trials:
            pic.counts[t.state.value] = pic.counts.get(t.state.value, 0) + 1
        pic.running = running_trials(state, k, heartbeats, latest, metric)
        started = state.stages[k].get("t")
        if isinstance(started, (int, float)) and k not in state.stages_done and phase == "stage":
            pic.eta = eta(now - started, progress_units(pic.counts, pic.running), pic.total)
    return pic


# -- text ------------------------------------------------------------------------------------
def duration(s: float) -> str:
    n = round(s)
    return f"{n // 3600}h{n % 3600 // 60:02d}m" if n >= 3600 else f"{n // 60}m{n % 60:02d}s" if n >= 60 else f"{n}s"


def headline(p: Picture) -> str:
    """One line: stage k/n, counts, best so far, ETA."""
    if p.phase == "not planned":
        return f"{p.name}: not planned yet"
    c = p.counts
    where = f"stage {p.stage}/{p.stages}" + ("" if p.phase == "stage" else f" ({p.phase})")
    label = f"{p.best_scope} best" if p.best_scope else "sweep best"  # not the counted stage's own
    best = f"{label} {p.metric} {fmt(round(p.best, 4)) if p.best is not None else '-'}"
    eta_s = f", ~{duration(p.eta)} left in stage" if p.eta is not None else ""
    pruned = f", {c['pruned']} pruned" if c.get("pruned") else ""  # only where a stage stops trials early
    return (
        f"{where}: {p.done}/{p.total} done ({c.get('running', 0)} running, {c.get('planned', 0)} queued, "
        f"{c.get('failed', 0)} failed, {c.get('diverged', 0)} diverged{pruned}), {best}{eta_s}"
    )


def running_line(r: Running, metric: str) -> str:
    ep = f"epoch {r.epoch}/{r.of_epochs}" if r.epoch else f"epoch -/{r.of_epochs}"
    m = f"{metric} {r.metric:.4f}" if isinstance(r.metric, (int, float)) else f"{metric} -"
    return f"{r.trial} on {r.worker or '?'} ({r.device or '?'}): {ep}, {m}"


def running_summary(running: list[Running], metric: str, limit: int = 4) -> str:
    """The running trials on one line (for logs): 'run: s1-t0001 w1 cpu ep 2 0.51; ...'."""
    parts = [
        f"{r.trial} {r.worker or '?'} {r.device or '?'} ep {r.epoch or '-'} "
        f"{f'{r.metric:.4f}' if isinstance(r.metric, (int, float)) else '-'}"
        for r in running[:limit]
    ]
    more = f"; +{len(running) - limit} more" if len(running) > limit else ""
    return ("running: " + "; ".join(parts) + more) if parts else ""


def picture_lines(p: Picture, root: str | None = None, workers: bool = True) -> list[str]:
    """The full picture as lines of plain text (no control characters)."""
    where = f" in {root}" if root else ""
    phase = f"running stage {p.stage} of {p.stages}" if p.phase == "stage" else p.phase
    if p.phase == "stopped" and p.stop_reason:
        phase += f" ({p.stop_reason})"
    lines = [f"{p.name}{where}: {phase}"]
    if p.master:
        lines.append(p.master)
    if p.stage:
        lines.append(headline(p))
    if p.best_trial:
        lines.append(f"best so far: {p.metric} {p.best:.4f} ({p.best_trial})")
    for r in p.running:
        lines.append("  " + running_line(r, p.metric))
    if workers and p.workers:
        alive = sum(w.alive for w in p.workers)
        lines.append(
            f"workers: {alive} alive of {len(p.workers)} seen (alive = heartbeat in the last "
            f"stale_after seconds, by the worker's clock)"
        )
        for w in p.workers:
            doing = (
                f"training {w.trial}" if w.trial else w.state if w.alive or w.state == "exited" else "no longer running"
            )
            lines.append(
                f"  {w.worker}: {'alive' if w.alive else 'gone '} {doing} on {w.device or '?'}"
                f"@{w.host or '?'}, last heartbeat {duration(w.age)} ago"
            )
    if p.phase == "stage":
        lines.append(
            f"left: {p.left} trial(s) not finished; {p.stages_left} stage(s) not done (the running one included)"
        )
        if workers and p.left and not any(w.alive for w in p.workers):
            lines.append(
                f"no worker is alive: the queued trials wait for one (hpsearch worker --dir {root or 'DIR'} starts one "
                "by hand; a master without --no-workers starts and replaces its own)"
            )
    elif p.phase == "stopped" and (p.left or p.stages_left):
        lines.append(f"not run when it stopped: {p.left} trial(s) not finished, {p.stages_left} stage(s) not done")
    return lines
