"""A family of cheap multi-fidelity objectives with a known optimum, and hpsearch's planning replayed in memory.

Each instance (one per seed) is a learning curve over epochs whose asymptote and speed depend on
lr, reg and width, like a real network's validation accuracy:

    acc(e) = CHANCE + (asym - CHANCE) * (1 - exp(-e * speed)),
    asym   = TOP - A_LR (log10 lr - log10 lr*)^2 - A_REG (log10 reg - log10 reg*)^2 - A_W (log2 w - log2 w*)^2
    speed  = SPEED * min(lr / lr*, 3) ** 0.7        (a high lr learns faster at first, ends lower)

floored at CHANCE; a run with lr above DIVERGE * lr* diverges at epoch 1. Each reported epoch adds
Gaussian noise (NOISE, from the trial's seed). The optimum (lr*, reg*, w*) is drawn per seed, so
50+ seeds are 50+ different problems; `optimum(R)` is the best noise-free value at R epochs, found
on a dense grid, so the regret of a method is exact: optimum - the noise-free value of the
configuration and epoch whose reported value was its best.

`replay` runs hpsearch's coarse to fine in memory with the master's own calls
(`search.stages.plan_stage` with the previous stage's runs and every earlier run, `rank`),
a promoted trial continuing its parent's curve, a stage's early-stopping rule decided at its
rungs with `search.earlystop.decide` as one worker decides it, so thousands of sweeps run in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CHANCE, TOP = 0.1, 0.98
A_LR, A_REG, A_W = 0.06, 0.02, 0.01
SPEED, DIVERGE, NOISE = 0.6, 20.0, 0.01
EPOCHS = 8  # R: what a good run needs
REG_RANGE, WIDTH_RANGE = (1e-6, 1e-1), (16, 512)
# the lr range of each case, relative to lr* (decades): in range, best a decade+ below, best a decade+ above
LR_CASES = {"in_range": (-2.5, 2.5), "best_below": (1.0, 4.0), "best_above": (-4.0, -1.0)}


@dataclass(frozen=True)
class Instance:
    lr: float
    reg: float
    width: float

    @classmethod
    def draw(cls, seed: int) -> Instance:
        rng = np.random.default_rng([seed, 424242])
        return cls(10 ** rng.uniform(-3.5, -1.5), 10 ** rng.uniform(-5, -2), 2 ** rng.uniform(5, 8))

    def asym(self, p: dict[str, Any]) -> float:
        a = (
            TOP
            - A_LR * (math.log10(p["lr"]) - math.log10(self.lr)) ** 2
            - A_REG * (math.log10(p["reg"]) - math.log10(self.reg)) ** 2
            - A_W * (math.log2(p["width"]) - math.log2(self.width)) ** 2
        )
        return max(a, CHANCE)

    def value(self, p: dict[str, Any], epoch: int) -> float:
        """The noise-free accuracy after `epoch` epochs."""
        speed = SPEED * min(p["lr"] / self.lr, 3.0) ** 0.7
        return CHANCE + (self.asym(p) - CHANCE) * (1 - math.exp(-epoch * speed))

    def diverges(self, p: dict[str, Any]) -> bool:
        return p["lr"] > DIVERGE * self.lr

    def observed(self, p: dict[str, Any], epoch: int, seed: int) -> float:
        noise = np.random.default_rng([seed, epoch, 7]).normal(0.0, NOISE)
        return self.value(p, epoch) + float(noise)

    def optimum(self, epochs: int = EPOCHS) -> float:
        lrs = self.lr * 10 ** np.linspace(-1, math.log10(DIVERGE) - 1e-9, 400)
        return max(self.value({"lr": lr, "reg": self.reg, "width": self.width}, epochs) for lr in lrs)

    def lr_range(self, case: str) -> tuple[float, float]:
        lo, hi = LR_CASES[case]
        return self.lr * 10**lo, self.lr * 10**hi


def sweep_doc(inst: Instance, case: str, budget: int, seed: int, **extra: Any) -> dict[str, Any]:
    lo, hi = inst.lr_range(case)
    return {
        "name": "synthetic",
        "seed": seed,
        "trainable": {"builtin": "noop"},
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": lo, "max": hi},
            "reg": {"distribution": "log_uniform_values", "min": REG_RANGE[0], "max": REG_RANGE[1]},
            "width": {"distribution": "int_log_uniform_values", "min": WIDTH_RANGE[0], "max": WIDTH_RANGE[1]},
        },
        "stages": "auto",
        "budget": budget,
        "epochs": EPOCHS,
        **extra,
    }


def replay(sweep: Any, inst: Instance) -> tuple[float, int]:
    """hpsearch's stages for `sweep` on `inst`, in memory: (noise-free value of the best report, epochs trained)."""
    from hpsearch.search import earlystop, stages

    history: list[stages.Run] = []
    done: dict[str, tuple[int, float, float]] = {}  # trial -> (epochs done, best observed, its true value)
    prev_space, prev_runs, spent = None, [], 0
    for k in range(1, len(sweep.stages) + 1):
        plan = stages.plan_stage(sweep, k, prev_space, prev_runs, None, history)
        # the stage's early-stopping rule, decided as one worker does: trials in order, each judged at
        # its rungs against what the stage's earlier trials recorded there (search/earlystop.py)
        rule = sweep.early_stop_for(k)
        rungs = set(rule.rungs(sweep.stages[k - 1].epochs))
        at_rung: dict[int, list[float]] = {}
        runs = []
        for t in plan.trials:
            start, best, true = done[t["parent"]] if t.get("parent") else (0, -math.inf, 0.0)
            status = "finished"
            e = start
            for e in range(start + 1, t["epochs"] + 1):
                spent += 1
                if inst.diverges(t["params"]):
                    status = "diverged"
                    break
                v = inst.observed(t["params"], e, t["seed"])
                if v > best:
                    best, true = v, inst.value(t["params"], e)
                if e in rungs:
                    decision = earlystop.decide(rule, e, best, at_rung.get(e, []), maximize=True)
                    at_rung.setdefault(e, []).append(best)
                    if decision.stop:
                        status = "pruned"
                        break
            done[t["trial"]] = (e, best, true)
            runs.append(
                stages.Run(
                    t["trial"],
                    t["config"],
                    t["params"],
                    status,
                    None if status == "diverged" else best,
                    e,
                    t["seed"],
                    # as a worker journals it: the epochs before the one it diverged in
                    epochs_done=e - (status == "diverged"),
                    parent=t.get("parent"),
                )
            )
        history += runs
        prev_space, prev_runs = plan.space, runs
    finished = [v for v in done.values() if v[1] > -math.inf]
    if not finished:
        return CHANCE, spent
    return max(finished, key=lambda v: v[1])[2], spent


