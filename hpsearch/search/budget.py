"""`budget: B` with `stages: auto`: plan the stages from a budget of training epochs, as Hyperband plans a bracket.

Pure. The rule follows successive halving inside one Hyperband bracket (Li, Jamieson, DeSalvo,
Rostamizadeh & Talwalkar 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter
Optimization", JMLR 18, Algorithm 1, with the reduction factor eta = 3 it recommends):

- the stages train to epochs r_i = R * eta^(i - s) (rounded, at least 1), i = 0..s, where R is the
  epochs a good run needs (`epochs:`) and s = ceil(log_eta R): stage 1 trains 1 epoch, the last R;
- each middle stage continues (promotes) the best KEEP of the configurations so far from their
  checkpoints, as successive halving does, at least the incumbent, and spends what is left of its
  share on fresh trials sampled in the narrowed ranges (the coarse-to-fine part); the bracket's
  last stage spends its whole share continuing the best configurations found so far (the incumbents), unless
  its ranges moved (a border flag, a too-low learning rate: the incumbents lie where the evidence
  says the optimum is not): then it continues the incumbent and spends EXPLORE_SHARE of the rest on
  fresh trials in the moved ranges (`explore_epochs`, applied by `stages.plan_stage`);
- the first stage gets FIRST_SHARE of the budget, the others split the rest equally (Hyperband
  gives every rung of a bracket about the same budget); what is left over buys more stage-1 trials;
- a budget of at least FINAL_FROM full runs (R epochs each) sets FINAL_SHARE of itself aside for a
  last stage of fresh full-length trials, drawn in the ranges narrowed around the full-length runs
  of the stage before it; the bracket above plans the rest. Successive halving judges
  configurations after 1 and eta epochs, which favours learning rates that learn fast at first and
  end lower (the short-horizon bias: Wu, Ren, Liao & Grosse 2018, "Understanding Short-Horizon
  Bias in Stochastic Meta-Optimization", ICLR); a round judged at full length moves the ranges
  back to where long runs do best, as BOHB's model uses its highest budget with enough runs there
  (Falkner, Klein & Hutter 2018, ICML).

FIRST_SHARE, KEEP and FINAL_SHARE were chosen by the quality suite (`python -m bench quality`, README "Performance").
`cost` counts a plan's epochs the way the benchmark does, and `plan` never exceeds the budget
(tests/test_budget.py, property-based). Incumbents of earlier stages promoted later cost more
epochs than a previous stage's run; `stages.plan_stage` then drops fresh trials to pay for them,
so a sweep with a budget never trains more epochs than the budget. Epochs a stage was counted for
but did not train (runs that diverged, failed or were pruned), and epochs trained past the count (a promoted run
that restarted from epoch 1), are settled by the next stage (`balance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hpsearch.search.evidence import stage_of

ETA = 3
FIRST_SHARE = 0.4
# Measured (bench quality, synthetic family, 30 seeds, budgets 64 and 200, three range cases): with
# FIRST_SHARE 0.4, KEEP 0 (the incumbent alone) scored a median and worst seed at least as good as
# KEEP 1/9 and 1/3 in all six cells; FIRST_SHARE 0.25 was better in range, worse out of range.
KEEP = 0.0
# Measured (bench quality's synthetic family, budget 200 = 25 runs of R): a last stage of fresh
# full-length trials with 30% of the budget raised the median in all three range cases on seeds 50-249
# (in range / below / above 0.961 / 0.966 / 0.955 -> 0.965 / 0.968 / 0.960) and in two of three on
# seeds 0-49 (0.956 / 0.967 / 0.956 -> 0.965 / 0.964 / 0.961); 25% and 35% scored within 0.002 of 30%,
# 40% in two such stages about the same with worse worst seeds. Below 20 runs of R it cost more than it
# gave (64 epochs = 8 runs: medians -0.002 to -0.019). README "Performance" has the whole suite.
FINAL_SHARE = 0.3
FINAL_FROM = 20
# A promote-only stage (the bracket's last) whose ranges moved spends this share of what its incumbent leaves on
# fresh trials in the moved ranges (`explore_epochs`); chosen by the quality suite (README "Performance").
EXPLORE_SHARE = 0.5


@dataclass(frozen=True)
class Stage:
    """One planned stage, with `config.Stage`'s fields (config turns it into one: config imports this module)."""

    trials: int
    epochs: int
    top: int | None = None
    promote: float = 0
    repeats: int = 1


