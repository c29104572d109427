"""Conditional and per-choice parameters, pure: parsing, which ones a configuration has, branches.

Two forms in `parameters:` (W&B's nesting kept; `branches` and `when` are ours):

    optimizer:
      values: [adam, sgd, nesterov]
      branches:                    # parameters that exist only for one choice, with their own ranges
        adam: {lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2},
               beta2: {values: [0.99, 0.999]}}
        sgd:  {lr: {distribution: log_uniform_values, min: 1.0e-3, max: 1}}
        nesterov: {lr: {distribution: log_uniform_values, min: 1.0e-3, max: 1}}
    momentum: {min: 0.5, max: 0.99, when: {optimizer: [sgd, nesterov]}}   # exists for some choices

Inside, each conditional parameter is one dimension of the flat search space under a key that
carries its condition, `lr[optimizer=adam]`, `momentum[optimizer=sgd|nesterov]` (a branch inside a
branch adds a second bracket). So the stage's ranges, the journal and the stage files hold every
branch's own range without a new format, and sampling draws one uniform per key as for any
dimension (the stream of draws does not depend on which branch is taken). `resolve` then keeps the
keys whose conditions hold, under their plain names: an inactive parameter is absent from the
trial's `params` (and from `${args}`), never None.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hpsearch.search import space as sp
from hpsearch.search.paramspec import parse_parameters

COND_RE = re.compile(r"\[([^=\[\]]+)=([^\[\]]*)\]")


def text(v: Any) -> str:
    """A choice as written in a key: strings as they are, other values as JSON (1, true, 0.5)."""
    return v if isinstance(v, str) else json.dumps(v)


def public(key: str) -> str:
    """`lr[optimizer=adam]` -> `lr`."""
    i = key.find("[")
    return key if i < 0 else key[:i]


def conditions(key: str) -> list[tuple[str, tuple[str, ...]]]:
    """`m[optimizer=sgd|nesterov]` -> [("optimizer", ("sgd", "nesterov"))]; [] for a plain key."""
    i = key.find("[")
    return [] if i < 0 else [(p, tuple(v.split("|"))) for p, v in COND_RE.findall(key[i:])]


def is_conditional(key: str) -> bool:
    """Whether a key of the space carries a condition (`lr[optimizer=adam]`)."""
    return "[" in key


def active(key: str, params: dict[str, Any]) -> bool:
    """Whether the parameter under `key` exists in a configuration with these (plain-named) values."""
    return all(p in params and text(params[p]) in vals for p, vals in conditions(key))


def resolve(space: sp.Space, draw: dict[str, Any]) -> dict[str, Any]:
    """A draw over every key of the space -> the configuration's parameters under plain names,
    conditional ones only where their conditions hold (parents are resolved first, at any depth)."""
    if not any(map(is_conditional, space)):
        return draw
    out = {k: v for k, v in draw.items() if not is_conditional(k)}
    pending = [k for k in space if is_conditional(k) and k in draw]
    while True:  # a fixed point: a branch inside a branch waits for its parent's key
        ready = [k for k in pending if active(k, out)]
        if not ready:
            break
        for k in ready:
            out[public(k)] = draw[k]
        pending = [k for k in pending if k not in ready]
    # back in the space's order, so a trial's params read as the sweep file declares them
    order: dict[str, int] = {}
    for k in space:
        order.setdefault(public(k), len(order))
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def keys_for(space: sp.Space, name: str, params: dict[str, Any]) -> str | None:
    """The key of the space that gives plain parameter `name` in a configuration (None if inactive)."""
    for k in space:
        if public(k) == name and active(k, params):
            return k
    return None


def public_names(space: sp.Space) -> list[str]:
    """Every parameter name a configuration may have, in order, each once."""
    return list(dict.fromkeys(public(k) for k in space))


# -- parsing --------------------------------------------------------------------------------------
def parse_space(raw: Any, problems: list[str], warnings: list[str]) -> sp.Space:
    """The `parameters:` block with `branches:` and `when:` -> a flat space with conditional keys.

    Plain parameters are parsed by `paramspec.parse_parameters` (every W&B form); conditional ones
    too, then keyed with their conditions. Problems: a condition on a name that is not a
    categorical parameter, a choice that is not among its values, one name given two ranges that
    can hold at once, a cycle of conditions.
    """
    if not isinstance(raw, dict) or not _has_conditions(raw):
        return parse_parameters(raw, problems, warnings)
    plain: dict[str, Any] = {}
    conditional: list[tuple[str, Any, list[tuple[str, tuple[Any, ...]]], str]] = []  # (name, spec, conds, where)
    _split(raw, "", [], plain, conditional, problems)
    space = parse_parameters(plain, problems, warnings)
    for name, spec, conds, where in conditional:
        sub = parse_parameters({name.rsplit(".", 1)[-1]: spec}, problems, warnings, _prefix(name))
        for sub_name, dim in sub.items():
            suffix = "".join(f"[{p}={'|'.join(text(v) for v in vals)}]" for p, vals in conds)
            key = sub_name + suffix
            if key in space:
                problems.append(f"{where}: given twice under the same condition")
            space[key] = dim
    n = len(problems)
    _check(space, problems)
    return space if len(problems) == n else {k: v for k, v in space.items() if not is_conditional(k)}


def _prefix(name: str) -> str:
    return name.rsplit(".", 1)[0] + "." if "." in name else ""


def _has_conditions(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    for spec in block.values():
        if isinstance(spec, dict) and ("branches" in spec or "when" in spec):
            return True
        if isinstance(spec, dict) and _has_conditions(spec.get("parameters")):
            return True
    return False


def _split(
    block: dict[str, Any],
    prefix: str,
    conds: list[tuple[str, tuple[Any, ...]]],
    plain: dict[str, Any],
    conditional: list[tuple[str, Any, list[tuple[str, tuple[Any, ...]]], str]],
    problems: list[str],
) -> None:
    """Walk a parameters block: plain specs into `plain` (nested as given), conditional ones listed
    with their conditions (a `when:` adds to the branch's own)."""
    target = plain
    for part in prefix.rstrip(".").split(".") if prefix else []:
        target = target.setdefault(part, {"parameters": {}})["parameters"]
    for name, spec in block.items():
        full, where = f"{prefix}{name}", f"parameters.{prefix}{name}"
        if not isinstance(spec, dict):  # not a parameter: parse_parameters says why
            if conds:
                conditional.append((full, spec, conds, where))
            else:
                target[name] = spec
            continue
        spec = dict(spec)
        own = list(conds)
        when = spec.pop("when", None)
        if when is not None:
            if not isinstance(when, dict) or not when:
                problems.append(f"{where}.when: must be a mapping like {{optimizer: [sgd, nesterov]}}, got {when!r}")
                continue
            for parent, vals in when.items():
                own.append((str(parent), tuple(vals) if isinstance(vals, list) else (vals,)))
        branches = spec.pop("branches", None)
        if (
            "parameters" in spec
            and isinstance(spec["parameters"], dict)
            and (own or _has_conditions(spec["parameters"]))
        ):
            _split(
                spec["parameters"], f"{full}.", own, plain, conditional, problems
            )  # the block's conditions hold for each
            continue
        if own:
            conditional.append((full, spec, own, where))
        else:
            target[name] = spec
        if branches is not None:
            values = spec.get("values")
            if not isinstance(branches, dict) or not isinstance(values, list):
                problems.append(
                    f"{where}.branches: needs values: [...] and a mapping of value -> parameters, got {branches!r}"
                )
                continue
            by_text = {text(v): v for v in values}
            for choice, sub in branches.items():
                if text(choice) not in by_text:
                    problems.append(
                        f"{where}.branches.{choice}: not one of the values ({', '.join(map(text, values))})"
                    )
                    continue
                if not isinstance(sub, dict):
                    problems.append(f"{where}.branches.{choice}: must be a mapping of parameters, got {sub!r}")
                    continue
                sub = sub.get("parameters", sub) if set(sub) == {"parameters"} else sub
                _split(sub, prefix, [*own, (full, (by_text[text(choice)],))], plain, conditional, problems)


def _check(space: sp.Space, problems: list[str]) -> None:
    names = {public(k): k for k in space if not is_conditional(k)}
    by_name: dict[str, list[str]] = {}
    for k in space:
        by_name.setdefault(public(k), []).append(k)
    for k in space:
        for parent, vals in conditions(k):
            dims = [space[p] for p in by_name.get(parent, [])]
            if not dims or not all(isinstance(d, (sp.Categorical, sp.Constant)) for d in dims):
                problems.append(
                    f"parameters.{public(k)}: its condition names {parent!r}, which is not a categorical parameter"
                )
                continue
            allowed = {text(v) for d in dims for v in _choices(d)}
            for v in vals:
                if v not in allowed:
                    problems.append(
                        f"parameters.{public(k)}: when {parent} is {v!r}: not one of {parent}'s values "
                        f"({', '.join(sorted(allowed))})"
                    )
    for name, keys in by_name.items():
        if len(keys) < 2:
            continue
        if name in names:
            problems.append(f"parameters.{name}: defined both always and under a condition")
            continue
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                if not _exclusive(a, b):
                    problems.append(
                        f"parameters.{name}: two definitions can hold at once ({a} and {b}); "
                        "their conditions must pick different values of one parameter"
                    )
    # cycles: a condition on a parameter that is (indirectly) conditional on the first
    deps = {public(k): {p for p, _ in conditions(k)} for k in space}
    for start in deps:
        seen, todo = set(), list(deps[start])
        while todo:
            p = todo.pop()
            if p == start:
                problems.append(f"parameters.{start}: its conditions depend on itself")
                break
            if p not in seen:
                seen.add(p)
                todo.extend(deps.get(p, ()))


def _choices(dim: sp.Dim) -> tuple[Any, ...]:
    if isinstance(dim, sp.Categorical):
        return dim.values
    return (dim.value,) if isinstance(dim, sp.Constant) else ()


def _exclusive(a: str, b: str) -> bool:
    ca, cb = dict(conditions(a)), dict(conditions(b))
    return any(p in cb and not set(ca[p]) & set(cb[p]) for p in ca)


def spec_nodes(block: Any, prefix: str = "", conds: tuple[tuple[str, tuple[Any, ...]], ...] = ()) -> dict[str, Any]:
    """Where each key of `parse_space`'s space is written in a `parameters:` block: key -> (the
    mapping that holds its spec, its name there), found by the same walk as parsing (nesting,
    `when:`, `branches:`). For writing ranges back into a sweep file (`hpsearch next`)."""
    out: dict[str, Any] = {}
    if not isinstance(block, dict):
        return out
    for name, spec in block.items():
        if not isinstance(spec, dict):
            continue
        full = f"{prefix}{name}"
        own = list(conds)
        when = spec.get("when")
        if isinstance(when, dict):
            own += [(str(p), tuple(v) if isinstance(v, list) else (v,)) for p, v in when.items()]
        if isinstance(spec.get("parameters"), dict):
            out.update(spec_nodes(spec["parameters"], f"{full}.", tuple(own)))
            continue
        suffix = "".join(f"[{p}={'|'.join(text(v) for v in vals)}]" for p, vals in own)
        out[full + suffix] = (block, name)
        branches, values = spec.get("branches"), spec.get("values")
        if isinstance(branches, dict) and isinstance(values, list):
            by_text = {text(v): v for v in values}
            for choice, sub in branches.items():
                if text(choice) in by_text and isinstance(sub, dict):
                    sub = sub.get("parameters", sub) if set(sub) == {"parameters"} else sub
                    out.update(spec_nodes(sub, prefix, (*own, (full, (by_text[text(choice)],)))))
    return out


def parents(space: sp.Space) -> set[str]:
    """The parameters some conditional parameter depends on (`optimizer` for `lr[optimizer=adam]`)."""
    return {p for k in space for p, _ in conditions(k)}


# -- branches for ranking, narrowing and the report -------------------------------------------------
def branch_of(key: str) -> str:
    """A readable branch label: `optimizer=adam` (conditions joined by ', ')."""
    return ", ".join(f"{p}={'|'.join(v)}" for p, v in conditions(key))
