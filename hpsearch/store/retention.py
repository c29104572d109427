"""Disk across the sweep: `keep_top: K` deletes the checkpoints of runs outside the top K configurations.

Called by the master once a stage is finished. The top K are `store.standing.configurations`
(what `hpsearch best` names): every run of those configurations keeps its files. Metrics and the
journal are never touched, so `report` still knows every run; only checkpoint files go. Never
pruned: trials not finished yet (and the parents they will resume from), and the trials the next
stage will promote.
"""

from __future__ import annotations

from typing import Any

from hpsearch.search import space as sp
from hpsearch.search import stages
from hpsearch.search.evidence import configuration_key
from hpsearch.store.fold import SweepState
from hpsearch.store.standing import configurations
from hpsearch.store.sweepdir import Store


def runs(state: SweepState, k: int | None = None) -> list[stages.Run]:
    return stages.runs_from(state.stage_trials(k) if k is not None else state.trials.values())


def protected(state: SweepState, sweep: Any, next_plan: stages.StagePlan | None = None) -> set[str]:
    """Trials whose checkpoints must stay: the top configurations, unfinished work, next promotions."""
    # the sweep's own ranking of configurations (`hpsearch best`'s): a promoted run and its parent
    # are one configuration, so both keep their files and the K-th best configuration keeps its own
    top = {configuration_key(s.ranked.params) for s in configurations(state, sweep.metric)[: sweep.keep_top]}
    keep = {t.trial for t in state.trials.values() if configuration_key(t.params) in top}
    for t in state.trials.values():
        if not t.state.is_finished:
            keep.add(t.trial)
            if t.parent:
                keep.add(t.parent)
    done = max(state.stages_done, default=0)
    nxt = done + 1
    if done and nxt <= len(sweep.stages) and nxt not in state.stages and sweep.stages[nxt - 1].promote:
        # the next stage is not planned yet: plan it (pure, seeded, the master's own plan) to see
        # which trials it will resume from
        plan = (
            next_plan
            if next_plan is not None and next_plan.stage == nxt
            else stages.plan_stage(
                sweep,
                nxt,
                sp.space_from_dict(state.stages[done]["space"]),
                runs(state, done),
                history=[r for j in range(1, nxt) for r in runs(state, j)],
            )
        )
        keep.update(t["parent"] for t in plan.trials if t.get("parent"))
    return keep


def prune_outside_top(store: Store, sweep: Any, next_plan: stages.StagePlan | None = None) -> list[str]:
    """Delete checkpoints of trials outside the protected set; returns the deleted file names.
    `next_plan`: the next stage's plan when the caller has it (the master does), to skip re-planning."""
    state = store.refresh()
    keep = protected(state, sweep, next_plan)
    deleted = []
    for c in list(store.checkpoint_names()):
        if c.trial not in keep and c.trial in state.trials:
            store.delete_checkpoint(c.name)
            deleted.append(c.name)
    return sorted(deleted)
