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
- update ratio: the median per-epoch update-to-weight ratio below RATIO_LOW (1e-4) or above
  RATIO_HIGH (1e-2), a factor 10 either side of the healthy ~1e-3.
- first-epoch loss: the mean of the last quarter of epoch 1's batch losses is not below
  LOSS_FALL (0.95) times the mean of its first quarter (needs at least 4 recorded batches);
  a rise of more than 5% points to a too high learning rate, a flat loss to a too low one.
  Underfitting is not stated for a run that already shows one of these learning-rate findings.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from hpsearch.search.divergence import LR_NAMES, divergence_threshold  # the rule lives with the range cut
from hpsearch.search.space import fmt

OVERFIT_GAP = 0.10
UNDERFIT_GAP = 0.03
UNDERFIT_ACC = 0.80
RATIO_LOW, RATIO_HEALTHY, RATIO_HIGH = 1e-4, 1e-3, 1e-2
LOSS_FALL = 0.95


@dataclass(frozen=True)
class Finding:
    scope: str  # "sweep", or the trial id a per-run finding is about
    kind: str  # border | diverged | overfitting | underfitting | update_ratio_low | update_ratio_high | loss_flat
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
            advice = (
                f"widen {f['param']}'s range {'upward' if up else 'downward'} and search again: "
                "the optimum may lie outside it"
                if last or not f.get("extends")
                else f"the next stage moved the range {'upward' if up else 'downward'}"
            )
            out.append(
                Finding(
                    "sweep",
                    "border",
                    f"stage {s.get('stage')}: best {f['param']} = {fmt(f.get('value'))} lies on the "
                    f"{where} border of its range (position {float(f.get('position', 0)):.2f} of 0..1)",
                    advice,
                )
            )
    return out


def lr_column(runs: pd.DataFrame) -> str | None:
    for name in LR_NAMES:
        if f"p.{name}" in runs.columns:
            return f"p.{name}"
    return None


def diverged_findings(runs: pd.DataFrame) -> list[Finding]:
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
            advice = f"keep {col[2:]} below ~{fmt(t)}: set the range's max there"
    return [Finding("sweep", "diverged", msg, advice)]


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


def fit_findings(trial: str, line: dict[str, Any]) -> list[Finding]:
    """Overfitting / underfitting from train and val accuracy at one epoch."""
    tr, va = _num(line.get("train_acc")), _num(line.get("val_acc"))
    if tr is None or va is None:
        return []
    ep = line.get("epoch")
    if tr - va > OVERFIT_GAP:
        return [
            Finding(
                trial,
                "overfitting",
                f"train_acc {tr:.3f} vs val_acc {va:.3f} at epoch {ep}: a gap of {tr - va:.3f} (> {OVERFIT_GAP:g})",
                "overfitting: more regularization (reg, dropout), more data or augmentation",
            )
        ]
    if abs(tr - va) <= UNDERFIT_GAP and tr < UNDERFIT_ACC:
        return [
            Finding(
                trial,
                "underfitting",
                f"val_acc {va:.3f} tracks train_acc {tr:.3f} closely at low accuracy "
                f"(< {UNDERFIT_ACC:g}) at epoch {ep}",
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


def run_findings(trial: str, curve: list[dict[str, Any]], best_epoch: Any = None) -> list[Finding]:
    lr = ratio_findings(trial, curve) + first_epoch_findings(trial, curve)
    line = _at_epoch(curve, best_epoch)
    fit = fit_findings(trial, line) if line else []
    if lr and any(f.kind == "underfitting" for f in fit):
        # a run that barely learns because of its learning rate says nothing about model size
        fit = [f for f in fit if f.kind != "underfitting"]
    return fit + lr


def diagnose(
    runs: pd.DataFrame, stages: list[dict[str, Any]], curves: dict[str, list[dict[str, Any]]], n_stages: int
) -> list[Finding]:
    """Sweep-wide findings, then those of each run in `curves` (in ranking order)."""
    out = border_findings(stages, n_stages) + diverged_findings(runs)
    best_epoch: dict[str, Any] = {}
    if curves and "best_epoch" in runs.columns:  # only the few runs drawn: a sweep may hold 100,000
        shown = runs[runs["trial"].isin(list(curves))]
        best_epoch = dict(zip(shown["trial"].tolist(), shown["best_epoch"].tolist()))
    for trial, curve in curves.items():
        out += run_findings(trial, curve, best_epoch.get(trial))
    return out


CHECKS = "border, divergence, train/val gap, underfitting, update ratio, first-epoch loss"


def findings_text(findings: list[Finding]) -> str:
    if not findings:
        return f"Diagnostics: nothing stands out (checked: {CHECKS})"
    lines = ["Diagnostics:"]
    for f in findings:
        lines.append(f"  [{f.scope}] {f.message}\n      -> {f.advice}")
    return "\n".join(lines)
