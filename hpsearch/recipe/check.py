"""`hpsearch check SWEEP.yaml`: steps 1-3 of the recipe before a sweep runs.

Runs the sanity checks on one configuration standing for stage 1 (`search.preflight.representative`),
prints one verdict per check, writes DIR/preflight.json (which `hpsearch report --html` shows in its
Preflight section once the sweep runs in DIR) and, with `--write`, the sweep file with the suggested
lr range. Returns 1 when a check failed, else 0.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hpsearch.errors import HpsearchError, StoreError
from hpsearch.search import conditional as cond
from hpsearch.search import config
from hpsearch.search import preflight as pf
from hpsearch.search.config import Sweep
from hpsearch.store import sweepfile
from hpsearch.store.atomic import atomic_write_bytes
from hpsearch.store.sweepdir import Layout, Store, atomic_write_json

MARK = {pf.PASS: "PASS", pf.WARN: "WARN", pf.FAIL: "FAIL", pf.SKIP: "SKIP"}
CHECKS = ("gradient", "initial_loss", "overfit", "lr_range")


def _refuse_another_sweeps(root: str, raw: dict[str, Any]) -> None:
    """A directory that holds a different sweep keeps that sweep's checks: its report would show
    this file's verdicts as that sweep's (the master refuses it the same way, by fingerprint)."""
    store = Store(root)
    if not store.exists():
        return
    try:
        fp = store.refresh().fingerprint
    except StoreError as e:
        raise HpsearchError(f"{root} cannot be read ({e}); give check another --dir") from None
    if fp and fp != config.fingerprint(raw):
        raise HpsearchError(
            f"{root} holds a different sweep (its sweep.yaml differs from this file): its preflight.json is "
            "that sweep's; give check another --dir (e.g. the one this sweep will run in)"
        )


def run_check(sweep_path: str, root: str | None, write: str | None, say: Callable[[str], None]) -> int:
    """Check the trainable of the sweep in `sweep_path`; `root` (default runs/<name>) receives preflight.json.

    Raises:
        ConfigError / HpsearchError: a bad sweep file or --write path (nothing is written).
    """
    sweep, raw = sweepfile.load(sweep_path)
    if write is not None:
        if Path(write).resolve() == Path(sweep_path).resolve():
            raise HpsearchError(f"--write {write}: that is the sweep file being checked; give a new file name")
        if Path(write).is_dir():
            raise HpsearchError(f"--write {write}: is a directory; give a file name such as next.yaml")
    root = root or str(Path("runs") / sweep.name)
    _refuse_another_sweeps(root, raw)
    params = {**sweep.fixed_settings(), **pf.representative(sweep.space)}
    key = cond.keys_for(sweep.space, "lr", params)  # `lr`, or the taken branch's `lr[optimizer=...]`
    say(f"Checking {sweep.name} ({_kind(sweep)}) on one stage-1 configuration: {_show(params, sweep)}")
    started = time.perf_counter()
    verdicts = checks_of(sweep, params, key)
    for v in verdicts:
        say(f"  {MARK[v.status]}  {v.check:<13} {v.message}")
    failed = [v.check for v in verdicts if v.status == pf.FAIL]
    warned = [v.check for v in verdicts if v.status == pf.WARN]
    ran = [v for v in verdicts if v.status != pf.SKIP]
    say(
        f"{len(failed)} check(s) failed: {', '.join(failed)}"
        if failed
        else "No check ran (every one was skipped: see why above); nothing was verified before the sweep."
        if not ran
        else f"No check failed, {len(warned)} warned ({', '.join(warned)}): read the warning, then go on with "
        "the sweep (step 4, a coarse search)."
        if warned
        else "No check failed: go on with the sweep (step 4, a coarse search)."
    )
    lay = Layout(root)
    try:
        lay.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HpsearchError(f"cannot create {root}: {e.strerror}") from None
    doc = {
        "sweep": sweep.name,
        "time": time.time(),
        "seconds": time.perf_counter() - started,
        "params": params,
        "verdicts": [v.to_dict() for v in verdicts],
    }
    atomic_write_json(lay.preflight, doc)
    say(f"wrote {lay.preflight} (hpsearch report {root} --html shows it once the sweep runs there)")
    if write is not None:
        lr = next((v for v in verdicts if v.check == "lr_range" and "suggested" in v.data), None)
        if lr is None:
            say(f"nothing written to {write}: the lr range test gave no suggestion")
        else:
            where = write_sweep_with_lr(raw, lr.data["suggested"], write, key or "lr")
            say(f"wrote {write} with {where} in [{lr.data['suggested'][0]:.3g}, {lr.data['suggested'][1]:.3g}]")
            try:  # relative paths in it now resolve from its own folder
                sweepfile.load(write)
            except HpsearchError as e:
                say(f"note: {write} does not start as it is: {e}")
    return pf.exit_code(verdicts)


def checks_of(sweep: Sweep, params: dict[str, Any], key: str | None = "lr") -> list[pf.Verdict]:
    """The four verdicts for the sweep's trainable on the configuration `params`; `key`: the space's
    key of its learning rate (`conditional.keys_for`). What a trainable does not support is a SKIP saying why."""
    kind = sweep.trainable_kind
    declared = pf.declared_range(sweep.space, key)
    if kind == "builtin" and sweep.trainable["builtin"] == "classifier":
        from hpsearch.trainables import preflight as tp

        probe = tp.classifier_probe(params, sweep.source_dir, sweep.seed)
        errors, kinks = tp.classifier_gradients(params, sweep.source_dir, sweep.seed)
        grad = pf.gradient_verdict(errors, kinks, "population backward (float64)")
        return [grad, *_generic(probe, declared)]
    if kind == "python":
        return _python(sweep, params, declared)
    if kind == "command":
        return _command(sweep, params)
    why = "the noop built-in trains nothing"
    return [pf.Verdict(c, pf.SKIP, why) for c in CHECKS]


def _generic(probe: Any, declared: tuple[float, float] | None) -> list[pf.Verdict]:
    from hpsearch.trainables import preflight as tp

    out = []
    loss, loss_reg = tp.initial_loss(probe)
    if probe.n_classes:
        out.append(pf.initial_loss_verdict(loss, probe.n_classes, loss_reg, probe.reg or 1e-2))
    else:
        out.append(
            pf.Verdict("initial_loss", pf.SKIP, f"loss at initialization {loss:.4g}; outputs are not class scores")
        )
    if probe.n_classes:
        out.append(pf.overfit_verdict(tp.overfit(probe), pf.OVERFIT_SAMPLE))
    else:
        out.append(pf.Verdict("overfit", pf.SKIP, "accuracy needs class scores: not a classifier"))
    lrs, losses = tp.lr_range(probe, declared)
    out.append(pf.lr_range_verdict(lrs, losses, declared))
    return out


def _python(sweep: Sweep, params: dict[str, Any], declared: tuple[float, float] | None) -> list[pf.Verdict]:
    import importlib

    from hpsearch.trainables import preflight as tp
    from hpsearch.trainables.python import load

    spec = sweep.trainable["python"]
    load(spec, sweep.source_dir)  # imports the module (ConfigError at the door)
    module = importlib.import_module(spec.partition(":")[0])
    fn = getattr(module, "preflight", None)
    if not callable(fn):
        why = (
            f"module {module.__name__!r} defines no preflight(params) -> (model, loss_fn, batches) (README, The recipe)"
        )
        return [pf.Verdict(c, pf.SKIP, why) for c in CHECKS]
    try:
        probe = tp.python_probe(fn, params, sweep.seed)
        errors, kinks = tp.autograd_gradients(probe, sweep.seed)
        grad = pf.gradient_verdict(errors, kinks, "autograd backward (float64)")
        return [grad, *_generic(probe, declared)]
    except TypeError as e:
        raise HpsearchError(f"{module.__name__}.preflight: {e}") from None


def _command(sweep: Sweep, params: dict[str, Any]) -> list[pf.Verdict]:
    from hpsearch.trainables.preflight_command import run_check_program

    lines = run_check_program(sweep.trainable["command"], sweep.source_dir, params, sweep.seed, sweep.metric.name)
    out = [pf.Verdict("gradient", pf.SKIP, "a command program: check its gradients in its own code")]
    init = next((ln for ln in lines if "initial_loss" in ln), None)
    classes = next((ln["classes"] for ln in lines if isinstance(ln.get("classes"), int)), None)
    if init is not None and classes:
        out.append(pf.initial_loss_verdict(float(init["initial_loss"]), classes))
    else:
        out.append(
            pf.Verdict("initial_loss", pf.SKIP, "the program reports no initial_loss and classes under HPSEARCH_CHECK")
        )
    accs = [float(ln["train_acc"]) for ln in lines if isinstance(ln.get("train_acc"), (int, float))]
    if accs:
        first = next((float(ln["train_loss"]) for ln in lines if "train_loss" in ln), float("nan"))
        last = next((float(ln["train_loss"]) for ln in reversed(lines) if "train_loss" in ln), float("nan"))
        tries = [
            {
                "lr": float(params.get("lr", float("nan"))),
                "steps": len(accs),
                "train_acc": accs[-1],
                "first_loss": first,
                "last_loss": last,
                "exploded": not math.isfinite(last),
            }
        ]
        asked = (
            "as asked by HPSEARCH_SUBSET=20 and HPSEARCH_NO_REG=1 with the program's own optimizer (a program "
            "that ignores them trained on more)"
        )
        out.append(pf.overfit_verdict(tries, pf.OVERFIT_SAMPLE, asked, "epoch(s)"))
    else:
        out.append(pf.Verdict("overfit", pf.SKIP, "the program reports no train_acc under HPSEARCH_SUBSET=20"))
    out.append(pf.Verdict("lr_range", pf.SKIP, "a command program: the range test needs the python preflight contract"))
    return out


def write_sweep_with_lr(raw: dict[str, Any], lr: list[float], path: str, key: str = "lr") -> str:
    """The sweep file with the learning rate under `key` log-uniform over `lr`, written where the
    file declares it (`parameters.lr`, nested, or inside the checked configuration's branch:
    `conditional.spec_nodes`; a new top-level `lr` when it declares none). Other keys are kept
    (`when:`, `bounds:`), comments are not. Returns how the line names it: `lr` or
    `lr (optimizer=adam)`."""
    doc = copy.deepcopy(raw)
    if not isinstance(doc.get("parameters"), dict):
        doc["parameters"] = {}
    node, leaf = cond.spec_nodes(doc["parameters"]).get(key, (doc["parameters"], cond.public(key)))
    old: dict[str, Any] = node[leaf] if isinstance(node.get(leaf), dict) else {}
    node[leaf] = {
        **{k: v for k, v in old.items() if k not in ("min", "max", "value", "values", "distribution")},
        "distribution": "log_uniform_values",
        "min": float(f"{lr[0]:.3g}"),
        "max": float(f"{lr[1]:.3g}"),
    }
    text = "# written by hpsearch check --write: lr from the learning-rate range test\n" + yaml.safe_dump(
        doc, sort_keys=False
    )
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HpsearchError(f"--write {path}: cannot create its folder: {e.strerror}") from None
    atomic_write_bytes(Path(path), text.encode())
    where = ", ".join(f"{p}={'|'.join(v)}" for p, v in cond.conditions(key))
    return f"{cond.public(key)} ({where})" if where else cond.public(key)


def _kind(sweep: Sweep) -> str:
    kind = sweep.trainable_kind
    return f"{kind} {sweep.trainable[kind]}" if kind != "command" else "command program"


def _show(params: dict[str, Any], sweep: Sweep) -> str:
    from hpsearch.search.space import fmt

    # plain names, each once: a conditional parameter shows under its own name where its branch is taken
    names = [n for n in cond.public_names(sweep.space) if cond.keys_for(sweep.space, n, params)] or list(params)[:6]
    return ", ".join(f"{n}={fmt(params[n])}" for n in names if n in params)
