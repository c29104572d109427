"""Sweep file (YAML, W&B conventions) -> validated, frozen `Sweep`. Validation happens here, once.

Every problem is collected and reported together as one `ConfigError`; W&B keys that
hpsearch does not use become warnings, never errors, so a W&B sweep file runs with only
`trainable` and `stages` added.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError
from hpsearch.search import budget as bp
from hpsearch.search import conditional as cond
from hpsearch.search import earlystop as es
from hpsearch.search import enqueue as eq
from hpsearch.search import space as sp
from hpsearch.search.builtins import BUILTINS, CLASSIFIER_METRICS, OPTIMIZERS, builtin_defaults
from hpsearch.search.launcher_options import check_options
from hpsearch.search.paramspec import is_int, is_num, yaml_number
from hpsearch.search.sampler import DEFAULT as DEFAULT_METHOD
from hpsearch.search.sampler import METHODS
from hpsearch.search.schedules import schedule_problems

# the warning for promoting stages beside a user trainable (the master drops it once a run resumed)
PROMOTE_WARNING = "a promoted trial continues only from resumable state"
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
    "epoch_timeout",
    "early_stop",
    "early_terminate",
    "enqueue",  # W&B's key, honoured: asha on W&B's hyperband bands (search/earlystop.py)
    "tensorboard",
    "warm_start",
    "method",
    "budget",
    "epochs",
}
# keys W&B documents for sweep files (and W&B Launch's sweep scheduler) that hpsearch does not use
WANDB_UNUSED = {
    "program",
    "command",
    "project",
    "entity",
    "run_cap",
    "scheduler",
    "job",
    "image_uri",
    "controller",
}
STAGE_KEYS = {"trials", "epochs", "top", "promote", "repeats", "name", "early_stop", "sampler"}
SAMPLERS = ("random", "tpe")
METRIC_KEYS = {"name", "goal", "target"}
# keys of every metrics line that are hpsearch's own, so never the sweep's metric
RESERVED_METRICS = ("epoch", "attempt", "time", "checkpoint", "adopted", "state", "extras", "inherited")
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


# What hpsearch itself gives every trial under these names: `{name}` placeholders of a command,
# the Trial's attributes of a python trainable. A parameter or fixed setting of the same name
# wins everywhere the user's values go (`{name}`, `${args}`, HPSEARCH_PARAMS, `params`), with a
# warning at load; hpsearch's own value stays in HPSEARCH_<NAME> and on the Trial.
TRIAL_NAMES = (
    "trial",
    "trial_dir",
    "seed",
    "epochs",
    "start_epoch",
    "stage",
    "attempt",
    "metric",
    "device",
    "metrics_file",
    "checkpoint_dir",
    "resume_from",
)


@dataclass(frozen=True)
class Metric:
    name: str = "val_acc"
    goal: str = "maximize"
    # W&B's metric.target: once a run reaches it (at or past, in the goal's direction), the sweep
    # plans no further stage (W&B sets the sweep finished; runs in progress finish)
    target: float | None = None

    def reached(self, value: float | None) -> bool:
        """Whether `value` reaches `target` (False without a target or a value)."""
        if self.target is None or value is None:
            return False
        return value >= self.target if self.goal == "maximize" else value <= self.target


@dataclass(frozen=True)
class Stage:
    trials: int
    epochs: int
    top: int | None = None  # how many of the PREVIOUS stage's best configurations set this stage's ranges
    promote: float = 0  # K (int) or a fraction of the previous stage's runs
    repeats: int = 1  # seeds per configuration; ranking uses the mean
    early_stop: es.EarlyStop | None = None  # this stage's own rule; None: the sweep's
    sampler: str = "random"  # random | tpe (Optuna's TPE, told the sweep's earlier trials: search/tpe.py)


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
    epoch_timeout: float | None = None  # seconds an epoch may take before its trial is timed out
    tensorboard: str | None = None  # live TensorBoard folder: "" = <sweep dir>/tensorboard; else absolute
    method: str = DEFAULT_METHOD  # where a stage's draws fall: random | sobol | lhs (search/sampler.py)
    budget: int | None = None  # epochs to train in all; the stages never exceed it (search/budget.py)
    auto: bool = False  # `stages: auto`: the stages were planned from the budget
    description: str = ""
    source_dir: str = "."
    warnings: tuple[str, ...] = ()
    early_stop: es.EarlyStop = es.NONE  # `early_stop:` or W&B's `early_terminate:`; a stage may override it
    enqueue: tuple[dict[str, Any], ...] = ()  # known configurations, run first in stage 1 (search/enqueue.py)

    def early_stop_for(self, k: int) -> es.EarlyStop:
        """The early-stopping rule of stage k (1-based): the stage's own, else the sweep's."""
        own = self.stages[k - 1].early_stop if 1 <= k <= len(self.stages) else None
        return own if own is not None else self.early_stop

    warm_start: str | None = None  # a finished sweep's directory: its last stage's runs join stage 1's ranking

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
    command = raw["trainable"].get("command") if isinstance(raw.get("trainable"), dict) else None
    # as `wandb_command` resolves it: anywhere in an argument, of a list or of a command string
    uses_program = "${program}" in (command if isinstance(command, str) else " ".join(map(str, command or [])))
    for key in raw:
        if key in ("program", "command") and (key == "command" or not uses_program):
            warnings.append(
                f"W&B key '{key}' is not used: hpsearch runs the program of trainable:, where W&B's command works "
                'as it is (trainable: {command: ["${env}", "${interpreter}", "${program}", "${args}"]}, with '
                "program: kept)"
            )
        elif key == "program":
            continue  # ${program} in trainable.command names it
        elif key in WANDB_UNUSED:
            warnings.append(f"W&B key '{key}' is not used by hpsearch (it always runs staged random search); ignored")
        elif key not in TOP_KEYS:
            problems.append(f"unknown key '{key}' (valid keys: {', '.join(sorted(TOP_KEYS))})")

    name = raw.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        problems.append(f"name: must be letters, digits, '.', '_' or '-' (no '/' or '..'), got {name!r}")
    metric = _metric(raw.get("metric", {}), problems, warnings)
    seed = _int(raw, "seed", 0, problems, minimum=0)
    trainable = _trainable(raw.get("trainable"), source_dir, problems, path_exists)
    if "command" in trainable and isinstance(trainable["command"], list):
        trainable["command"] = wandb_command(trainable["command"], raw.get("program"), problems)
    if "metric" not in raw and trainable and "builtin" not in trainable:
        warnings.append(
            "metric: not given, so runs are ranked by val_acc, maximized (the built-in classifier's metric); "
            "write metric: {name: ..., goal: ...} for the metric your trainable reports"
        )
    space = cond.parse_space(raw.get("parameters", {}), problems, warnings)  # plain and conditional
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
    early_stop = _early_stop(raw, problems)
    enqueue = eq.parse(raw.get("enqueue"), space, stages[0].trials if stages else None, problems, warnings)
    acts = any((st.early_stop or early_stop).rungs(st.epochs) for st in stages)
    for i, st in enumerate(stages, 1):
        rule = st.early_stop if st.early_stop is not None else early_stop
        # a 1-epoch stage under a sweep-wide rule that acts in another stage has nothing to stop
        # early: no word (`stages: auto` always starts with one); a stage's own rule, a longer
        # stage, or a rule that acts nowhere is told
        if rule.active and not rule.rungs(st.epochs) and (st.early_stop is not None or st.epochs > 1 or not acts):
            warnings.append(
                f"{'' if rule.source.startswith(f'stages[{i}]') else f'stages[{i}]: '}{rule.source} {rule.describe()} "
                f"has no rung below the stage's {st.epochs} epoch(s): "
                "no trial of it stops early"
            )
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
    epoch_timeout = raw.get("epoch_timeout")
    if isinstance(epoch_timeout, str):
        epoch_timeout = yaml_number(epoch_timeout)
    if epoch_timeout is not None and (not is_num(epoch_timeout) or not 0 < epoch_timeout <= 30 * 86400):
        problems.append(
            f"epoch_timeout: seconds one epoch may take, a number in (0, 2592000] (or leave it out), "
            f"got {raw.get('epoch_timeout')!r}"
        )
        epoch_timeout = None
    lock = raw.get("lock", "auto")
    if lock not in ("auto", "hard", "soft"):
        problems.append(f"lock: must be auto, hard or soft, got {lock!r}")
    method = _method(raw.get("method", DEFAULT_METHOD), warnings, problems)
    if trainable and trainable.get("builtin") in BUILTINS:
        _check_builtin_settings(trainable, space, problems)
        if trainable["builtin"] == "classifier" and metric.name not in CLASSIFIER_METRICS:
            problems.append(
                f"metric.name: the classifier built-in reports {', '.join(CLASSIFIER_METRICS)}; "
                f"got {metric.name!r} (e.g. metric: {{name: val_acc, goal: maximize}})"
            )
    tensorboard = _tensorboard(raw.get("tensorboard"), source_dir, problems)
    _check_trial_names(trainable, space, warnings)
    promoting = [i for i, s in enumerate(stages, 1) if s.promote]
    if promoting and ("python" in trainable or "command" in trainable):
        listed = " and ".join(str(i) for i in promoting)
        # `stages: auto` has no stages[k] in the file: name the plan's stages instead
        where = (
            f"stages: auto promotes into its stage(s) {listed} (see the plan)"
            if auto
            else f"{' and '.join(f'stages[{i}]' for i in promoting)}.promote (stages counted from 1)"
        )
        warnings.append(
            f"{where}: {PROMOTE_WARNING} "
            '(python: pass state= to trial.report; command: hand over "checkpoint" files); '
            "without it, it trains again from epoch 1 (a trainable that hands it over can ignore this)"
        )
    warm_start = _warm_start(raw.get("warm_start"), source_dir, problems, path_exists)

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
        epoch_timeout=float(epoch_timeout) if epoch_timeout is not None else None,
        tensorboard=tensorboard,
        method=method,
        budget=budget,
        auto=auto,
        description=str(raw.get("description", "")),
        source_dir=source_dir,
        warnings=tuple(warnings),
        early_stop=early_stop,
        enqueue=enqueue,
        warm_start=warm_start,
    )


def _early_stop(raw: dict[str, Any], problems: list[str]) -> es.EarlyStop:
    """The sweep-wide rule: `early_stop:` (ours) or `early_terminate:` (W&B's), not both."""
    if "early_stop" in raw and "early_terminate" in raw:
        problems.append(
            "early_stop and early_terminate: give one (early_terminate is W&B's form of early_stop: {type: asha})"
        )
        return es.NONE
    if "early_terminate" in raw:
        return es.wandb_rule(raw["early_terminate"], problems)
    if "early_stop" in raw:
        return es.parse(raw["early_stop"], "early_stop", problems)
    return es.NONE


def _tensorboard(v: Any, source_dir: str, problems: list[str]) -> str | None:
    """`tensorboard: true` (<sweep dir>/tensorboard, returned as "") or a folder (relative to the
    sweep file's folder, returned absolute-ish: joined to source_dir); false/absent: None."""
    if v is None or v is False:
        return None
    if v is True:
        return ""
    if not isinstance(v, str) or not v.strip():
        problems.append(f"tensorboard: must be true or a folder for TensorBoard's event files, got {v!r}")
        return None
    return v if Path(v).is_absolute() else str(Path(source_dir) / v)


def _warm_start(ws: Any, source_dir: str, problems: list[str], path_exists: Callable[[str], bool] | None) -> str | None:
    """`warm_start: DIR`: a finished sweep's directory (relative to the sweep file's folder), whose
    last stage's runs join this sweep's first ranking (`hpsearch next --warm-start` writes it)."""
    if ws is None:
        return None
    if not isinstance(ws, str) or not ws:
        problems.append(f"warm_start: must be the path of a sweep directory, got {ws!r}")
        return None
    full = ws if ws.startswith("/") else f"{source_dir.rstrip('/')}/{ws}"
    if path_exists is not None and not path_exists(f"{full}/journal.jsonl"):
        problems.append(f"warm_start: no sweep directory at {full!r} (no journal.jsonl)")
    return full


def _method(method: Any, warnings: list[str], problems: list[str]) -> str:
    """`method:` names the sampler; W&B's grid and bayes are accepted with a warning (the default runs)."""
    if method in METHODS:
        return str(method)
    if method in ("grid", "bayes"):
        warnings.append(
            f"W&B key 'method': {method} is not an hpsearch sampler; each stage samples with {DEFAULT_METHOD} "
            "(random and distinct draws in a space of only discrete parameters)"
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


def _metric(m: Any, problems: list[str], warnings: list[str]) -> Metric:
    """`metric: {name, goal}`. Without the block: val_acc, maximized (the built-in classifier's).
    A block without `goal` minimizes, as W&B does ("Default is minimize", W&B sweep configuration
    docs), and says so at start."""
    if not isinstance(m, dict):
        problems.append(f"metric: must be a mapping like {{name: val_acc, goal: maximize}}, got {m!r}")
        return Metric()
    for k in m:
        if k not in METRIC_KEYS:
            problems.append(f"metric: unknown key '{k}' (valid keys: goal, name, target)")
    if m and "name" not in m:  # W&B requires it too: the block names the metric it ranks by
        problems.append(
            "metric.name: missing: the key of the metric your trainable reports that ranks the runs "
            "(e.g. metric: {name: val_loss, goal: minimize})"
        )
    name = m.get("name", "val_acc")
    goal = m.get("goal", "minimize" if m else "maximize")  # no block: the built-in val_acc
    if "goal" not in m and m:
        warnings.append(
            f"metric.goal: not given, so {name!r} is minimized (W&B's default); write goal: maximize to maximize it"
        )
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or not name.isprintable():
        problems.append(
            f"metric.name: must be a key of the metrics you report, 1-100 printable characters "
            f"(e.g. val_acc, val/loss, eval.accuracy), got {name!r}"
        )
        name = "val_acc"
    elif name in RESERVED_METRICS:
        problems.append(
            f"metric.name: {name!r} is a key hpsearch writes in every metrics line "
            f"({', '.join(RESERVED_METRICS)}); report the metric under another name"
        )
    if goal not in ("maximize", "minimize"):
        problems.append(f"metric.goal: must be 'maximize' or 'minimize', got {goal!r}")
        goal = "maximize"
    target = m.get("target")
    if isinstance(target, str):
        target = yaml_number(target)
    if target is not None and (not is_num(target) or not math.isfinite(target)):
        problems.append(f"metric.target: must be a number (the value that ends the sweep), got {m.get('target')!r}")
        target = None
    return Metric(name=name, goal=goal, target=None if target is None else float(target))


def wandb_command(argv: list[str], program: Any, problems: list[str]) -> list[str]:
    """A command with W&B's agent macros resolved where the sweep file fixes them: `${program}` is
    the file's `program:`, and `${env}` (W&B runs `/usr/bin/env` there) is dropped, since hpsearch
    finds the program on PATH itself and runs no shell (W&B docs, "Sweep configuration: command").
    `${interpreter}`, `${args}` and the other `${args...}` forms stay for each trial
    (trainables/command.py)."""
    out = []
    for arg in argv:
        if arg == "${env}":
            continue
        if "${program}" in arg:
            if not isinstance(program, str) or not program:
                problems.append("trainable.command: ${program} needs the file's program: key (e.g. program: train.py)")
                return argv
            arg = arg.replace("${program}", program)
        out.append(arg)
    if not out:
        problems.append("trainable.command: nothing to run once ${env} is left out")
        return argv
    return out


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


def _check_trial_names(t: dict[str, Any], space: sp.Space, warnings: list[str]) -> None:
    kind = next((k for k in ("builtin", "python", "command") if k in t), None)
    if kind == "builtin":  # the built-ins read only their own settings, none of which is such a name
        return
    fixed = [k for k in t if k not in (kind, "grace")]
    for where, names in (("parameters", list(space)), ("trainable", fixed)):
        for name in names:
            if name in TRIAL_NAMES:
                env = "TRIAL_ID" if name == "trial" else name.upper()
                warnings.append(
                    f"{where}.{name}: your '{name}' is what {{{name}}}, ${{args}}, HPSEARCH_PARAMS and params "
                    f"give your code; hpsearch's own {name} stays in HPSEARCH_{env} (and on the Trial "
                    f"in Python); rename yours (e.g. 'my_{name}') to get hpsearch's from {{{name}}}"
                )


def _check_builtin_settings(t: dict[str, Any], space: sp.Space, problems: list[str]) -> None:
    defaults = builtin_defaults(t["builtin"])
    valid = ", ".join(sorted(defaults))
    for k in t:
        if k != "builtin" and k not in defaults:
            problems.append(f"trainable.{k}: not a setting of the {t['builtin']} built-in (valid: {valid})")
    for k in cond.public_names(space) if t["builtin"] == "classifier" else ():  # noop takes any parameter
        if k not in defaults:
            problems.append(f"parameters.{k}: not a setting of the {t['builtin']} built-in (valid: {valid})")
    ds = t.get("dataset", defaults.get("dataset"))
    if t["builtin"] == "classifier":
        if not isinstance(ds, str) or not (ds in ("digits", "spiral") or ds.startswith(("npz:", "cifar10:"))):
            problems.append(f"trainable.dataset: must be digits, spiral, npz:PATH or cifar10:DIR, got {ds!r}")
        opt = t.get("optimizer", "momentum")
        if "optimizer" not in space and opt not in OPTIMIZERS:
            problems.append(f"trainable.optimizer: must be one of {', '.join(OPTIMIZERS)}, got {opt!r}")
        problems.extend(schedule_problems(t, space))


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
    out: list[Stage] = []
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
        elif promote and out and is_int(epochs) and epochs <= out[-1].epochs:
            problems.append(
                f"{where}.promote: its epochs ({epochs}) are not more than stage {i - 1}'s ({out[-1].epochs}): a "
                "promoted trial goes on from its checkpoint and would have nothing to train (give the stage more "
                "epochs, or drop promote)"
            )
        repeats = s.get("repeats", 1)
        if not is_int(repeats) or repeats < 1:
            problems.append(f"{where}.repeats: must be an integer >= 1, got {repeats!r}")
        stop_rule = es.parse(s["early_stop"], f"{where}.early_stop", problems) if "early_stop" in s else None
        sampler = s.get("sampler", "random")
        if sampler not in SAMPLERS:
            problems.append(f"{where}.sampler: must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if len(problems) == n:
            if trials == 0 and not promote:
                problems.append(f"{where}: has zero trials (set trials: N, or promote: K)")
            else:
                out.append(
                    Stage(
                        trials=trials,
                        epochs=epochs,
                        top=top,
                        promote=promote,
                        repeats=repeats,
                        early_stop=stop_rule,
                        sampler=sampler,
                    )
                )
    return out
