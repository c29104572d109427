"""The worker loop: claim -> train -> record, with heartbeats and clean stops.

A worker is a long-lived process (importing torch costs seconds; a trial can cost milliseconds).
It stops taking work on SIGTERM/SIGINT/SIGUSR1 (Slurm's end-of-time signal): the trial in hand
stops at its next report, keeps its checkpoint and goes back to the queue for another worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hpsearch.errors import DiskFull, HpsearchError, StopTrial, failure_record, is_disk_full
from hpsearch.run.devices import device_label
from hpsearch.store.fold import TrialRecord
from hpsearch.store.lazylog import LazyLog
from hpsearch.store.liveness import HOST, Liveness, lost_trials, my_pid_start
from hpsearch.store.sweepdir import Store
from hpsearch.trainables.trial import PAST_EPOCHS, Trial

EXIT_TOO_MANY_FAILURES = 3
EXIT_DISK_FULL = 4  # the master stops the sweep and says to free space, then resume
EXIT_TIMED_OUT = 5  # an in-process trainable hung and the worker could not restart itself


_FREE = "; free space, then resume"


def _disk_full_why(detail: str) -> str:
    """The worker's leaving line for a full disk, the advice said once (DiskFull's text ends with it):
    "the disk is full: cannot write PATH (No space left on device); free space, then resume"."""
    said = detail.removesuffix(_FREE).replace(": the disk is full (", " (", 1)
    return f"the disk is full: {said}{_FREE}"


THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
LAUNCHED_BY = "HPSEARCH_LAUNCHED_BY"  # set by the local launcher: this worker belongs to a master's pool


@dataclass
class WorkerOptions:
    worker_id: str | None = None
    device: str | None = None
    threads: int | None = None
    max_trials: int | None = None  # stop after this many trials (tests, benchmarks)
    exit_when_idle: bool = False  # leave when the queue is empty instead of waiting for the next stage
    poll: float = 0.2
    restart_argv: list[str] | None = None  # how to start this worker afresh (after a hung trainable)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Worker:
    def __init__(self, root: str, opts: WorkerOptions) -> None:
        self.store = Store(root)
        if not self.store.exists():
            raise HpsearchError(f"{self.store.missing()}; start one with `hpsearch master start SWEEP.yaml --dir DIR`")
        self.sweep = self.store.load_sweep()
        self.store = Store(root, lock=self.sweep.lock)
        self.opts = opts
        self._root = os.path.realpath(root)
        self.id = opts.worker_id or f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.stop = threading.Event()
        self._exiting = threading.Event()
        self.status: dict[str, Any] = {"state": "starting"}
        self.beat = 0
        self.fit: Callable[..., None] | None = None
        self.device = "cpu"
        self.failures_in_a_row = 0
        self.done = 0
        self.disk_full: str | None = None
        self.signum = 0  # the first stop signal received
        self._training: list[Trial] = []  # the trials in hand (the watchdog reads it)
        self._out = sys.stdout  # what we say goes here, also while a trial's output is redirected

    def say(self, msg: str) -> None:
        """One line of what the worker does (a worker started by hand shows it in its terminal)."""
        with contextlib.suppress(OSError, ValueError):
            print(f"hpsearch worker {self.id}: {msg}", file=self._out, flush=True)

    # -- heartbeats ----------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        self.beat += 1
        self.store.beat(
            self.id,
            {
                "host": HOST,
                "pid": os.getpid(),
                "pid_start": my_pid_start(),
                "device": device_label(self.device),
                "beat": self.beat,
                "time": time.time(),
                "trials_done": self.done,
                "launched_by": os.environ.get(LAUNCHED_BY),
                "root": self._root,  # a copy of the directory is not this worker's (liveness.elsewhere)
                **self.status,
            },
        )

    def _heartbeat_loop(self) -> None:
        # not self.stop: after a stop signal the trial in hand trains on until its next report,
        # and a silent worker would be judged lost (and its trial requeued) meanwhile
        while not self._exiting.wait(self.sweep.heartbeat):
            with contextlib.suppress(HpsearchError, OSError):
                self._heartbeat()
            self._watchdog()

    def _watchdog(self) -> None:
        """epoch_timeout for a trainable that runs in this process: a hung thread cannot be stopped,
        so the trial is timed out (requeued or failed) and the worker starts itself afresh. A command
        program is timed out by its runner (trainables/command.py), which can kill it."""
        timeout, trials = self.sweep.epoch_timeout, list(self._training)
        if not timeout or not trials or self.sweep.trainable_kind == "command":
            return
        idle = time.monotonic() - min(t.last_progress for t in trials)
        if idle <= timeout:
            return
        # a Store of its own: the journal's incremental fold is not shared between threads
        store = Store(self.store.layout.root, lock=self.sweep.lock)
        for t in trials:
            self._time_out(t, store)
        self.status = {"state": "exited"}
        with contextlib.suppress(HpsearchError, OSError):
            self._heartbeat()
        if self.opts.restart_argv:
            self.say("the trainable is stuck in this process; starting the worker afresh")
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
                sys.stderr.flush()
            os.execv(self.opts.restart_argv[0], self.opts.restart_argv)
        self.say("the trainable is stuck in this process; leaving (exit code 5)")
        os._exit(EXIT_TIMED_OUT)

    def _time_out(self, t: Trial, store: Store | None = None) -> None:
        epoch = (t.history[-1]["epoch"] if t.history else t.start_epoch) + 1
        why = f"epoch {epoch} of {t.epochs} took longer than epoch_timeout {self.sweep.epoch_timeout:g} s"
        done = t.history[-1]["epoch"] if t.history else t.start_epoch
        with contextlib.suppress(HpsearchError):
            action = (store or self.store).time_out(
                t.id, t.attempt, why, self.sweep.retries, t.best, t.best_epoch, done
            )
            if action:
                self.say(f"{t.id}: timeout: {why}; {action}")
        self.failures_in_a_row += 1

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self._setup_torch()
        fixed = self.sweep.fixed_settings()
        from hpsearch.trainables.registry import resolve

        self.fit = resolve(self.sweep)
        try:
            self._heartbeat()
        except DiskFull as e:  # started on a full disk: the same leaving line and code as later on
            self.say(f"leaving: {_disk_full_why(str(e))} (0 trial(s) recorded here)")
            return EXIT_DISK_FULL
        beats = threading.Thread(target=self._heartbeat_loop, daemon=True)
        beats.start()
        liveness = Liveness(self.sweep.stale_after, self.store.layout.root)
        batch = int(fixed.get("population", 1) or 1) if self.sweep.trainable_kind == "builtin" else 1
        next_lost_check = 0.0
        st = self.store.refresh()
        queued = sum(1 for t in st.trials.values() if t.state.value == "planned")
        self.say(
            f"joined sweep {self.sweep.name} in {self.store.layout.root} at stage {st.current_stage or '-'} of "
            f"{len(self.sweep.stages)} ({queued} trial(s) queued), pid {os.getpid()} on {HOST}, "
            f"device {device_label(self.device)}"
        )
        why = "stop signal"
        code = 0
        try:
            while not self.stop.is_set():
                if self.opts.max_trials is not None and self.done >= self.opts.max_trials:
                    why = f"--max-trials {self.opts.max_trials} reached"
                    break
                claimed = self.store.claim(self.id, n=batch, info={"device": device_label(self.device)})
                if not claimed:
                    st = self.store.state
                    if st.done or st.stop:
                        why = "the sweep is done" if st.done else f"the sweep was stopped ({st.stop_reason or 'stop'})"
                        break
                    # no master may be running: requeue trials of vanished workers ourselves, judged
                    # once a heartbeat period (each look reads every worker's file, maybe over NFS)
                    now = time.monotonic()
                    if now >= next_lost_check:
                        next_lost_check = now + max(self.opts.poll, self.sweep.heartbeat)
                        lost = lost_trials(st, self.store.heartbeats(), liveness)
                        if lost:
                            for tid, action in self.store.requeue_lost(lost, self.sweep.retries):
                                self.say(f"{tid}: {lost[tid]}; {action}")
                            continue
                    if self.opts.exit_when_idle and not any(t.state.value == "running" for t in st.trials.values()):
                        why = "no trial is queued (--exit-when-idle)"
                        break
                    if self.status.get("state") != "idle":
                        self.say("waiting for work (no trial queued)")
                    self.status = {"state": "idle"}
                    self.stop.wait(self.opts.poll)
                    continue
                ids = [t.trial for t in claimed]
                self.say(
                    f"claimed {ids[0] if len(ids) == 1 else f'{len(ids)} trials {ids[0]}..{ids[-1]}'} "
                    f"(stage {claimed[0].stage}, attempt {claimed[0].attempt}, {claimed[0].epochs} epoch(s))"
                )
                self._run_batch(claimed, fixed)
                if self.disk_full:
                    why, code = _disk_full_why(self.disk_full), EXIT_DISK_FULL
                    break
                if self.failures_in_a_row and (same := self._same_error_early()):
                    why, code = same, EXIT_TOO_MANY_FAILURES
                    break
                if self.failures_in_a_row >= self.sweep.max_failures:
                    why = (
                        f"{self.failures_in_a_row} trials failed in a row (max_failures); stopping so the queue "
                        f"is not burnt. See {self.store.layout.trials}/*/error.txt"
                    )
                    code = EXIT_TOO_MANY_FAILURES
                    break
        except DiskFull as e:  # a claim or a trial's files could not be written
            why, code = _disk_full_why(str(e)), EXIT_DISK_FULL
        finally:
            self.stop.set()
            self._exiting.set()
            beats.join(timeout=5)  # so no late beat overwrites the final "exited" one
            self.status = {"state": "exited"}
            with contextlib.suppress(HpsearchError, OSError):
                self._heartbeat()
        if why == "stop signal":  # the master's SIGTERM after the sweep ended, or someone's signal
            with contextlib.suppress(HpsearchError):
                st = self.store.refresh()
            signame = signal.Signals(self.signum).name if self.signum else "a signal"
            why = (
                "the sweep is done"
                if st.done
                else f"the sweep was stopped ({st.stop_reason or 'stop'})"
                if st.stop
                else f"stopped by {signame}"
            )
        self.say(f"leaving: {why} ({self.done} trial(s) recorded here)")
        return code

    def _same_error_early(self) -> str | None:
        """Why to stop claiming when the first `max_failures` results of the current stage since the
        last resume (`SweepState.judged`), from every worker, all failed with one error
        (`report.failures.same_error_early`, the master's rule): fast-failing trials were all burnt
        before the master's next look, each worker's own count in a row staying below the limit.
        Looked at only after a failure of this worker's (it reads every trial of the stage)."""
        from hpsearch.report.failures import same_error_early

        st = self.store.state
        k, n, judged = st.current_stage, self.sweep.max_failures, st.judged
        if not k or not same_error_early([t for t in st.stage_trials(k) if t.trial not in judged], n):
            return None
        return (
            f"the first {n} results of stage {k} failed with the same error (max_failures: {n}); stopping so the "
            f"queue is not burnt. See {self.store.layout.trials}/*/error.txt"
        )

    def _run_batch(self, records: list[TrialRecord], fixed: dict[str, Any]) -> None:
        if len(records) > 1:
            from hpsearch.trainables.population import fit_population

            trials = [self._make_trial(r, fixed) for r in records]
            self._guard(trials, lambda: fit_population([t.params for t in trials], trials))
        else:
            trial = self._make_trial(records[0], fixed)
            assert self.fit is not None
            fit = self.fit
            self._guard([trial], lambda: fit(trial.params, trial))

    def _make_trial(self, rec: TrialRecord, fixed: dict[str, Any]) -> Trial:
        self.store.trial_files_ready(rec)
        trial = Trial(
            self.store,
            rec,
            params={**fixed, **rec.params},
            metric=self.sweep.metric.name,
            goal=self.sweep.metric.goal,
            device=self.device,
            keep=self.sweep.checkpoints,
            diverge_factor=float(fixed.get("diverge_factor", 3.0) or 3.0),
            stop_event=self.stop,
            status=self.status,
            source_dir=self.sweep.source_dir,
            early_stop=self.sweep.early_stop_for(rec.stage),
        )
        trial.epoch_timeout = self.sweep.epoch_timeout
        return trial

    def _guard(self, trials: list[Trial], body: Callable[[], None]) -> None:
        """Run trainable code; whatever it does, each trial ends recorded (or released)."""
        self.status.update(state="training", trial=",".join(t.id for t in trials), epoch=None, metric=None)
        log = self.store.layout.log_file(trials[0].id)
        error: tuple[str, str] | None = None
        self._training = trials
        try:
            with LazyLog(log) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                body()
        except StopTrial as e:
            # a trainable that set stop_reason itself says why in the exception (one trial: it is that one's)
            t = trials[0]
            if len(trials) == 1 and t.stop_reason == "diverged" and t.diverged_why is None:
                t.diverged_why = str(e).removeprefix("diverged:").strip() or None
        except Exception as e:
            if is_disk_full(e):  # not the trial's fault: it goes back to the queue, the worker stops
                self.disk_full = str(e)
            elif len(trials) == 1 and _optuna_pruned(e):  # a ported objective's `raise optuna.TrialPruned()`
                t = trials[0]
                done = t.history[-1]["epoch"] if t.history else t.start_epoch
                t.stop_reason = "pruned"
                t.prune_reason = (
                    f"pruned by the trainable after epoch {done} (optuna.TrialPruned{f': {e}' if str(e) else ''})"
                )
            else:
                error = failure_record(e)  # traceback to error.txt, the exception's own line to the journal
        finally:
            self._training = []
        for t in trials:
            try:
                self._record(t, error or getattr(t, "error", None))  # a population records errors per group
            except DiskFull as e:
                self.disk_full = str(e)
        self.status.update(state="idle", trial=None)

    def _record(self, t: Trial, error: tuple[str, str] | None) -> None:
        epochs_done = t.history[-1]["epoch"] if t.history else 0
        if t.stop_reason == "lost":
            self.say(f"{t.id}: another worker owns it now; dropped")
            return
        if self.disk_full:
            with contextlib.suppress(HpsearchError):  # the disk may refuse the release too: then it is lost
                self.store.release(t.id, t.attempt, f"disk full: {self.disk_full}", epochs_done=epochs_done)
            self.say(f"{t.id}: released ({self.disk_full})")
            return
        if t.stop_reason == "timeout":
            self._time_out(t)
            return
        if t.stop_reason == "pruned":  # the stage's early-stopping rule: its epochs and checkpoints stay
            self.store.finish(
                t.id,
                t.attempt,
                "pruned",
                t.best,
                t.best_epoch,
                epochs_done,
                t.prune_reason,
                update_ratio=t.update_ratio,
            )
            self.failures_in_a_row = 0
            self.done += 1
            self.say(f"{t.id}: pruned after {epochs_done} of {t.epochs} epoch(s) ({t.prune_reason})")
            return
        # a trial that reached its epochs is finished, whatever stop came with its last one
        if epochs_done < t.epochs and (t.stop_reason == "stopped" or (t.stop_reason is None and self.stop.is_set())):
            self.store.release(t.id, t.attempt, "stopped by signal or master stop", epochs_done=epochs_done)
            self.say(f"{t.id}: released after {epochs_done} of {t.epochs} epoch(s) (stopping)")
            return
        metric = self.sweep.metric.name
        reason: str | None
        if t.stop_reason == "diverged":  # it left first: an error its population hit later is not its own
            status, reason = "diverged", f"diverged: {t.diverged_why}" if t.diverged_why else "diverged"
        elif error is not None:
            self.store.write_error(t.id, error[0])
            # a command program's failure is told in its own terms (exit code, log tail, metrics line)
            line = error[1]
            program = line.startswith("ProgramFailed: ")
            status, reason = "failed", f"program failed: {line[15:]}" if program else f"exception: {line}"
        elif epochs_done < t.epochs:
            status, reason = "failed", self._short_reason(epochs_done, t.epochs)
        else:
            status, reason = "finished", t.restarted  # None, or why earlier epochs were trained again
            if t.stop_reason == "past_epochs":
                reason = f"{PAST_EPOCHS} {t.epochs} epoch(s): the trainable went on to epoch {t.epochs + 1}"
        self.store.finish(
            t.id,
            t.attempt,
            status,
            t.best,
            t.best_epoch,
            epochs_done,
            reason,
            resumable=t.resumable,
            update_ratio=t.update_ratio,
            diverged_reported=status == "diverged" and t.diverged_reported,
        )
        self.failures_in_a_row = self.failures_in_a_row + 1 if status == "failed" else 0
        self.done += 1
        best = f", best {metric} {t.best:.4f} at epoch {t.best_epoch}" if t.best is not None else ""
        said = reason.removeprefix("diverged: ") if reason and status == "diverged" else reason
        self.say(f"{t.id}: {status}{f' ({said})' if said and said != status else ''}{best}")

    def _short_reason(self, epochs_done: int, epochs: int) -> str:
        """Why a trainable that returned early failed, in the terms of its kind of trainable."""
        metric = self.sweep.metric.name
        if self.sweep.trainable_kind == "command":
            if epochs_done == 0 and self.sweep.trainable.get("metric_regex"):
                return (
                    "the program exited 0 and metric_regex matched none of its output lines: compare the "
                    "expression with what the program prints (trials/<trial>/worker.log), e.g. "
                    f"'{metric}=(?P<{metric}>[0-9.eE+-]+)' matches '{metric}=0.97'"
                )
            if epochs_done == 0:
                return (
                    f"the program exited 0 without writing a metrics line: append one JSON line per epoch to "
                    f'the file named by $HPSEARCH_METRICS_FILE, e.g. {{"epoch": 1, "{metric}": 0.5}}'
                )
            return f"the program exited 0 after {epochs_done} of {epochs} epochs (metrics lines)"
        if epochs_done == 0:
            return (
                f"the trainable returned without reporting an epoch: call trial.report(epoch, {metric}=...) "
                f"after each of its {epochs} epochs (a value it returns is not read)"
            )
        return f"the trainable returned after {epochs_done} of {epochs} epochs"

    # -- setup ---------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            if self.stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C kills
            self.signum = self.signum or signum
            self.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, handler)

    def _setup_torch(self) -> None:
        needs_torch = self.sweep.trainable_kind != "command"
        if not needs_torch and self.opts.threads:
            # a program's math libraries would use every core: give them the worker's share, as
            # torch.set_num_threads does for trainables in this process (a value the user set stays)
            for var in THREAD_VARS:
                os.environ.setdefault(var, str(self.opts.threads))
        if self.opts.device:
            self.device = self.opts.device
        elif needs_torch:
            self.device = default_device()
        elif os.environ.get("CUDA_VISIBLE_DEVICES", "") not in ("", "-1"):
            self.device = "cuda"
        if needs_torch:
            import torch

            if self.opts.threads:
                torch.set_num_threads(self.opts.threads)
            if self.device.startswith("cuda") and not torch.cuda.is_available():
                raise HpsearchError(f"--device {self.device} asked for, but torch sees no CUDA device")


def _optuna_pruned(e: BaseException) -> bool:
    """Whether `e` is Optuna's TrialPruned (matched by name and module: Optuna need not be installed)."""
    return any(c.__name__ == "TrialPruned" and c.__module__.startswith("optuna") for c in type(e).__mro__)


def run_worker(root: str, opts: WorkerOptions) -> int:
    """The CLI's worker: it can start itself afresh (same arguments) when a trainable hangs."""
    if opts.restart_argv is None:
        opts.restart_argv = [sys.executable, "-m", "hpsearch", *sys.argv[1:]]
    code = Worker(root, opts).run()
    # Python restores default handlers while it shuts down (with torch loaded, a while): a stop signal
    # then (Slurm's USR1 racing the end of the sweep) would kill the finished worker with 128+N
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    return code
