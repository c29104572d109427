"""`hpsearch next DIR`: write the follow-up sweep of a finished one (step 7 of the recipe)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hpsearch.errors import HpsearchError
from hpsearch.report.frames import open_sweep
from hpsearch.search import budget, followup, stages
from hpsearch.search import space as sp
from hpsearch.store import sweepfile
from hpsearch.store.atomic import atomic_write_bytes
from hpsearch.store.liveness import master_alive
from hpsearch.store.sweepdir import Store, read_json


def next_sweep(root: str, warm_start: bool) -> tuple[str, list[str]]:
    """(the follow-up sweep file's text, lines saying what changed) for the sweep in `root`.

    Raises:
        StoreError: `root` is not a sweep directory. HpsearchError: no stage has finished yet.
    """
    store, sweep = open_sweep(root)
    st = store.state
    done = sorted(st.stages_done)
    if not done:
        when = f"before the sweep stopped ({st.stop_reason or 'stop'})" if st.stop else "yet"
        raise HpsearchError(f"{root}: no stage has finished {when}; the follow-up starts from a finished stage")
    k = done[-1]
    last_space = sp.space_from_dict(st.stages[k]["space"])
    runs = stages.runs_from(st.stage_trials(k))
    history = stages.runs_from(st.trials_before(k + 1))
    space, flags, ranked, ratio_lines = followup.next_space(sweep, last_space, runs, history)
    raw = yaml.safe_load(store.layout.sweep_yaml.read_text()) or {}
    doc = followup.followup_doc(raw, sweep, space, sweep.stages[k - 1], os.path.abspath(root) if warm_start else None)
    new = sweepfile.parse(doc, source_dir=sweep.source_dir)  # what we write must start: a bug here is ours
    head = [
        f"# written by hpsearch next {root}: the follow-up of {sweep.name!r}, from stage {k}'s ranking",
        f"# ({len(ranked)} ranked configuration(s)); the sweep file's folder was {sweep.source_dir}",
    ]
    text = "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, width=100)
    notes = [f"Ranges from stage {k} of {sweep.name} (old -> new):"]
    width = max((len(n) for n in last_space), default=4)
    for name, dim in last_space.items():
        if sp.is_searched(dim):
            notes.append(f"  {name.ljust(width)}  {dim.describe():<32} -> {space[name].describe()}")
    notes += [f"Border: {f.message}" for f in flags]
    notes += [f"Update ratio: {line}" if "update-to-weight" in line else f"Note: {line}" for line in ratio_lines]
    if raw.get("stages") == "auto":
        notes.append(f"Stages: auto, planned again from budget: {raw.get('budget')} in the new ranges")
    elif raw.get("budget") is not None:
        notes.append(
            f"Budget: {raw['budget']} left out: it counted the finished sweep's stages; the follow-up's "
            f"train up to {budget.cost(new.stages)} epochs "
            "(add budget: back to cap them)"
        )
    unfinished = _unfinished(store, sweep, k)
    if unfinished:
        notes.append(unfinished)
    if warm_start:
        notes.append(f"Warm start: stage {k}'s {len(ranked)} ranked run(s) join the first stage's ranking")
    values = [r.best for r in history if r.best is not None]
    best = (max if sweep.metric.goal == "maximize" else min)(values) if values else None
    if best is not None and sweep.metric.reached(best):
        notes.append(
            f"Target: metric.target {sweep.metric.target:g} was reached (best {sweep.metric.name} {best:.4g}) and is "
            "kept: the follow-up ends after its first stage in which a run reaches it; delete target: to search on"
        )
    return text, notes


def write(text: str, path: str) -> str | None:
    """Write the follow-up sweep file (atomically; its folder is created). Returns a note when it
    would not start from where it lies (relative data paths resolve from its own folder)."""
    p = Path(path)
    if p.is_dir():
        raise HpsearchError(f"-o {path}: is a directory; give a file name such as next.yaml")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HpsearchError(f"-o {path}: cannot create {p.parent}: {e.strerror}") from None
    atomic_write_bytes(p, text.encode())
    try:
        sweep, _ = sweepfile.load(p)
        from hpsearch.trainables.registry import check  # the trainable as `master start` checks it

        check(sweep)
    except HpsearchError as e:
        return f"note: {path} does not start as it is (move it beside the finished sweep's file?): {e}"
    return None


def _unfinished(store: Store, sweep: Any, k: int) -> str | None:
    """The note for a follow-up of a sweep that is not finished: still running (its master beats,
    `master_alive`) or stopped before its last stage; None once it is done. The follow-up then
    starts from stage k, the last one finished, not from the sweep's final ranking."""
    st, n = store.state, len(sweep.stages)
    if st.done:
        return None
    if master_alive(read_json(store.layout.master), sweep.stale_after, root=store.layout.root):
        return (
            f"Note: {sweep.name} is still running (stage {st.current_stage} of {n}): this follow-up starts from "
            f"stage {k}, the last one finished; run hpsearch next again once the sweep is done"
        )
    why = f" ({st.stop_reason})" if st.stop_reason else ""
    return (
        f"Note: {sweep.name} stopped{why} after stage {k} of {n}: this follow-up starts from stage {k}; "
        "resume the sweep first for one from its last stage"
    )
