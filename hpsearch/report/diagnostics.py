"""Findings a careful person would draw from a sweep, each stated only when the data shows it.

Pure: works on the ranked runs (report.runs_frame), the stage files and the per-epoch metrics of
the top runs; reads nothing. Thresholds (also in README, "Reports and plots"):

- border: the stage files' border flags (the best value in the outer `border` fraction of its
  range, default 10%, in the range's own scale), with the direction to widen.
- diverged: every diverged run is counted; the "lr above which most diverged" is the smallest lr
  of a diverged run such that more than half (DIVERGED_MOST) of the runs at or above it diverged,
  with at least DIVERGED_MIN of them.
- overfitting: train_acc - val_acc > OVERFIT_GAP (0.10) at the run's best epoch.
- underfitting: |train_acc - val_acc| <= UNDERFIT_GAP (0.03) while train_acc < UNDERFIT_ACC (0.80).
  `train_acc` and `val_acc` stand for whatever accuracy-like metrics the trials report
  (`metric_roles`: `train/accuracy`, `eval/accuracy`, `test_acc` ...); without both, the check
  is listed as not checked, never as passed.
- update ratio: the median per-epoch update-to-weight ratio below RATIO_LOW (1e-4) or above
  RATIO_HIGH (1e-2), a factor 10 either side of the healthy ~1e-3.
- first-epoch loss: the mean of the last quarter of epoch 1's batch losses is not below
  LOSS_FALL (0.95) times the mean of its first quarter (needs at least 4 recorded batches);
  a rise of more than 5% points to a too high learning rate, a flat loss to a too low one.
  Underfitting is not stated for a run that already shows one of these learning-rate findings.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from hpsearch.report.failures import reason_key
from hpsearch.search.divergence import (  # the rule lives with the range cut
    LR_NAMES,
    divergence_threshold,
    is_learning_rate,
)
from hpsearch.search.space import fmt

OVERFIT_GAP = 0.10
UNDERFIT_GAP = 0.03
UNDERFIT_ACC = 0.80
RATIO_LOW, RATIO_HEALTHY, RATIO_HIGH = 1e-4, 1e-3, 1e-2
LOSS_FALL = 0.95
# name parts that make a metric held-out (or training)
HELD_OUT = ("val", "valid", "validation", "eval", "evaluation", "test", "dev", "holdout")
TRAIN = ("train", "training")


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if p]


def metric_roles(names: list[str], metric: str | None = None) -> dict[str, str | None]:
    """Which reported metric plays which part: {train_loss, val_loss, train_acc, val_acc} -> name or None.

    A name is loss-like when a part of it (split at `_`, `/`, `.`, `-` and camelCase) is `loss`
    (or `nll`, `mse`, `mae`, `rmse`, `error`, `ce`), accuracy-like when a part is `acc`,
    `accuracy` or `top1`; held-out when a part is one of HELD_OUT (`val_loss`, `eval/accuracy`,
    `test_loss`), training when a part is `train` or when it has no held-out part (`loss`,
    `train/loss`). The built-in names win, then the sweep's own `metric`, then the first reported.
    """
    out: dict[str, str | None] = {"train_loss": None, "val_loss": None, "train_acc": None, "val_acc": None}
    ordered = sorted(
        dict.fromkeys(names), key=lambda n: (n not in out, n != metric)
    )  # built-in names, then the sweep's metric, then the order reported
    for n in ordered:
        parts = _parts(n)
        kind = (
            "loss"
            if {"loss", "nll", "mse", "mae", "rmse", "error", "ce"} & set(parts)
            else "acc"
            if {"acc", "accuracy", "top1"} & set(parts)
            else None
        )
        if kind is None:
            continue
        held_out = bool(set(HELD_OUT) & set(parts)) and not set(TRAIN) & set(parts)
        role = f"{'val' if held_out else 'train'}_{kind}"
        if out[role] is None:
            out[role] = n
    return out


@dataclass(frozen=True)
class Finding:
    scope: str  # "sweep", or the trial id a per-run finding is about
    # no_usable_run | border | diverged | overfitting | underfitting | update_ratio_low | update_ratio_high | loss_flat
    kind: str
    message: str  # what the data shows
    advice: str  # what to try

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# -- sweep-wide ----------------------------------------------------------------------------
def border_findings(stages: list[dict[str, Any]], n_stages: int) -> list[Finding]:
    out = []
    for s in stages:
        for f in s.get("border_flags") or []:
            up = f.get("side") == "high"
            where = "upper" if up else "lower"
            last = s.get("stage") == n_stages
            if not f.get("extends"):  # held: a hard bound, on_border: keep, the grid's or the scale's end
                held = str(f.get("message", "")).split(": ", 1)[-1] or "the range may not move that way"
                keep = "on_border: keep" in held
                advice = f"{held}: " + (
                    "drop on_border: keep to let it move" if keep else "no wider search is possible on that side"
                )
            elif last:
                advice = (
                    f"widen {f['param']}'s range {'upward' if up else 'downward'} and search again: "
                    "the optimum may lie outside it"
                )
            else:
                advice = f"the next stage moved the range {'upward' if up else 'downward'}"
            pos = float(f.get("position", 0))
            lies = (
                f"on the {where} border of its range (position {pos:.2f} of 0..1)"
                if 0 <= pos <= 1
                else f"{'above' if up else 'below'} the stage's range (a promoted or enqueued configuration; "
                f"position {pos:.2f} of 0..1)"
            )
            out.append(
                Finding(
                    "sweep",
                    "border",
                    f"stage {s.get('stage')}: best {f['param']} = {fmt(f.get('value'))} lies {lies}",
                    advice,
                )
            )
    return out


def lr_column(runs: pd.DataFrame) -> str | None:
    """The runs' learning-rate column (`p.lr`, ..., also nested: the planner's `is_learning_rate`)."""
    for name in LR_NAMES:  # a plain name first, as before
        if f"p.{name}" in runs.columns:
            return f"p.{name}"
    return next((c for c in runs.columns if c.startswith("p.") and is_learning_rate(c[2:])), None)


def diverged_findings(runs: pd.DataFrame, stages: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Diverged runs, with the learning rate from which most of them diverged (`divergence_threshold`)
    and advice that fits the last stage's range (`stages`: the stage files): keep the lr below the
    threshold; when no run below it finished, move the range down; when the range's max is below it
    already, say the diverged runs lie outside it (enqueued, or an earlier, wider range)."""
    if runs.empty or "status" not in runs.columns:
        return []
    div = runs[runs["status"] == "diverged"]
    if div.empty:
        return []
    tried = runs[runs["status"].isin(["finished", "diverged"])]
    msg = f"{len(div)} of {len(tried)} completed run(s) diverged"
    advice = "lower the learning rate's upper bound (or add warm-up / gradient clipping)"
    col = lr_column(runs)
    if col is not None:
        ok = tried[pd.to_numeric(tried[col], errors="coerce").notna()]
        t = divergence_threshold([float(x) for x in ok[col]], [s == "diverged" for s in ok["status"]])
        if t is not None:
            above = ok[ok[col].astype(float) >= t]
            n = int((above["status"] == "diverged").sum())
            msg += f"; {n} of the {len(above)} run(s) with {col[2:]} >= {fmt(t)} diverged"
            name = col[2:]
            high = _range_high(stages or [], name)
            below = ok[(ok[col].astype(float) < t) & (ok["status"] == "finished")]
            if high is not None and high < t:
                advice = (
                    f"{name}'s range already ends at {fmt(high)}, below that: the diverged runs lie outside it "
                    "(enqueued, or an earlier stage's range)"
                )
            elif below.empty:
                advice = (
                    f"no run below {name} {fmt(t)} finished: move {name}'s range down, a decade or more below "
                    f"{fmt(t)} (`hpsearch check` finds where the loss diverges), or add warm-up / gradient clipping"
                )
            else:
                advice = f"keep {name} below ~{fmt(t)}: set the range's max there"
    return [Finding("sweep", "diverged", msg, advice)]


