"""Configurations with repeats (`repeats: R`): mean, spread and count of their runs' best metric.

The same ranking the master narrows with (stages.rank: mean over finished repeats), as a table
for `report`. Failed and diverged repeats are counted in `of` but not in the mean.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpsearch.search import stages
from hpsearch.search.config import Metric
from hpsearch.store.fold import SweepState


def has_repeats(state: SweepState) -> bool:
    configs = [t.config for t in state.trials.values()]
    return len(set(configs)) < len(configs)


def configs_frame(state: SweepState, metric: Metric, stage: int | None = None) -> pd.DataFrame:
    """One row per configuration with a finished run, best mean first."""
    trials = [t for t in state.trials.values() if stage is None or t.stage == stage]
    runs = stages.runs_from(trials)
    total: dict[str, int] = {}
    stage_of: dict[str, int] = {}
    for t in trials:
        total[t.config] = total.get(t.config, 0) + 1
        stage_of[t.config] = t.stage
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(stages.rank(runs, metric), 1):
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
