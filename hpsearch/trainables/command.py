"""A user's program as a trainable: run without a shell, metrics read back as JSON lines.

`trainable: {command: [python, train.py, --lr, "{lr}", --epochs, "{epochs}"]}`

The contract (keep it stable: people write programs against it; README "Your own training code"):

Arguments
    `{name}` in an argument is replaced by the trial's value of parameter `name` (searched or
    fixed), or by one of: {trial} (id), {trial_dir}, {seed}, {epochs} (total epochs to reach),
    {start_epoch} (epochs already done), {stage}, {attempt}, {metric}, {device},
    {metrics_file}, {checkpoint_dir}, {resume_from} (empty unless resuming). `{{`/`}}` are literal
    braces. W&B forms: an argument that is exactly `${args}` becomes `--name=value` for every
    parameter, `${args_no_hyphens}` becomes `name=value`, `${args_no_boolean_flags}` is `${args}`
    with a true boolean as a bare `--name` and a false one left out, `${args_json}` one JSON
    argument, `${args_json_file}` the path of a JSON file holding them (in the trial's folder);
    `${interpreter}` is the Python running the worker; `${program}` (the file's `program:`) and
    `${env}` (left out) are resolved when the sweep file is read (search/config.py). No shell ever
    parses the command.
Environment (on top of the worker's, so CUDA_VISIBLE_DEVICES passes through)
    HPSEARCH_TRIAL_ID, HPSEARCH_TRIAL_DIR (keep your own files here), HPSEARCH_METRICS_FILE,
    HPSEARCH_CHECKPOINT_DIR, HPSEARCH_RESUME_FROM (only when resuming), HPSEARCH_PARAMS (JSON),
    HPSEARCH_EPOCHS, HPSEARCH_START_EPOCH, HPSEARCH_SEED, HPSEARCH_METRIC, HPSEARCH_DEVICE,
    HPSEARCH_STAGE, HPSEARCH_ATTEMPT. A parameter named like a placeholder ({seed}, {epochs}...)
    wins in {name}, ${args} and HPSEARCH_PARAMS alike; hpsearch's value stays in these variables.
    OMP_NUM_THREADS, MKL_NUM_THREADS and the like are the worker's --threads unless set (worker.py).
    The program runs in the sweep file's folder; all paths given to it are absolute.
Metrics
    After each epoch the program appends one JSON object and a newline to HPSEARCH_METRICS_FILE,
    e.g. {"epoch": 3, "val_acc": 0.52, "train_loss": 1.3}. It must hold the sweep's metric;
    numbers are metrics, anything else is kept as extra data; "epoch" defaults to the previous
    line's + 1. The keys attempt, time, adopted, state and extras are hpsearch's: a program's
    own values for them are kept as program_<key>.
Metrics from the program's own output (`metric_regex`: a regular expression or a list of them)
    For a program left as it is: every line it prints is matched against each expression; the
    named groups of a match are metrics (`(?P<test_acc>[0-9.]+)` -> test_acc, read as a
    number). A line whose match holds the sweep's metric ends an epoch: the epoch's metrics are
    those matched since the previous epoch ended, and epochs are counted from 1 (from
    START_EPOCH + 1 when resuming from a handed-over checkpoint). The metrics file still works
    beside it. Without handed-over checkpoints a continued trial restarts from epoch 1.
Checkpoints
    `"checkpoint": PATH` in a line hands over a file the program wrote completely (and closed)
    before appending the line, best under HPSEARCH_CHECKPOINT_DIR, under a new name each
    epoch (e.g. epoch3.pt): the worker moves it, soon after the line appears, to the sweep's
    checkpoints/ under the canonical name (metric in the name) and applies retention.
    HPSEARCH_CHECKPOINT_DIR is scratch for one attempt: whatever is left there is deleted.
Resuming
    When the trial continues (its worker was lost, or it is promoted to a later stage)
    HPSEARCH_RESUME_FROM is the last handed-over checkpoint, HPSEARCH_START_EPOCH its epoch:
    load it, and go on with epoch START_EPOCH + 1 up to HPSEARCH_EPOCHS. Read it, never move it
    (a promoted trial resumes from its parent's file). Without it, start from epoch 1.
Exit and stop
    Exit 0 after the last epoch. A non-zero exit fails the trial, with the last lines of its
    log (stdout and stderr go to trials/<trial>/worker.log) as the reason. When the trial must
    stop (it diverged, the sweep is stopping, the worker got SIGTERM) the program's process
    group gets SIGTERM, then SIGKILL after `grace` seconds (trainable setting, default 10).
    If the worker dies, the kernel kills the program (Linux). With the sweep's `epoch_timeout`, a
    program that reports no epoch for that long is killed the same way and the trial timed out.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError, StopTrial
from hpsearch.search.conditional import is_conditional, public, public_names
from hpsearch.search.config import TRIAL_NAMES

RUNNER_KEYS = ("command", "grace", "metric_regex")  # trainable settings of the runner, not parameters
RESERVED = ("attempt", "time", "adopted", "state", "extras", "inherited")
SPECIAL = TRIAL_NAMES  # a parameter of the same name wins (search.config warns at load)
ARG_LISTS = ("${args}", "${args_no_hyphens}", "${args_no_boolean_flags}", "${args_json}", "${args_json_file}")
ARGS_FILE = "args.json"  # ${args_json_file}: written in the trial's folder before each attempt
TOKEN = re.compile(r"\$\{(\w+)\}|\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
DEFAULT_GRACE_S = 10.0
POLL_S = 0.1  # how often the metrics file is read; a report costs far less
STOP_CHECK_S = 1.0  # how often the journal is read for a master stop

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class ProgramFailed(RuntimeError):
    """The program exited non-zero or broke the metrics contract; one line, the worker's reason.

    `detail`: what the trial's error.txt should hold instead of hpsearch's own traceback (the
    program's last log lines, where its own traceback is), or "" for the traceback."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


# -- arguments -------------------------------------------------------------------------------
def text(v: Any) -> str:
    """A value as one argument: numbers and strings as Python writes them, lists as JSON."""
    if isinstance(v, (list, dict)) or v is None:
        return json.dumps(v)
    return str(v)


def placeholders(argv: list[str]) -> set[str]:
    """Names used as `{name}` or `${name}` in argv (the whole-argument `${args...}` excluded)."""
    names: set[str] = set()
    for arg in argv:
        if arg in ARG_LISTS:
            continue
        for m in TOKEN.finditer(arg):
            if m.group(1):
                names.add("$" + m.group(1))
            elif m.group(2):
                names.add(m.group(2))
    return names


def expand(argv: list[str], values: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """Replace placeholders; `values` holds every `{name}`, `params` what `${args}` lists.

    Raises:
        KeyError: a placeholder names nothing known (its name is the key).
    """

    def sub(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        if m.group(1):
            if m.group(1) != "interpreter":
                raise KeyError("$" + m.group(1))
            return sys.executable
        if m.group(2) not in values:
            raise KeyError(m.group(2))
        return text(values[m.group(2)])

    out: list[str] = []
    for arg in argv:
        if arg == "${args}":
            out += [f"--{k}={text(v)}" for k, v in params.items()]
        elif arg == "${args_no_hyphens}":
            out += [f"{k}={text(v)}" for k, v in params.items()]
        elif arg == "${args_no_boolean_flags}":
            out += [f"--{k}" if v is True else f"--{k}={text(v)}" for k, v in params.items() if v is not False]
        elif arg == "${args_json}":
            out.append(json.dumps(params, sort_keys=True))
        elif arg == "${args_json_file}":
            out.append(os.path.join(str(values["trial_dir"]), ARGS_FILE))
        else:
            out.append(TOKEN.sub(sub, arg))
    return out


def check(sweep: Any) -> None:
    """At the door: every placeholder is known, the program exists, `grace` is a number."""
    argv: list[str] = sweep.trainable["command"]
    problems = []
    names = public_names(sweep.space)  # a conditional parameter's plain name (lr, not lr[optimizer=adam])
    known = set(SPECIAL) | set(names) | set(sweep.fixed_settings()) | {"$interpreter"}
    optional = {public(k) for k in sweep.space if is_conditional(k)} - set(sweep.fixed_settings())
    for name in sorted(placeholders(argv) & optional):
        problems.append(
            f"trainable.command: {{{name}}} names a conditional parameter, absent from trials where its "
            "condition does not hold; pass it with ${args} (or ${args_json}), which list only a trial's parameters"
        )
    for name in sorted(placeholders(argv) - known):
        what = f"${{{name[1:]}}}" if name.startswith("$") else f"{{{name}}}"
        problems.append(
            f"trainable.command: unknown placeholder {what} (parameters: "
            f"{', '.join(sorted(names)) or 'none'}; also {', '.join(SPECIAL)}, "
            "${args}, ${args_no_hyphens}, ${args_no_boolean_flags}, ${args_json}, ${args_json_file}, "
            "${interpreter}; {{ and }} for braces)"
        )
    grace = sweep.trainable.get("grace", DEFAULT_GRACE_S)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace <= 3600:
        problems.append(f"trainable.grace: seconds between SIGTERM and SIGKILL, a number in [0, 3600], got {grace!r}")
    problems += regex_problems(sweep.trainable.get("metric_regex"), sweep.metric.name)
    exe = argv[0]
    if not placeholders([exe]) and exe not in ARG_LISTS:
        found = shutil.which(exe) or (Path(sweep.source_dir) / exe).is_file()
        if not found:
            problems.append(f"trainable.command: program {exe!r} not found on PATH or in {sweep.source_dir}")
    script = _script(argv)
    if script is not None and not (Path(sweep.source_dir) / script).is_file():
        problems.append(
            f"trainable.command: script {script!r} not found in {sweep.source_dir} (the program runs in the sweep "
            "file's folder; a path there or an absolute one)"
        )
    if problems:
        raise ConfigError(problems)


def _script(argv: list[str]) -> str | None:
    """The script a Python interpreter is told to run (`python train.py ...`, `${interpreter} train.py`):
    its first argument that is not an option, when it names a .py file without placeholders."""
    if Path(argv[0]).name.split(".")[0].rstrip("0123456789") != "python" and argv[0] != "${interpreter}":
        return None
    arg = next((a for a in argv[1:] if not a.startswith("-")), None)
    if arg is None or not arg.endswith(".py") or placeholders([arg]) or arg in ARG_LISTS:
        return None
    return arg


def compile_regexes(spec: Any) -> list[re.Pattern[str]]:
    """`metric_regex` (None, one expression, or a list) compiled; assumes `regex_problems` found none."""
    if spec is None:
        return []
    return [re.compile(x) for x in ([spec] if isinstance(spec, str) else spec)]


def regex_problems(spec: Any, metric: str) -> list[str]:
    """What is wrong with a `metric_regex` setting: not text, not a valid expression, no named
    group, or no expression naming the sweep's metric (then no epoch could ever end)."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, str) else spec
    example = rf"'Accuracy: (?P<{metric}>[0-9.]+)'"
    if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
        return [f"trainable.metric_regex: must be a regular expression or a list of them, e.g. {example}; got {spec!r}"]
    problems, groups = [], set()
    for x in items:
        try:
            names = set(re.compile(x).groupindex)
        except re.error as e:
            problems.append(f"trainable.metric_regex: {x!r} is not a valid regular expression ({e})")
            continue
        if not names:
            problems.append(f"trainable.metric_regex: {x!r} has no named group; name each metric, e.g. {example}")
        groups |= names
    if not problems and metric not in groups:
        problems.append(
            f"trainable.metric_regex: no expression has a group named after the sweep's metric {metric!r} "
            f"(groups: {', '.join(sorted(groups))}); e.g. {example}"
        )
    return problems


class _Output:
    """Epochs read from the program's printed lines (its log), matched against `metric_regex`."""

    def __init__(self, log: Path, offset: int, regexes: list[re.Pattern[str]], metric: str, start_epoch: int) -> None:
        self.f = open(log, "rb")  # noqa: SIM115 (tailed until close())
        self.f.seek(offset)
        self.regexes, self.metric, self.epoch = regexes, metric, start_epoch
        self.partial = b""
        self.pending: dict[str, float] = {}

    def read(self) -> list[tuple[int, Any]]:
        data = self.partial + self.f.read()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        out = []
        for raw in lines:
            line = raw.decode(errors="replace")
            for rx in self.regexes:
                m = rx.search(line)
                if m is None:
                    continue
                for k, v in m.groupdict().items():
                    if v is None:
                        continue
                    try:
                        self.pending[k] = float(v.replace(",", ""))
                    except ValueError:
                        raise ProgramFailed(
                            f"metric_regex: group {k!r} matched {v!r}, not a number, in the line {line.strip()[:120]!r}"
                        ) from None
                if self.metric in m.groupdict() and m.group(self.metric) is not None:
                    self.epoch += 1
                    out.append((self.epoch, {"epoch": self.epoch, **self.pending}))
                    self.pending = {}
        return out

    def close(self) -> None:
        self.f.close()


# -- running ---------------------------------------------------------------------------------
def make_runner(argv: list[str], source_dir: str, settings: dict[str, Any]) -> Callable[[dict[str, Any], Any], None]:
    """fit(params, trial) that runs the program once per trial attempt (see the module docstring)."""
    grace = float(settings.get("grace", DEFAULT_GRACE_S))
    regexes = compile_regexes(settings.get("metric_regex"))

    def fit(params: dict[str, Any], trial: Any) -> None:
        run_program(list(argv), source_dir, params, trial, grace, regexes)

    return fit


def run_program(
    argv: list[str],
    source_dir: str,
    params: dict[str, Any],
    trial: Any,
    grace: float,
    regexes: list[re.Pattern[str]] | None = None,
) -> None:
    """Run one attempt; report each metrics line; raise ProgramFailed or StopTrial as the worker expects."""
    layout = trial.store.layout
    work = layout.program_dir(trial.id, trial.attempt)
    shutil.rmtree(work, ignore_errors=True)
    ckpt_dir = work / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    metrics_file = work / "metrics.jsonl"
    metrics_file.touch()
    # resume only from a file the program handed over: a metadata-only checkpoint restores nothing
    last = trial.history[-1] if trial.history else {}
    resume_from = trial.resume_checkpoint if trial.resume_checkpoint is not None and last.get("adopted") else None
    start_epoch = trial.start_epoch if resume_from is not None else 0
    user_params = {k: v for k, v in params.items() if k not in RUNNER_KEYS}
    paths = {
        "trial_dir": os.path.abspath(trial.trial_dir),
        "metrics_file": os.path.abspath(metrics_file),
        "checkpoint_dir": os.path.abspath(ckpt_dir),
        "resume_from": os.path.abspath(resume_from) if resume_from is not None else "",
    }
    values = {
        "trial": trial.id,
        "seed": trial.seed,
        "epochs": trial.epochs,
        "start_epoch": start_epoch,
        "stage": trial.stage,
        "attempt": trial.attempt,
        "metric": trial.metric,
        "device": trial.device,
        **paths,
        **user_params,  # one rule with ${args} and HPSEARCH_PARAMS: the user's parameter wins
    }
    if "${args_json_file}" in argv:  # W&B's form: the parameters as a JSON file the program reads
        Path(paths["trial_dir"], ARGS_FILE).write_text(json.dumps(user_params, sort_keys=True))
    try:
        args = expand(argv, values, user_params)
    except KeyError as e:
        raise ProgramFailed(f"trainable.command: unknown placeholder {e.args[0]!r}") from None
    env = dict(os.environ)
    env.pop("HPSEARCH_RESUME_FROM", None)
    env.update(
        HPSEARCH_TRIAL_ID=trial.id,
        HPSEARCH_TRIAL_DIR=paths["trial_dir"],
        HPSEARCH_METRICS_FILE=paths["metrics_file"],
        HPSEARCH_CHECKPOINT_DIR=paths["checkpoint_dir"],
        HPSEARCH_PARAMS=json.dumps(user_params, default=str),
        HPSEARCH_EPOCHS=str(trial.epochs),
        HPSEARCH_START_EPOCH=str(start_epoch),
        HPSEARCH_SEED=str(trial.seed),
        HPSEARCH_METRIC=trial.metric,
        HPSEARCH_DEVICE=str(trial.device),
        HPSEARCH_STAGE=str(trial.stage),
        HPSEARCH_ATTEMPT=str(trial.attempt),
    )
    if resume_from is not None:
        env["HPSEARCH_RESUME_FROM"] = paths["resume_from"]
    env.setdefault("PYTHONUNBUFFERED", "1")  # a Python program's log shows progress as it happens
    log_path = layout.log_file(trial.id)
    with open(log_path, "ab") as log:
        log.write(
            f"hpsearch: attempt {trial.attempt}: {' '.join(args)}"
            f"{f' (resuming from epoch {start_epoch})' if start_epoch else ''}\n".encode()
        )
        log.flush()
        output = _Output(log_path, log.tell(), regexes, trial.metric, start_epoch) if regexes else None
        try:
            proc = subprocess.Popen(
                args,
                cwd=source_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()) if _LIBC is not None else None,
            )
        except OSError as e:
            if output is not None:
                output.close()
            raise ProgramFailed(f"cannot start {args[0]!r} (in {source_dir}): {e.strerror}") from None
        tails: list[Any] = [_Tail(metrics_file)] + ([output] if output is not None else [])
        try:
            _follow(proc, tails, trial, source_dir, grace)
        finally:
            if proc.poll() is None:  # StopTrial, a broken line, Ctrl-C: never leave it running
                terminate(proc, grace)
            if output is not None:
                output.close()
            shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        code = proc.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        *earlier, last = log_tail(log_path).split(" | ")
        before = f" (before it in its log: {' | '.join(earlier)})" if earlier else ""
        lines = log_tail(log_path, 40, 1000, "\n")
        raise ProgramFailed(
            f"{Path(args[0]).name} {how}: {last}{before}",
            detail=f"{args[0]} {how}; the last lines of its log ({log_path}):\n{lines}",
        )


def _follow(proc: subprocess.Popen[bytes], tails: list[Any], trial: Any, source_dir: str, grace: float) -> None:
    next_stop_check = time.monotonic() + STOP_CHECK_S
    while True:
        try:
            code: int | None = proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            code = None
        for n, obj in (x for tail in tails for x in tail.read()):  # after the wait: lines written just before exit
            report_line(trial, obj, n, source_dir)
        if code is not None:
            return
        timeout = getattr(trial, "epoch_timeout", None)
        if timeout and time.monotonic() - trial.last_progress > timeout:
            terminate(proc, grace)  # hung (a deadlocked loader, a stuck collective): it will not stop by itself
            trial.stop_reason = "timeout"
            raise StopTrial(f"timeout: no epoch within epoch_timeout {timeout:g} s")
        if time.monotonic() >= next_stop_check:
            next_stop_check = time.monotonic() + STOP_CHECK_S
            master_stop = trial.store.refresh().stop
        else:
            master_stop = False
        if trial.should_stop or master_stop:
            terminate(proc, grace)
            try:  # the program may have finished an epoch on its way out: keep it
                for n, obj in (x for tail in tails for x in tail.read()):
                    report_line(trial, obj, n, source_dir)
            except StopTrial:
                pass
            trial.stop_reason = trial.stop_reason or "stopped"
            raise StopTrial("stopped: the worker or the sweep is stopping")


def report_line(trial: Any, obj: Any, n: int, source_dir: str) -> None:
    """One metrics line -> trial.report (checkpoint naming, retention, divergence, ownership)."""
    if not isinstance(obj, dict):
        raise ProgramFailed(f"metrics line {n}: expected a JSON object, got {json.dumps(obj)[:80]}")
    obj = dict(obj)
    epoch = obj.pop("epoch", None)
    if epoch is None:
        epoch = (trial.history[-1]["epoch"] + 1) if trial.history else trial.start_epoch + 1
    if isinstance(epoch, float) and epoch.is_integer():
        epoch = int(epoch)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ProgramFailed(f'metrics line {n}: "epoch" must be a positive integer, got {epoch!r}')
    last = trial.history[-1]["epoch"] if trial.history else None
    if last is not None and epoch <= last:
        raise ProgramFailed(
            f"metrics line {n}: epoch {epoch} after epoch {last}: write each epoch once, in order (a resumed "
            "program goes on after $HPSEARCH_START_EPOCH)"
        )
    ckpt = obj.pop("checkpoint", None)
    path = None
    if ckpt is not None:
        path = Path(str(ckpt))
        path = path if path.is_absolute() else Path(source_dir) / path
        if not path.is_file():
            raise ProgramFailed(
                f"metrics line {n}: checkpoint {ckpt!r} is not a file (write each "
                "checkpoint under a new name: a handed-over file is moved away)"
            )
    for k in RESERVED:
        if k in obj:
            obj[f"program_{k}"] = obj.pop(k)
    metrics = {k: v for k, v in obj.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if trial.metric not in metrics:  # said here in the program's terms: it has no report() to call
        got = trial.metric in obj and f" (it is {json.dumps(obj[trial.metric])[:40]}, not a number)" or ""
        raise ProgramFailed(
            f"metrics line {n}: no number {trial.metric!r} (the sweep's metric){got}; keys: "
            f'{", ".join(sorted(obj)) or "none"} (write e.g. {{"epoch": {epoch}, "{trial.metric}": 0.5}})'
        )
    extras = {k: v for k, v in obj.items() if k not in metrics}
    try:
        trial.report(epoch, checkpoint=path, extras=extras or None, **metrics)
    except ValueError as e:
        raise ProgramFailed(f"metrics line {n}: {e}") from None


class _Tail:
    """New complete lines of a file that another process appends to (a torn last line waits)."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "rb")  # noqa: SIM115 (tailed until close())
        self.partial = b""
        self.n = 0

    def read(self) -> list[tuple[int, Any]]:
        data = self.partial + self.f.read()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        out = []
        for line in lines:
            self.n += 1
            if not line.strip():
                continue
            try:
                out.append((self.n, json.loads(line)))
            except ValueError:
                raise ProgramFailed(f"metrics line {self.n} is not JSON: {line[:80]!r}") from None
        return out

    def __del__(self) -> None:
        self.f.close()


def terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the program's process group; SIGKILL what is left after `grace` seconds."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # its own session: the group is the program and its children
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent(parent: int) -> Callable[[], None]:
    """Runs in the child before exec: the kernel sends SIGKILL when the worker dies (Linux)."""

    def set_pdeathsig() -> None:
        assert _LIBC is not None
        _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the worker died before prctl took effect
            os._exit(1)

    return set_pdeathsig


def log_tail(path: Path, lines: int = 5, width: int = 200, sep: str = " | ") -> str:
    """The last non-empty lines of a log, joined into one line by `sep` (a trial's failure reason;
    with sep "\n", lines as they were, for error.txt)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            raw = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    # our own "hpsearch: attempt N: argv" lines say nothing of the failure (and differ per trial)
    kept = [ln.rstrip()[:width] for ln in raw.splitlines() if ln.strip() and not ln.startswith("hpsearch: ")][-lines:]
    if sep == " | ":
        kept = [ln.strip() for ln in kept]
    return sep.join(kept) if kept else "(empty log)"
