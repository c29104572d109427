"""The sweep read as data, once: the reading API of notebooks (`hpsearch.open`), `report`, the plots,
the HTML page, the diagnostics and the exporters (TensorBoard, MLflow).

    import hpsearch
    sw = hpsearch.open("runs/demo")
    sw.runs                      # ranked runs, one row per trial (see `frames.runs_frame`)
    sw.history("s2-t0003")       # that trial's per-epoch metrics
    sw.ranges                    # every stage's range of every parameter, with its border flag
    sw.best                      # the best finished run: trial, value, params, checkpoint

The ranking and the stage files come from the journal and stages/*.json (cheap at any size);
per-epoch metrics are read only when asked for (`history`, `histories`) and, up front, for the
few top runs that are drawn or diagnosed (`curves`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hpsearch.errors import HpsearchError
from hpsearch.report.diagnostics import Finding, checks, diagnose
from hpsearch.report.frames import best_checkpoint, open_sweep, runs_frame, stage_files
from hpsearch.search import space as sp
from hpsearch.store.standing import configurations
from hpsearch.store.sweepdir import Store

TOP_CURVES = 5  # runs whose curves are drawn and diagnosed
# keys of a metrics.jsonl line that are hpsearch's bookkeeping, not metrics
BOOKKEEPING = ("epoch", "attempt", "checkpoint", "time", "adopted", "inherited")


@dataclass
class SweepData:
    """One sweep directory read as data (build it with `hpsearch.open(DIR)` or `load`).

    Attributes:
        root: the sweep directory as given.
        store: the `Store` it was read through (refresh it and call `load` again for newer data).
        sweep: the validated sweep file as started (`search.config.Sweep`).
        runs: the ranked runs, one row per trial: a pandas DataFrame with the columns
            `rank` (int, 1 = best), `stage` (Int64), `trial` (str, e.g. "s2-t0007"), `config`
            (str: the trial id without its repeat), `status` (str: finished, running, planned,
            diverged, failed), `<metric>` (float: the best value of the sweep's metric, NaN
            before a result), `best_epoch`, `epochs` (done), `of_epochs` (to reach), `attempts`
            (Int64), `reason` (str: why a run failed, diverged or was stopped), `parent` (str:
            the trial a promoted trial continues), `device` (str), one `p.<name>` column per
            parameter (the sampled or fixed value, in the parameter's own unit), and `checkpoint`
            (str: the best epoch's checkpoint file name under `<root>/checkpoints/`). A text
            column is missing (`pd.isna`) where a run has no such value. Failed and diverged
            runs rank last.
        stages: the stage files stages/stage-<k>.json as dicts, in stage order (`ranges`,
            `ranking`, `border_flags`, ...; see docs/ARCHITECTURE.md).
        curves: per-epoch metrics (metrics.jsonl lines as dicts) of the best few finished runs,
            in ranking order; what the plots draw and the diagnostics read.
    """

    root: str
    store: Store
    sweep: Any
    runs: pd.DataFrame
    stages: list[dict[str, Any]]
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stage: int | None = None  # opened for one stage (`load(root, stage=k)`): `runs` and `best` are its

    @property
    def metric(self) -> str:
        """The name of the sweep's metric (a column of `runs`)."""
        return str(self.sweep.metric.name)

    @property
    def goal(self) -> str:
        """ "maximize" or "minimize"."""
        return str(self.sweep.metric.goal)

    def findings(self) -> list[Finding]:
        """The diagnostics (border flags, divergence, fit, learning rate), sweep-wide first."""
        return diagnose(self.runs, self.stages, self.curves, len(self.sweep.stages), self.metric, self.goal)

    def checks(self) -> list[tuple[str, str | None]]:
        """Each diagnostic and why it could not be checked on this sweep (None: it was checked)."""
        return checks(self.runs, self.stages, self.curves, self.metric)

    # -- per-epoch data ------------------------------------------------------------------------
    def history(self, trial: str) -> pd.DataFrame:
        """One trial's per-epoch record: one row per epoch, in epoch order.

        Columns: `epoch` (int, 1-based), `attempt` (int: the attempt that trained the epoch; an
        inherited epoch's is its trainer's), every metric it reported (float, e.g.
        `val_acc`, `train_loss`, `lr`, `seconds`), `checkpoint` (str or None: the epoch's
        checkpoint file name, deleted by retention unless it is the best or last), `time` (float,
        Unix seconds when the epoch was recorded), and any extra data it kept (e.g. `losses`: the
        per-batch training losses of the built-in classifier, a list). A promoted trial's first
        rows are its parent's epochs, their `inherited` column naming the trial that trained them
        (NaN on the trial's own rows; their checkpoints are the parent's: see that trial's history).
        Empty (no rows) before the first epoch.

        Raises:
            HpsearchError: no trial of that id in the sweep.
        """
        if trial not in self.store.state.trials:
            raise HpsearchError(f"{self.root}: no trial {trial!r} (trials look like s1-t0000)")
        lines = self.store.metrics(trial)
        if not lines:
            return pd.DataFrame(columns=["epoch", "attempt"])
        df = pd.DataFrame(lines)
        # epoch, attempt, the metrics, then the bookkeeping and the extras (lines put extras first)
        metrics = [c for c in df.columns if c not in BOOKKEEPING and df[c].map(_is_number).all()]
        first = [c for c in ("epoch", "attempt") if c in df] + metrics
        return df[first + [c for c in df.columns if c not in first]]

    def histories(self, trials: list[str] | None = None) -> pd.DataFrame:
        """Per-epoch records of many trials (default every trial with a result) in one long frame:
        the columns of `history` with `trial` and `stage` in front, rows by ranking then epoch. A
        promoted trial's inherited rows repeat its parent's (drop rows with `inherited` set to count
        each trained epoch once)."""
        if trials is None:
            trials = self.runs.loc[self.runs["epochs"].fillna(0) > 0, "trial"].tolist() if len(self.runs) else []
        frames = []
        stage_of = self.store.state.trials
        for t in trials:
            h = self.history(t)
            if len(h):
                h.insert(0, "stage", stage_of[t].stage)
                h.insert(0, "trial", t)
                frames.append(h)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial", "stage", "epoch"])

    def metric_names(self) -> list[str]:
        """Numeric metrics the top runs report per epoch (the sweep's metric first), e.g.
        ["val_acc", "train_loss", "val_loss", "train_acc", "lr", "seconds"]."""
        names = [self.metric]
        for curve in self.curves.values():
            for line in curve:
                for k, v in line.items():
                    if k not in BOOKKEEPING and k not in names and _is_number(v):
                        names.append(k)
        return names

    # -- stages --------------------------------------------------------------------------------
    @property
    def ranges(self) -> pd.DataFrame:
        """Every stage's range of every parameter: one row per (stage, parameter).

        Columns: `stage` (int), `param` (str), `kind` (numeric, categorical, constant, or the
        distribution of a sampled-only one such as normal), `low`, `high` (float, the range's
        ends in the parameter's unit; NaN for a categorical), `log` (bool: sampled on a log
        scale), `integer` (bool), `values` (list or None: a categorical's choices or a constant's
        value), `range` (str, as `report` prints it), `flag` (str: "low" or "high" when the
        stage's best value lay on that border of this range; missing, `pd.isna`, otherwise),
        `flag_message` (str, or missing).
        """
        rows = []
        for s in self.stages:
            flags = {f.get("param"): f for f in s.get("border_flags") or []}
            for name, d in (s.get("ranges") or {}).items():
                dim = sp.from_dict(d)
                f = flags.get(name)
                lohi = (float(dim.low), float(dim.high)) if isinstance(dim, sp.Numeric) else (math.nan, math.nan)
                values = (
                    list(dim.values)
                    if isinstance(dim, sp.Categorical)
                    else [dim.value]
                    if isinstance(dim, sp.Constant)
                    else None
                )
                rows.append(
                    {
                        "stage": int(s["stage"]),
                        "param": name,
                        "kind": d.get("kind"),
                        "low": lohi[0],
                        "high": lohi[1],
                        "log": bool(getattr(dim, "log", False)),
                        "integer": bool(getattr(dim, "integer", False)),
                        "values": values,
                        "range": dim.describe(),
                        "flag": f.get("side") if f else None,
                        "flag_message": f.get("message") if f else None,
                    }
                )
        cols = ["stage", "param", "kind", "low", "high", "log", "integer", "values", "range", "flag", "flag_message"]
        return pd.DataFrame(rows, columns=cols)

    # -- the answer ----------------------------------------------------------------------------
    @property
    def best(self) -> dict[str, Any] | None:
        """The best configuration's best run, or None before a run has a result: the first of
        `store.standing.configurations` (what `hpsearch best` and the master's `Done.` line name:
        mean over repeats, a promoted configuration at its latest stage). {trial, stage, value (the
        sweep's metric at the run's best epoch), metric, epoch, params (dict: name -> value),
        parent, checkpoint (absolute path of its best epoch's checkpoint, or None when retention
        deleted it or none was written)}. Opened for one stage (`stage=k`): that stage's best run,
        as `runs` ranks it."""
        state = self.store.state
        if self.stage is not None:
            ranked = self.runs[self.runs[self.metric].notna()] if self.metric in self.runs else self.runs.iloc[:0]
            if ranked.empty:
                return None
            t = state.trials[str(ranked.iloc[0]["trial"])]
        else:
            ranking = configurations(state, self.sweep.metric)  # ranked runs: each has a best
            if not ranking:
                return None
            t = ranking[0].run
        if t.best is None:  # (a ranked run has a value)
            return None
        name = best_checkpoint(state, t, self.metric)
        path = Path(self.store.layout.checkpoint(name)).resolve() if name else None
        return {
            "trial": t.trial,
            "stage": int(t.stage),
            "value": float(t.best),
            "metric": self.metric,
            "epoch": None if t.best_epoch is None else int(t.best_epoch),
            "params": dict(t.params),
            "parent": t.parent,
            "checkpoint": str(path) if path is not None and Path(path).is_file() else None,
        }


def params_of(row: Any) -> dict[str, Any]:
    """{name: value} of a `runs` row's `p.<name>` columns (missing values left out)."""
    out = {}
    for k, v in row.items():
        if str(k).startswith("p.") and not (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))):
            out[str(k)[2:]] = v.item() if hasattr(v, "item") else v  # numpy scalars as Python numbers
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def top_curves(store: Store, runs: pd.DataFrame, n: int = TOP_CURVES) -> dict[str, list[dict[str, Any]]]:
    """Per-epoch metrics of the n best finished runs, in ranking order."""
    if runs.empty:
        return {}
    fin = runs[runs["status"] == "finished"].head(n)
    return {t: store.metrics(t) for t in fin["trial"]}


