"""Everything the plots, the HTML report and the diagnostics look at, read once from a sweep directory.

The ranking and the stage files come from the journal and stages/*.json (cheap at any size);
per-epoch metrics are read only for the few top runs that are drawn or diagnosed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hpsearch.report.diagnostics import Finding, diagnose
from hpsearch.report.frames import open_sweep, runs_frame, stage_files
from hpsearch.store.sweepdir import Store

TOP_CURVES = 5  # runs whose curves are drawn and diagnosed


@dataclass
class SweepData:
    root: str
    store: Store
    sweep: Any
    runs: pd.DataFrame  # ranked, see frames.runs_frame
    stages: list[dict[str, Any]]  # stages/stage-<k>.json
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # top runs' metrics.jsonl

    @property
    def metric(self) -> str:
        return self.sweep.metric.name

    def findings(self) -> list[Finding]:
        return diagnose(self.runs, self.stages, self.curves, len(self.sweep.stages))


def top_curves(store: Store, runs: pd.DataFrame, n: int = TOP_CURVES) -> dict[str, list[dict[str, Any]]]:
    """Per-epoch metrics of the n best finished runs, in ranking order."""
    if runs.empty:
        return {}
    fin = runs[runs["status"] == "finished"].head(n)
    return {t: store.metrics(t) for t in fin["trial"]}


def findings_for(
    store: Store, sweep: Any, runs: pd.DataFrame, stages: list[dict[str, Any]], n: int = TOP_CURVES
) -> list[Finding]:
    return diagnose(runs, stages, top_curves(store, runs, n), len(sweep.stages))


def load(root: str, stage: int | None = None, n_curves: int = TOP_CURVES) -> SweepData:
    store, sweep = open_sweep(root)
    return of_store(root, store, sweep, stage, n_curves)


def of_store(root: str, store: Store, sweep: Any, stage: int | None = None, n_curves: int = TOP_CURVES) -> SweepData:
    """The data of an open (and refreshed) store: report, plots and HTML share one read."""
    runs = runs_frame(store.state, sweep.metric, stage=stage)  # ranks 1..n within the stage, as `report`
    stages = [s for s in stage_files(store) if stage is None or s.get("stage") == stage]
    return SweepData(root, store, sweep, runs, stages, top_curves(store, runs, n_curves))
