"""Verdicts of the sanity checks before a sweep (`hpsearch check`), pure: numbers in, verdicts out.

The checks are the first three steps of the CS231n notes' recipe ("Neural Networks Part 3:
Learning and Evaluation"): a gradient check, the loss at initialization, overfitting a tiny
sample; then Smith's learning-rate range test ("Cyclical Learning Rates for Training Neural
Networks", 2017, section 3.3) to choose the first stage's lr range. The measurements are taken
by `hpsearch.trainables.preflight`; everything here is a function of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hpsearch.search import conditional as cond
from hpsearch.search import space as sp

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
# Relative error thresholds of the notes' gradient check: > 1e-2 the gradient is probably wrong;
# 1e-2 .. 1e-4 uncomfortable; < 1e-4 fine for objectives with kinks (ReLU), < 1e-7 good.
GRAD_WRONG, GRAD_SUSPICIOUS, GRAD_GOOD = 1e-2, 1e-4, 1e-7
# Both gradients below this count as agreeing zeros: a dead ReLU gives exactly 0 analytically and
# ~1e-11 numerically (float64 round-off of a centred difference, eps * |f| / h with h = 1e-5).
GRAD_ZERO = 1e-8
# The initial loss may stray this fraction of ln(C) from ln(C) before a warning, and twice that
# before failing: Kaiming-initialized nets on the digits start within 8% (measured over seeds).
INIT_WARN, INIT_FAIL = 0.15, 0.5
OVERFIT_SAMPLE = 20  # examples of the "overfit a tiny sample" check (the notes: ~20)
OVERFIT_STEPS = 300  # full-batch SGD steps per learning rate of the ladder
OVERFIT_LRS = (0.1, 0.3, 1.0, 0.03)  # tried in this order until one reaches 100% training accuracy
SMOOTH = 0.9  # the range test's loss smoothing (a debiased EMA, as fastai's lr_find; 0.98 lags ~50 of 150 steps)
DIVERGE = 4.0  # the range test stops once the smoothed loss exceeds this times its minimum


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: `status` pass | warn | fail | skip, a one-line `message`, measured `data`."""

    check: str
    status: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rel_error(analytic: float, numeric: float) -> float:
    """|a - n| / max(|a|, |n|), the notes' relative error; 0 where both are below GRAD_ZERO."""
    big = max(abs(analytic), abs(numeric))
    return 0.0 if big < GRAD_ZERO else abs(analytic - numeric) / big


def gradient_verdict(errors: list[float], kinks: list[bool], what: str) -> Verdict:
    """Verdict over the checked coordinates' relative errors; `kinks[i]` says the step of
    coordinate i crossed a ReLU kink (a hidden unit changed sign between x - h and x + h)."""
    if not errors:
        return Verdict("gradient", SKIP, f"{what}: no coordinate to check")
    smooth = [e for e, k in zip(errors, kinks) if not k]
    worst = max(errors)
    worst_smooth = max(smooth, default=0.0)
    n_kinks = sum(kinks)
    data = {"max_rel_error": worst, "max_rel_error_without_kinks": worst_smooth, "checked": len(errors)}
    data["kinks"] = n_kinks
    head = f"{what}: max relative error {worst:.1e} over {len(errors)} coordinates"
    kink_note = (
        f"; {n_kinks} step(s) crossed a ReLU kink (max error without them {worst_smooth:.1e}): kinks are the likely "
        "cause of errors near 1e-4"
        if n_kinks
        else ""
    )
    if worst_smooth > GRAD_WRONG:
        return Verdict("gradient", FAIL, f"{head} (> 1e-2: the backward pass is probably wrong){kink_note}", data)
    if worst > GRAD_WRONG:  # only kinked coordinates are that far off
        return Verdict("gradient", WARN, f"{head}{kink_note}", data)
    if worst > GRAD_SUSPICIOUS:
        why = kink_note or " (1e-4 .. 1e-2: suspicious; ReLU kinks are the usual cause, else a subtle bug)"
        return Verdict("gradient", WARN, f"{head}{why}", data)
    level = "good" if worst <= GRAD_GOOD else "fine for a ReLU net (kinks); < 1e-7 would be good"
    return Verdict("gradient", PASS, f"{head} ({level})", data)


