"""Conditional parameters in the report: each branch (a value of a parameter that others depend on)
with its runs and its best, read from the runs frame and the stage files' ranges."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hpsearch.search import conditional as cond


def summary(df: pd.DataFrame, stages: list[dict[str, Any]], metric: str, maximize: bool) -> list[dict[str, Any]]:
    """One dict per branch: `parent`, `value` (as in the keys), `params` (the conditional keys of the
    branch in the first stage shown), `runs`, `finished`, `best` and `best_trial` (finished runs)."""
    keys = [k for s in stages for k in s.get("ranges", {})]
    parents: dict[str, dict[str, list[str]]] = {}
    for k in dict.fromkeys(keys):
        for parent, vals in cond.conditions(k):
            for v in vals:
                parents.setdefault(parent, {}).setdefault(v, []).append(k)
    out = []
    for parent, branches in parents.items():
        col = f"p.{parent}"
        if col not in df:
            continue
        texts = [cond.text(v) if v is not None and v == v else None for v in df[col]]
        for value, branch_keys in branches.items():
            rows = df[[t == value for t in texts]]
            fin = rows[rows["status"] == "finished"]
            scores = [float(x) for x in fin[metric] if x is not None and not math.isnan(float(x))]
            best = (max(scores) if maximize else min(scores)) if scores else None
            best_trial = fin[fin[metric] == best]["trial"].iloc[0] if best is not None else None
            out.append(
                {
                    "parent": parent,
                    "value": value,
                    "params": sorted({cond.public(k) for k in branch_keys}),
                    "runs": len(rows),
                    "finished": len(fin),
                    "best": best,
                    "best_trial": best_trial,
                }
            )
    return out


def text(rows: list[dict[str, Any]], metric: str) -> str:
    """The branches as lines ("" when the sweep has no conditional parameter)."""
    if not rows:
        return ""
    lines = ["Branches (conditional parameters):"]
    width = max(len(f"{r['parent']}={r['value']}") for r in rows)
    for r in rows:
        best = "-" if r["best"] is None else f"{r['best']:.4f} ({r['best_trial']})"
        label = f"{r['parent']}={r['value']}"
        lines.append(
            f"  {label.ljust(width)}  with {', '.join(r['params'])}: "
            f"{r['runs']} run(s), {r['finished']} finished, best {metric} {best}"
        )
    return "\n".join(lines)
