"""The runs a sweep with `warm_start: DIR` carries in from a finished sweep (`hpsearch next --warm-start`)."""

from __future__ import annotations

import functools
import math

from hpsearch.errors import HpsearchError
from hpsearch.search import followup, stages
from hpsearch.search.config import Sweep
from hpsearch.store.sweepdir import Store

# per run: (epoch, value of the finished sweep's metric) of each epoch it reported, its parent's included
Curve = tuple[tuple[int, float], ...]


@functools.lru_cache(maxsize=4)
def _read(root: str) -> tuple[str, tuple[stages.Run, ...], tuple[Curve, ...]]:
    store = Store(root)
    if not store.exists():
        raise HpsearchError(f"warm_start: {store.missing()}")
    st = store.refresh()
    if not st.stages_done:
        raise HpsearchError(f"warm_start: {root} has no finished stage to carry in")
    k = max(st.stages_done)
    metric = store.load_sweep().metric.name
    runs = tuple(stages.runs_from(st.stage_trials(k)))
    curves = tuple(
        tuple(
            (line["epoch"], float(line[metric]))
            for line in store.metrics(r.trial)
            if isinstance(line.get(metric), (int, float)) and math.isfinite(line[metric])
        )
        for r in runs
    )
    return metric, runs, curves


def at_epochs(run: stages.Run, curve: Curve, epochs: int, maximize: bool) -> stages.Run:
    """The run as it stood after `epochs` epochs: its best value over the epochs up to there (a
    finished sweep's last stage trained longer than the new sweep's stage 1, and the two are ranked
    together: at equal training they compare). Unchanged when its curve is unknown or not longer."""
    upto = [(e, v) for e, v in curve if e <= epochs]
    if not upto or len(upto) == len(curve):
        return run
    pick = max if maximize else min
    e, v = pick(upto, key=lambda ev: ev[1])
    return run._replace(best=v, best_epoch=e)


def warm_runs(sweep: Sweep) -> list[stages.Run]:
    """The last finished stage's runs of `sweep.warm_start`, as `followup.warm_runs` keeps them,
    each as it stood after this sweep's stage-1 epochs (`at_epochs`).

    Raises:
        HpsearchError: no sweep there, no finished stage, or it ranked by another metric.
    """
    assert sweep.warm_start is not None
    metric, runs, curves = _read(sweep.warm_start)
    if metric != sweep.metric.name:
        raise HpsearchError(
            f"warm_start: {sweep.warm_start} ranked its runs by {metric}, this sweep by {sweep.metric.name}"
        )
    epochs, maximize = sweep.stages[0].epochs, sweep.metric.goal == "maximize"
    equal = [at_epochs(r, c, epochs, maximize) for r, c in zip(runs, curves, strict=True)]
    return followup.warm_runs(equal, sweep.space)