def _range_high(stages: list[dict[str, Any]], name: str) -> float | None:
    """The top of `name`'s range in the last stage file that has one (a numeric range), else None."""
    for s in reversed(stages):
        r = (s.get("ranges") or {}).get(name)
        if isinstance(r, dict) and isinstance(r.get("high"), (int, float)):
            return float(r["high"])
    return None


def unusable_findings(runs: pd.DataFrame) -> list[Finding]:
    """A stage whose runs are all failed or diverged (none finished, none running): nothing in it
    can be ranked, and a later stage could only keep its ranges. The most common reason is
    named (reasons that differ only in numbers count as one, as in report.failures)."""
    if runs.empty or not {"status", "stage", "reason"} <= set(runs.columns):
        return []
    out = []
    for k, g in runs.groupby("stage", sort=True):
        status = g["status"]
        bad = g[status.isin(["failed", "diverged"])]
        if bad.empty or status.isin(["finished", "running"]).any():
            continue
        keys = [reason_key(r if isinstance(r, str) else None) for r in bad["reason"].tolist()]
        top = max(set(keys), key=keys.count)
        example = bad["reason"].tolist()[keys.index(top)] or "(no reason recorded)"
        left = int((status == "planned").sum())
        msg = (
            f"stage {k} had no usable run: {int((status == 'failed').sum())} failed, "
            f"{int((status == 'diverged').sum())} diverged{f', {left} never ran' if left else ''}; "
            f"most common reason ({keys.count(top)}x): {example}"
        )
        # as the master says (run/master.py, _failed): trials that never ran still can, by resuming
        cause = (
            "lower the learning rate's range (see the divergence finding)"
            if (bad["status"] == "diverged").all()
            else "fix the cause (the trial's error.txt holds the traceback, worker.log what it printed)"
        )
        advice = f"{cause}, " + (
            "then resume the sweep with the same `hpsearch master start` command (the failed trials stay "
            "failed, the rest run); a changed sweep file needs a new --dir"
            if left
            else "then run the sweep in a new directory"
        )
        out.append(Finding(f"stage {k}", "no_usable_run", msg, advice))
    return out


