"""Early stopping inside a stage, pure: the rules, their rung epochs, and the stop-or-continue decision.

A rule is checked at a trial's *rung* epochs. At a rung, the trial's value is its best metric up to
that epoch (as Optuna's MedianPruner takes a trial's best intermediate value); the other values are
those that the stage's other trials recorded at the same rung before it (the journal's order). So a
decision is a function of the journal's events before it: any process can replay it, and two
workers deciding at once (one after the other, under the journal's lock) cannot contradict it.

Rules (`early_stop: {type: ...}` in the sweep file, sweep-wide or per stage):
- `asha`: asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
  Hyperparameter Tuning", MLSys). Rungs at `min_epochs * eta**k` epochs below the stage's last.
  At a rung, a trial continues only if it is among the top ceil(n / eta) of the n trials that
  reached that rung so far, itself included; nobody waits for the rung to fill (asynchronous),
  so the first trials to arrive always continue.
- `median`: Optuna's MedianPruner (the median stopping rule of Google Vizier): at every epoch
  from `min_epochs` on (the last excepted), a trial stops if its best value so far is worse than
  the median of the other trials' values at that epoch, once `min_trials` others reported there.
- `none`: no early stopping (the default).

W&B's `early_terminate: {type: hyperband, min_iter | max_iter + s, eta}` maps to `asha` on
W&B's own bands (`wandb_rule`): `min_iter * eta**k`, or `max_iter / eta**i` for i = 1..s, with
an iteration being an epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

RULES = ("asha", "median", "none")
KEYS = {
    "asha": {"type", "min_epochs", "eta", "min_trials"},
    "median": {"type", "min_epochs", "min_trials"},
    "none": {"type"},
}
WANDB_KEYS = {"type", "min_iter", "max_iter", "s", "eta", "strict"}
DEFAULT_MIN_TRIALS = {"asha": 0, "median": 5, "none": 0}


@dataclass(frozen=True)
class EarlyStop:
    """A validated early-stopping rule.

    Attributes:
        rule: "asha", "median" or "none".
        min_epochs: the first rung epoch (asha), the first epoch judged (median).
        eta: asha's reduction factor (> 1): the top 1/eta of a rung continue.
        min_trials: how many other trials must have reached a rung before a trial there may stop.
        bands: explicit rung epochs (W&B's early_terminate); None: from min_epochs and eta.
        source: the sweep key it came from, for messages ("early_stop", "early_terminate", ...).
    """

    rule: str = "none"
    min_epochs: int = 1
    eta: float = 3.0
    min_trials: int = 0
    bands: tuple[int, ...] | None = None
    source: str = "early_stop"

    @property
    def active(self) -> bool:
        """Whether the rule may stop a trial (any rule but `none`)."""
        return self.rule != "none"

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """Epochs (1-based, ascending) at which a trial of a stage of `epochs` epochs is judged.

        The stage's last epoch is never a rung: a trial that reaches it is done anyway.
        """
        if self.rule == "median":
            return tuple(range(self.min_epochs, epochs))
        if self.rule != "asha":
            return ()
        if self.bands is not None:
            return tuple(b for b in self.bands if 1 <= b < epochs)
        out: list[int] = []
        k = 0
        while True:
            r = int(self.min_epochs * self.eta**k)  # W&B and Ray truncate fractional rungs the same way
            if r >= epochs:
                return tuple(out)
            if not out or r > out[-1]:
                out.append(r)
            k += 1

    def describe(self) -> str:
        """One line for the report, e.g. "asha (eta 3, min_epochs 1)"."""
        if self.rule == "asha":
            if self.bands is None:
                return f"asha (eta {self.eta:g}, min_epochs {self.min_epochs})"
            shown = ", ".join(map(str, self.bands[:4])) + (", ..." if len(self.bands) > 4 else "")
            return f"asha (eta {self.eta:g}, rungs [{shown}])"
        if self.rule == "median":
            return f"median (from epoch {self.min_epochs}, at least {self.min_trials} other trials)"
        return "none"

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON data (the stage file's and the JSON report's `early_stopping.rule`)."""
        return {
            "type": self.rule,
            "min_epochs": self.min_epochs,
            "eta": self.eta,
            "min_trials": self.min_trials,
            "bands": list(self.bands) if self.bands is not None else None,
            "source": self.source,
        }


NONE = EarlyStop()


@dataclass(frozen=True)
class Decision:
    """The outcome at one rung.

    Attributes:
        stop: whether the trial stops here.
        epoch: the rung epoch.
        value: the trial's best metric up to the rung (None if it reported no finite value).
        n: how many trials the decision compared, this one included.
        threshold: the value the trial had to match (asha: the ceil(n/eta)-th best; median: the
            others' median); None when too few trials had reached the rung to judge.
    """

    stop: bool
    epoch: int
    value: float | None
    n: int
    threshold: float | None

    def reason(self, es: EarlyStop) -> str:
        """One line for the journal's `result.reason` of a pruned trial."""
        v = "no finite value" if self.value is None else f"{self.value:.4g}"
        t = "" if self.threshold is None else f" vs {self.threshold:.4g}"
        if es.rule == "asha":
            keep = math.ceil(self.n / es.eta)
            return f"pruned at epoch {self.epoch} by asha: {v}{t}, not in the top {keep} of {self.n} at this rung"
        return f"pruned at epoch {self.epoch} by median: {v} worse than the median{t} of {self.n - 1} other trials"


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def decide(es: EarlyStop, epoch: int, value: float | None, others: list[float], maximize: bool) -> Decision:
    """Stop or continue a trial at a rung.

    Args:
        es: the stage's rule (asha or median; `none` always continues).
        epoch: the rung epoch.
        value: the trial's best metric up to `epoch` (None or NaN: no usable value, judged worst).
        others: the values the stage's other trials recorded at this rung before this decision
            (non-finite ones are ignored).
        maximize: the metric's goal.
    Returns:
        The Decision. With fewer than `es.min_trials` other values (median: at least 1) the trial
        continues, unjudged.
    """
    others = [o for o in others if isinstance(o, (int, float)) and math.isfinite(o)]
    if value is not None and not math.isfinite(value):
        value = None
    n = len(others) + 1
    need = max(es.min_trials, 1 if es.rule == "median" else 0)
    if not es.active or len(others) < need:
        return Decision(False, epoch, value, n, None)
    if es.rule == "asha":
        keep = math.ceil(n / es.eta)  # >= 1: the first trial at a rung always continues
        # how many others are strictly better (a trial without a value is worse than all): ties continue
        better = len(others) if value is None else sum(1 for o in others if _better(o, value, maximize))
        ranked = sorted(others if value is None else [*others, value], reverse=maximize)
        threshold = ranked[keep - 1] if keep <= len(ranked) else None
        return Decision(better >= keep, epoch, value, n, threshold)
    # median
    s = sorted(others)
    m = len(s) // 2
    median = s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2
    stop = value is None or _better(median, value, maximize)
    return Decision(stop, epoch, value, n, median)


# -- the sweep file -------------------------------------------------------------------------------
def parse(raw: Any, where: str, problems: list[str]) -> EarlyStop:
    """`early_stop:` (a rule name, or a mapping with `type` and the rule's keys) -> EarlyStop.

    Problems are appended to `problems` (one line each, naming `where`); NONE is returned then.
    """
    if isinstance(raw, str) or raw is None:
        raw = {"type": "none" if raw is None else raw}
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be asha, median, none or a mapping like {{type: asha, eta: 3}}, got {raw!r}")
        return NONE
    rule = raw.get("type")
    if rule not in RULES:
        hint = (
            " (W&B's hyperband goes under early_terminate: {type: hyperband, min_iter: 3}, which runs asha "
            "on its bands)"
            if rule == "hyperband"
            else ""
        )
        problems.append(f"{where}.type: must be one of {', '.join(RULES)}, got {rule!r}{hint}")
        return NONE
    n = len(problems)
    for k in raw:
        if k not in KEYS[rule]:
            problems.append(f"{where}: unknown key '{k}' for type {rule} (valid keys: {', '.join(sorted(KEYS[rule]))})")
    min_epochs = _int(raw, "min_epochs", 1, 1, where, problems)
    min_trials = _int(raw, "min_trials", DEFAULT_MIN_TRIALS[rule], 0, where, problems)
    eta = _eta(raw, "eta", where, problems)
    if len(problems) > n:
        return NONE
    return EarlyStop(rule, min_epochs, eta, min_trials, None, where)


def wandb_rule(raw: Any, problems: list[str]) -> EarlyStop:
    """W&B's `early_terminate: {type: hyperband, min_iter | max_iter and s, eta (3), strict}` -> asha
    on W&B's bands (an iteration is an epoch): `min_iter * eta**k`, or `int(max_iter / eta**i)` for
    i = 1..s (those >= 1). `strict` is accepted and has no effect (W&B's own stopping ignores it)."""
    where = "early_terminate"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping like {{type: hyperband, min_iter: 3}}, got {raw!r}")
        return NONE
    n = len(problems)
    if raw.get("type") != "hyperband":
        problems.append(f"{where}.type: W&B's only early_terminate type is hyperband, got {raw.get('type')!r}")
    for k in raw:
        if k not in WANDB_KEYS:
            problems.append(f"{where}: unknown key '{k}' (valid keys: {', '.join(sorted(WANDB_KEYS))})")
    eta = _eta(raw, "eta", where, problems)
    strict = raw.get("strict", True)
    if not isinstance(strict, bool):
        problems.append(f"{where}.strict: must be true or false, got {strict!r}")
    bands: list[int] = []
    if "min_iter" in raw:
        min_iter = _int(raw, "min_iter", 1, 1, where, problems)
        band = float(min_iter)
        for _ in range(100):  # W&B's own cap; rungs past a stage's epochs are dropped per stage
            bands.append(int(band))
            band *= eta
            if band > 100_000:  # more epochs than any stage will have
                break
    elif "max_iter" in raw:
        max_iter = _int(raw, "max_iter", 1, 1, where, problems)
        if "s" not in raw:
            problems.append(f"{where}: max_iter needs s (the number of bands below max_iter), as in W&B")
        s = _int(raw, "s", 1, 1, where, problems)
        band = float(max_iter)
        for _ in range(s):
            band /= eta
            if band < 1:
                break
            bands.append(int(band))
        if len(problems) == n and not bands:
            problems.append(f"{where}: max_iter {max_iter} / eta {eta:g} leaves no band of at least 1 epoch")
    else:
        problems.append(f"{where}: needs min_iter, or max_iter and s (W&B's hyperband keys)")
    if len(problems) > n:
        return NONE
    return EarlyStop("asha", min(bands), eta, 0, tuple(sorted(set(bands))), where)


def _int(raw: dict[str, Any], key: str, default: int, lo: int, where: str, problems: list[str]) -> int:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        problems.append(f"{where}.{key}: must be an integer >= {lo}, got {v!r}")
        return default
    return v


def _eta(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> float:
    v = raw.get(key, 3)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 1 < v <= 1000:
        problems.append(f"{where}.{key}: must be a number > 1 (the top 1/eta continue at each rung), got {v!r}")
        return 3.0
    return float(v)
