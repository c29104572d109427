"""Rank the runs of a sweep directory and print them: table, CSV or JSON; border flags; range history.

Reads only the journal (results are in it) and stages/*.json, never every trial's files, so a
sweep of 100,000 trials reports in about a second.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from . import space as sp
from .config import Metric
from .journal import SweepState
from .repeats import config_columns, configs_frame, has_repeats
from .store import Store, format_checkpoint, read_json

STATUS_ORDER = {"finished": 0, "running": 1, "planned": 2, "diverged": 3, "failed": 4}


def runs_frame(state: SweepState, metric: Metric, stage: int | None = None, checkpoints: bool = True) -> pd.DataFrame:
    """One row per trial (of `stage`, or all), ranked: finished by best metric, then running,
    planned, diverged, failed. `checkpoints=False` leaves out the checkpoint names (add them to the
    rows you show with `add_checkpoints`: formatting 100,000 names costs a tenth of a second)."""
    trials = [t for t in state.trials.values() if stage is None or t.stage == stage]
    if not trials:
        return pd.DataFrame(columns=["rank", "stage", "trial", "status", metric.name])
    # built column by column: a DataFrame from 100,000 row dicts costs several times more
    cols: dict[str, list[Any]] = {
        "stage": [t.stage for t in trials], "trial": [t.trial for t in trials],
        "config": [t.config for t in trials], "status": [t.state.value for t in trials],
        metric.name: [t.best for t in trials], "best_epoch": [t.best_epoch for t in trials],
        "epochs": [t.epochs_done for t in trials], "of_epochs": [t.epochs for t in trials],
        "attempts": [t.attempt for t in trials], "reason": [t.reason for t in trials],
        "parent": [t.parent for t in trials], "device": [t.device for t in trials]}
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    for k in names:
        cols[f"p.{k}"] = [t.params.get(k) for t in trials]
    if checkpoints:
        cols["checkpoint"] = [best_checkpoint(state, t, metric.name) for t in trials]
    df = pd.DataFrame(cols)
    for col in ("best_epoch", "epochs", "of_epochs", "attempts", "stage"):
        df[col] = df[col].astype("Int64")
    df["_order"] = df["status"].map(STATUS_ORDER).fillna(9)
    key = df[metric.name].astype(float)
    df["_key"] = -key if metric.goal == "maximize" else key
    df = df.sort_values(["_order", "_key", "trial"], na_position="last", kind="stable")
    df = df.drop(columns=["_order", "_key"]).reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    return df


def add_checkpoints(df: pd.DataFrame, state: SweepState, metric: str) -> pd.DataFrame:
    return df.assign(checkpoint=[best_checkpoint(state, state.trials[t], metric) for t in df["trial"]])


def best_checkpoint(state: SweepState, t: Any, metric: str) -> str | None:
    """Name of the checkpoint of a trial's best epoch (a promoted trial's early epochs are its parent's)."""
    if t.best is None or t.best_epoch is None:
        return None
    parent = state.trials.get(t.parent) if t.parent else None
    owner = parent.trial if parent is not None and t.best_epoch <= parent.epochs_done else t.trial
    return format_checkpoint(owner, t.best_epoch, metric, t.best)


def stage_files(store: Store) -> list[dict[str, Any]]:
    out = []
    for k in sorted(store.state.stages):
        doc = read_json(store.layout.stage_file(k))
        if doc is not None:
            out.append(doc)
    return out