def restart_findings(runs: pd.DataFrame) -> list[Finding]:
    """Trials that trained again from epoch 1 because nothing could resume them (README "Resuming")."""
    if runs.empty or "reason" not in runs.columns:
        return []
    restarted = runs[runs["reason"].astype(str).str.startswith("restarted from epoch 1")]
    if restarted.empty:
        return []
    ids = ", ".join(restarted["trial"].head(5).tolist()) + (", ..." if len(restarted) > 5 else "")
    return [
        Finding(
            "sweep",
            "restarted",
            f"{len(restarted)} trial(s) restarted from epoch 1 without resumable state ({ids}): "
            "their lost or inherited epochs were trained again",
            "pass state= (model and optimizer state_dicts) to trial.report, or hand over a checkpoint "
            "file from a command; promoted trials then continue instead of starting over",
        )
    ]


# -- per run -------------------------------------------------------------------------------
def _at_epoch(curve: list[dict[str, Any]], epoch: Any) -> dict[str, Any] | None:
    if not curve:
        return None
    for line in curve:
        if epoch is not None and not pd.isna(epoch) and line.get("epoch") == int(epoch):
            return line
    return curve[-1]


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def fit_findings(trial: str, line: dict[str, Any], roles: dict[str, str | None] | None = None) -> list[Finding]:
    """Overfitting / underfitting from train and held-out accuracy at one epoch (`roles`: metric_roles)."""
    roles = roles or {"train_acc": "train_acc", "val_acc": "val_acc"}
    tn, vn = roles.get("train_acc"), roles.get("val_acc")
    if tn is None or vn is None:
        return []
    tr, va = _num(line.get(tn)), _num(line.get(vn))
    if tr is None or va is None:
        return []
    ep = line.get("epoch")
    if tr - va > OVERFIT_GAP:
        return [
            Finding(
                trial,
                "overfitting",
                f"{tn} {tr:.3f} vs {vn} {va:.3f} at epoch {ep}: a gap of {tr - va:.3f} (> {OVERFIT_GAP:g})",
                "overfitting: more regularization (reg, dropout), more data or augmentation",
            )
        ]
    if abs(tr - va) <= UNDERFIT_GAP and tr < UNDERFIT_ACC:
        return [
            Finding(
                trial,
                "underfitting",
                f"{vn} {va:.3f} tracks {tn} {tr:.3f} closely at low accuracy (< {UNDERFIT_ACC:g}) at epoch {ep}",
                "underfitting: a bigger model (more or wider layers), less regularization, or train longer",
            )
        ]
    return []


def ratio_findings(trial: str, curve: list[dict[str, Any]]) -> list[Finding]:
    ratios = [r for r in (_num(c.get("update_ratio")) for c in curve) if r is not None and r > 0]
    if not ratios:
        return []
    med = statistics.median(ratios)
    if med < RATIO_LOW:
        return [
            Finding(
                trial,
                "update_ratio_low",
                f"update-to-weight ratio {med:.1e} (median over {len(ratios)} epoch(s)) is far below "
                f"~{RATIO_HEALTHY:.0e}",
                "the learning rate is probably too low: raise it",
            )
        ]
    if med > RATIO_HIGH:
        return [
            Finding(
                trial,
                "update_ratio_high",
                f"update-to-weight ratio {med:.1e} (median over {len(ratios)} epoch(s)) is far above "
                f"~{RATIO_HEALTHY:.0e}",
                "the learning rate is probably too high: lower it",
            )
        ]
    return []


