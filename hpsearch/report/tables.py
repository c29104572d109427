"""The report as text: the ranked runs as a table, CSV or JSON; border flags; range history.

The data comes from `frames` and `sweepdata`; this module only formats it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pandas as pd

from hpsearch.gcpause import bulk
from hpsearch.report import branches, rungs
from hpsearch.report.diagnostics import findings_text
from hpsearch.report.frames import add_checkpoints
from hpsearch.report.repeats import config_columns, configs_frame, has_repeats
from hpsearch.report.sweepdata import TOP_CURVES, SweepData, load
from hpsearch.search import space as sp
from hpsearch.search.config import Metric


def format_value(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 else sp.fmt(v)
    return str(v)


@bulk
def text_table(df: pd.DataFrame, columns: list[str], max_width: int = 60) -> str:
    """A plain, aligned table (no dependency beyond pandas): numeric columns right-aligned, text
    and the last column left-aligned."""
    # column by column, each formatted, measured and padded in one pass: a 100,000-row report is
    # a million cells, so per-cell work is one formatting call and one pad (iterrows: ~50 us a row)
    padded = []
    for i, c in enumerate(columns):
        values = df[c].tolist() if c in df else [None] * len(df)
        kinds = set(map(type, values))
        cells = _column_cells(values, kinds, c)
        width = max([len(c), *map(len, cells)])
        if width > max_width:
            cells = [s[:max_width] for s in cells]
            width = max([len(c), *map(len, cells)])
        pad = str.rjust if i < len(columns) - 1 and _numeric(kinds, cells) else str.ljust
        padded.append([pad(c, width), "-" * width, *[pad(s, width) for s in cells]])
    return "\n".join(map("  ".join, zip(*padded)))


def _column_cells(values: list[Any], kinds: set[type], col: str) -> list[str]:
    """format_value (for a parameter column, sp.fmt) of each value. Columns of one number type, the
    common case, are formatted in one expression per column rather than a call per cell."""
    if kinds <= {int, str}:
        return list(map(str, values))
    if kinds == {float} and not col.startswith("p."):
        return [f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 else format_value(v) for v in values]
    if kinds == {float}:
        return [
            (f"{v:.1e}" if a < 1e-2 or a >= 1e4 else f"{v:.4g}") if 0 < (a := abs(v)) < math.inf else _param(v)
            for v in values
        ]
    float_text = _param if col.startswith("p.") else format_value
    return [v if type(v) is str else float_text(v) if type(v) is float else format_value(v) for v in values]


def _param(v: float) -> str:
    """A parameter's value; NaN is a parameter the run does not have (a conditional one): "-"."""
    return "-" if v != v else sp.fmt(v)


def _numeric(kinds: set[type], cells: list[str]) -> bool:
    """Whether every cell reads as a number (or "-"): said by the values' types when they are all
    numbers or missing, else by parsing the text."""
    if kinds <= {int, float, type(None), type(pd.NA)}:
        return True

    def isnum(s: str) -> bool:
        try:
            float(s)
            return True
        except ValueError:
            return s == "-"

    return all(isnum(s) for s in cells)


_CSV_SPECIAL = re.compile(r'[,"\n]')  # what pandas' (csv's) minimal quoting quotes
_MISSING = {type(None), type(pd.NA)}


@bulk
def csv_text(df: pd.DataFrame) -> str:
    """The frame as CSV, as `df.to_csv(index=False)` writes it (minimal quoting, missing values
    empty, floats in full precision), less its final newline. Written column by column: pandas'
    writer takes about twice as long on a 100,000-row report."""
    cols = [_csv_column(df[c].tolist()) for c in df.columns]
    return "\n".join([",".join(map(_csv_quote, map(str, df.columns))), *map(",".join, zip(*cols))])


def _csv_column(values: list[Any]) -> list[str]:
    kinds = set(map(type, values))
    if kinds <= {int}:
        return list(map(str, values))
    if kinds <= {float}:
        return [repr(v) if v == v else "" for v in values]
    if kinds <= {int} | _MISSING:
        return ["" if type(v) in _MISSING else str(v) for v in values]
    if kinds <= {str} | _MISSING:
        text = values if kinds <= {str} else ["" if type(v) in _MISSING else v for v in values]
        return list(map(_csv_quote, text)) if _CSV_SPECIAL.search("".join(text)) else text
    return ["" if type(v) in _MISSING or (type(v) is float and v != v) else _csv_quote(str(v)) for v in values]


def _csv_quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if _CSV_SPECIAL.search(s) else s


def ranking_columns(df: pd.DataFrame, metric: str, ranked: pd.DataFrame | None = None) -> list[str]:
    """The columns a ranking shows: the parameters that vary among all the `ranked` runs (default
    `df`; so `--top 1` still shows the searched ones), `parent` when a shown run was promoted, and
    `reason` (last) when a shown run failed or diverged."""
    ranked = df if ranked is None else ranked
    params = [c for c in df.columns if c.startswith("p.") and c in ranked and ranked[c].nunique(dropna=True) > 1]
    parent = ["parent"] if "parent" in df and df["parent"].notna().any() else []
    cols = ["rank", "stage", "trial", *parent, *params, metric, "best_epoch", "status", "device", "checkpoint"]
    if "reason" in df.columns and "status" in df.columns and df["status"].isin(["failed", "diverged"]).any():
        cols.append("reason")  # last: a long reason is cut at the table's column width
    return cols


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
    for s in stages:  # the plan's notes, already "stage k: ..."
        lines += [f"  {note}" for note in s.get("notes") or ()]
    return "\n".join(lines)