def initial_loss_verdict(loss: float, n_classes: int, loss_reg: float | None = None, reg: float = 0.0) -> Verdict:
    """The loss at initialization with regularization off against ln(C); with `loss_reg` (the same
    model's loss with regularization `reg` on) it must be higher."""
    expected = math.log(n_classes)
    data = {"loss": loss, "expected": expected, "classes": n_classes, "loss_with_reg": loss_reg, "reg": reg}
    off = abs(loss - expected) / expected if math.isfinite(loss) else math.inf
    head = f"loss at initialization {loss:.4g}, expected ln({n_classes}) = {expected:.4g} for {n_classes} classes"
    status, advice = PASS, ""
    if off > INIT_FAIL:
        status, advice = FAIL, ": too far off, check the initialization or the last layer (its weights' scale)"
    elif off > INIT_WARN:
        status, advice = WARN, ": somewhat off, check the initialization scale"
    if loss_reg is not None:
        if not loss_reg > loss:
            status = FAIL
            advice += (
                f"; turning regularization on (reg {reg:.3g}) did not raise it ({loss_reg:.4g}): check the L2 term"
            )
        else:
            advice += f"; regularization on (reg {reg:.3g}) raises it to {loss_reg:.4g}, as it must"
    return Verdict("initial_loss", status, head + advice, data)


def overfit_verdict(
    tries: list[dict[str, Any]],
    sample: int,
    setup: str = "no regularization, plain SGD",
    unit: str = "step(s)",
) -> Verdict:
    """Tries of the ladder, each {lr, steps, train_acc, first_loss, last_loss, exploded}; passes if one
    reached 100% training accuracy on the `sample` examples. `setup` says how they were trained
    (a command program is only asked to), `unit` what `steps` counts."""
    data = {"sample": sample, "tries": tries}
    won = next((t for t in tries if t["train_acc"] >= 1.0), None)
    if won is not None:
        msg = (
            f"{sample} examples, {setup}: 100% training accuracy after {won['steps']} "
            f"{unit} at lr {won['lr']:.3g} (loss {won['first_loss']:.3g} -> {won['last_loss']:.3g})"
        )
        return Verdict("overfit", PASS, msg, data)
    best = max(tries, key=lambda t: t["train_acc"])
    lrs = ", ".join(f"{t['lr']:.3g}" for t in tries)
    causes = []
    if any(t["exploded"] for t in tries):
        causes.append(
            "the loss exploded at lr " + ", ".join(f"{t['lr']:.3g}" for t in tries if t["exploded"]) + " (too high)"
        )
    if any(not t["exploded"] and t["last_loss"] > 0.5 * t["first_loss"] for t in tries):
        causes.append("the loss barely fell: learning rate too low, or a bad initialization")
    causes.append("too little capacity (a model too small to memorize even a tiny sample)")
    msg = (
        f"{sample} examples, {setup}: best training accuracy {best['train_acc']:.0%} "
        f"after {best['steps']} {unit} (tried lr {lrs}); likely causes: {'; '.join(causes)}"
    )
    return Verdict("overfit", FAIL, msg, data)


def smooth(losses: list[float], beta: float = SMOOTH) -> list[float]:
    """Exponential moving average with bias correction (debiased as Adam's moments)."""
    out, avg = [], 0.0
    for i, x in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta**i))
    return out