def format_value(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 else sp.fmt(v)
    return str(v)


def text_table(df: pd.DataFrame, columns: list[str], max_width: int = 60) -> str:
    """A plain, aligned table (no dependency beyond pandas)."""
    # column by column (iterrows costs ~50 us a row), and each column's alignment decided once
    cols = [[_cell(v, c)[:max_width] for v in (df[c].tolist() if c in df else [None] * len(df))] for c in columns]
    cells = [[str(c) for c in columns], *(list(r) for r in zip(*cols))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    numeric = [_numeric(cells, i) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == len(columns) - 1 else c.rjust(w) if numeric[i] else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v: Any, col: str) -> str:
    if col.startswith("p.") and isinstance(v, float):
        return sp.fmt(v)
    return format_value(v)


def _numeric(cells: list[list[str]], i: int) -> bool:
    def isnum(s: str) -> bool:
        try:
            float(s)
            return True
        except ValueError:
            return s == "-"
    return all(isnum(r[i]) for r in cells[1:])


def ranking_columns(df: pd.DataFrame, metric: str) -> list[str]:
    params = [c for c in df.columns if c.startswith("p.") and df[c].nunique(dropna=True) > 1]
    return ["rank", "stage", "trial", *params, metric, "best_epoch", "status", "device", "checkpoint"]


def history_text(stages: list[dict[str, Any]]) -> str:
    """Ranges of each searched parameter per stage, side by side, and the border flags."""
    if not stages:
        return ""
    names = [n for n, d in stages[0]["ranges"].items() if d["kind"] != "constant"]
    lines = ["Ranges per stage:"]
    width = max((len(n) for n in names), default=4)
    for n in names:
        parts = [sp.from_dict(s["ranges"][n]).describe() if n in s["ranges"] else "-" for s in stages]
        lines.append(f"  {n.ljust(width)}  " + "  ->  ".join(parts))
    for s in stages:
        for f in s.get("border_flags", []):
            lines.append(f"  stage {s['stage']}: {f['message']}")
    return "\n".join(lines)


def to_json(df: pd.DataFrame, stages: list[dict[str, Any]], metric: Metric, name: str,
            diagnostics: list[dict[str, str]] | None = None) -> str:
    """Schema 1 (stable, see README "Reports and plots"): {schema, sweep, metric: {name, goal},
    runs: [row...], stages: [stage-k.json...], diagnostics: [{scope, kind, message, advice}...]}."""
    runs = json.loads(df.to_json(orient="records", double_precision=15))
    for r in runs:
        r["params"] = {k[2:]: r.pop(k) for k in list(r) if k.startswith("p.")}
        r["value"] = r.get(metric.name)
    return json.dumps({"schema": 1, "sweep": name, "metric": {"name": metric.name, "goal": metric.goal},
                       "runs": runs, "stages": stages, "diagnostics": diagnostics or []}, indent=1)


def open_sweep(root: str) -> tuple[Store, Any]:
    store = Store(root)
    if not store.exists():
        from .errors import StoreError
        raise StoreError(f"{root} is not a sweep directory (no journal.jsonl)")
    sweep = store.load_sweep()
    store.refresh()
    return store, sweep


def render(root: str, fmt: str = "table", stage: int | None = None, top: int | None = None,
           notes: list[str] | None = None) -> str:
    """The report as text; on an empty sweep a note goes to `notes` (csv/json stay parseable)."""
    from .sweepdata import findings_for

    store, sweep = open_sweep(root)
    df = runs_frame(store.state, sweep.metric, stage=stage, checkpoints=fmt != "table")
    ranked = df
    if top is not None:
        df = df.head(top)
    if fmt == "table" and not df.empty:
        df = add_checkpoints(df, store.state, sweep.metric.name)
    stages = [s for s in stage_files(store) if stage is None or s["stage"] == stage]
    empty_note = f"{sweep.name}: no runs yet (the sweep has not planned any trial)" if df.empty else None
    if empty_note and notes is not None:
        notes.append(empty_note)
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    findings = findings_for(store, sweep, ranked, stages)
    if fmt == "json":
        out = to_json(df, stages, sweep.metric, sweep.name, [f.to_dict() for f in findings])
        if has_repeats(store.state):   # `configs`: one record per configuration (repeats: R > 1)
            doc = json.loads(out)
            doc["configs"] = json.loads(configs_frame(store.state, sweep.metric, stage).to_json(orient="records", double_precision=15))
            out = json.dumps(doc, indent=1)
        return out
    if df.empty:
        return text_table(df, ranking_columns(df, sweep.metric.name)) + f"\n\nnote: {empty_note}"
    counts = df["status"].value_counts().to_dict()
    head = (f"{sweep.name}: {len(df)} run(s) shown, " + ", ".join(f"{v} {k}" for k, v in counts.items())
            + f"; ranked by {sweep.metric.name} ({sweep.metric.goal})")
    parts = [head, text_table(df, ranking_columns(df, sweep.metric.name))]
    if has_repeats(store.state):
        cf = configs_frame(store.state, sweep.metric, stage)
        if len(cf):
            parts.append(f"Configurations (ranked by the mean of their repeats' best {sweep.metric.name}):\n"
                         + text_table(cf.head(top) if top else cf, config_columns(cf, sweep.metric.name)))
    hist = history_text(stages)
    if hist:
        parts.append(hist)
    from .diagnostics import findings_text
    parts.append(findings_text(findings))
    if store.state.bad_lines:
        parts.append(f"note: {store.state.bad_lines} torn or unreadable journal line(s) were skipped")
    return "\n\n".join(parts)
