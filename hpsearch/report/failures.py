"""Why trials did not finish, grouped: the loud end of a sweep whose trials all fail.

Pure: works on the journal's trial records; reads nothing. Two reasons belong to one group when
they are equal after every number in them is replaced by `#` ("boom in epoch 1" and "boom in
epoch 2" are one error; a command's log tail that echoes its `--lr 0.0123` is one error across
trials), and the group shows its first trial's reason as it was written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hpsearch.store.fold import State, TrialRecord

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)
UNUSABLE = (State.FAILED, State.DIVERGED)


def reason_key(reason: str | None) -> str:
    """The reason with numbers replaced by '#': the key that groups one error across trials."""
    return _NUMBER.sub("#", reason or "(no reason recorded)").strip()


@dataclass(frozen=True)
class FailureGroup:
    count: int
    status: str  # failed | diverged
    reason: str  # the first trial's reason, as recorded
    trial: str  # that trial (its error.txt holds the traceback of a failure)


def group_failures(trials: Iterable[TrialRecord]) -> list[FailureGroup]:
    """Failed and diverged trials grouped by (status, reason_key), the largest group first
    (ties in the order their first trial appears)."""
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for t in trials:
        if t.state in UNUSABLE:
            groups.setdefault((t.state.value, reason_key(t.reason)), []).append(t)
    ordered = sorted(groups.values(), key=lambda g: -len(g))  # stable: first seen first among equals
    return [FailureGroup(len(g), g[0].state.value, g[0].reason or "(no reason recorded)", g[0].trial) for g in ordered]


def no_usable_run(trials: list[TrialRecord]) -> bool:
    """Every trial is done and none finished: nothing to rank, nothing to narrow around."""
    return bool(trials) and all(t.state in UNUSABLE for t in trials)


def same_error_early(trials: list[TrialRecord], n: int) -> bool:
    """At least `n` trials of a stage failed, none finished or diverged, all with one error:
    the rest of the stage would fail the same way (`max_failures` of the sweep is `n`)."""
    done = [t for t in trials if t.state.is_finished]
    if len(done) < n or any(t.state is not State.FAILED for t in done):
        return False
    return len({reason_key(t.reason) for t in done}) == 1


def failure_text(trials: list[TrialRecord], root: str, stage: int) -> str:
    """Lines for the terminal: 'Stage 1: 4 of 4 trials failed:' then each group with its count,
    reason and where the traceback of its first trial is."""
    groups = group_failures(trials)
    failed = sum(g.count for g in groups)
    lines = [f"Stage {stage}: {failed} of {len(trials)} trials failed or diverged, none finished:"]
    for g in groups:
        if g.status == "failed" and g.reason.startswith("exception:"):
            see = f"; see {root}/trials/{g.trial}/error.txt"  # the traceback
        elif g.status == "failed" and (Path(root) / "trials" / g.trial / "worker.log").exists():
            see = f"; see {root}/trials/{g.trial}/worker.log"  # what the trainable printed
        else:
            see = f" ({g.trial})"
        lines.append(f"  {g.count} x {g.status}: {g.reason}{see}")
    return "\n".join(lines)
