"""`hpsearch best DIR`: the best configuration(s) of a sweep with their checkpoint paths, as YAML,
JSON or a command line to paste (`--lr=0.034 --reg=2e-05`)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from hpsearch.errors import HpsearchError
from hpsearch.report.frames import best_checkpoint, open_sweep
from hpsearch.store.standing import configurations

FORMATS = ("yaml", "json", "args")


def best_configs(root: str, top: int) -> list[dict[str, Any]]:
    """The `top` best configurations in ranking order (`store.standing.configurations`, the ranking
    of the master's `Done.` line), one row each for its best run: rank, trial, stage, the metric's
    value at its best epoch, best_epoch, params, checkpoint (absolute path, None when deleted or
    never written); with repeats, also `mean` (what ranked it) and `repeats`; `status: pruned` for
    one stopped early (ranked after the finished ones). A configuration that was promoted is
    listed once, for its latest stage.

    Raises:
        StoreError: `root` is not a sweep directory; HpsearchError: no run finished yet.
    """
    store, sweep = open_sweep(root)
    metric = sweep.metric.name
    ranking = configurations(store.state, sweep.metric)[:top]
    if not ranking:
        raise HpsearchError(
            f"{root}: no finished run (hpsearch master status {root} says whether the sweep still runs, "
            f"hpsearch report {root} why its runs failed)"
        )
    out = []
    for i, s in enumerate(ranking, 1):
        t = s.run
        name = best_checkpoint(store.state, t, metric)
        path = store.layout.checkpoint(name) if name else None
        row = {
            "rank": i,
            "trial": t.trial,
            "stage": int(t.stage),
            metric: float(t.best),
            "best_epoch": int(t.best_epoch),
            "params": dict(t.params),
            "checkpoint": str(path.resolve()) if path is not None and path.exists() else None,
        }
        if s.ranked.count > 1:
            row.update(mean=float(s.ranked.mean), repeats=int(s.ranked.count))
        if s.ranked.pruned:
            row["status"] = "pruned"  # stopped early (early_stop); ranked after every finished one
        out.append(row)
    return out


def arg_value(v: Any) -> str:
    """One value on a command line, exactly as `${args}` gave it to the trial (trainables/command.py:
    numbers in Python's shortest exact form, so the line reproduces the run; lists as JSON)."""
    from hpsearch.trainables.command import text

    return text(v)


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as `fmt` (yaml, json or args: one command line per configuration)."""
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if fmt == "args":
        return "\n".join(" ".join(f"--{k}={arg_value(v)}" for k, v in r["params"].items()) for r in rows)
    return yaml.safe_dump(rows, sort_keys=False, default_flow_style=False).rstrip()
