"""The `parameters:` block of a sweep file (W&B spellings) -> a validated search space.

W&B's names are accepted as W&B defines them (log_uniform takes natural-log exponents,
log_uniform_values takes values; a missing `distribution` is inferred from the keys), plus
our own int_log_uniform_values, `bounds` and `on_border`. Problems are collected, not raised.
"""

from __future__ import annotations

import math
import re
from typing import Any

from hpsearch.search import space as sp

PARAM_KEYS = {
    "distribution",
    "min",
    "max",
    "values",
    "value",
    "probabilities",
    "mu",
    "sigma",
    "q",
    "a",
    "b",
    "bounds",
    "parameters",
    "on_border",
}
# W&B distribution names (and ours) -> how to build the dimension.
LOG_VALUES = {
    "log_uniform_values",
    "inv_log_uniform_values",
    "q_log_uniform_values",
    "int_log_uniform",
    "int_log_uniform_values",
}
LOG_EXPONENTS = {"log_uniform", "q_log_uniform", "inv_log_uniform"}
DISTRIBUTIONS = sorted(
    {
        "constant",
        "categorical",
        "uniform",
        "q_uniform",
        "int_uniform",
        "normal",
        "q_normal",
        "log_normal",
        "q_log_normal",
        "beta",
        "q_beta",
    }
    | LOG_VALUES
    | LOG_EXPONENTS
)


# a parameter's name: an identifier, or Hydra-style dotted parts (training.lr), or argparse-style
# dashes (batch-size); `{name}` in a command and `--name=value` from `${args}` use it as written
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def yaml_number(v: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot) as a string; accept it as W&B does."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def parse_parameters(params: Any, problems: list[str], warnings: list[str], prefix: str = "") -> sp.Space:
    if not isinstance(params, dict):
        problems.append(f"parameters{prefix}: must be a mapping of name -> distribution, got {params!r}")
        return {}
    space: sp.Space = {}
    for name, spec in params.items():
        where = f"parameters.{prefix}{name}"
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(
                f"{where}: names start with a letter or '_' and hold letters, digits, '_', '-' and "
                f"'.' between parts (lr, batch-size, training.lr), got {name!r}"
            )
            continue
        if prefix + name in space or any(k.startswith(prefix + name + ".") for k in space):
            problems.append(f"{where}: the name {prefix + name!r} is given twice (nested and dotted)")
            continue
        if isinstance(spec, dict) and "parameters" in spec:  # W&B nested parameters
            space.update(parse_parameters(spec["parameters"], problems, warnings, f"{prefix}{name}."))
            continue
        dim = _dim(spec, where, problems, warnings)
        if dim is not None:
            space[prefix + name] = dim
    return space


# Other tools' spellings of a range (Optuna's suggest_* arguments, Ray Tune's, Hyperopt's) and this
# file's (W&B's) for them: named in the error, so a ported search space is fixed in one go.
OTHER_SPELLINGS = {
    "low": "min",
    "high": "max",
    "lower": "min",
    "upper": "max",
    "choices": "values",
    "categories": "values",
    "log": "distribution: log_uniform_values (int_log_uniform_values for integers)",
    "step": "q (distribution: q_uniform)",
    "type": "distribution (uniform, log_uniform_values, int_uniform, ...; or values: [...])",
}


# Other tools' distribution names (Optuna's, Ray Tune's, Hyperopt's) and this file's for them.
OTHER_DISTRIBUTIONS = {
    "loguniform": "log_uniform_values (min and max are the values)",
    "float": "uniform (log_uniform_values on a log scale)",
    "int": "int_uniform (int_log_uniform_values on a log scale)",
    "randint": "int_uniform",
    "qloguniform": "q_log_uniform_values",
    "choice": "values: [...] instead of a distribution",
    "categorical": "values: [...] instead of a distribution",
    "lograndint": "int_log_uniform_values",
}


