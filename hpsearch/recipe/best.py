"""`hpsearch best DIR`: the best configuration(s) of a sweep with their checkpoint paths, as YAML,
JSON or a command line to paste (`--lr=0.034 --reg=2e-05`)."""

from __future__ import annotations

import json
import math
from typing import Any

import yaml

from hpsearch.errors import HpsearchError
from hpsearch.report.frames import add_checkpoints, open_sweep, runs_frame

FORMATS = ("yaml", "json", "args")


def best_configs(root: str, top: int) -> list[dict[str, Any]]:
    """The `top` best configurations (one row each, its best trial), in ranking order: rank, trial,
    stage, the metric's value, best_epoch, params, checkpoint (absolute path, None when deleted).

    Raises:
        StoreError: `root` is not a sweep directory; HpsearchError: no run finished yet.
    """
    store, sweep = open_sweep(root)
    metric = sweep.metric.name
    df = runs_frame(store.state, sweep.metric, checkpoints=False)
    fin = df[df["status"] == "finished"].drop_duplicates("config").head(top)
    if fin.empty:
        raise HpsearchError(f"{root}: no finished run yet (hpsearch master status {root} shows progress)")
    fin = add_checkpoints(fin, store.state, metric)
    out = []
    for i, (_, r) in enumerate(fin.iterrows(), 1):
        t = store.state.trials[r["trial"]]
        path = store.layout.checkpoint(r["checkpoint"]) if r["checkpoint"] else None
        out.append(
            {
                "rank": i,
                "trial": t.trial,
                "stage": int(t.stage),
                metric: float(r[metric]),
                "best_epoch": int(r["best_epoch"]),
                "params": dict(t.params),
                "checkpoint": str(path.resolve()) if path is not None and path.exists() else None,
            }
        )
    return out


def arg_value(v: Any) -> str:
    """One value on a command line: floats short but exact to 4 significant digits, lists as JSON."""
    if isinstance(v, bool) or v is None or isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.4g}"
    return str(v)


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as `fmt` (yaml, json or args: one command line per configuration)."""
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt == "args":
        return "\n".join(" ".join(f"--{k}={arg_value(v)}" for k, v in r["params"].items()) for r in rows)
    return yaml.safe_dump(rows, sort_keys=False, default_flow_style=False).rstrip()
