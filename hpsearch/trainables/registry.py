"""Turn a sweep's `trainable:` into a function fit(params, trial)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hpsearch.search.config import Sweep


def resolve(sweep: Sweep) -> Callable[[dict[str, Any], Any], None]:
    kind = sweep.trainable_kind
    if kind == "builtin":
        if sweep.trainable["builtin"] == "noop":
            from hpsearch.trainables.noop import fit as noop_fit

            return noop_fit
        from hpsearch.trainables.classifier import fit

        return fit
    if kind == "python":
        from hpsearch.trainables.python import load

        return load(sweep.trainable["python"], sweep.source_dir)
    from hpsearch.trainables.command import make_runner

    return make_runner(sweep.trainable["command"], sweep.source_dir, sweep.trainable)