def lr_range_verdict(lrs: list[float], losses: list[float], declared: tuple[float, float] | None) -> Verdict:
    """Analyse a range test: lrs rising exponentially, one training loss per iteration.

    The steepest fall is where d(smoothed loss)/d(log10 lr) is most negative before the minimum;
    divergence is the first lr past the minimum whose smoothed loss exceeds DIVERGE x its minimum
    (or a non-finite loss). Suggested stage-1 range: [steepest / 10, lr at the minimum], at least
    one decade wide: wide enough for a coarse search, without the lrs that only diverge.
    """
    finite = [i for i, x in enumerate(losses) if math.isfinite(x)]
    if len(finite) < 5:
        return Verdict("lr_range", FAIL, "the loss was not finite from the first iterations: check the data and model")
    n = (
        finite[-1] + 1
        if len(finite) == finite[-1] + 1
        else next(i for i, x in enumerate(losses) if not math.isfinite(x))
    )
    lrs, raw = lrs[:n], losses[:n]
    s = smooth(raw)
    i_min = min(range(len(s)), key=s.__getitem__)
    diverged = next((i for i in range(i_min, len(s)) if s[i] > DIVERGE * s[i_min]), None)
    if diverged is None and n < len(losses):
        diverged = n - 1  # the next loss was not finite
    logs = [math.log10(x) for x in lrs]
    slopes = [(s[i + 1] - s[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(1, max(i_min, 2))]
    i_steep = 1 + min(range(len(slopes)), key=slopes.__getitem__) if slopes and i_min > 1 else i_min
    low, high = lrs[i_steep] / 10, lrs[i_min]
    if high < 10 * low:
        high = 10 * low
    data = {
        "lrs": lrs,
        "losses": raw,
        "smoothed": s,
        "steepest_lr": lrs[i_steep],
        "min_loss_lr": lrs[i_min],
        "diverged_lr": lrs[diverged] if diverged is not None else None,
        "suggested": [low, high],
        "declared": list(declared) if declared else None,
    }
    fell = s[i_min] < 0.9 * s[0]
    head = (
        f"loss falls fastest at lr {sp.sci(lrs[i_steep])}, is lowest at {sp.sci(lrs[i_min])}, "
        + (
            f"diverges from {sp.sci(lrs[diverged])}"
            if diverged is not None
            else f"never diverged up to {sp.sci(lrs[-1])}"
        )
        + f"; suggested stage-1 lr range [{sp.sci(low)}, {sp.sci(high)}]"
    )
    if declared:
        head += f" (the sweep declares [{sp.sci(declared[0])}, {sp.sci(declared[1])}])"
    if not fell:
        return Verdict(
            "lr_range",
            FAIL,
            f"the loss never fell by 10% at any lr in [{sp.sci(lrs[0])}, {sp.sci(lrs[-1])}]: "
            "check the data, the labels and the model",
            data,
        )
    if diverged is None:
        return Verdict("lr_range", WARN, head + ": the upper end may lie higher", data)
    if declared and declared[0] > 0 and declared[0] >= lrs[diverged]:
        return Verdict(
            "lr_range",
            FAIL,
            head + ": the whole declared range lies at or above where the loss diverges; every run would "
            "diverge (use the suggested range: --write)",
            data,
        )
    if declared and mostly_diverges(declared, lrs[diverged]):
        return Verdict(
            "lr_range",
            WARN,
            head + ": most of the declared range lies above where the loss diverges; its runs there will "
            "diverge (use the suggested range: --write)",
            data,
        )
    if declared and declared[1] < low:
        return Verdict(
            "lr_range",
            WARN,
            head + ": the whole declared range lies below the suggested one, where the loss falls slowly "
            "(use the suggested range: --write)",
            data,
        )
    return Verdict("lr_range", PASS, head, data)


def mostly_diverges(declared: tuple[float, float], diverged_lr: float) -> bool:
    """Whether more than half of a declared lr range (on a log scale) lies above the lr where the
    loss diverged: the same "most of the range" test the planner uses to reach below a range whose
    runs mostly diverged (`divergence.reach_below`)."""
    lo, hi = declared
    if not (0 < lo < hi) or diverged_lr >= hi:
        return False
    return math.log10(hi / max(diverged_lr, lo)) > 0.5 * math.log10(hi / lo)


def representative(space: sp.Space) -> dict[str, Any]:
    """One configuration standing for the sweep's stage 1: each range's middle in its own scale
    (geometric middle of a log range), a categorical's first value, a constant's value; under
    plain names, a conditional parameter (`lr[optimizer=adam]`) only where its branch is taken
    (`conditional.resolve`), as a trial gets them."""
    draw = {}
    for name, dim in space.items():
        draw[name] = dim.values[0] if isinstance(dim, sp.Categorical) else dim.from_unit(0.5)
    return cond.resolve(space, draw)


def declared_range(space: sp.Space, key: str | None = "lr") -> tuple[float, float] | None:
    """The searched [low, high] of a numeric parameter (its key in the space: `conditional.keys_for`), or None
    when it is fixed, not numeric or absent."""
    dim = space.get(key) if key is not None else None
    return (float(dim.low), float(dim.high)) if isinstance(dim, sp.Numeric) else None


def exit_code(verdicts: list[Verdict]) -> int:
    """1 when a check failed, else 0 (warnings and skipped checks do not fail the run)."""
    return 1 if any(v.status == FAIL for v in verdicts) else 0
