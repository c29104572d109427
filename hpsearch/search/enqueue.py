"""Configurations you already know (`enqueue:`), pure: validated once, run first in stage 1.

    enqueue:
      - {lr: 0.01, reg: 1.0e-4}          # the author's defaults
      - {lr: 0.3, reg: 2.0e-5, batch: 64} # last month's best

Each entry is a mapping of parameter values (nested mappings for W&B's nested `parameters:`,
or their dotted names). Stage 1's first trials take them, in order, counted in the stage's
`trials` and ranked with the rest (as Optuna's `Study.enqueue_trial`). A parameter an entry leaves
out is sampled as for any trial: the enqueued trials take the stage's first draws and override
the values they give, so the seeds and every other trial's values are those the sweep draws
without `enqueue`. A value outside its range (or not among a categorical's values, or unlike a
constant) is allowed and said: a warning at start, and the stage file lists it.
"""

from __future__ import annotations

import math
from typing import Any

from hpsearch.search import conditional as cond
from hpsearch.search import space as sp
from hpsearch.search.paramspec import is_int, is_num


def parse(
    raw: Any, space: sp.Space, stage1_trials: int | None, problems: list[str], warnings: list[str]
) -> tuple[dict[str, Any], ...]:
    """`enqueue:` -> a tuple of {parameter: value} dicts (dotted names), checked against `space`.

    Problems (not a list of mappings, an unknown parameter, a value of the wrong type, more
    entries than stage 1's trials) go to `problems`; values outside their range to `warnings`.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        problems.append(f"enqueue: must be a list of parameter mappings like [{{lr: 0.01}}], got {raw!r}")
        return ()
    out = []
    n = len(problems)
    for i, entry in enumerate(raw, 1):
        where = f"enqueue[{i}]"
        flat = _flatten(entry, space)
        if not flat:
            problems.append(f"{where}: is empty; give at least one parameter's value")
        for name, value in flat.items():
            key = _key(space, name, flat, f"{where}.{name}", problems)
            if key is None:
                continue
            note = _check(space[key], value, f"{where}.{name}", problems)
            if note:
                warnings.append(note)
        out.append(flat)
    if stage1_trials is not None and len(out) > stage1_trials:
        problems.append(
            f"enqueue: {len(out)} configurations, but stage 1 has trials: {stage1_trials}; "
            "enqueued configurations count in stage 1's trials"
        )
    return tuple(out) if len(problems) == n else ()


def _key(space: sp.Space, name: str, entry: dict[str, Any], where: str, problems: list[str]) -> str | None:
    """The space's key for a parameter an entry gives: a conditional one needs its parents in the
    entry (which branch it belongs to), and must exist there."""
    keys = [k for k in space if cond.public(k) == name]
    if not keys:
        valid = ", ".join(sorted(cond.public_names(space))) or "none"
        problems.append(f"{where}: not a parameter of this sweep (parameters: {valid})")
        return None
    if not cond.is_conditional(keys[0]):
        return keys[0]
    parents = sorted({p for k in keys for p, _ in cond.conditions(k)} - set(entry))
    if parents:
        problems.append(f"{where}: exists only under a condition on {', '.join(parents)}: give that value too")
        return None
    key = cond.keys_for(space, name, entry)
    if key is None:
        when = "; ".join(cond.branch_of(k) for k in keys)
        problems.append(f"{where}: does not exist for this entry's values (only when {when})")
    return key


def _flatten(entry: dict[str, Any], space: sp.Space, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted names, as `parameters:` nests them; a mapping that is itself a
    parameter's value (a dotted name in the space) stays whole."""
    flat: dict[str, Any] = {}
    for k, v in entry.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and name not in space:
            flat.update(_flatten(v, space, name + "."))
        else:
            flat[name] = v
    return flat


def _check(dim: sp.Dim, value: Any, where: str, problems: list[str]) -> str | None:
    """A problem for a value that cannot be this parameter's; a note for one outside its range."""
    if isinstance(dim, sp.Numeric):
        if not is_num(value) or not math.isfinite(value):
            problems.append(f"{where}: must be a number, got {value!r}")
            return None
        if dim.integer and not is_int(value):
            problems.append(f"{where}: must be an integer (the range is of integers), got {value!r}")
            return None
        if dim.log and value <= 0:
            problems.append(f"{where}: must be > 0 (the range is on a log scale), got {value!r}")
            return None
        if dim.bounds is not None and not dim.bounds[0] <= value <= dim.bounds[1]:
            lo, hi = (sp.fmt(b) for b in dim.bounds)
            problems.append(f"{where}: {value!r} lies outside the parameter's hard bounds [{lo}, {hi}]")
            return None
        if not dim.low <= value <= dim.high:
            return f"{where}: {sp.fmt(value)} lies outside the range {dim.describe()}; it runs as given"
        if dim.q and abs(value / dim.q - round(value / dim.q)) > sp.GRID_TOL:
            return f"{where}: {sp.fmt(value)} is not a multiple of q={sp.fmt(dim.q)}; it runs as given"
    elif isinstance(dim, (sp.Normal, sp.Beta)):
        if not is_num(value):
            problems.append(f"{where}: must be a number, got {value!r}")
    elif isinstance(dim, sp.Categorical):
        if value not in dim.values:
            return f"{where}: {value!r} is not one of the values {dim.describe()}; it runs as given"
    elif isinstance(dim, sp.Constant) and value != dim.value:
        return f"{where}: {value!r} differs from the constant {sp.fmt(dim.value)}; it runs as given"
    return None


def outside(space: sp.Space, params: dict[str, Any]) -> list[str]:
    """The enqueued values of `params` that lie outside `space` (the notes of `_check`), one line each."""
    notes = []
    for name, value in params.items():
        key = cond.keys_for(space, name, params)
        dim = space.get(key) if key is not None else None
        if dim is not None:
            note = _check(dim, value, name, [])
            if note:
                notes.append(note.replace("; it runs as given", ""))
    return notes


def apply(
    space: sp.Space, draws: list[tuple[dict[str, Any], int]], entries: tuple[dict[str, Any], ...]
) -> list[tuple[dict[str, Any], int, bool]]:
    """A stage's draws (over every key of the space) -> (params, seed, enqueued): each resolved to
    the configuration's parameters (conditional ones only where they hold), the first len(entries)
    with the entries' values (their choices first, so a branch an entry picks is the one sampled)."""
    out = []
    for i, (draw, seed) in enumerate(draws):
        if i < len(entries):
            entry = entries[i]
            plain = {k: v for k, v in entry.items() if k in space}  # plain keys: choices decide branches
            params = {**cond.resolve(space, {**draw, **plain}), **entry}
            out.append((params, seed, True))
        else:
            out.append((cond.resolve(space, draw), seed, False))
    return out
