"""Early stopping as the report shows it: per stage, the rule, each rung's trials, and the epochs saved.

Read from the fold only (each trial's `rungs`, written by `rung` journal events, and its status):
no trial file is opened, so it costs the same as the ranking.
"""

from __future__ import annotations

import statistics
from typing import Any

from hpsearch.store.fold import State, SweepState, TrialRecord


def summary(state: SweepState, sweep: Any, stage: int | None = None) -> list[dict[str, Any]]:
    """One dict per stage whose early-stopping rule is active (of `stage`, or all planned).

    Each: `stage`, `rule` (EarlyStop.to_dict), `describe`, `rungs` (the stage's rung epochs),
    `pruned` (trials stopped), `epochs_saved` (epochs the pruned trials did not train: planned
    minus reached), `epochs_planned` (the epochs the stage's trials were planned to train, a
    promoted trial's inherited epochs left out, as the dry run and the budget count them), and
    `per_rung`: for each rung epoch, `reached` (trials that recorded a value there), `stopped`,
    `continued`, `best` and `median` of the values recorded there.
    """
    out = []
    for k in sorted(state.stages):
        if stage is not None and k != stage:
            continue
        es = sweep.early_stop_for(k)
        if not es.active:
            continue
        trials = state.stage_trials(k)
        if not trials:
            continue
        epochs = trials[0].epochs  # as planned (the journal's, also if the sweep file changed since)
        maximize = sweep.metric.goal == "maximize"
        per_rung = []
        for e in es.rungs(epochs):
            marks = [r for t in trials if (r := t.rung(e)) is not None]
            vals = [r[1] for r in marks if r[1] is not None]
            stopped = sum(1 for r in marks if r[2])
            per_rung.append(
                {
                    "epoch": e,
                    "reached": len(marks),
                    "stopped": stopped,
                    "continued": len(marks) - stopped,
                    "best": (max(vals) if maximize else min(vals)) if vals else None,
                    "median": statistics.median(vals) if vals else None,
                }
            )
        pruned = [t for t in trials if t.state is State.PRUNED]
        out.append(
            {
                "stage": k,
                "rule": es.to_dict(),
                "describe": es.describe(),
                "rungs": list(es.rungs(epochs)),
                "pruned": len(pruned),
                "epochs_saved": sum(max(0, t.epochs - t.epochs_done) for t in pruned),
                # what the stage's trials had to train: a promoted one goes on from its parent's epochs
                # (as the dry run and the budget count it)
                "epochs_planned": sum(t.epochs - _inherited(state, t) for t in trials),
                "per_rung": per_rung,
            }
        )
    return out


def _inherited(state: SweepState, t: TrialRecord) -> int:
    """Epochs a promoted trial took over from its parent (0 for a fresh one)."""
    parent = state.trials.get(t.parent) if t.parent else None
    return min(parent.epochs_done or 0, t.epochs) if parent is not None else 0


def text(rows: list[dict[str, Any]], metric: str) -> str:
    """The summary as lines of text ("" when no stage stops early)."""
    if not rows:
        return ""
    lines = ["Early stopping:"]
    for s in rows:
        share = f" ({100 * s['epochs_saved'] / s['epochs_planned']:.0f}%)" if s["epochs_planned"] else ""
        lines.append(
            f"  stage {s['stage']}: {s['describe']}; {s['pruned']} trial(s) pruned, "
            f"{s['epochs_saved']} of {s['epochs_planned']} planned epochs saved{share}"
        )
        for r in s["per_rung"]:
            best = "-" if r["best"] is None else f"{r['best']:.4f}"
            med = "-" if r["median"] is None else f"{r['median']:.4f}"
            lines.append(
                f"    rung epoch {r['epoch']:>3}: {r['reached']} reached, {r['continued']} continued, "
                f"{r['stopped']} stopped; {metric} best {best}, median {med}"
            )
    return "\n".join(lines)
