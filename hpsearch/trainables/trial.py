"""The handle a trainable talks to: parameters, device, epochs to run, resume state, report().

    def fit(params: dict, trial: hpsearch.Trial) -> None:
        model = ...
        if trial.resume_state: model.load_state_dict(trial.resume_state["model"])
        for epoch in trial.epoch_range:
            ...train one epoch on trial.device...
            trial.report(epoch, val_acc=acc, train_loss=loss, state={"model": model.state_dict()})

`report` records the epoch's metrics, writes the checkpoint (its file name embeds the metric;
only with `state=` or a handed-over `checkpoint=`: without one there is nothing to resume, and a
trial that cannot resume restarts from epoch 1), and raises `StopTrial` when the trial must
stop: it diverged, the master stopped the sweep, or another worker took the trial over. Let that
exception propagate.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from hpsearch.errors import StopTrial
from hpsearch.search.earlystop import Decision, EarlyStop, decide
from hpsearch.store.fold import TrialRecord
from hpsearch.store.sweepdir import Store, format_checkpoint

LOSS_KEYS = ("train_loss", "loss")
# how a finished run's reason starts when its trainable reported an epoch past the trial's (report)
PAST_EPOCHS = "stopped after its"
# Optuna's Trial methods a ported objective may still call, and what to write instead (Trial.__getattr__)
OPTUNA_HABITS = {
    "suggest_float": "the sweep file samples parameters: read params['NAME'] (declare NAME under `parameters:`)",
    "suggest_int": "the sweep file samples parameters: read params['NAME'] (declare NAME under `parameters:`)",
    "suggest_categorical": "the sweep file samples parameters: read params['NAME'] (`values: [...]` in the file)",
    "suggest_loguniform": "the sweep file samples parameters: read params['NAME'] (`distribution: log_uniform_values`)",
    "suggest_uniform": "the sweep file samples parameters: read params['NAME'] (`distribution: uniform`)",
    "should_prune": "trial.report(epoch, ...) applies the stage's `early_terminate`/`early_stop` rule itself and "
    "raises StopTrial when the trial is pruned; to stop by your own rule, call trial.prune('why')",
    "set_user_attr": "pass data to trial.report(epoch, extras={...}) (stored with the epoch, not ranked)",
    "number": "use trial.id (e.g. 's2-t0007')",
}


class Trial:
    """One claimed trial, as seen by the code that trains it (`fit(params, trial)`).

    Attributes:
        id: the trial id, e.g. "s2-t0007" (or "s2-t0007-r1" for a repeat).
        params: searched and fixed values, the same dict fit() receives.
        seed: this trial's seed (repeats of a configuration differ only here).
        stage, epochs: the stage, and the total epochs to reach (`epoch_range` ends there).
        device: "cpu", "cuda", "cuda:1"... as given to the worker.
        metric: the sweep's metric name; `report` needs it.
        resume_state: the `state` given to `report` at the checkpoint resumed from, else None.
        resume_checkpoint: that checkpoint's path (for files handed over with `checkpoint=`).
        start_epoch: epochs already done (0 on a fresh start).
        trial_dir: a folder of this trial for the trainable's own files.
        should_stop: True once the worker is stopping; `report` then raises StopTrial.
    """

    def __init__(
        self,
        store: Store,
        record: TrialRecord,
        *,
        params: dict[str, Any],
        metric: str,
        goal: str,
        device: str = "cpu",
        keep: str = "best_last",
        diverge_factor: float = 3.0,
        stop_event: threading.Event | None = None,
        status: dict[str, Any] | None = None,
        source_dir: str = ".",
        early_stop: EarlyStop | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.id = record.trial
        self.attempt = record.attempt
        self.params = params
        self.seed = record.seed
        self.stage = record.stage
        self.epochs = record.epochs
        self.device = device
        self.source_dir = source_dir  # the sweep file's folder: relative data paths start here
        self.metric = metric
        self._maximize = goal == "maximize"
        self._keep = keep
        self._diverge_factor = diverge_factor
        self._stop_event = stop_event or threading.Event()
        self._status = status if status is not None else {}
        self.history: list[dict[str, Any]] = []
        self._state_verified = False  # the first state= was read back as resuming will read it
        self._on_disk: dict[str, None] = {}  # this trial's checkpoint files not yet deleted
        self._best_checkpoint: str | None = None
        self.resume_state: dict[str, Any] | None = None
        self.resume_checkpoint: Path | None = None
        self.start_epoch = 0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stop_reason: str | None = None
        # True: the epoch it diverged in was reported (a NaN or exploding reported loss), so it counts
        # among the epochs done; False: found inside an epoch (mark_diverged), which then was not
        self.diverged_reported = False
        # why it diverged, in the rule's words ("train_loss 1.69 > 3 x first 0.25"): the journal's reason
        self.diverged_why: str | None = None
        self.last_progress = time.monotonic()  # when the trial started or last reported (epoch_timeout)
        self.epoch_timeout: float | None = None  # seconds an epoch may take (the sweep's; None: no limit)
        self.restarted: str | None = None  # why earlier epochs were not resumed (None: nothing was lost)
        self._first_loss: float | None = None
        self._early_stop = early_stop if early_stop is not None and early_stop.active else None
        self._rungs = frozenset(self._early_stop.rungs(self.epochs)) if self._early_stop is not None else frozenset()
        self.prune_reason: str | None = None  # set when the early-stopping rule stopped the trial
        self._resume()

    # -- what the trainable reads ----------------------------------------------------------
    @property
    def epoch_range(self) -> range:
        """Epochs still to run, 1-based: starts after the last checkpointed epoch when resuming."""
        return range(self.start_epoch + 1, self.epochs + 1)

    @property
    def trial_dir(self) -> Path:
        return self.store.layout.trial_dir(self.id)

    @property
    def resumable(self) -> bool:
        """Whether a checkpoint of this trial (or the epochs it inherited) could resume it."""
        return any(h.get("checkpoint") for h in self.history) or (self.resume_checkpoint is not None)

    @property
    def update_ratio(self) -> float | None:
        """The median update-to-weight ratio (`update_ratio`, a metric the built-in classifier reports)
        over the epochs in this trial's history, None when none was reported. The master reads it to
        tell a learning rate that is too low or too high from one epoch (search/updateratio.py)."""
        values = sorted(
            v
            for v in (h.get("update_ratio") for h in self.history)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
        )
        if not values:
            return None
        m = len(values) // 2
        return float(values[m] if len(values) % 2 else (values[m - 1] + values[m]) / 2)

    @property
    def should_stop(self) -> bool:
        return self._stop_event.is_set() or self.stop_reason is not None

    # -- reporting -------------------------------------------------------------------------
    def report(
        self,
        epoch: int,
        state: dict[str, Any] | None = None,
        checkpoint: str | Path | None = None,
        extras: dict[str, Any] | None = None,
        **metrics: float,
    ) -> None:
        """Record one epoch; write its checkpoint (when `state` or `checkpoint` is given); raise
        StopTrial if the trial must stop.

        Args:
            epoch: 1-based epoch number.
            state: what to resume from (tensors, dicts, lists, numbers); saved in the checkpoint.
            checkpoint: a file the trainable wrote itself, moved under the canonical name instead.
            extras: JSON data stored with the epoch's metrics (e.g. a loss history); not ranked.
            **metrics: numbers; must include the sweep's metric (e.g. val_acc).
        Raises:
            ValueError: an epoch that is not a positive integer, or not after the last one reported;
                no sweep metric among `metrics`, or a metric that is not a number.
            StopTrial: the trial diverged, the sweep is stopping, the claim was lost, the stage's
                early-stopping rule stopped it at this epoch (a rung: `stop_reason` "pruned"), or the
                epoch lies past the trial's `epochs` (`stop_reason` "past_epochs": not recorded; a
                program told its epochs another way, e.g. W&B's fixed `epochs` parameter, trains on,
                and the stage and the budget count the trial's epochs only).
        """
        self.last_progress = time.monotonic()
        if not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"report(epoch=...) needs a positive integer epoch, got {epoch!r}")
        last = self.history[-1]["epoch"] if self.history else None
        if last is not None and epoch <= last:
            # a second report of an epoch (or an earlier one) would rank a stale value and answer a
            # rung twice; Optuna ignores a step reported again, with a warning: here it is the trainable's error
            raise ValueError(
                f"report(epoch={epoch}) after epoch {last} was reported: report each epoch once, in order "
                "(trial.epoch_range gives them)"
            )
        if epoch > self.epochs:
            self.stop_reason = "past_epochs"
            raise StopTrial(f"done: epoch {epoch} lies past the trial's {self.epochs} epoch(s)")
        if self.metric not in metrics:
            raise ValueError(f"report() needs the sweep's metric {self.metric!r}; got {sorted(metrics)}")
        metrics = {k: _number(k, v) for k, v in metrics.items()}
        if not self.store.owns(self.id, self.attempt):
            self.stop_reason = "lost"
            raise StopTrial("lost: another worker owns this trial now")
        value = metrics[self.metric]
        name = format_checkpoint(self.id, epoch, self.metric, value)
        saved: str | None = name
        payload = {
            "trial": self.id,
            "epoch": epoch,
            "params": self.params,
            "metrics": metrics,
            "seed": self.seed,
            "state": state,
        }
        if checkpoint is not None:
            self.store.adopt_checkpoint(Path(checkpoint), name)
        elif state is not None:
            # the first state of this attempt is read back before it is kept (once: a state's kind of
            # content does not change from epoch to epoch)
            self.store.save_checkpoint(name, payload, verify=not self._state_verified)
            self._state_verified = True
        else:  # nothing to resume from: a file named with the metric would promise a model it lacks
            saved = None
        # extras first: they may never overwrite the epoch, the attempt or a metric
        line = {
            **{k: v for k, v in (extras or {}).items() if k != "inherited"},  # hpsearch's mark (_resume)
            "epoch": epoch,
            "attempt": self.attempt,
            **metrics,
            "checkpoint": saved,
            "time": time.time(),
        }
        if checkpoint is not None:
            line["adopted"] = True  # not a torch payload of ours: resuming checks only that it exists
        self.store.append_metrics(self.id, line)
        self._after_epoch(line)
        diverged = self._diverged(metrics)
        if diverged:
            self.stop_reason, self.diverged_reported, self.diverged_why = "diverged", True, diverged
            raise StopTrial(f"diverged: {diverged}")
        # the rung first: a stop that comes with a rung epoch must not skip its decision (the
        # resumed trial starts after that epoch and would never be judged there)
        if epoch in self._rungs:
            self._judge(epoch)
        # a stop that comes with the last epoch lets the trainable return: the trial is finished
        # (released, it was claimed again only to call fit with nothing left to train)
        if epoch < self.epochs and (self._stop_event.is_set() or self.store.state.stop):
            self.stop_reason = "stopped"
            raise StopTrial("stopped: the sweep is stopping")

    def _judge(self, epoch: int) -> None:
        """At a rung: record the best value so far in the journal and stop if the rule says so."""
        es = self._early_stop
        assert es is not None
        value, maximize = self.best, self._maximize
        d = self.store.rung(
            self.id, self.attempt, epoch, value, lambda others: decide(es, epoch, value, others, maximize)
        )
        if d is None:
            self.stop_reason = "lost"
            raise StopTrial("lost: another worker owns this trial now")
        if d.stop:
            self.stop_reason = "pruned"
            self.prune_reason = (
                d.reason(es)
                if isinstance(d, Decision)
                else f"pruned at epoch {epoch} by {es.rule} (an earlier attempt)"
            )
            raise StopTrial(self.prune_reason)

    def _track(self, line: dict[str, Any]) -> None:
        """Add an epoch to the history: best so far (NaN and +-inf never count) and checkpoint files on disk."""
        self.history.append(line)
        value = line.get(self.metric)
        if (
            isinstance(value, (int, float))
            and math.isfinite(value)
            and (self.best is None or (value > self.best if self._maximize else value < self.best))
        ):
            self.best, self.best_epoch, self._best_checkpoint = value, line["epoch"], line.get("checkpoint")
        if line.get("checkpoint"):
            self._on_disk[line["checkpoint"]] = None  # on resume maybe deleted already: deleting again is harmless

    def _after_epoch(self, line: dict[str, Any]) -> None:
        self._track(line)
        self._status.update(trial=self.id, epoch=line["epoch"], metric=line[self.metric], best=self.best)
        if self._keep == "all":
            return
        keep = {line.get("checkpoint")}
        if self._keep == "best_last":
            keep.add(self._best_checkpoint)
        for name in [n for n in self._on_disk if n not in keep]:  # only files still there: O(1) a report
            self.store.delete_checkpoint(name)
            del self._on_disk[name]

    def _diverged(self, metrics: dict[str, float]) -> str | None:
        """Why this epoch's metrics say the run diverged, or None: the first loss key present
        (LOSS_KEYS) is not finite or above diverge_factor x its first value, or the metric itself is
        not finite (whether or not a loss was reported)."""
        for k in LOSS_KEYS:
            if k in metrics:
                loss = metrics[k]
                if not math.isfinite(loss):
                    return f"{k} is {loss}"
                if self._first_loss is None:
                    self._first_loss = loss
                elif self._first_loss > 0 and loss > self._diverge_factor * self._first_loss:
                    return f"{k} {loss:.3g} > {self._diverge_factor:g} x first {self._first_loss:.3g}"
                break
        value = metrics[self.metric]
        return None if math.isfinite(value) else f"{self.metric} is {value}"

    def prune(self, why: str = "") -> NoReturn:
        """Stop this trial by the trainable's own rule (Optuna's `raise TrialPruned()`); it is recorded
        `pruned`, like a trial the stage's early-stopping rule stopped, with the epochs reported so far
        and their checkpoints. `why` becomes the run's reason ("pruned by the trainable after epoch N: why").

        Raises:
            StopTrial: always; let it propagate.
        """
        done = self.history[-1]["epoch"] if self.history else self.start_epoch
        self.stop_reason = "pruned"
        self.prune_reason = f"pruned by the trainable after epoch {done}" + (f": {why}" if why else "")
        raise StopTrial(self.prune_reason)

    def __getattr__(self, name: str) -> Any:
        """Only for names this class lacks: an Optuna habit (`trial.suggest_float`, `should_prune`...)
        is told what to write instead (OPTUNA_HABITS).

        Raises:
            AttributeError: always, with the replacement for an Optuna method.
        """
        if name in OPTUNA_HABITS:
            raise AttributeError(
                f"hpsearch's Trial has no {name!r} (an Optuna Trial method): {OPTUNA_HABITS[name]}. "
                "README: 'Porting an Optuna objective'"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def mark_diverged(self, why: str) -> None:
        """For trainables that detect divergence inside an epoch (before reporting it); `why` becomes
        the run's recorded reason ("diverged: WHY")."""
        self.stop_reason, self.diverged_why = "diverged", why
        raise StopTrial(f"diverged: {why}")

    # -- resuming --------------------------------------------------------------------------
    def _resume(self) -> None:
        """Continue from the last readable checkpoint: of this trial, else of the promoted parent."""
        own = self.store.metrics(self.id)
        source, found = own, self._last_checkpoint(own)
        parent: list[dict[str, Any]] = []
        if found is None and self.record.parent:
            # a promoted trial starts from its parent's last checkpoint (also when it was requeued
            # before writing one of its own: its inherited lines carry no checkpoint)
            parent = self.store.metrics(self.record.parent)
            parent_found = self._last_checkpoint(parent)
            if parent_found is not None:
                source, found = parent, parent_found
        kept = source[: found + 1] if found is not None else []
        lost, whose = (own, "its attempt before this one") if own else (parent, f"its parent {self.record.parent}")
        if found is None and any(isinstance(h.get("epoch"), int) for h in lost):
            # epochs ran, but nothing can resume them: train from epoch 1, and say so (never re-label a
            # fresh model's epochs 1-2 as epochs 3-4); the lost epochs are superseded, not kept
            done = max(h["epoch"] for h in lost if isinstance(h.get("epoch"), int))
            self.restarted = (
                f"restarted from epoch 1 at attempt {self.attempt}: {whose} ran {done} epoch(s) but left no "
                "resumable state (pass state= to trial.report, or hand over a checkpoint file)"
            )
            self.store.log_note(self.id, self.restarted)
        if found is not None:
            line = source[found]
            self.resume_checkpoint = self.store.layout.checkpoint(line["checkpoint"])
            self.start_epoch = int(line["epoch"])
        if own or kept:
            # drop epochs past the checkpoint (they will be redone); each epoch keeps the attempt that
            # trained it. A promoted trial inherits history marked `inherited` (the parent's id) and
            # without the parent's checkpoint names, so its retention never deletes the parent's files
            if source is not own:
                kept = [dict(h, checkpoint=None, inherited=h.get("inherited") or self.record.parent) for h in kept]
            self.store.rewrite_metrics(self.id, kept)
        for h in kept:
            self._after_epoch_resume(h)

    def _last_checkpoint(self, lines: list[dict[str, Any]]) -> int | None:
        """Index of the last line whose checkpoint can be resumed from; sets resume_state."""
        for i in range(len(lines) - 1, -1, -1):
            name = lines[i].get("checkpoint")
            if not name:
                continue
            if lines[i].get("adopted"):
                # a file a user program handed over: its format is the program's own, so only
                # its presence is checked; the program reads it from HPSEARCH_RESUME_FROM
                if self.store.layout.checkpoint(name).is_file():
                    self.resume_state = None
                    return i
                continue
            ckpt = self.store.load_checkpoint(name)
            # a checkpoint without state (an older version wrote them) resumes nothing: skip it
            if ckpt is not None and ckpt.get("epoch") == lines[i]["epoch"] and ckpt.get("state") is not None:
                self.resume_state = ckpt.get("state")
                return i
        return None

    def _after_epoch_resume(self, line: dict[str, Any]) -> None:
        self._track(line)
        for k in LOSS_KEYS:
            if self._first_loss is None and isinstance(line.get(k), (int, float)):
                self._first_loss = line[k]


def _number(key: str, v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        data = (
            f"; pass data that is not a number as extras={{{key!r}: ...}}" if isinstance(v, (list, dict, str)) else ""
        )
        raise ValueError(f"report(): metric {key!r} must be a number, got {str(v)[:60]}{data}") from None
