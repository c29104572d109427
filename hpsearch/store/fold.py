"""The fold of the journal: trial records and the sweep state that the journal's events build.

Pure data and transitions (no file, no lock): `SweepState.apply` takes one event and re-checks
its transition against the state, so a stray or repeated event changes nothing. The events and
their fields are listed in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class State(str, enum.Enum):
    PLANNED = "planned"
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"
    PRUNED = "pruned"  # stopped early by the stage's early-stopping rule; keeps its epochs and checkpoints

    @property
    def is_finished(self) -> bool:
        return self in FINISHED


STATES = {s.value: s for s in State}  # State(value) is slow in a hot loop
FINISHED = frozenset({State.FINISHED, State.DIVERGED, State.FAILED, State.PRUNED})


@dataclass(slots=True)  # slots: 100,000 records fold noticeably faster and smaller
class TrialRecord:
    trial: str
    stage: int
    config: str
    params: dict[str, Any]
    seed: int
    epochs: int
    parent: str | None = None
    state: State = State.PLANNED
    attempt: int = 0  # claims so far; a claim's token is (trial, attempt)
    lost: int = 0  # times requeued because its worker vanished
    worker: str | None = None
    best: float | None = None
    best_epoch: int | None = None
    epochs_done: int = 0
    reason: str | None = None
    device: str | None = None  # as the claiming worker named it (cpu, cuda:0 (GPU 1))
    resumable: bool = True  # False: the trial wrote no checkpoint it could resume from (no state)
    # diverged in an epoch it had reported (so `epochs_done` includes it; budget.balance reads it)
    diverged_reported: bool = False
    # early stopping: [epoch, value, stop] per rung reached, in order (None until the first rung;
    # a list, not a dict, so the snapshot's JSON keeps the epochs as numbers)
    rungs: list[list[Any]] | None = None
    # the median update-to-weight ratio of the epochs it reported (`update_ratio`, the notes' ~1e-3
    # rule of thumb; search/updateratio.py reads it), None when the trainable did not report one
    update_ratio: float | None = None

    def rung(self, epoch: int) -> list[Any] | None:
        """This trial's [epoch, value, stop] at a rung epoch, if it recorded one."""
        for r in self.rungs or ():
            if r[0] == epoch:
                return r
        return None