def first_epoch_findings(trial: str, curve: list[dict[str, Any]]) -> list[Finding]:
    first = next((c for c in curve if c.get("epoch") == 1), None)
    losses = [x for x in (_num(v) for v in (first or {}).get("losses") or []) if x is not None]
    if len(losses) < 4:
        return []
    q = max(1, len(losses) // 4)
    start, end = statistics.fmean(losses[:q]), statistics.fmean(losses[-q:])
    if start <= 0 or end < LOSS_FALL * start:
        return []
    rose = end > (2 - LOSS_FALL) * start  # up by more than the same 5%: a rise, not noise
    return [
        Finding(
            trial,
            "loss_flat",
            f"the loss did not fall in the first epoch ({start:.3g} -> {end:.3g}, "
            f"{'up' if end > start else 'down'} {abs(end / start - 1) * 100:.0f}%)",
            "the learning rate is probably too high"
            if rose
            else "the learning rate is probably too low (or the initialization is off)",
        )
    ]


def run_findings(
    trial: str, curve: list[dict[str, Any]], best_epoch: Any = None, roles: dict[str, str | None] | None = None
) -> list[Finding]:
    lr = ratio_findings(trial, curve) + first_epoch_findings(trial, curve)
    line = _at_epoch(curve, best_epoch)
    fit = fit_findings(trial, line, roles) if line else []
    if lr and any(f.kind == "underfitting" for f in fit):
        # a run that barely learns because of its learning rate says nothing about model size
        fit = [f for f in fit if f.kind != "underfitting"]
    return fit + lr


def reported(curves: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Names of the numeric metrics in the curves, in the order first reported."""
    names: dict[str, None] = {}
    for curve in curves.values():
        for line in curve:
            for k, v in line.items():
                if k not in ("epoch", "attempt", "time") and _num(v) is not None:
                    names.setdefault(k)
    return list(names)


def diagnose(
    runs: pd.DataFrame,
    stages: list[dict[str, Any]],
    curves: dict[str, list[dict[str, Any]]],
    n_stages: int,
    metric: str | None = None,
    goal: str | None = None,
) -> list[Finding]:
    """Sweep-wide findings, then those of each run in `curves` (in ranking order)."""
    out = (
        unusable_findings(runs)
        + border_findings(stages, n_stages)
        + diverged_findings(runs, stages)
        + restart_findings(runs)
    )
    best_epoch: dict[str, Any] = {}
    if curves and "best_epoch" in runs.columns:  # only the few runs drawn: a sweep may hold 100,000
        shown = runs[runs["trial"].isin(list(curves))]
        best_epoch = dict(zip(shown["trial"].tolist(), shown["best_epoch"].tolist()))
    roles = metric_roles(reported(curves), metric)
    for trial, curve in curves.items():
        out += run_findings(trial, curve, best_epoch.get(trial), roles)
    return out


CHECKS = (
    "usable runs per stage, border, divergence, restarts, train/val gap, underfitting, update ratio, first-epoch loss"
)


def checks(
    runs: pd.DataFrame, stages: list[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], metric: str | None = None
) -> list[tuple[str, str | None]]:
    """Each diagnostic with why it could not be checked (None: it was checked), in CHECKS' order."""
    roles = metric_roles(reported(curves), metric)
    no_runs = "no finished run yet" if not curves else None
    acc = no_runs or (
        None if roles["train_acc"] and roles["val_acc"] else "needs a training and a held-out accuracy metric"
    )
    has_ratio = any(_num(c.get("update_ratio")) is not None for v in curves.values() for c in v)
    has_batches = any(len(c.get("losses") or []) >= 4 for v in curves.values() for c in v if c.get("epoch") == 1)
    status = runs["status"] if "status" in runs else pd.Series(dtype=object)
    ranked = bool(status.isin(["finished", "pruned"]).any())  # a best value to place in its range
    ended = ranked or bool(status.isin(["diverged"]).any())
    return [
        ("border", "no stage planned yet" if not stages else None if ranked else "no finished run yet"),
        ("divergence", "no runs yet" if not len(runs) else None if ended else "no run has finished or diverged yet"),
        ("train/val gap", acc),
        ("underfitting", acc),
        ("update ratio", no_runs or (None if has_ratio else "no update_ratio metric reported")),
        (
            "first-epoch loss",
            no_runs
            or (
                None
                if has_batches
                else (
                    "no per-batch losses reported in epoch 1: pass them as trial.report(1, ..., "
                    "extras={'losses': [...]}), or a \"losses\" list in a program's metrics line"
                )
            ),
        ),
    ]


def findings_text(findings: list[Finding], checked: list[tuple[str, str | None]] | None = None) -> str:
    """The diagnostics as text; `checked` (from `checks`) says which checks ran and why others could not."""
    done = [c for c, why in checked or [] if why is None] if checked is not None else CHECKS.split(", ")
    skipped = [f"{c} ({why})" for c, why in checked or [] if why is not None]
    tail = f"\n  not checked: {'; '.join(skipped)}" if skipped else ""
    if not findings and not done:  # "nothing stands out" would claim a look that was not taken
        return f"Diagnostics: nothing to check yet{tail}"
    if not findings:
        return f"Diagnostics: nothing stands out (checked: {', '.join(done)}){tail}"
    lines = ["Diagnostics:"]
    for f in findings:
        lines.append(f"  [{f.scope}] {f.message}\n      -> {f.advice}")
    return "\n".join(lines) + tail
