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


def check(sweep: Sweep) -> None:
    """The door check of a user's trainable, as `master start` runs it before writing anything: a
    python trainable's module imports from the sweep file's folder and has its function; a command's
    placeholders, program and script exist (trainables/command.py). Built-ins need none.

    Raises:
        ConfigError: what would make the sweep fail at start.
    """
    kind = sweep.trainable_kind
    if kind == "python":
        from hpsearch.trainables.python import load

        load(sweep.trainable["python"], sweep.source_dir)
    elif kind == "command":
        from hpsearch.trainables.command import check as check_command

        check_command(sweep)
