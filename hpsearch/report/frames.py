"""The sweep read as data: its runs ranked in a pandas DataFrame, its stage files, its checkpoints.

Reads only the journal (results are in it) and stages/*.json, never every trial's files, so a
sweep of 100,000 trials is read in about a second. `report`, the plots, the HTML page, status,
watch and the master's stage summary all read a sweep through this module and `sweepdata`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from hpsearch.errors import StoreError
from hpsearch.gcpause import bulk
from hpsearch.search.config import Metric
from hpsearch.store.fold import SweepState
from hpsearch.store.sweepdir import Store, format_checkpoint, read_json

# pruned runs (stopped early by the stage's rule) rank after finished ones, by what they reached
STATUS_ORDER = {"finished": 0, "pruned": 1, "running": 2, "planned": 3, "diverged": 4, "failed": 5}


@bulk
def runs_frame(
    state: SweepState,
    metric: Metric,
    stage: int | None = None,
    checkpoints: bool = True,
    present: Collection[str] | None = None,
) -> pd.DataFrame:
    """One row per trial (of `stage`, or all), ranked: finished by best metric, then pruned (by the
    best they reached), running, planned, diverged, failed; ties by trial id. `checkpoints=False`
    leaves out the checkpoint names (add them to the rows you show with `add_checkpoints`: 100,000
    names cost a tenth of a second); `present`: the checkpoint files on disk (`Store.checkpoint_files`),
    so a file retention deleted is not named."""
    trials = [t for t in state.trials.values() if stage is None or t.stage == stage]
    if not trials:
        return pd.DataFrame(columns=["rank", "stage", "trial", "status", metric.name])
    # built column by column, numbers as typed arrays: a DataFrame from 100,000 row dicts, or
    # from lists whose types pandas must infer, costs several times more
    best = np.array([t.best for t in trials], dtype=float)  # None -> NaN
    cols: dict[str, Any] = {
        "stage": _ints([t.stage for t in trials]),
        "trial": [t.trial for t in trials],
        "config": [t.config for t in trials],
        "status": [t.state.value for t in trials],
        metric.name: best,
        "best_epoch": _ints([t.best_epoch for t in trials]),
        "epochs": _ints([t.epochs_done for t in trials]),
        "of_epochs": _ints([t.epochs for t in trials]),
        "attempts": _ints([t.attempt for t in trials]),
        "reason": [t.reason for t in trials],
        "parent": [t.parent for t in trials],
        "device": [t.device for t in trials],
    }
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    for k in names:
        cols[f"p.{k}"] = [t.params.get(k) for t in trials]
    if checkpoints:
        cols["checkpoint"] = checkpoint_names(state, trials, metric.name, present)
    order = _ranking_order(
        cols["status"], -best if metric.goal == "maximize" else best, cols["trial"], [t.stage for t in trials]
    )
    df = pd.DataFrame(cols).take(order).reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    return df


def _ints(values: list[Any]) -> Any:
    return pd.array(values, dtype="Int64")  # None -> <NA>


def _ranking_order(status: list[str], key: np.ndarray, trial: list[str], stage: list[int]) -> np.ndarray:
    """Row order: by status (STATUS_ORDER), then key ascending with NaN last, then the later stage
    first (a promoted run that did not beat its parent's epochs ties with it, and trained longer:
    `store.standing.configurations` puts it first too), then trial id. numpy sorts the numbers;
    only runs of equal (status, key), such as the planned trials, which all have NaN, are put in
    order in Python (sorting 100,000 ids costs more than the rest)."""
    group = np.array([STATUS_ORDER.get(s, 9) for s in status], dtype=np.int64)
    order = np.lexsort((key, group))  # stable; NaN sorts last
    g, k = group[order], key[order]
    same = (g[1:] == g[:-1]) & ((k[1:] == k[:-1]) | (np.isnan(k[1:]) & np.isnan(k[:-1])))
    if same.any():
        starts = np.flatnonzero(np.r_[True, ~same])
        ends = np.r_[starts[1:], len(order)]
        for a, b in zip(*(x[ends - starts > 1] for x in (starts, ends))):
            order[a:b] = sorted(order[a:b].tolist(), key=lambda i: (-stage[i], trial[i]))
    return order


def add_checkpoints(
    df: pd.DataFrame, state: SweepState, metric: str, present: Collection[str] | None = None
) -> pd.DataFrame:
    """`df` with a `checkpoint` column: each row's best checkpoint name (None before a result, or
    when `present`, the files on disk, lacks it)."""
    trials = state.trials
    names: list[Any] = checkpoint_names(state, [trials[t] for t in df["trial"].tolist()], metric, present)
    return df.assign(checkpoint=names)


def best_checkpoint(state: SweepState, t: Any, metric: str) -> str | None:
    """Name of the checkpoint of a trial's best epoch (a promoted trial's early epochs are its parent's)."""
    return checkpoint_names(state, [t], metric)[0]


@bulk
def checkpoint_names(
    state: SweepState, trials: list[Any], metric: str, present: Collection[str] | None = None
) -> list[str | None]:
    """best_checkpoint of each trial, in one loop (a full report names 100,000); with `present` (the
    file names on disk), None for a file that is gone (`keep_top`, `checkpoints: last`)."""
    out: list[str | None] = []
    append, known = out.append, state.trials
    for t in trials:
        if t.best is None or t.best_epoch is None:
            append(None)
            continue
        owner = t.trial
        # the epoch's own trial: up the promotion chain while the epoch lies within the parent's
        # (promoted twice, a stage-1 best epoch is the grandparent's file)
        seen = {owner}
        parent = known.get(t.parent) if t.parent else None
        while parent is not None and t.best_epoch <= parent.epochs_done and parent.trial not in seen:
            owner = parent.trial
            seen.add(owner)
            parent = known.get(parent.parent) if parent.parent else None
        rec = known.get(owner, t)
        # a trial without resumable state wrote no checkpoint file: name none
        name = format_checkpoint(owner, t.best_epoch, metric, t.best) if rec.resumable else None
        append(None if name is not None and present is not None and name not in present else name)
    return out


def stage_files(store: Store) -> list[dict[str, Any]]:
    """The stages/stage-<k>.json documents (plan, ranges, border flags), in stage order."""
    out = []
    for k in sorted(store.state.stages):
        doc = read_json(store.layout.stage_file(k))
        if doc is not None:
            out.append(doc)
    return out


def open_sweep(root: str) -> tuple[Store, Any]:
    """The store of sweep directory `root`, refreshed, and its sweep as started (StoreError if none)."""
    store = Store(root)
    if not store.exists():
        raise StoreError(store.missing())
    sweep = store.load_sweep()
    store.refresh()
    return store, sweep