def _dim(spec: Any, where: str, problems: list[str], warnings: list[str]) -> sp.Dim | None:
    if not isinstance(spec, dict):
        problems.append(
            f"{where}: must be a mapping like {{distribution: log_uniform_values, min: 1e-4, max: 1}} "
            f"or {{values: [...]}}, got {spec!r}"
        )
        return None
    unknown = [k for k in spec if k not in PARAM_KEYS]
    if unknown:
        keys = ", ".join(f"'{k}'" for k in unknown)
        hints = [f"{k} -> {OTHER_SPELLINGS[k]}" for k in unknown if k in OTHER_SPELLINGS]
        hint = f"; in this file's spelling: {', '.join(hints)}" if hints else ""
        problems.append(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {keys}{hint} "
            f"(valid keys: {', '.join(sorted(PARAM_KEYS - {'parameters'}))})"
        )
        return None
    spec = {k: yaml_number(v) if k in ("min", "max", "mu", "sigma", "q", "a", "b") else v for k, v in spec.items()}
    dist = spec.get("distribution") or _infer(spec)
    if dist not in DISTRIBUTIONS:
        like = OTHER_DISTRIBUTIONS.get(str(dist).lower())
        hint = f"; for {dist!r} write {like}" if like else ""
        problems.append(f"{where}.distribution: unknown {dist!r}{hint} (valid: {', '.join(DISTRIBUTIONS)})")
        return None
    n = len(problems)
    if dist == "constant":
        if "value" not in spec:
            problems.append(f"{where}: a constant needs 'value'")
            return None
        return sp.Constant(spec["value"])
    if dist == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            problems.append(f"{where}.values: must be a non-empty list, got {values!r}")
            return None
        probs = spec.get("probabilities")
        if probs is not None and (
            not isinstance(probs, list)
            or len(probs) != len(values)
            or not all(is_num(p) and p >= 0 for p in probs)
            or sum(probs) <= 0
        ):
            problems.append(
                f"{where}.probabilities: must be {len(values)} non-negative numbers with a positive sum, got {probs!r}"
            )
            return None
        return sp.Categorical(tuple(values), tuple(float(p) for p in probs) if probs else None)
    q = spec.get("q", 1 if dist.startswith("q_") else None)  # W&B: q defaults to 1 for q_* distributions
    if q is not None and (not is_num(q) or q <= 0):
        problems.append(f"{where}.q: must be a positive number, got {q!r}")
        q = None
    if dist in ("normal", "q_normal", "log_normal", "q_log_normal"):
        mu, sigma = spec.get("mu", 0.0), spec.get("sigma", 1.0)
        if not is_num(mu) or not is_num(sigma) or sigma <= 0:
            problems.append(f"{where}: needs a number mu and sigma > 0, got mu={mu!r}, sigma={sigma!r}")
        return None if len(problems) > n else sp.Normal(float(mu), float(sigma), log="log" in dist, q=q)
    if dist in ("beta", "q_beta"):
        a, b = spec.get("a", 1.0), spec.get("b", 1.0)
        if not is_num(a) or not is_num(b) or a <= 0 or b <= 0:
            problems.append(f"{where}: needs a > 0 and b > 0, got a={a!r}, b={b!r}")
        return None if len(problems) > n else sp.Beta(float(a), float(b), q=q)
    lo, hi = spec.get("min"), spec.get("max")
    if not is_num(lo) or not is_num(hi):
        problems.append(f"{where}: needs numbers min and max, got min={lo!r}, max={hi!r}")
        return None
    if lo >= hi:
        problems.append(f"{where}: min must be below max, got min={lo!r} >= max={hi!r}")
        return None
    if dist in LOG_EXPONENTS:  # W&B: min/max are natural-log exponents
        if lo > 0 and hi <= 1:  # almost surely meant as values: every draw lands in [1, e]
            lo_v, hi_v = (math.exp(-hi), math.exp(-lo)) if dist.startswith("inv_") else (math.exp(lo), math.exp(hi))
            warnings.append(
                f"{where}: {dist} takes natural-log exponents (W&B's meaning), so min {lo!r} and max {hi!r} "
                f"give values in [{sp.fmt(lo_v)}, {sp.fmt(hi_v)}]; for values between {lo!r} and {hi!r} "
                f"write distribution: {dist.replace('log_uniform', 'log_uniform_values')}"
            )
        lo, hi = (math.exp(-hi), math.exp(-lo)) if dist.startswith("inv_") else (math.exp(lo), math.exp(hi))
    elif dist in LOG_VALUES and lo <= 0:
        problems.append(f"{where}: a log range needs min > 0, got min={lo!r}")
        return None
    # integer values: the int_* distributions, and a grid of integer q from integer min and max (for
    # q_log_uniform min/max are exponents: an integer q alone puts every value on integers)
    integer = dist in ("int_uniform", "int_log_uniform", "int_log_uniform_values") or (
        q is not None
        and is_int(q)
        and dist.startswith("q_")
        and (dist in LOG_EXPONENTS or (is_int(spec["min"]) and is_int(spec["max"])))
    )
    if integer and max(abs(lo), abs(hi)) > sp.MAX_INT:
        problems.append(f"{where}: integer values must lie within +-2**53, got [{sp.fmt(lo)}, {sp.fmt(hi)}]")
    elif q is not None and is_num(q) and q > 0:
        first, last = sp.grid_span(lo, hi, q)
        if last - first < 1:
            problems.append(
                f"{where}: [{sp.fmt(lo)}, {sp.fmt(hi)}] holds {max(0, last - first + 1)} multiple(s) of q={q!r}; "
                "a quantized range needs at least two (widen min/max or lower q)"
            )
    elif integer and math.floor(hi) - math.ceil(lo) < 1:
        problems.append(f"{where}: [{sp.fmt(lo)}, {sp.fmt(hi)}] holds fewer than two integers; widen min/max")
    if dist == "int_uniform" and not (is_int(spec["min"]) and is_int(spec["max"])):
        problems.append(f"{where}: int_uniform needs integer min and max, got {spec['min']!r}, {spec['max']!r}")
    on_border = spec.get("on_border", "extend")
    if on_border not in ("extend", "keep"):
        problems.append(f"{where}.on_border: must be 'extend' or 'keep', got {on_border!r}")
    bounds = spec.get("bounds")
    if bounds is not None:
        if not (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(is_num(b) for b in bounds)
            and bounds[0] <= lo
            and hi <= bounds[1]
        ):
            problems.append(f"{where}.bounds: must be [low, high] enclosing [min, max], got {bounds!r}")
        else:
            bounds = (float(bounds[0]), float(bounds[1]))
    if len(problems) > n:
        return None
    is_log = dist in LOG_VALUES or dist in LOG_EXPONENTS
    return sp.Numeric(
        float(lo),
        float(hi),
        log=is_log,
        integer=integer,
        q=None if integer and q == 1 else q,
        bounds=bounds,
        on_border=on_border,
    )


def _infer(spec: dict[str, Any]) -> str:
    """W&B's inference when `distribution` is absent."""
    if "values" in spec:
        return "categorical"
    if "value" in spec:
        return "constant"
    if "mu" in spec or "sigma" in spec:
        return "normal"
    if is_int(spec.get("min")) and is_int(spec.get("max")):
        return "int_uniform"
    return "uniform"
