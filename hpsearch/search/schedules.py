"""Learning-rate schedules of the built-in classifier, pure: the lr of an epoch from its settings.

The three annealing forms of the CS231n notes ("Annealing the learning rate"), per epoch t = 0, 1, ...
(epoch 1 trains at the base lr), computed from the epoch number so a resumed run is exact:
    constant     lr * lr_decay ** t          (lr_decay 1.0: truly constant; the historic setting)
    step         lr * lr_drop ** floor(t / lr_step)       e.g. halve every 5 epochs
    exponential  lr * exp(-lr_k * t)
    inverse_time lr / (1 + lr_k * t)         the notes' "1/t decay"
"""

from __future__ import annotations

import math
from typing import Any

SCHEDULES = ("constant", "step", "exponential", "inverse_time")


def lr_at(p: dict[str, Any], epoch: int) -> float:
    """The learning rate of 1-based `epoch` under the settings `p` (lr, lr_schedule, lr_decay, lr_drop, lr_step, lr_k).

    Raises ValueError for an unknown schedule (the sweep file is validated before, so only a
    direct caller can meet it).
    """
    lr, t = float(p["lr"]), epoch - 1
    kind = p.get("lr_schedule") or "constant"
    if kind == "constant":
        return lr * float(p.get("lr_decay", 1.0)) ** t
    if kind == "step":
        return lr * float(p.get("lr_drop", 0.5)) ** (t // max(1, int(p.get("lr_step", 5))))
    if kind == "exponential":
        return lr * math.exp(-float(p.get("lr_k", 0.1)) * t)
    if kind == "inverse_time":
        return lr / (1.0 + float(p.get("lr_k", 0.1)) * t)
    raise ValueError(f"unknown lr_schedule {kind!r} ({', '.join(SCHEDULES)})")


def schedule_problems(t: dict[str, Any], searched: set[str]) -> list[str]:
    """Problems of fixed schedule and averaging settings (searched ones are checked by their ranges)."""
    out = []
    kind = t.get("lr_schedule", "constant")
    if "lr_schedule" not in searched and kind not in SCHEDULES:
        out.append(f"trainable.lr_schedule: must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    checks = {
        "lr_drop": (lambda v: 0 < v <= 1, "a factor in (0, 1]"),
        "lr_step": (lambda v: v >= 1 and float(v).is_integer(), "a whole number of epochs >= 1"),
        "lr_k": (lambda v: v >= 0, ">= 0"),
        "ema": (lambda v: 0 <= v < 1, "in [0, 1): 0 is off, 0.999 a typical decay"),
    }
    for key, (ok, rule) in checks.items():
        if key in t and key not in searched:
            v = t[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
                out.append(f"trainable.{key}: must be {rule}, got {v!r}")
    return out
