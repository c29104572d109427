"""The sweep's final ranking of configurations (`configurations`): what `hpsearch best`, the master's
`Done.` line, `hpsearch ensemble`, `keep_top` and `hpsearch.open().best` agree on.

In the store layer because retention (`keep_top`) needs the same ranking as the report: counting a
promoted run and its parent as two configurations deleted the second-best configuration's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpsearch.search import stages
from hpsearch.search.config import Metric
from hpsearch.search.evidence import configuration_key
from hpsearch.store.fold import SweepState


@dataclass(frozen=True)
class Standing:
    """One configuration in the sweep's final ranking (`configurations`): `ranked` is its standing
    (mean over repeats) at `stage`, `run` the trial record of its best repeat there."""

    stage: int
    ranked: stages.Ranked
    run: Any


def configurations(state: SweepState, metric: Metric) -> list[Standing]:
    """Every configuration with a ranked run, best first: the answer of `hpsearch best`, the
    master's `Done.` line, `hpsearch ensemble`'s members and `hpsearch.open().best`.

    Each configuration (same parameters, `configuration_key`) is judged at the latest stage where
    it has a finished or pruned run: a promoted run supersedes its parent (it inherits its parent's
    epochs, and trained longer), and that stage's repeats are averaged as the master ranks a stage
    (`stages.rank`: mean over repeats, pruned configurations after the rest). Configurations of
    different stages are then ordered by that mean, the later stage first on a tie."""
    runs = [r for r in stages.runs_from(state.trials.values()) if r.status in stages.RANKED_STATUSES]
    stage_of = {t.trial: t.stage for t in state.trials.values()}
    latest: dict[str, int] = {}
    for r in runs:
        key = configuration_key(r.params)
        latest[key] = max(latest.get(key, 0), stage_of[r.trial])
    kept = [r for r in runs if stage_of[r.trial] == latest[configuration_key(r.params)]]
    sign = -1.0 if metric.goal == "maximize" else 1.0
    out = []
    for c in stages.rank(kept, metric):
        recs = [state.trials[t] for t in c.trials]
        best = (max if metric.goal == "maximize" else min)(recs, key=lambda t: t.best if t.best is not None else 0.0)
        out.append(Standing(stage_of[c.trials[0]], c, best))
    out.sort(key=lambda s: (s.ranked.pruned, sign * s.ranked.mean, -s.stage, s.ranked.config))
    return out
