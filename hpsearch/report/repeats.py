"""Configurations with repeats (`repeats: R`): mean, spread and count of their runs' best metric.

The same ranking the master narrows with (stages.rank: mean over finished repeats), as a table
for `report`. Failed and diverged repeats are counted in `of` but not in the mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from hpsearch.report.frames import best_checkpoint
from hpsearch.search import space as sp
from hpsearch.search import stages
from hpsearch.search.config import Metric
from hpsearch.search.evidence import configuration_key
from hpsearch.store.fold import SweepState


def has_repeats(state: SweepState) -> bool:
    configs = [t.config for t in state.trials.values()]
    return len(set(configs)) < len(configs)


def configs_frame(state: SweepState, metric: Metric, stage: int | None = None) -> pd.DataFrame:
    """One row per configuration with a finished run, best mean first: of one stage, or (`stage`
    None) of the whole sweep as `configurations` ranks it (a promoted configuration once)."""
    trials = [t for t in state.trials.values() if stage is None or t.stage == stage]
    total: dict[str, int] = {}
    stage_of: dict[str, int] = {}
    for t in trials:
        total[t.config] = total.get(t.config, 0) + 1
        stage_of[t.config] = t.stage
    if stage is None:
        ranking = [s.ranked for s in configurations(state, metric)]
    else:
        ranking = stages.rank(stages.runs_from(trials), metric)
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(ranking, 1):
        rows.append(
            {
                "rank": i,
                "stage": stage_of[r.config],
                "config": r.config,
                "mean": r.mean,
                "std": r.std,
                "count": r.count,
                "of": total[r.config],
                f"{metric.name} (mean ± std)": f"{r.mean:.4f} ± {r.std:.4f}",
                "trials": ",".join(r.trials),
                **{f"p.{k}": v for k, v in r.params.items()},
            }
        )
    return pd.DataFrame(rows)


def config_columns(df: pd.DataFrame, metric: str) -> list[str]:
    params = [c for c in df.columns if c.startswith("p.") and df[c].nunique(dropna=True) > 1]
    return ["rank", "stage", "config", *params, f"{metric} (mean ± std)", "count", "of", "trials"]


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


def best_line(state: SweepState, metric: Metric) -> str | None:
    """The sweep's result in one line: the first of `configurations` (mean over its repeats), with
    its parameters and the checkpoint of its best run. None when no run finished."""
    ranking = configurations(state, metric)
    if not ranking:
        return None
    first = ranking[0]
    best, k = first.ranked, first.stage
    ckpt = best_checkpoint(state, first.run, metric.name)
    params = ", ".join(f"{k}={sp.fmt(v)}" for k, v in best.params.items())
    if best.count > 1:
        score = f"{best.mean:.4f} ± {best.std:.4f} (mean of {best.count} repeats)"
        who = f"configuration {best.config} ({', '.join(best.trials)})"
    else:
        score, who = f"{best.mean:.4f}", best.trials[0]
    saved = f"checkpoint {ckpt}" if ckpt else "no checkpoint (the trainable saved no state)"
    return f"Best {metric.name} {score}: {who} of stage {k}, {params}; {saved}"
