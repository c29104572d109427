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

from hpsearch.errors import HpsearchError, StopTrial, failure_record
from hpsearch.run.devices import device_label
from hpsearch.store.fold import TrialRecord
from hpsearch.store.lazylog import LazyLog
from hpsearch.store.liveness import HOST, Liveness, lost_trials, my_pid_start
from hpsearch.store.sweepdir import Store
from hpsearch.trainables.trial import Trial


@dataclass
class WorkerOptions:
    worker_id: str | None = None
    device: str | None = None
    threads: int | None = None
    max_trials: int | None = None  # stop after this many trials (tests, benchmarks)
    exit_when_idle: bool = False  # leave when the queue is empty instead of waiting for the next stage
    poll: float = 0.2


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Worker:
    def __init__(self, root: str, opts: WorkerOptions) -> None:
        self.store = Store(root)
        if not self.store.exists():
            raise HpsearchError(
                f"{root} is not a sweep directory (no journal.jsonl); start one with "
                "`hpsearch master start SWEEP.yaml --dir DIR`"
            )
        self.sweep = self.store.load_sweep()
        self.store = Store(root, lock=self.sweep.lock)
        self.opts = opts
        self.id = opts.worker_id or f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.stop = threading.Event()
        self._exiting = threading.Event()
        self.status: dict[str, Any] = {"state": "starting"}
        self.beat = 0
        self.fit: Callable[..., None] | None = None
        self.device = "cpu"
        self.failures_in_a_row = 0
        self.done = 0

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
                **self.status,
            },
        )

    def _heartbeat_loop(self) -> None:
        # not self.stop: after a stop signal the trial in hand trains on until its next report,
        # and a silent worker would be judged lost (and its trial requeued) meanwhile
        while not self._exiting.wait(self.sweep.heartbeat):
            with contextlib.suppress(HpsearchError, OSError):
                self._heartbeat()

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> int:
        self._install_signals()
        self._setup_torch()
        fixed = self.sweep.fixed_settings()
        from hpsearch.trainables.registry import resolve

        self.fit = resolve(self.sweep)
        self._heartbeat()
        beats = threading.Thread(target=self._heartbeat_loop, daemon=True)
        beats.start()
        liveness = Liveness(self.sweep.stale_after)
        batch = int(fixed.get("population", 1) or 1) if self.sweep.trainable_kind == "builtin" else 1
        next_lost_check = 0.0
        try:
            while not self.stop.is_set():
                if self.opts.max_trials is not None and self.done >= self.opts.max_trials:
                    break
                claimed = self.store.claim(self.id, n=batch, info={"device": device_label(self.device)})
                if not claimed:
                    st = self.store.state
                    if st.done or st.stop:
                        break
                    # no master may be running: requeue trials of vanished workers ourselves, judged
                    # once a heartbeat period (each look reads every worker's file, maybe over NFS)
                    now = time.monotonic()
                    if now >= next_lost_check:
                        next_lost_check = now + max(self.opts.poll, self.sweep.heartbeat)
                        lost = lost_trials(st, self.store.heartbeats(), liveness)
                        if lost:
                            self.store.requeue_lost(lost, self.sweep.retries)
                            continue
                    if self.opts.exit_when_idle and not any(t.state.value == "running" for t in st.trials.values()):
                        break
                    self.status = {"state": "idle"}
                    self.stop.wait(self.opts.poll)
                    continue
                self._run_batch(claimed, fixed)
                if self.failures_in_a_row >= self.sweep.max_failures:
                    print(
                        f"hpsearch worker {self.id}: {self.failures_in_a_row} trials failed in a row; "
                        f"stopping so the queue is not burnt. See trials/*/error.txt",
                        file=sys.stderr,
                    )
                    return 3
        finally:
            self.stop.set()
            self._exiting.set()
            beats.join(timeout=5)  # so no late beat overwrites the final "exited" one
            self.status = {"state": "exited"}
            with contextlib.suppress(HpsearchError, OSError):
                self._heartbeat()
        return 0

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
        return Trial(
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
        )

    def _guard(self, trials: list[Trial], body: Callable[[], None]) -> None:
        """Run trainable code; whatever it does, each trial ends recorded (or released)."""
        self.status.update(state="training", trial=",".join(t.id for t in trials), epoch=None, metric=None)
        log = self.store.layout.log_file(trials[0].id)
        error: tuple[str, str] | None = None
        try:
            with LazyLog(log) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                body()
        except StopTrial:
            pass
        except Exception as e:
            error = failure_record(e)  # traceback to error.txt, the exception's own line to the journal
        for t in trials:
            self._record(t, error or getattr(t, "error", None))  # a population records errors per group
        self.status.update(state="idle", trial=None)

    def _record(self, t: Trial, error: tuple[str, str] | None) -> None:
        epochs_done = t.history[-1]["epoch"] if t.history else 0
        if t.stop_reason == "lost":
            return
        if t.stop_reason == "stopped" or (t.stop_reason is None and self.stop.is_set() and epochs_done < t.epochs):
            self.store.release(t.id, t.attempt, "stopped by signal or master stop", epochs_done=epochs_done)
            return
        if error is not None:
            self.store.write_error(t.id, error[0])
            self.store.finish(t.id, t.attempt, "failed", t.best, t.best_epoch, epochs_done, f"exception: {error[1]}")
            self.failures_in_a_row += 1
        elif t.stop_reason == "diverged":
            self.store.finish(t.id, t.attempt, "diverged", t.best, t.best_epoch, epochs_done, "diverged")
            self.failures_in_a_row = 0
        elif epochs_done < t.epochs:
            self.store.finish(
                t.id,
                t.attempt,
                "failed",
                t.best,
                t.best_epoch,
                epochs_done,
                f"trainable returned after {epochs_done} of {t.epochs} epochs",
            )
            self.failures_in_a_row += 1
        else:
            self.store.finish(
                t.id, t.attempt, "finished", t.best, t.best_epoch, epochs_done, t.restarted, resumable=t.resumable
            )
            self.failures_in_a_row = 0
        self.done += 1

    # -- setup ---------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            if self.stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C kills
            self.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, handler)

    def _setup_torch(self) -> None:
        needs_torch = self.sweep.trainable_kind != "command"
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


def run_worker(root: str, opts: WorkerOptions) -> int:
    code = Worker(root, opts).run()
    # Python restores default handlers while it shuts down (with torch loaded, a while): a stop signal
    # then (Slurm's USR1 racing the end of the sweep) would kill the finished worker with 128+N
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    return code