@dataclass
class SweepState:
    """Everything the journal says, folded."""

    fingerprint: str | None = None
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    stages: dict[int, dict[str, Any]] = field(default_factory=dict)  # k -> {"space": ..., "trials": [ids]}
    stages_done: set[int] = field(default_factory=set)
    queue: dict[str, None] = field(default_factory=dict)  # planned, in claim order
    requeued: dict[str, None] = field(default_factory=dict)  # served before `queue`
    done: bool = False
    stop: bool = False
    stop_reason: str | None = None  # the last `stop` event's reason (cleared with `stop` by `resume`)
    bad_lines: int = 0
    # trials finished at the last `resume`: judged by an earlier master (a resume after a fix must not
    # stop again on their failures; the workers' sweep-wide early stop leaves them out)
    judged: set[str] = field(default_factory=set)

    def apply(self, ev: dict[str, Any]) -> None:
        kind = ev.get("ev")
        t = self.trials.get(ev.get("trial", ""))
        # the two events of every trial come first: a 100,000-trial sweep folds 200,000 of them
        if kind == "claim":
            if t is not None and t.state is State.PLANNED:
                t.state, t.attempt, t.worker = State.RUNNING, ev["attempt"], ev["worker"]
                t.device = ev.get("device", t.device)
                self.queue.pop(t.trial, None)
                self.requeued.pop(t.trial, None)
        elif kind == "result":
            if t is not None and t.state not in FINISHED and ev["attempt"] >= t.attempt:
                t.state = STATES[ev["status"]]
                t.attempt = max(t.attempt, ev["attempt"])
                t.worker, t.device = ev.get("worker", t.worker), ev.get("device", t.device)
                t.best, t.best_epoch = ev.get("best"), ev.get("best_epoch")
                t.epochs_done, t.reason = ev.get("epochs_done", t.epochs_done), ev.get("reason")
                t.resumable = ev.get("resumable", True)
                t.diverged_reported = ev.get("diverged_reported", False)
                t.update_ratio = ev.get("update_ratio")
                self.queue.pop(t.trial, None)
                self.requeued.pop(t.trial, None)
        elif kind == "rung":
            # the first decision at a rung stands: a later attempt re-reporting the epoch reuses it
            if (
                t is not None
                and t.state is State.RUNNING
                and ev["attempt"] == t.attempt
                and t.rung(ev["epoch"]) is None
            ):
                t.rungs = [*(t.rungs or ()), [ev["epoch"], ev.get("value"), bool(ev["stop"])]]
        elif kind == "created":
            self.fingerprint = ev.get("fingerprint", self.fingerprint)  # --force re-stamps it
        elif kind == "stage" and ev["stage"] not in self.stages:
            k, trials = ev["stage"], self.trials
            for p in ev["trials"]:  # positional: this loop builds every record of a stage
                trials[p["trial"]] = TrialRecord(
                    p["trial"], k, p["config"], p["params"], p["seed"], p["epochs"], p.get("parent")
                )
            ids = [p["trial"] for p in ev["trials"]]
            self.stages[k] = {**ev, "trials": ids}  # ids only: the records hold the rest (and a snapshot, ids)
            self.queue.update(dict.fromkeys(ids))
        elif kind == "release" and t is not None and t.state is State.RUNNING and ev["attempt"] == t.attempt:
            t.state, t.worker = State.PLANNED, None
            t.lost += 1 if ev.get("lost") else 0
            t.epochs_done = ev.get("epochs_done", t.epochs_done)
            self.requeued[t.trial] = None
        elif kind == "stage_done":
            self.stages_done.add(ev["stage"])
        elif kind == "done":
            self.done = True
        elif kind == "stop":
            self.stop, self.stop_reason = True, ev.get("reason")
        elif kind == "resume":
            self.stop = self.done = False
            self.stop_reason = None
            self.judged = {tid for tid, rec in self.trials.items() if rec.state in FINISHED}

    def next_queued(self) -> Iterator[str]:
        # no copy of the queue (O(trials) per claim): callers stop iterating before they append
        yield from self.requeued
        yield from self.queue

    def rung_values(self, k: int, epoch: int, exclude: str = "") -> list[float]:
        """The values recorded at rung `epoch` by stage k's trials (`exclude` left out), None ones dropped."""
        out = []
        for t in self.stage_trials(k):
            if t.rungs and t.trial != exclude:
                r = t.rung(epoch)
                if r is not None and r[1] is not None:
                    out.append(r[1])
        return out

    def stage_trials(self, k: int) -> list[TrialRecord]:
        return [self.trials[tid] for tid in self.stages.get(k, {}).get("trials", [])]

    def trials_before(self, k: int) -> list[TrialRecord]:
        """The trials of every stage before k, stage by stage (a stage's in plan order)."""
        return [t for j in sorted(self.stages) if j < k for t in self.stage_trials(j)]

    @property
    def current_stage(self) -> int:
        return max(self.stages, default=0)


def decode(lines: list[bytes], state: SweepState) -> list[Any]:
    """Parse JSON lines; torn or garbage lines are counted in state.bad_lines and skipped.

    Many lines are parsed as one JSON array (one C call instead of one per line: 100,000 trials
    fold about twice as fast); if that fails, or yields another count, line by line.
    """
    body = [line for line in lines if line.strip()]
    if len(body) > 1:
        try:
            events = json.loads(b"[" + b",".join(body) + b"]")
            if len(events) == len(body):
                return events
        except ValueError:
            pass
    events = []
    for line in body:
        try:
            events.append(json.loads(line))
        except ValueError:
            state.bad_lines += 1  # a writer killed mid-line; the event was never committed
    return events
