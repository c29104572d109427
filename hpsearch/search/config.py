"""Sweep file (YAML, W&B conventions) -> validated, frozen `Sweep`. Validation happens here, once.

Every problem is collected and reported together as one `ConfigError`; W&B keys that
hpsearch does not use become warnings, never errors, so a W&B sweep file runs with only
`trainable` and `stages` added.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError
from hpsearch.search import budget as bp
from hpsearch.search import space as sp
from hpsearch.search.builtins import BUILTINS, OPTIMIZERS, builtin_defaults
from hpsearch.search.launcher_options import check_options
from hpsearch.search.paramspec import is_int, is_num, parse_parameters, yaml_number
from hpsearch.search.sampler import DEFAULT as DEFAULT_METHOD
from hpsearch.search.sampler import METHODS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TOP_KEYS = {
    "name",
    "description",
    "metric",
    "seed",
    "trainable",
    "parameters",
    "stages",
    "workers",
    "launcher",
    "border",
    "margin",
    "on_border",
    "retries",
    "heartbeat",
    "stale_after",
    "checkpoints",
    "keep_top",
    "max_failures",
    "lock",
    "method",
    "budget",
    "epochs",
}
WANDB_UNUSED = {"program", "command", "early_terminate", "project", "entity", "run_cap"}
STAGE_KEYS = {"trials", "epochs", "top", "promote", "repeats", "name"}
METRIC_KEYS = {"name", "goal", "target"}
SLURM_KEYS = {
    "type",
    "partition",
    "account",
    "qos",
    "time",
    "gpus_per_worker",
    "cpus_per_worker",
    "mem",
    "constraint",
    "extra",
    "setup",
    "max_resubmits",
    "signal_seconds",
    "python",
}
LOCAL_KEYS = {"type", "workers_per_gpu", "threads"}


@dataclass(frozen=True)
class Metric:
    name: str = "val_acc"
    goal: str = "maximize"


@dataclass(frozen=True)
class Stage:
    trials: int
    epochs: int
    top: int | None = None  # how many of the PREVIOUS stage's best configurations set this stage's ranges
    promote: float = 0  # K (int) or a fraction of the previous stage's runs
    repeats: int = 1  # seeds per configuration; ranking uses the mean


@dataclass(frozen=True)
class Sweep:
    name: str
    metric: Metric
    seed: int
    trainable: dict[str, Any]  # {"builtin"|"python"|"command": ..., fixed settings...}
    space: sp.Space
    stages: tuple[Stage, ...]
    workers: int = 1
    launcher: dict[str, Any] = field(default_factory=lambda: {"type": "local"})
    border: float = 0.1
    margin: float = 0.25
    on_border: str = "extend"
    retries: int = 3
    heartbeat: float = 5.0
    stale_after: float = 30.0
    checkpoints: str = "best_last"
    keep_top: int | None = None
    max_failures: int = 5
    lock: str = "auto"
    method: str = DEFAULT_METHOD  # where a stage's draws fall: random | sobol | lhs (search/sampler.py)
    budget: int | None = None  # epochs to train in all; the stages never exceed it (search/budget.py)
    auto: bool = False  # `stages: auto`: the stages were planned from the budget
    description: str = ""
    source_dir: str = "."
    warnings: tuple[str, ...] = ()

    @property
    def trainable_kind(self) -> str:
        return next(k for k in ("builtin", "python", "command") if k in self.trainable)

    def fixed_settings(self) -> dict[str, Any]:
        """Trainable settings with the trainable's own key removed (defaults filled for built-ins)."""
        kind = self.trainable_kind
        base = builtin_defaults(self.trainable["builtin"]) if kind == "builtin" else {}
        base.update({k: v for k, v in self.trainable.items() if k != kind})
        return base