def optuna_run(inst: Instance, case: str, budget: int, seed: int, method: str) -> tuple[float, int]:
    """An Optuna peer on `inst` with the same epochs: (noise-free value of its best report, epochs trained)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    lo, hi = inst.lr_range(case)
    spent, best = [0], [(-math.inf, CHANCE)]

    def objective(ot: optuna.Trial) -> float:
        p = {
            "lr": ot.suggest_float("lr", lo, hi, log=True),
            "reg": ot.suggest_float("reg", *REG_RANGE, log=True),
            "width": ot.suggest_int("width", *WIDTH_RANGE, log=True),
        }
        tseed = seed * 100_003 + ot.number
        last = -math.inf
        for e in range(1, EPOCHS + 1):
            if spent[0] >= budget:
                ot.study.stop()
                raise optuna.TrialPruned()
            spent[0] += 1
            if inst.diverges(p):
                return CHANCE  # a diverged network predicts at chance; Optuna learns the region is bad
            last = inst.observed(p, e, tseed)
            if last > best[0][0]:
                best[0] = (last, inst.value(p, e))
            ot.report(last, e)
            if ot.should_prune():
                raise optuna.TrialPruned()
        return last

    study = make_study(method, seed, EPOCHS)
    if method in ("tpe", "random"):
        study.optimize(objective, n_trials=budget // EPOCHS)
    else:
        study.optimize(
            objective, n_trials=100 * budget, callbacks=[lambda s, t: s.stop() if spent[0] >= budget else None]
        )
    return best[0][1], spent[0]


def make_study(method: str, seed: int, epochs: int) -> Any:
    """The peers, through Optuna's own samplers and pruners (v5 defaults otherwise)."""
    import optuna

    sampler = (
        optuna.samplers.TPESampler(seed=seed) if method.startswith("tpe") else optuna.samplers.RandomSampler(seed=seed)
    )
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if method.endswith("hyperband"):
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    elif method.endswith("sha"):
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    # a fixed name: HyperbandPruner puts a trial in a bracket by crc32(study name + trial number),
    # and the default name is a fresh UUID, so the Hyperband peers drew other brackets each run
    return optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner, study_name=f"bench-{method}-{seed}"
    )
