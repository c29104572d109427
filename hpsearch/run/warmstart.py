"""The runs a sweep with `warm_start: DIR` carries in from a finished sweep (`hpsearch next --warm-start`)."""

from __future__ import annotations

import functools

from hpsearch.errors import HpsearchError
from hpsearch.search import followup, stages
from hpsearch.search.config import Sweep
from hpsearch.store.sweepdir import Store


@functools.lru_cache(maxsize=4)
def _read(root: str) -> tuple[str, tuple[stages.Run, ...]]:
    store = Store(root)
    if not store.exists():
        raise HpsearchError(f"warm_start: {store.missing()}")
    st = store.refresh()
    if not st.stages_done:
        raise HpsearchError(f"warm_start: {root} has no finished stage to carry in")
    k = max(st.stages_done)
    return store.load_sweep().metric.name, tuple(stages.runs_from(st.stage_trials(k)))


def warm_runs(sweep: Sweep) -> list[stages.Run]:
    """The last finished stage's runs of `sweep.warm_start`, as `followup.warm_runs` keeps them.

    Raises:
        HpsearchError: no sweep there, no finished stage, or it ranked by another metric.
    """
    assert sweep.warm_start is not None
    metric, runs = _read(sweep.warm_start)
    if metric != sweep.metric.name:
        raise HpsearchError(
            f"warm_start: {sweep.warm_start} ranked its runs by {metric}, this sweep by {sweep.metric.name}"
        )
    return followup.warm_runs(list(runs), sweep.space)