def fingerprint(raw: dict[str, Any]) -> str:
    """Stable hash of a sweep's content, to tell a resumed sweep from a different one."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse(
    raw: Any,
    source_dir: str = ".",
    default_name: str = "sweep",
    source: str = "sweep file",
    path_exists: Callable[[str], bool] | None = None,
) -> Sweep:
    """Validate a sweep file's mapping into a frozen `Sweep`.

    Args:
        raw: the YAML document as loaded (a mapping).
        source_dir: the sweep file's folder; relative paths in it resolve there.
        default_name: the sweep's name when the file gives none (the file's stem).
        source: how error messages name the file.
        path_exists: checks that data files named in the sweep exist (the store layer passes
            the real file system's; None skips the check, keeping this function pure).

    Raises:
        ConfigError: every problem found, one per line, with field, rule and value.
    """
    problems: list[str] = []
    warnings: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"the file must be a mapping of keys (name:, parameters:, stages:, ...), got {type(raw).__name__}"], source
        )
    for key in raw:
        if key in WANDB_UNUSED:
            warnings.append(f"W&B key '{key}' is not used by hpsearch (it always runs staged random search); ignored")
        elif key not in TOP_KEYS:
            problems.append(f"unknown key '{key}' (valid keys: {', '.join(sorted(TOP_KEYS))})")

    name = raw.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        problems.append(f"name: must be letters, digits, '.', '_' or '-' (no '/' or '..'), got {name!r}")
    metric = _metric(raw.get("metric", {}), problems)
    seed = _int(raw, "seed", 0, problems, minimum=0)
    trainable = _trainable(raw.get("trainable"), source_dir, problems, path_exists)
    space = parse_parameters(raw.get("parameters", {}), problems, warnings)
    budget = raw.get("budget")
    if budget is not None and (not is_int(budget) or budget < 1):
        problems.append(f"budget: must be a number of epochs (an integer >= 1), got {budget!r}")
        budget = None
    auto = raw.get("stages") == "auto"
    stages = _auto_stages(raw, budget, problems) if auto else _stages(raw.get("stages"), problems)
    if "epochs" in raw and not auto:
        problems.append("epochs: is read only with stages: auto (the epochs a good run needs)")
    if budget is not None and stages and not auto and bp.cost(stages) > budget:
        problems.append(f"stages: train up to {bp.cost(stages)} epochs, over the budget of {budget}")
    workers = _int(raw, "workers", 1, problems, minimum=1)
    launcher = _launcher(raw.get("launcher", {"type": "local"}), problems)
    border = _float(raw, "border", 0.1, problems, 0.0, 0.5)
    margin = _float(raw, "margin", 0.25, problems, 0.0, 10.0)
    on_border = raw.get("on_border", "extend")
    if on_border not in ("extend", "keep"):
        problems.append(f"on_border: must be 'extend' or 'keep', got {on_border!r}")
    retries = _int(raw, "retries", 3, problems, minimum=0)
    heartbeat = _float(raw, "heartbeat", 5.0, problems, 0.05, 3600)
    stale_after = _float(raw, "stale_after", max(30.0, 6 * heartbeat), problems, 0.1, 86400)
    if stale_after <= heartbeat:
        problems.append(f"stale_after: must exceed heartbeat ({heartbeat}), got {stale_after}")
    checkpoints = raw.get("checkpoints", "best_last")
    if checkpoints not in ("best_last", "all", "last"):
        problems.append(f"checkpoints: must be best_last, last or all, got {checkpoints!r}")
    keep_top = raw.get("keep_top")
    if keep_top is not None and (not is_int(keep_top) or keep_top < 1):
        problems.append(f"keep_top: must be a positive integer, got {keep_top!r}")
    max_failures = _int(raw, "max_failures", 5, problems, minimum=1)
    lock = raw.get("lock", "auto")
    if lock not in ("auto", "hard", "soft"):
        problems.append(f"lock: must be auto, hard or soft, got {lock!r}")
    method = _method(raw.get("method", DEFAULT_METHOD), warnings, problems)
    if trainable and trainable.get("builtin") in BUILTINS:
        _check_builtin_settings(trainable, space, problems)

    if problems:
        raise ConfigError(problems, source)
    return Sweep(
        name=name,
        metric=metric,
        seed=seed,
        trainable=trainable,
        space=space,
        stages=tuple(stages),
        workers=workers,
        launcher=launcher,
        border=border,
        margin=margin,
        on_border=on_border,
        retries=retries,
        heartbeat=heartbeat,
        stale_after=stale_after,
        checkpoints=checkpoints,
        keep_top=keep_top,
        max_failures=max_failures,
        lock=lock,
        method=method,
        budget=budget,
        auto=auto,
        description=str(raw.get("description", "")),
        source_dir=source_dir,
        warnings=tuple(warnings),
    )


def _method(method: Any, warnings: list[str], problems: list[str]) -> str:
    """`method:` names the sampler; W&B's grid and bayes are accepted with a warning (the default runs)."""
    if method in METHODS:
        return str(method)
    if method in ("grid", "bayes"):
        warnings.append(
            f"W&B key 'method': {method} is not an hpsearch sampler; each stage samples with {DEFAULT_METHOD}"
        )
    else:
        problems.append(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    return DEFAULT_METHOD


def _int(raw: dict, key: str, default: int, problems: list[str], minimum: int) -> int:
    v = raw.get(key, default)
    if not is_int(v) or v < minimum:
        problems.append(f"{key}: must be an integer >= {minimum}, got {v!r}")
        return default
    return v


def _float(raw: dict, key: str, default: float, problems: list[str], lo: float, hi: float) -> float:
    v = raw.get(key, default)
    if isinstance(v, str):
        v = yaml_number(v)
    if not is_num(v) or not lo <= v <= hi:
        problems.append(f"{key}: must be a number in [{lo}, {hi}], got {raw.get(key)!r}")
        return default
    return float(v)


def _metric(m: Any, problems: list[str]) -> Metric:
    if not isinstance(m, dict):
        problems.append(f"metric: must be a mapping like {{name: val_acc, goal: maximize}}, got {m!r}")
        return Metric()
    for k in m:
        if k not in METRIC_KEYS:
            problems.append(f"metric: unknown key '{k}' (valid keys: goal, name, target)")
    name = m.get("name", "val_acc")
    goal = m.get("goal", "maximize")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        problems.append(f"metric.name: must be an identifier like val_acc, got {name!r}")
        name = "val_acc"
    if goal not in ("maximize", "minimize"):
        problems.append(f"metric.goal: must be 'maximize' or 'minimize', got {goal!r}")
        goal = "maximize"
    return Metric(name=name, goal=goal)


def _trainable(
    t: Any, source_dir: str, problems: list[str], path_exists: Callable[[str], bool] | None
) -> dict[str, Any]:
    if t is None:
        problems.append(
            "trainable: missing; e.g. {builtin: classifier, dataset: digits}, "
            "{python: 'mypkg.train:fit'} or {command: [python, train.py, --lr, '{lr}']}"
        )
        return {}
    if isinstance(t, str):
        t = {"builtin": t}
    if not isinstance(t, dict):
        problems.append(f"trainable: must be a mapping, got {t!r}")
        return {}
    kinds = [k for k in ("builtin", "python", "command") if k in t]
    if len(kinds) != 1:
        problems.append(
            "trainable: needs exactly one of builtin, python, command; got " + (", ".join(kinds) if kinds else "none")
        )
        return {}
    t = dict(t)
    kind = kinds[0]
    if kind == "builtin" and t["builtin"] not in BUILTINS:
        problems.append(f"trainable.builtin: unknown built-in {t['builtin']!r} (valid: {', '.join(BUILTINS)})")
    if kind == "python" and (not isinstance(t["python"], str) or not re.match(r"^[\w.]+:[\w.]+$", t["python"])):
        problems.append(f"trainable.python: must look like 'package.module:function', got {t['python']!r}")
    if kind == "command":
        cmd = t["command"]
        if isinstance(cmd, str):
            cmd = shlex.split(cmd)
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, (str, int, float)) for a in cmd):
            problems.append(f"trainable.command: must be a non-empty list of arguments, got {t['command']!r}")
        else:
            t["command"] = [str(a) for a in cmd]
    ds = t.get("dataset")
    if isinstance(ds, str) and ds.startswith(("npz:", "cifar10:")):
        prefix, _, p = ds.partition(":")
        p = str(Path(p).expanduser())  # `cifar10:~/data/...`
        full = Path(p) if Path(p).is_absolute() else Path(source_dir) / p
        if path_exists is not None and not path_exists(str(full)) and not path_exists(p):
            problems.append(
                f"trainable.dataset: {prefix} data not found at {p!r} "
                "(relative paths are read from the sweep file's folder)"
            )
    return t


