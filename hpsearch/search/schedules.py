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
from collections.abc import Callable
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


def schedule_problems(t: dict[str, Any], space: dict[str, Any]) -> list[str]:
    """Problems of the schedule and averaging settings, fixed (`t`) or searched (`space`: every
    value a categorical or constant may take, both ends of a range)."""
    checks: dict[str, tuple[Callable[[Any], bool], str]] = {
        "lr_schedule": (lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
        "lr_drop": (lambda v: _num(v) and 0 < v <= 1, "a factor in (0, 1]"),
        "lr_step": (lambda v: _num(v) and v >= 1 and float(v).is_integer(), "a whole number of epochs >= 1"),
        "lr_k": (lambda v: _num(v) and v >= 0, ">= 0"),
        "ema": (lambda v: _num(v) and 0 <= v < 1, "in [0, 1): 0 is off, 0.999 a typical decay"),
    }
    out = []
    for key, (ok, rule) in checks.items():
        if key in space:
            bad = [v for v in _values(space[key]) if not ok(v)]
            if bad:
                out.append(f"parameters.{key}: every value must be {rule}, got {bad[0]!r}")
        elif key in t and not ok(t[key]):
            out.append(f"trainable.{key}: must be {rule}, got {t[key]!r}")
    return out


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _values(dim: Any) -> list[Any]:
    """The values a dimension can take that decide validity: choices, a constant, a range's ends."""
    if hasattr(dim, "values"):
        return list(dim.values)
    if hasattr(dim, "value"):
        return [dim.value]
    if hasattr(dim, "low"):
        return [dim.low, dim.high]
    return []  # a normal or beta distribution: unbounded draws are the user's choice
