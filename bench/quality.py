"""Section quality: the best validation metric any trial reached, at an equal budget of training epochs.

Every method gets the same budget of epochs, the same trainer code and the same seeds.
- Tasks (bench/tasks.py, bench/synthetic.py): the noisy-digits MLP, a small convnet on the 8x8
  digits, a deeper MLP on make_classification, an MLP on scikit-learn's breast cancer set, and a
  family of synthetic multi-fidelity objectives with a known optimum (exact regret, 50+ seeds in
  seconds: hpsearch's planning is replayed in memory there, the real tasks run the real master and
  worker in this process).
- Budgets: small (64 epochs, a first-time user) and medium (200).
- Ranges of lr: in range, the best lr a decade or more below the range, and a decade or more above.
- Methods: hpsearch with its defaults (`budget: B`, `stages: auto`, the default sampler); the same
  with each other sampler (the suite picks the default); the same with early stopping
  (`early_stop: {type: asha}`, at an equal number of epochs trained: see `equal_budget`) and with
  `sampler: tpe` on every stage after the first (issue 15 asks whether each earns its place);
  the peers: one-stage random (hpsearch, B / R trials of R epochs), Optuna TPE (v5 defaults,
  B / R trials), Optuna random + HyperbandPruner, TPE + HyperbandPruner, random + SuccessiveHalvingPruner (asynchronous
  successive halving); the pruned peers run until B epochs are trained (a trial is stopped when
  the budget is spent).
Per cell: median, worst seed and 10th percentile of each method; the margin of hpsearch's default
over the best peer; three goals: median >= the best peer's median, worst seed >= the best peer's
worst seed, and out of range every seed above every peer's median.

`python -m bench quality [--seeds N] [--tasks a,b] [--budgets small,medium] [--cases in_range,...] [--methods a,b]`;
`--quick`: the synthetic family only (20 seeds) and the noisy-digits MLP at the small budget (3 seeds).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import synthetic as syn
from . import tasks as tk
from .common import Section

BUDGETS = {"small": 64, "medium": 200}
CASES = ("in_range", "best_below", "best_above")
SAMPLERS = ("sobol", "lhs", "random")
PEERS = ("random_1stage", "optuna_tpe", "optuna_random_hyperband", "optuna_tpe_hyperband", "optuna_random_sha")
DEFAULT = "hpsearch"  # its defaults: stages: auto from the budget, the default sampler


# hpsearch's defaults plus one feature: `hpsearch_asha` adds `early_stop: {type: asha}` and raises
# `budget:` until the epochs it trains match the others' (equal budget: the epochs pruning saves buy
# more trials); `hpsearch_tpe` draws every stage after the first with `sampler: tpe`.
VARIANTS = ("asha", "tpe")


def methods() -> tuple[str, ...]:
    from hpsearch.search.sampler import DEFAULT as SAMPLER

    return (DEFAULT, *(f"hpsearch_{m}" for m in (*SAMPLERS, *VARIANTS) if m != SAMPLER), *PEERS)


# -- hpsearch on a real task: the master and the worker, in this process ---------------------
def sweep_doc(task: tk.Task, block: dict[str, Any], lr: tuple[float, float], budget: int, seed: int) -> dict[str, Any]:
    return {
        "name": "quality",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "seed": seed,
        "trainable": block,
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": lr[0], "max": lr[1]}, **task.params},
        "stages": "auto",
        "budget": budget,
        "epochs": task.epochs,
        "checkpoints": "last",
    }


def variant(doc: dict[str, Any], method: str, task_epochs: int) -> dict[str, Any]:
    """The sweep of one hpsearch method: the default, another sampler, or one stage of random search."""
    doc = dict(doc)
    if method == "hpsearch_asha":
        doc["early_stop"] = {"type": "asha"}
    elif method == "hpsearch_tpe":  # the plan of `stages: auto`, written out with TPE after stage 1
        from hpsearch.search import config

        planned = config.parse(doc, path_exists=lambda _p: True).stages
        doc["stages"] = [
            {"trials": st.trials, "epochs": st.epochs, **({"promote": st.promote} if st.promote else {})}
            | ({"sampler": "tpe"} if i else {})
            for i, st in enumerate(planned)
        ]
        del doc["epochs"]
    elif method.startswith("hpsearch_"):
        doc["method"] = method.removeprefix("hpsearch_")
    elif method == "random_1stage":
        doc.update(method="random", stages=[{"trials": doc["budget"] // task_epochs, "epochs": task_epochs}])
        del doc["epochs"]
    return doc


def hpsearch_best(root: Path, doc: dict[str, Any]) -> tuple[float, int]:
    """Run a sweep with the real master and worker code in this process: (best val_acc, epochs trained)."""
    from hpsearch.run.master import Master, StartOptions
    from hpsearch.run.progress import Progress
    from hpsearch.run.worker import Worker, WorkerOptions
    from hpsearch.store import sweepfile

    path = root.with_suffix(".yaml")
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text)
    sweep, raw = sweepfile.load(path)
    master = Master(sweep, raw, text, str(root), StartOptions(no_workers=True), out=Progress(io.StringIO()))
    master.open_directory()
    for k in range(1, len(sweep.stages) + 1):
        master.plan(k)
        with contextlib.redirect_stdout(io.StringIO()):
            Worker(str(root), WorkerOptions(exit_when_idle=True, worker_id="bench")).run()
        master.store.refresh()  # what master.watch does before a stage is finished
        master.finish_stage(k)
    st = master.store.refresh()
    bests = [t.best for t in st.trials.values() if t.best is not None]
    inherited = {tid: st.trials[t.parent].epochs_done for tid, t in st.trials.items() if t.parent in st.trials}
    # a diverged run is charged the epoch it diverged in, unless it reported that epoch (then
    # `epochs_done` counts it already: the divergence was seen in the epoch's metrics)
    spent = sum(
        t.epochs_done - inherited.get(t.trial, 0) + (t.state.value == "diverged" and not t.diverged_reported)
        for t in st.trials.values()
    )
    return max(bests, default=0.0), spent


def run_cell(tmp: Path, task: tk.Task | None, budget: int, case: str, seed: int, method: str) -> tuple[float, int]:
    """One (task, budget, case, seed, method): the score (best val_acc; synthetic: the true value of the
    best report, so regret = optimum - score) and the epochs trained."""
    if task is None:
        from hpsearch.search import config

        inst = syn.Instance.draw(seed)
        if method.startswith("optuna_"):
            return syn.optuna_run(inst, case, budget, seed, method.removeprefix("optuna_"))

        def replay_at(b: int) -> tuple[float, int]:
            return syn.replay(config.parse(variant(syn.sweep_doc(inst, case, b, seed), method, syn.EPOCHS)), inst)

        return equal_budget(replay_at, budget, 6) if method == "hpsearch_asha" else replay_at(budget)
    block = tk.prepare(task, tmp)
    lr = tk.LR_CASES[case]
    if method.startswith("optuna_"):
        root = tmp / f"{task.name}-{budget}-{case}-{seed}-{method}"
        return optuna_task(root, task, block, lr, seed, method.removeprefix("optuna_"), budget)

    def sweep_at(b: int) -> tuple[float, int]:
        root = tmp / f"{task.name}-{budget}-{case}-{seed}-{method}-{b}"
        return hpsearch_best(root, variant(sweep_doc(task, block, lr, b, seed), method, task.epochs))

    return equal_budget(sweep_at, budget, 3) if method == "hpsearch_asha" else sweep_at(budget)


def equal_budget(run_at: Any, budget: int, tries: int) -> tuple[float, int]:
    """(score, epochs) of the run at the nominal budget that trains the most epochs without passing `budget`.

    Early stopping trains fewer epochs than its plan: the nominal budget is raised in proportion
    (`b * budget / spent`), `tries` times at most, and the run whose spend came closest to `budget`
    from below is kept (the first run, at `budget` itself, never passes it)."""
    b, kept = budget, None
    for _ in range(tries):
        score, spent = run_at(b)
        if spent <= budget and (kept is None or spent > kept[1]):
            kept = (score, spent)
        nb = int(b * budget / max(spent, 1)) if spent > budget else max(b + 1, int(b * budget / max(spent, 1)))
        if spent == budget or nb == b:
            break
        b = nb
    assert kept is not None  # the run at `budget` trains at most `budget` epochs (search/budget.py)
    return kept


# -- Optuna's peers on a real task: the same trainer through a real Trial ------------------------
def optuna_task(
    root: Path, task: tk.Task, block: dict[str, Any], lr: tuple[float, float], seed: int, method: str, budget: int
) -> tuple[float, int]:
    """An Optuna peer training the task with the same code (a real `Trial`): (best val_acc, epochs trained)."""
    import optuna

    from hpsearch.errors import StopTrial
    from hpsearch.search.builtins import CLASSIFIER_DEFAULTS
    from hpsearch.store.sweepdir import Store
    from hpsearch.trainables import classifier
    from hpsearch.trainables.trial import Trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    store = Store(root)
    store.layout.ensure()
    spent, best = [0], [0.0]
    fit = classifier.fit if "builtin" in block else tk.fit_convnet
    fixed = {**CLASSIFIER_DEFAULTS, **block, "population": 1} if "builtin" in block else dict(block)
    fixed.pop("builtin", None)
    fixed.pop("python", None)

    class Reporting(Trial):
        """hpsearch's Trial that also reports each epoch to Optuna and stops when it says prune."""

        otrial: Any = None

        def report(self, epoch: int, *args: Any, **kw: Any) -> None:
            super().report(epoch, *args, **kw)
            spent[0] += 1
            best[0] = max(best[0], kw["val_acc"])
            self.otrial.report(kw["val_acc"], epoch)
            if spent[0] >= budget or (epoch < task.epochs and self.otrial.should_prune()):
                self.stop_reason = "pruned"
                raise StopTrial("pruned")

    def objective(ot: optuna.Trial) -> float:
        if spent[0] >= budget:
            ot.study.stop()
            raise optuna.TrialPruned()
        params: dict[str, Any] = {"lr": ot.suggest_float("lr", *lr, log=True)}
        for name, spec in task.params.items():
            if spec["distribution"] == "uniform":
                params[name] = ot.suggest_float(name, spec["min"], spec["max"])
            elif spec["distribution"] == "int_log_uniform_values":
                params[name] = ot.suggest_int(name, spec["min"], spec["max"], log=True)
            else:
                params[name] = ot.suggest_float(name, spec["min"], spec["max"], log=True)
        tid = f"s{ot.number + 1}-t0000"
        trial = {"trial": tid, "config": tid, "params": params, "seed": seed * 1000 + ot.number, "epochs": task.epochs}
        store.journal.append([{"ev": "stage", "stage": ot.number + 1, "space": {}, "trials": [trial]}])
        rec = store.claim("optuna")[0]
        store.trial_files_ready(rec)
        t = Reporting(store, rec, params={**fixed, **params}, metric="val_acc", goal="maximize", keep="last")
        t.otrial = ot
        try:
            fit(t.params, t)
        except StopTrial:
            if t.stop_reason == "diverged":
                spent[0] += 1
        if t.stop_reason == "pruned":
            raise optuna.TrialPruned()
        return t.best if t.best is not None else 0.0

    study = syn.make_study(method, seed, task.epochs)
    if method in ("tpe", "random"):
        study.optimize(objective, n_trials=budget // task.epochs)
    else:
        study.optimize(objective, n_trials=100 * budget)
    return best[0], spent[0]


# -- the table ------------------------------------------------------------------------------
def stats(v: list[float]) -> dict[str, float]:
    return {"median": float(np.median(v)), "worst": float(min(v)), "p10": float(np.percentile(v, 10))}


def judge(scores: dict[str, list[float]], case: str) -> dict[str, Any]:
    """The three goals of a cell for hpsearch's default against the best peer (none when no peer ran)."""
    st = {m: stats(v) for m, v in scores.items()}
    peers = [m for m in scores if m in PEERS]
    if not peers:  # `--methods hpsearch`: its figures alone
        return {"stats": st}
    best_median = max(st[m]["median"] for m in peers)
    best_worst = max(st[m]["worst"] for m in peers)
    d = st[DEFAULT]
    out = {
        "stats": st,
        "margin_median": d["median"] - best_median,
        "median_goal": d["median"] >= best_median,
        "worst_goal": d["worst"] >= best_worst,
    }
    if case != "in_range":
        out["every_seed_goal"] = d["worst"] > max(st[m]["median"] for m in peers)
    return out


def run(
    quick: bool = False,
    seeds: int | None = None,
    tasks: list[str] | None = None,
    budgets: list[str] | None = None,
    cases: list[str] | None = None,
    synthetic_seeds: int | None = None,
    only: list[str] | None = None,
) -> Section:
    import torch

    torch.set_num_threads(1)  # tiny models gain nothing from a second thread; a shared machine loses a lot
    s = Section("quality")
    names = tasks or (["synthetic", "noisy_digits_mlp"] if quick else ["synthetic", *tk.TASKS])
    budgets = budgets or (["small"] if quick else list(BUDGETS))
    cases = cases or list(CASES)
    n_seeds = seeds or (3 if quick else 10)
    n_syn = synthetic_seeds or (20 if quick else 50)
    ms = tuple(m for m in methods() if only is None or m in only or m == DEFAULT)
    from hpsearch.search import budget as bp
    from hpsearch.search.sampler import DEFAULT as SAMPLER

    s.figures.update(
        methods=ms,
        budgets={b: BUDGETS[b] for b in budgets},
        cases=cases,
        default_sampler=SAMPLER,
        default_split={"first_share": bp.FIRST_SHARE, "keep": bp.KEEP, "eta": bp.ETA},
    )
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as d:
        tmp = Path(d)
        for name in names:
            task = None if name == "synthetic" else tk.TASKS[name]
            for b in budgets:
                for case in cases:
                    scores: dict[str, list[float]] = {m: [] for m in ms}
                    spent: dict[str, list[int]] = {m: [] for m in ms}
                    for seed in range(n_syn if task is None else n_seeds):
                        for m in ms:
                            score, epochs = run_cell(tmp, task, BUDGETS[b], case, seed, m)
                            scores[m].append(score)
                            spent[m].append(epochs)
                        if task is not None:  # a slow cell shows its progress seed by seed
                            s.say(
                                f"  {name}/{b}/{case} seed {seed}: "
                                + ", ".join(f"{m} {v[-1]:.4f}" for m, v in scores.items())
                            )
                    if task is None:  # scores as regret would read upside down: keep "higher is better"
                        s.figures.setdefault("synthetic_optimum", {})[f"{b}/{case}"] = [
                            syn.Instance.draw(i).optimum() for i in range(n_syn)
                        ]
                    cell = judge(scores, case)
                    key = f"{name}/{b}/{case}"
                    s.figures[key] = {"scores": scores, "epochs": spent, **cell}
                    report(s, key, cell, spent, task is None, n_syn if task is None else n_seeds)
    return s


def report(s: Section, key: str, cell: dict[str, Any], spent: dict[str, list[int]], synthetic: bool, n: int) -> None:
    what = "true value of the best report (optimum - it = regret)" if synthetic else "best val_acc"
    s.say(f"{key} ({n} seeds; {what}):")
    for m, st in cell["stats"].items():
        s.say(
            f"  {m:<26} median {st['median']:.4f}  worst {st['worst']:.4f}  p10 {st['p10']:.4f}  "
            f"epochs {min(spent[m])}-{max(spent[m])}"
        )
    if "margin_median" not in cell:
        s.say("  (no peer ran: no goals judged)")
        return
    goals = ["median_goal", "worst_goal", *(("every_seed_goal",) if "every_seed_goal" in cell else ())]
    s.say(
        f"  margin over the best peer (median): {cell['margin_median']:+.4f}; "
        + ", ".join(f"{g}: {'MET' if cell[g] else 'MISSED'}" for g in goals)
    )
    for g in goals:
        s.goal(f"{key}/{g}", float(cell["margin_median"]), ">= 0 (see figures)", bool(cell[g]))