def _check_builtin_settings(t: dict[str, Any], space: sp.Space, problems: list[str]) -> None:
    defaults = builtin_defaults(t["builtin"])
    valid = ", ".join(sorted(defaults))
    for k in t:
        if k != "builtin" and k not in defaults:
            problems.append(f"trainable.{k}: not a setting of the {t['builtin']} built-in (valid: {valid})")
    for k in space if t["builtin"] == "classifier" else ():  # noop takes any parameter
        if k not in defaults:
            problems.append(f"parameters.{k}: not a setting of the {t['builtin']} built-in (valid: {valid})")
    ds = t.get("dataset", defaults.get("dataset"))
    if t["builtin"] == "classifier":
        if not isinstance(ds, str) or not (ds in ("digits", "spiral") or ds.startswith(("npz:", "cifar10:"))):
            problems.append(f"trainable.dataset: must be digits, spiral, npz:PATH or cifar10:DIR, got {ds!r}")
        opt = t.get("optimizer", "momentum")
        if "optimizer" not in space and opt not in OPTIMIZERS:
            problems.append(f"trainable.optimizer: must be one of {', '.join(OPTIMIZERS)}, got {opt!r}")


def _launcher(launcher: Any, problems: list[str]) -> dict[str, Any]:
    if isinstance(launcher, str):
        launcher = {"type": launcher}
    if not isinstance(launcher, dict) or launcher.get("type", "local") not in ("local", "slurm"):
        problems.append(
            f"launcher: must be {{type: local}} or {{type: slurm, partition: ..., time: ...}}, got {launcher!r}"
        )
        return {"type": "local"}
    launcher = {"type": "local", **launcher}
    valid = SLURM_KEYS if launcher["type"] == "slurm" else LOCAL_KEYS
    for k in launcher:
        if k not in valid:
            problems.append(
                f"launcher.{k}: unknown for type {launcher['type']} (valid keys: {', '.join(sorted(valid))})"
            )
    if launcher["type"] == "slurm":
        problems.extend(check_options(launcher))
    return launcher


