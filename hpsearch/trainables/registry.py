"""Turn a sweep's `trainable:` into a function fit(params, trial)."""
from __future__ import annotations

from typing import Any, Callable

from ..config import Sweep


def resolve(sweep: Sweep) -> Callable[[dict[str, Any], Any], None]:
    kind = sweep.trainable_kind
    if kind == "builtin":
        if sweep.trainable["builtin"] == "noop":
            from .noop import fit
            return fit
        from .classifier import fit
        return fit
    if kind == "python":
        from .python import load
        return load(sweep.trainable["python"], sweep.source_dir)
    from .command import make_runner
    return make_runner(sweep.trainable["command"], sweep.source_dir, sweep.trainable)
