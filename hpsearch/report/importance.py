"""Parameter importance: which parameters made the difference, per stage and over the whole sweep.

Computed with Optuna's PED-ANOVA evaluator (`optuna.importance.PedAnovaImportanceEvaluator`,
Watanabe et al., IJCAI 2023) on an in-memory study that holds the finished runs: it measures
how differently each parameter is distributed among the best `target_quantile` (10%) of the runs
than among all of them, so it needs no surrogate model and works with a few dozen runs. Optuna is
an optional extra (`pip install 'hpsearch[importance]'`); without it the result says how to get it.
Importances are normalized to sum to 1 within each scope.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hpsearch.report.sweepdata import SweepData
from hpsearch.search import conditional as cond
from hpsearch.search import space as sp

MIN_RUNS = 10  # finished runs a scope needs: PED-ANOVA compares the best 10% to all of them
MAX_RUNS = 2000  # beyond, a fixed random sample of this many: the estimate is as good, 100,000 runs take ~1 s
METHOD = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator, target quantile 0.1)"
INSTALL = "parameter importance needs Optuna: pip install 'hpsearch[importance]' (or pip install optuna)"


def available() -> bool:
    """Whether Optuna can be imported."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        return False
    return True


def importance(data: SweepData) -> dict[str, Any]:
    """Importance of each searched parameter, for the whole sweep and for each stage.

    Returns:
        {"method": str, "available": bool, "note": str or None,
         "sweep": {param: importance} (floats in [0, 1] summing to 1, most important first;
                  empty when there are too few runs),
         "stages": [{"stage": k, "runs": n, "importance": {param: importance}, "note": str or None}]}.
        A scope with fewer than MIN_RUNS finished runs, or whose parameters never varied, gets an
        empty dict and a note saying why; one with more than MAX_RUNS is computed on a fixed
        random sample of MAX_RUNS of them (the same sample every time).
    """
    out: dict[str, Any] = {"method": METHOD, "available": available(), "note": None, "sweep": {}, "stages": []}
    if not out["available"]:
        out["note"] = INSTALL
        return out
    fin = finished(data)
    out["sweep"], out["note"] = _scope(data, fin, None)
    for s in data.stages:
        k = int(s["stage"])
        rows = fin[fin["stage"] == k] if len(fin) else fin
        if len(rows) == len(fin) and len(data.stages) == 1:
            imp, note = out["sweep"], out["note"]  # the same runs: the same answer
        else:
            imp, note = _scope(data, rows, k)
        out["stages"].append({"stage": k, "runs": len(rows), "importance": imp, "note": note})
    return out


def finished(data: SweepData) -> pd.DataFrame:
    """The finished runs with a finite value of the sweep's metric."""
    df = data.runs
    if df.empty:
        return df
    ok = (df["status"] == "finished") & pd.to_numeric(df[data.metric], errors="coerce").notna()
    return df[ok]


def searched(data: SweepData, stage: int | None) -> dict[str, sp.Dim]:
    """The searched (non-constant) parameters of a stage's ranges (of stage 1 for the whole sweep)."""
    docs = [s for s in data.stages if stage is None or int(s["stage"]) == stage]
    if not docs:
        return {}
    dims = {n: sp.from_dict(d) for n, d in docs[0].get("ranges", {}).items()}
    return {n: d for n, d in dims.items() if not isinstance(d, sp.Constant)}


def _scope(data: SweepData, rows: pd.DataFrame, stage: int | None) -> tuple[dict[str, float], str | None]:
    if len(rows) < MIN_RUNS:
        return {}, f"{len(rows)} finished run(s); importance needs at least {MIN_RUNS}"
    if len(rows) > MAX_RUNS:
        rows = rows.sample(n=MAX_RUNS, random_state=0)
    dists = distributions(data, rows, stage)
    if not dists:
        return {}, "no parameter varied among the finished runs"
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if data.goal == "maximize" else "minimize")
    trials = []
    for params, value in zip(_param_rows(rows, dists), rows[data.metric].astype(float).tolist()):
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    study.add_trials(trials)
    imp = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    # a parameter some runs do not have (conditional, `lr[optimizer=adam]`, or absent) has no value
    # to compare there: PED-ANOVA needs every run's; say which were left out rather than drop them
    left = sorted({cond.public(n) for n in searched(data, stage)} - set(dists) - _constant(rows, data, stage))
    note = f"left out, not set in every run (conditional parameters): {', '.join(left)}" if left else None
    return {k: float(v) for k, v in imp.items()}, note


def _constant(rows: pd.DataFrame, data: SweepData, stage: int | None) -> set[str]:
    """Searched parameters that took a single value among `rows` (left out as explaining nothing)."""
    out = set()
    for name in searched(data, stage):
        col = f"p.{cond.public(name)}"
        if col in rows and rows[col].notna().all() and rows[col].astype(str).nunique() <= 1:
            out.add(cond.public(name))
    return out


def distributions(data: SweepData, rows: pd.DataFrame, stage: int | None) -> dict[str, Any]:
    """Optuna distributions spanning the runs' values: numeric ones on the parameter's scale (log
    where its range is log), categorical ones over the values seen (as text). Parameters with a
    single value among `rows` are left out: they explain nothing."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, Any] = {}
    for name, dim in searched(data, stage).items():
        col = f"p.{name}"
        if col not in rows:
            continue
        values = rows[col]
        if isinstance(dim, sp.Categorical):
            choices = sorted({str(v) for v in values}, key=str)
            if len(choices) > 1:
                out[name] = CategoricalDistribution(choices)
            continue
        nums = pd.to_numeric(values, errors="coerce")
        if nums.isna().any():
            continue
        lo, hi = float(nums.min()), float(nums.max())
        log = bool(getattr(dim, "log", False)) and lo > 0
        if hi > lo and math.isfinite(lo) and math.isfinite(hi):
            out[name] = FloatDistribution(lo, hi, log=log)
    return out


def _param_rows(rows: pd.DataFrame, dists: dict[str, Any]) -> list[dict[str, Any]]:
    from optuna.distributions import CategoricalDistribution

    cols = {
        n: [str(v) for v in rows[f"p.{n}"]]
        if isinstance(d, CategoricalDistribution)
        else rows[f"p.{n}"].astype(float).tolist()
        for n, d in dists.items()
    }
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def importance_text(imp: dict[str, Any]) -> str:
    """The importance as text: one line per parameter for the sweep, then per stage."""
    if not imp["available"]:
        return f"Parameter importance: {imp['note']}"
    lines = [f"Parameter importance ({imp['method']}):"]
    scopes = [("whole sweep", imp["sweep"], imp["note"])] + [
        (f"stage {s['stage']}", s["importance"], s["note"]) for s in imp["stages"]
    ]
    for label, values, note in scopes:
        text = ", ".join(f"{k} {v:.2f}" for k, v in values.items()) if values else f"({note})"
        if values and note:
            text += f" ({note})"
        lines.append(f"  {label}: {text}")
    return "\n".join(lines)
