"""Configurations with repeats (`repeats: R`): mean, spread and count of their runs' best metric.

The same ranking the master narrows with (stages.rank: mean over finished repeats), as a table
for `report`. Failed and diverged repeats are counted in `of` but not in the mean.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpsearch.report.frames import best_checkpoint
from hpsearch.search import space as sp
from hpsearch.search import stages
from hpsearch.search.config import Metric
from hpsearch.store.fold import SweepState
from hpsearch.store.standing import Standing, configurations

__all__ = ["Standing", "best_line", "config_columns", "configs_frame", "configurations", "has_repeats"]


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