def _auto_stages(raw: dict, budget: int | None, problems: list[str]) -> list[Stage]:
    """`stages: auto`: the plan of `search.budget.plan` for `budget:` and `epochs:` (a good run's epochs)."""
    epochs: Any = raw.get("epochs")
    n = len(problems)
    if budget is None:
        problems.append("stages: auto needs budget: (the epochs to train in all), e.g. budget: 200")
    if not is_int(epochs) or epochs < 1:
        problems.append(f"stages: auto needs epochs: (the epochs a good run needs, an integer >= 1), got {epochs!r}")
    if len(problems) > n or budget is None:
        return []
    try:
        planned = bp.plan(budget, epochs)
    except ValueError as e:
        problems.append(str(e))
        return []
    return [Stage(trials=s.trials, epochs=s.epochs, top=s.top, promote=s.promote, repeats=s.repeats) for s in planned]


def _stages(stages: Any, problems: list[str]) -> list[Stage]:
    if stages is None:
        problems.append("stages: missing; e.g. [{trials: 60, epochs: 1}, {trials: 30, epochs: 5, top: 10}]")
        return []
    if not isinstance(stages, list) or not stages:
        problems.append(f"stages: must be a non-empty list of {{trials: N, epochs: E}} or auto, got {stages!r}")
        return []
    out = []
    for i, s in enumerate(stages, 1):
        where = f"stages[{i}]"
        if not isinstance(s, dict):
            problems.append(f"{where}: must be a mapping like {{trials: 30, epochs: 5}}, got {s!r}")
            continue
        for k in s:
            if k not in STAGE_KEYS:
                problems.append(f"{where}: unknown key '{k}' (valid keys: {', '.join(sorted(STAGE_KEYS))})")
        n = len(problems)
        trials = s.get("trials", 0)
        if not is_int(trials) or trials < 0:
            problems.append(f"{where}.trials: must be an integer >= 0, got {trials!r}")
        epochs = s.get("epochs", 1)
        if not is_int(epochs) or epochs < 1:
            problems.append(f"{where}.epochs: must be an integer >= 1, got {epochs!r}")
        top = s.get("top")
        if top is not None and (not is_int(top) or top < 1):
            problems.append(f"{where}.top: must be an integer >= 1, got {top!r}")
        promote = s.get("promote", 0)
        if not is_num(promote) or promote < 0 or (not is_int(promote) and promote > 1):
            problems.append(f"{where}.promote: must be a count (integer) or a fraction in (0, 1], got {promote!r}")
        elif promote and i == 1:
            problems.append(f"{where}.promote: the first stage has no earlier stage to promote from")
        repeats = s.get("repeats", 1)
        if not is_int(repeats) or repeats < 1:
            problems.append(f"{where}.repeats: must be an integer >= 1, got {repeats!r}")
        if len(problems) == n:
            if trials == 0 and not promote:
                problems.append(f"{where}: has zero trials (set trials: N, or promote: K)")
            else:
                out.append(Stage(trials=trials, epochs=epochs, top=top, promote=promote, repeats=repeats))
    return out