def load(root: str, stage: int | None = None, n_curves: int = TOP_CURVES, checkpoints: bool = True) -> SweepData:
    """Read the sweep in directory `root` (only `stage`'s runs and stage file when given).

    Args:
        root: a sweep directory (the one `hpsearch master start --dir` made).
        stage: only this stage's runs (ranked 1..n within it) and stage file.
        n_curves: how many of the best finished runs' per-epoch metrics to read up front.
        checkpoints: name each run's best checkpoint in `runs` (100,000 names cost ~0.1 s).
    Raises:
        StoreError: `root` is not a sweep directory.
        ConfigError: its sweep.yaml no longer validates.
    """
    store, sweep = open_sweep(root)
    return of_store(root, store, sweep, stage, n_curves, checkpoints)


def of_store(
    root: str,
    store: Store,
    sweep: Any,
    stage: int | None = None,
    n_curves: int = TOP_CURVES,
    checkpoints: bool = True,
) -> SweepData:
    """The data of an open (and refreshed) store: report, plots and HTML share one read.

    Raises:
        HpsearchError: `stage` is not one of the sweep's stages (1..n)."""
    if stage is not None and not 1 <= stage <= len(sweep.stages):
        raise HpsearchError(
            f"stage {stage} does not exist: {sweep.name} has {len(sweep.stages)} stage(s), numbered from 1"
        )
    present = store.checkpoint_files() if checkpoints else None
    runs = runs_frame(store.state, sweep.metric, stage=stage, checkpoints=checkpoints, present=present)
    stages = [s for s in stage_files(store) if stage is None or s.get("stage") == stage]
    return SweepData(root, store, sweep, runs, stages, top_curves(store, runs, n_curves), stage)