def rungs(epochs: int, eta: int = ETA) -> list[int]:
    """The epochs each stage trains to: R * eta^(i - s), i = 0..s, rounded, distinct, from 1 to R."""
    s = math.ceil(math.log(epochs, eta) - 1e-9) if epochs > 1 else 0
    out: list[int] = []
    for i in range(s + 1):
        r = max(1, round(epochs * eta ** (i - s)))
        if not out or r > out[-1]:
            out.append(r)
    return out


def plan(
    budget: int, epochs: int, eta: int = ETA, first_share: float = FIRST_SHARE, keep: float = KEEP
) -> tuple[Stage, ...]:
    """Stages for `budget` epochs when a good run needs `epochs` (see the module docstring).

    Example: `plan(200, 8)` is 63 x 1 epoch, 13 x 3 (+ the incumbent promoted), 8 promoted to 8
    epochs, then 7 fresh trials x 8 epochs (FINAL_SHARE of 200, FINAL_FROM <= 200 / 8).

    Args:
        budget: epochs to train in all; epochs: what a good run needs (R).
        eta: the ratio between two stages' epochs (Hyperband's reduction factor).
        first_share: the first stage's share of the budget.
        keep: the fraction of a stage's configurations a middle stage promotes (the rest of its
            share draws fresh trials in the narrowed ranges); the last stage spends its whole share
            on promotions.

    Raises:
        ValueError: the budget cannot train even one run for `epochs` epochs.
    """
    if budget < epochs:
        raise ValueError(f"budget: {budget} epochs cannot train one run for {epochs} epochs (epochs:)")
    rs = rungs(epochs, eta)
    if len(rs) == 1 or budget < 2 * epochs:
        return (Stage(trials=budget // epochs, epochs=epochs),)
    if budget >= FINAL_FROM * epochs:
        final = Stage(trials=int(FINAL_SHARE * budget) // epochs, epochs=epochs)
        bracket = list(_bracket(budget - final.trials * epochs, rs, eta, first_share, keep))
        return _spend_spare([*bracket, final], budget)
    return _bracket(budget, rs, eta, first_share, keep)


def _bracket(budget: int, rs: list[int], eta: int, first_share: float, keep: float) -> tuple[Stage, ...]:
    """One Hyperband bracket over the rungs `rs` for `budget` epochs (see `plan`)."""
    rest = (budget - first_share * budget) / (len(rs) - 1)
    shares = [first_share * budget] + [rest] * (len(rs) - 1)
    n = [max(eta, int(shares[0] // rs[0]))]
    stages = [Stage(trials=n[0], epochs=rs[0])]
    for i in range(1, len(rs)):
        step = rs[i] - rs[i - 1]
        last = i == len(rs) - 1
        want = n[-1] if last else math.ceil(keep * n[-1])
        promote = max(1, min(want, int(shares[i] // step)))
        fresh = 0 if last else max(0, int((shares[i] - promote * step) // rs[i]))
        stages.append(Stage(trials=fresh, epochs=rs[i], promote=promote))
        n.append(fresh + promote)
    return _spend_spare(_fit(stages, budget), budget)


def _spend_spare(stages: list[Stage], budget: int) -> tuple[Stage, ...]:
    """What the plan leaves of the budget buys more first-stage trials: the cheapest way to cover the ranges."""
    spare = budget - cost(stages)
    first = stages[0]
    if spare > 0:
        stages = [Stage(trials=first.trials + spare // first.epochs, epochs=first.epochs), *stages[1:]]
    return tuple(stages)


def _fit(stages: list[Stage], budget: int) -> list[Stage]:
    """Trim fresh trials (latest stages first, then the first stage's) until the plan fits the budget."""
    stages = list(stages)
    while cost(stages) > budget:
        for i in range(len(stages) - 1, -1, -1):
            s = stages[i]
            if s.trials > (0 if s.promote else 1):
                stages[i] = Stage(trials=s.trials - 1, epochs=s.epochs, top=s.top, promote=s.promote)
                break
        else:
            last = stages[-1]
            if not isinstance(last.promote, int) or last.promote <= 1:
                raise ValueError("budget: too small for this plan")
            stages[-1] = Stage(trials=last.trials, epochs=last.epochs, top=last.top, promote=last.promote - 1)
    return stages


def promoted_epochs(epochs_before: int, going_on: int, epochs: int, repeats: int) -> int:
    """Epochs one promoted configuration trains in a stage of `epochs` epochs and `repeats` repeats:
    `going_on` of its runs (at most `repeats`) continue from their checkpoints at `epochs_before`,
    the seeds it gains (or runs that cannot continue) train from epoch 1."""
    going_on = min(going_on, repeats)
    return going_on * max(0, epochs - epochs_before) + (repeats - going_on) * epochs


def cost(stages: Sequence[Any]) -> int:
    """Epochs a plan trains at most: fresh trials from epoch 1, promoted ones past the previous stage's
    epochs (`promoted_epochs`: the seeds a promoted configuration gains when `repeats` rises start from
    epoch 1; a fractional `promote` counts as every configuration of the previous stage)."""
    total, before, n_before, repeats_before = 0, 0, 0, 1
    for s in stages:
        promote = s.promote if isinstance(s.promote, int) else math.ceil(s.promote * n_before)
        total += s.trials * s.repeats * s.epochs + int(promote) * promoted_epochs(
            before, repeats_before, s.epochs, s.repeats
        )
        before, n_before, repeats_before = s.epochs, s.trials + int(promote), s.repeats
    return total


def share(stages: Sequence[Any], k: int) -> int:
    """Epochs the plan counts for stage k (1-based) alone: `cost` of the first k stages less that of
    the first k - 1 (a promoted configuration is priced from the stage before it)."""
    return cost(stages[:k]) - cost(stages[: k - 1])


def balance(planned: Sequence[Any], runs: Sequence[Any], skip: str = "warm:") -> int:
    """Epochs the `planned` stages were counted for (`cost`) less what their runs trained: positive
    when runs stopped early (diverged, failed, pruned) or a stage found fewer configurations to
    promote than planned; negative when runs trained more than counted (a promoted run whose parent
    left no resumable state trains again from epoch 1). The next stage spends a positive balance
    and pays a negative one (`stages.plan_stage`), so that a sweep trains about the budget it was
    given, never more (Hyperband's brackets re-spend nothing; a user's `budget:` is what to spend).

    Args:
        planned: the stages that ran (`config.Stage`s); runs: every run of those stages, each with
            `trial`, `status`, `epochs_done` (its parent's included), `parent`, `resumable` and
            `diverged_reported` (see `stages.Run`); runs whose trial starts with `skip` (carried in from another sweep)
            are not counted.

    Returns:
        Epochs, either sign: the planned cost less what the runs trained, counting one more epoch
        for a run that diverged inside an epoch it did not report (the epoch it diverged in, as the
        quality bench counts it; never past its stage's epochs) and every epoch of a promoted run
        whose parent was not resumable; 0 when a run's epochs are not known.
    """
    done = {r.trial: r.epochs_done for r in runs}
    resumable = {r.trial: r.resumable for r in runs}
    trained = 0
    for r in runs:
        if r.trial.startswith(skip):
            continue
        if r.epochs_done is None:
            return 0
        start = (done.get(r.parent) or 0) if r.parent and resumable.get(r.parent, True) else 0
        # the epoch a run diverged in counts, unless its report is among the epochs done already
        ran = max(0, r.epochs_done - start) + (r.status == "diverged" and not r.diverged_reported)
        k = stage_of(r.trial)
        if 1 <= k <= len(planned):  # a run diverged in its last epoch may have recorded that epoch too
            ran = min(ran, max(0, planned[k - 1].epochs - start))
        trained += ran
    return cost(planned) - trained


def explore_epochs(left: int, one: int, share: float | None = None) -> int:
    """Epochs a promote-only stage of `stages: auto` (the bracket's last) whose ranges moved sets
    aside for fresh trials: `share` (default EXPLORE_SHARE) of the `left` epochs its incumbent does
    not use, rounded down to whole trials of `one` epochs each, and at least one trial when `left`
    affords one.

    Example: a last stage of 8 epochs after one of 3 has 15 epochs (3 promotions of 5); the
    incumbent takes 5, and 8 of the 10 left buy one fresh trial (EXPLORE_SHARE 0.5 would round to 0,
    so the floor of one trial applies)."""
    share = EXPLORE_SHARE if share is None else share
    if one <= 0 or left < one:
        return 0
    return max(1, int(share * left) // one) * one


def describe(stages: Sequence[Any], budget: int | None) -> str:
    """The plan as printed before a sweep runs: one line per stage, then the total."""
    lines = [f"Plan: {len(stages)} stage(s)" + (f" for a budget of {budget} epochs" if budget else "")]
    for k, s in enumerate(stages, 1):
        parts = [f"{s.trials} trial(s) x {s.epochs} epoch(s)"]
        if s.promote:
            parts.append(f"+ {s.promote} promoted")
        if s.top:
            parts.append(f"ranges from the top {s.top}")
        lines.append(f"  stage {k}: " + ", ".join(parts))
    lines.append(f"  at most {cost(stages)} epochs in all")
    return "\n".join(lines)
