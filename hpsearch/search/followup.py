"""The follow-up sweep of a finished one (step 7 of the recipe: "go back to step 5"), pure.

From the last stage's runs: the ranges narrowed around its top runs, with the border moves of
a stage boundary applied (a best value on a border moves that side outward, as between stages),
and stages suited to continue: a first stage at the last stage's epochs (its runs and the new
ones compare at equal training), then a finer one trained twice as long.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hpsearch.search import conditional as cond
from hpsearch.search import divergence, evidence, stages
from hpsearch.search import space as sp
from hpsearch.search.config import Stage, Sweep


def next_space(
    sweep: Sweep, last_space: sp.Space, runs: list[stages.Run], history: list[stages.Run] | None = None
) -> tuple[sp.Space, list[stages.BorderFlag], list[stages.Ranked], list[str]]:
    """(ranges, border flags, ranking, lines saying what else moved or held the ranges) for the
    follow-up from the last stage's ranges and runs.

    Narrowed as `stages.plan_stage` narrows between stages, around the top 20% (at least 3);
    with fewer than `stages.MIN_TO_NARROW` ranked configurations the ranges are not narrowed, moved only
    past a flagged border (a line says so); with no finished run the ranges stay. A learning
    rate whose whole range the update-to-weight ratio of `history` (every run of the sweep;
    default `runs`) says is too low moves as between stages (`stages.too_low_moves`); the lines
    say so, or that on_border: keep or bounds hold it."""
    ranked = stages.rank(runs, sweep.metric)
    if not ranked:
        return dict(last_space), [], [], []
    every = runs if history is None else history
    seeds = {r.trial: r.seed for r in every}
    overall = evidence.without_diverged(stages.rank(every, sweep.metric), every, seeds)
    new = stages.next_ranges(sweep, last_space, ranked, Stage(trials=1, epochs=1), every, overall, seeds)
    held = cond.parents(last_space)  # their values carry other parameters' branches: kept whole
    space = {name: last_space[name] if name in held else dim for name, dim in new.space.items()}
    lines = [stages.few_note(len(ranked), new.flags)] if len(ranked) < stages.MIN_TO_NARROW else []
    lines += [
        f"{name}: most runs at {name} >= {sp.sci(t)} diverged: the follow-up's range stops there"
        for name, t in divergence.thresholds(last_space, every).items()
        if isinstance(now := space[name], sp.Numeric)
        and isinstance(was := last_space[name], sp.Numeric)
        and now.high <= t < was.high
    ]
    moves = [m.says("the follow-up") for m in new.off]
    return space, new.flags, ranked, lines + moves + new.held + new.kept + new.lowered


def next_stages(last: Stage) -> list[dict[str, Any]]:
    """Stage 1 at the last stage's epochs (at least 10 trials); stage 2 half as many, trained twice
    as long; both with the last stage's `repeats` when it had more than one."""
    first = max(10, last.trials)
    repeats = {"repeats": last.repeats} if last.repeats > 1 else {}
    return [
        {"trials": first, "epochs": last.epochs, **repeats},
        {
            "trials": max(3, math.ceil(first / 2)),
            "epochs": 2 * last.epochs,
            "top": max(3, math.ceil(first / 5)),
            **repeats,
        },
    ]


def param_spec(dim: sp.Dim, old: dict[str, Any]) -> dict[str, Any]:
    """A parameter's sweep-file form (W&B spellings) for a range; `old` (its spec in the finished
    sweep) keeps its hard `bounds`, `on_border` and anything the range cannot express."""
    keep = {k: v for k, v in old.items() if k in ("bounds", "on_border")}
    if isinstance(dim, sp.Numeric):
        # a grid (q) is kept whether its values are integers (an integer q from integer min and max,
        # which paramspec reads back as integer) or not: int_* distributions would drop it
        if dim.log:
            name = (
                "q_log_uniform_values" if dim.q else "int_log_uniform_values" if dim.integer else "log_uniform_values"
            )
        else:
            name = "q_uniform" if dim.q else "int_uniform" if dim.integer else "uniform"
        lo, hi = (int(dim.low), int(dim.high)) if dim.integer else (_short(dim.low), _short(dim.high))
        spec: dict[str, Any] = {"distribution": name, "min": lo, "max": hi}
        if dim.q:
            spec["q"] = int(dim.q) if dim.integer and float(dim.q).is_integer() else dim.q
        return {**spec, **keep}
    if isinstance(dim, sp.Categorical):
        return {"values": list(dim.values)}
    if isinstance(dim, sp.Normal):
        name = ("q_" if dim.q else "") + ("log_normal" if dim.log else "normal")
        return {
            "distribution": name,
            "mu": _short(dim.mu),
            "sigma": _short(dim.sigma),
            **({"q": dim.q} if dim.q else {}),
        }
    return dict(old)


def _short(x: float) -> float:
    """Six significant digits: exact enough for a range's edge, readable in a sweep file."""
    return float(f"{x:.6g}")


def followup_doc(
    raw: dict[str, Any], sweep: Sweep, space: sp.Space, last: Stage, warm_start: str | None = None
) -> dict[str, Any]:
    """The follow-up sweep file: `raw` with the new ranges, stages continuing from `last` (the
    last finished stage: `next_stages`; a `budget:` written beside such stages counted the
    finished sweep's and is left out), a new name and seed; a sweep with `stages: auto` keeps it,
    its `budget:` and `epochs:`, re-planned in the new ranges. With `warm_start` (the finished
    sweep's directory) that stage's runs join the first ranking."""
    doc = copy.deepcopy(raw)
    doc["name"] = f"{sweep.name}-next"
    doc["seed"] = int(sweep.seed) + 1  # fresh samples, not the finished sweep's again
    doc["description"] = f"follow-up of {sweep.name}: ranges from its last stage's ranking (hpsearch next)"
    params = doc.setdefault("parameters", {})
    nodes = cond.spec_nodes(params)  # where each key is written: nested, per branch, with when:
    held = cond.parents(space)
    for name, dim in space.items():
        if not sp.is_searched(dim) or name in held or name not in nodes:
            continue  # a choice that carries branches stays as written
        node, leaf = nodes[name]
        old = node[leaf] if isinstance(node.get(leaf), dict) else {}
        node[leaf] = {**param_spec(dim, old), **({"when": old["when"]} if "when" in old else {})}
    if raw.get("stages") != "auto":  # `stages: auto` plans the follow-up from the same budget and epochs
        doc["stages"] = next_stages(last)
        doc.pop("budget", None)  # it counted the finished sweep's stages
    doc.pop("warm_start", None)
    if warm_start is not None:
        doc["warm_start"] = warm_start
    return doc


def warm_runs(runs: list[stages.Run], space: sp.Space) -> list[stages.Run]:
    """A finished sweep's runs as warm-start runs of a new one: finished ones that have a value for
    every parameter the new sweep searches, their ids prefixed with `stages.WARM` (never promoted)."""
    names = [n for n, d in space.items() if sp.is_searched(d)]
    return [
        r._replace(trial=stages.WARM + r.trial, config=stages.WARM + r.config)
        for r in runs
        # a conditional parameter is needed only where its branch is taken (`lr[optimizer=adam]`)
        if r.status == stages.USABLE and all(cond.public(n) in r.params for n in names if cond.active(n, r.params))
    ]
