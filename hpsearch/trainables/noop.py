"""A trainable that does no training: for measuring orchestration overhead and for fast tests.

Its metric is a smooth function of the parameters with a known optimum, so border flags and
range moves can be tested exactly: val_acc = exp(-sum((scale(p) - scale(target_p))**2)),
with log10 as the scale for positive targets.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hpsearch.trainables.trial import Trial


def score(params: dict[str, Any], target: dict[str, float]) -> float:
    d = 0.0
    for k, t in target.items():
        v = float(params[k])
        d += (math.log10(v) - math.log10(t)) ** 2 if t > 0 and v > 0 else (v - t) ** 2
    return math.exp(-d)


def fit(params: dict[str, Any], trial: Trial) -> None:
    target = params.get("target") or {}
    for epoch in trial.epoch_range:
        if params.get("sleep"):
            time.sleep(float(params["sleep"]))
        if params.get("fail"):
            raise RuntimeError(f"noop trainable asked to fail (fail={params['fail']!r})")
        value = params["metric_value"] if params.get("metric_value") is not None else score(params, target)
        value = float(value) * (1 - 0.5**epoch)  # improves with epochs, like training
        metrics: dict[str, Any] = {trial.metric: value, "train_loss": 1.0 - value + 1e-3}
        trial.report(epoch, state={"epoch": epoch}, **metrics)  # all it has to resume: the epoch