def enqueued_text(stages: list[dict[str, Any]]) -> str:
    """The configurations run from `enqueue:` (stage files' `enqueued`), with values outside their range."""
    lines = []
    for s in stages:
        for e in s.get("enqueued") or ():
            why = "; ".join(e.get("outside") or ()) or "inside the ranges"
            lines.append(f"  stage {s['stage']}: {e['trial']} ({why})")
    return "Enqueued configurations:\n" + "\n".join(lines) if lines else ""


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as JSON-ready dicts with every float exact (pandas' to_json rounds to 15
    significant digits, so `report --format json` disagreed with the CSV and `hpsearch best`);
    missing and non-finite values as None."""
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_json(
    df: pd.DataFrame,
    stages: list[dict[str, Any]],
    metric: Metric,
    name: str,
    diagnostics: list[dict[str, str]] | None = None,
    configs: pd.DataFrame | None = None,
    early_stopping: list[dict[str, Any]] | None = None,
    branch_rows: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Schema 1 (stable, see README "Reports and plots"): {schema, sweep, metric: {name, goal},
    runs: [row...], stages: [stage-k.json...], diagnostics: [{scope, kind, message, advice}...]},
    and `configs: [row...]` (one per configuration) when trials repeat configurations,
    `early_stopping: [report.rungs.summary row...]` when a stage stops trials early,
    `branches: [report.branches.summary row...]` when parameters are conditional; `extra` adds
    keys (`checks`, `importance`)."""
    runs = records(df)
    for r in runs:
        r["params"] = {k[2:]: r.pop(k) for k in list(r) if k.startswith("p.")}
        r["value"] = r.get(metric.name)
    doc = {
        "schema": 1,
        "sweep": name,
        "metric": {"name": metric.name, "goal": metric.goal},
        "runs": runs,
        "stages": stages,
        "diagnostics": diagnostics or [],
    }
    doc.update(extra or {})
    if configs is not None:
        doc["configs"] = json.loads(configs.to_json(orient="records", double_precision=15))
    if early_stopping:
        doc["early_stopping"] = early_stopping
    if branch_rows:
        doc["branches"] = branch_rows
    return json.dumps(doc, indent=1)


def render(
    root: str,
    fmt: str = "table",
    stage: int | None = None,
    top: int | None = None,
    notes: list[str] | None = None,
    data: SweepData | None = None,
) -> str:
    """The report as text; on an empty sweep a note goes to `notes` (csv/json stay parseable).
    `data`: the sweep already read for plots or a watch round (`sweepdata.of_store`, same `stage`)."""
    if data is None:
        data = load(root, stage, n_curves=0 if fmt == "csv" else TOP_CURVES, checkpoints=fmt != "table")
    store, sweep, df, stages = data.store, data.sweep, data.runs, data.stages
    ranked = df
    if top is not None:
        df = df.head(top)
    if fmt == "table" and not df.empty and "checkpoint" not in df:
        df = add_checkpoints(df, store.state, sweep.metric.name, store.checkpoint_files())
    empty_note = f"{sweep.name}: no runs yet (the sweep has not planned any trial)" if df.empty else None
    if empty_note and notes is not None:
        notes.append(empty_note)
    if fmt == "csv":
        return csv_text(df)
    findings = data.findings()
    if fmt == "json":
        configs = configs_frame(store.state, sweep.metric, stage) if has_repeats(store.state) else None
        stopping = rungs.summary(store.state, sweep, stage)
        per_branch = branches.summary(ranked, stages, sweep.metric.name, sweep.metric.goal == "maximize")
        extra: dict[str, Any] = {
            "checks": [{"check": c, "checked": why is None, "why_not": why} for c, why in data.checks()]
        }
        from hpsearch.report.importance import importance  # imports optuna: only where shown

        extra["importance"] = importance(data)
        return to_json(
            df, stages, sweep.metric, sweep.name, [f.to_dict() for f in findings], configs, stopping, per_branch, extra
        )
    if df.empty:
        return text_table(df, ranking_columns(df, sweep.metric.name)) + f"\n\nnote: {empty_note}"
    counts = df["status"].value_counts().to_dict()
    head = (
        f"{sweep.name}: {len(df)} run(s) shown, "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; ranked by {sweep.metric.name} ({sweep.metric.goal})"
    )
    parts = [head, text_table(df, ranking_columns(df, sweep.metric.name, ranked))]
    if has_repeats(store.state):
        cf = configs_frame(store.state, sweep.metric, stage)
        if len(cf):
            parts.append(
                f"Configurations (ranked by the mean of their repeats' best {sweep.metric.name}):\n"
                + text_table(cf.head(top) if top else cf, config_columns(cf, sweep.metric.name))
            )
    hist = history_text(stages)
    if hist:
        parts.append(hist)
    per_branch_text = branches.text(
        branches.summary(ranked, stages, sweep.metric.name, sweep.metric.goal == "maximize"), sweep.metric.name
    )
    if per_branch_text:
        parts.append(per_branch_text)
    enq = enqueued_text(stages)
    if enq:
        parts.append(enq)
    stopping_text = rungs.text(rungs.summary(store.state, sweep, stage), sweep.metric.name)
    if stopping_text:
        parts.append(stopping_text)
    parts.append(findings_text(findings, data.checks()))
    if store.state.bad_lines:
        parts.append(f"note: {store.state.bad_lines} torn or unreadable journal line(s) were skipped")
    return "\n\n".join(parts)
