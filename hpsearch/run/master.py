"""The master: writes the plan of each stage, keeps workers running, requeues lost trials, and
narrows the ranges between stages. It holds no state of its own: everything is in the journal,
so a master that died is simply started again on the same directory and continues. (It caches
one thing: the next stage's plan, computed when a stage finishes, a pure function of the journal.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import ConfigError, HpsearchError, StoreError, is_disk_full
from hpsearch.report.failures import failure_text, no_usable_run, same_error_early
from hpsearch.report.picture import latest_lines, running_trials
from hpsearch.run.launchers import Launcher, LaunchSpec, gpu_count
from hpsearch.run.progress import Progress
from hpsearch.search import budget, config, stages
from hpsearch.search import space as sp
from hpsearch.search.config import Sweep
from hpsearch.store import sweepfile
from hpsearch.store.fold import State, SweepState
from hpsearch.store.liveness import (
    HOST,
    Liveness,
    describe_master,
    elsewhere,
    local_process_alive,
    lost_trials,
    master_alive,
    my_pid_start,
)
from hpsearch.store.sweepdir import Store, atomic_write_json, read_json

EXIT_FAILED = 1  # the sweep ran, but a stage had no usable trial (2: bad input or refused; 130: interrupted)
EXIT_DISK_FULL = 4  # a worker's exit code when the sweep directory's disk is full


@dataclass
class StartOptions:
    workers: int | None = None
    launcher: str | None = None
    resume: bool = False
    force: bool = False
    device: str | None = None
    workers_per_gpu: int | None = None
    poll: float = 0.5
    no_workers: bool = False  # plan and watch only; workers are started elsewhere by hand
    sweep_path: str | None = None  # the sweep file as the user named it (for the hints we print)
    detach: bool = False  # run in the background, output in DIR/master.log


def runs_of(state: SweepState, k: int) -> list[stages.Run]:
    return stages.runs_from(state.stage_trials(k))


def history_of(state: SweepState, k: int) -> list[stages.Run]:
    """The runs of every stage before k, in trial order: the plan keeps their incumbents inside
    its ranges, and a `sampler: tpe` stage is told them."""
    return stages.runs_from(state.trials_before(k))


def counts_of(state: SweepState, k: int) -> dict[str, int]:
    c: dict[str, int] = {}
    for t in state.stage_trials(k):
        c[t.state.value] = c.get(t.state.value, 0) + 1
    return c


class Master:
    def __init__(
        self,
        sweep: Sweep,
        raw: dict[str, Any],
        raw_text: str,
        root: str,
        opts: StartOptions,
        out: Progress | None = None,
    ) -> None:
        self.sweep, self.raw, self.raw_text, self.root, self.opts = sweep, raw, raw_text, root, opts
        self.store = Store(root, lock=sweep.lock)
        self.out = out or Progress()
        self.launcher: Launcher | None = None
        self.interrupts = 0
        self.hangup = False
        self._next_plan: stages.StagePlan | None = None  # computed when the previous stage finished
        self._beats_end = threading.Event()
        self._beat_n = 0
        self._disk_full = ""  # the beat could not be written: the disk holding the sweep is full
        self._replaced = ""  # master.json names another master: this one was taken over (it was paused)
        self._failed_why = ""
        self._tensorboard: Any = None  # report.tensorboard.LiveTensorBoard when the sweep sets `tensorboard:`
        self._tb_next = 0.0

    @property
    def again(self) -> str:
        """The command that continues this sweep, as the user would type it."""
        # a master whose workers run elsewhere (by hand, on other hosts) resumes as it started: without
        # --no-workers it would start local ones beside them
        hand = " --no-workers" if self.opts.no_workers else ""
        return f"hpsearch master start {self.opts.sweep_path or '<sweep.yaml>'} --dir {self.root}{hand}"

    # -- one master per sweep ------------------------------------------------------------------
    def _live_master(self) -> dict[str, Any] | None:
        """master.json of another master of this sweep that is alive, else None."""
        info = live_master(self.store, self.sweep.stale_after)
        if info is None or (info.get("host") == HOST and info.get("pid") == os.getpid()):
            return None
        return info

    def _refuse_if_live(self) -> None:
        info = self._live_master()
        if info is not None:
            raise HpsearchError(
                f"{self.root} already has a live master ({describe_master(info)}); watch it with "
                f"`hpsearch master status {self.root}`, stop it with `hpsearch master stop {self.root}`, "
                f"or add workers with `hpsearch worker --dir {self.root}`"
            )

    def take_master_role(self) -> None:
        """Become the sweep's master: refuse (HpsearchError) while another one is alive; take over
        one whose beat is stale or whose process is gone. Under the journal lock, so of two
        masters racing, one wins."""
        with self.store.journal.locked():
            self._refuse_if_live()
            self._write_master("running")

    def _write_master(self, state: str) -> None:
        self._beat_n += 1
        doc = {
            "host": HOST,
            "pid": os.getpid(),
            "pid_start": my_pid_start(),
            "time": time.time(),
            "beat": self._beat_n,
            "state": state,
            # absolute: `master status` may run from another folder, or on another host of the share
            "sweep_file": os.path.abspath(self.opts.sweep_path) if self.opts.sweep_path else None,
            "no_workers": self.opts.no_workers,  # its resume hint keeps --no-workers (report/status.py)
            "root": os.path.realpath(self.root),  # a copy of the directory is not this master's (elsewhere)
        }
        atomic_write_json(self.store.layout.master, doc)

    def _beat_loop(self) -> None:
        # a thread, not the watch loop: a long stage summary or a slow disk must not look like death
        while not self._beats_end.wait(self.sweep.heartbeat):
            if self._taken_over():
                return  # never overwrite the master that took over: the watch loop leaves
            try:
                self._write_master("running")
            except (HpsearchError, OSError) as e:
                if is_disk_full(e):  # hand-started workers' exit codes never reach this master: this does
                    self._disk_full = str(e)

    def _taken_over(self) -> bool:
        """Whether master.json names another live master: this one was paused (SIGSTOP, a frozen VM,
        a stalled NFS client) past stale_after and a new one took the sweep over. Sets _replaced."""
        info = read_json(self.store.layout.master) or {}
        ours = (HOST, os.getpid(), my_pid_start())
        theirs = (info.get("host"), info.get("pid"), info.get("pid_start"))
        if info and theirs != ours and info.get("state") == "running":
            self._replaced = f"pid {info.get('pid')} on {info.get('host')}"
            return True
        return False

    def _detach(self) -> int | None:
        """Fork into the background (own session, output in DIR/master.log). Returns the exit code
        in the parent, once the child holds the master role; None in the child."""
        log = self.store.layout.master_log
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.setsid()  # no terminal: closing it (SIGHUP) or Ctrl-C there never reaches us
            self._output_to(log)
            self._write_master("running")
            return None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.out.say(f"hpsearch: error: the background master exited at once; see {log}")
                return 2
            with contextlib.suppress(StoreError):
                info = read_json(self.store.layout.master)
                if isinstance(info, dict) and info.get("pid") == pid:
                    break
            time.sleep(0.05)
        self.out.say(
            f"Master running in the background (pid {pid} on {HOST}); its output goes to {log}.\n"
            f"  hpsearch master status {self.root}\n  hpsearch master stop {self.root}"
        )
        return 0

    def _output_to(self, log: Any) -> None:
        """Send this process's output (fds 1 and 2) to the sweep's master.log, appending."""
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (fd 1 itself, line by line)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        self.out.stream, self.out.tty = sys.stdout, False  # timestamped lines, no cursor moves

    # -- directory -------------------------------------------------------------------------
    def open_directory(self, before_writes: Callable[[], None] | None = None) -> None:
        """Create the sweep directory, or check that it holds this same sweep (resume).

        `before_writes` runs once the checks passed and the directory exists, before any event is
        written (the master takes its role there: a refused master writes nothing)."""
        fp = config.fingerprint(self.raw)
        lay = self.store.layout
        if self.store.exists():
            st = self.store.refresh()
            if st.fingerprint and st.fingerprint != fp and not self.opts.force:
                raise HpsearchError(
                    f"{self.root} holds a different sweep (its sweep.yaml differs from this file); "
                    "use another --dir, or --force to continue it with the new file"
                )
            if before_writes is not None:
                before_writes()
            if st.fingerprint != fp:
                self._write_sweep_yaml()
                self.store.journal.append([{"ev": "created", "fingerprint": fp}])
            self.store.journal.append([{"ev": "resume"}])
            done = len(st.stages_done)
            self.out.say(f"Resuming {self.sweep.name} in {self.root}: {done} of {len(self.sweep.stages)} stage(s) done")
        else:
            if self.opts.resume:
                raise HpsearchError(f"--resume: {self.store.missing()}")
            # `hpsearch check` may have left its preflight.json: the sweep then runs beside it
            if lay.root.exists() and any(p != lay.preflight for p in lay.root.iterdir()):
                raise HpsearchError(f"{self.root} exists and is not empty, but holds no sweep; choose another --dir")
            checked = (read_json(lay.preflight) or {}).get("sweep") if lay.preflight.exists() else None
            if checked is not None and checked != self.sweep.name:
                self.out.warn(
                    f"{lay.preflight} holds the checks of sweep '{checked}', not of '{self.sweep.name}': the "
                    f"report shows them as that sweep's (hpsearch check THIS_FILE --dir {self.root} checks this one)"
                )
            try:
                lay.ensure()
            except OSError as e:
                raise HpsearchError(f"cannot create sweep directory {self.root}: {e.strerror}") from None
            if before_writes is not None:
                before_writes()
            self._write_sweep_yaml()
            self.store.journal.append([{"ev": "created", "fingerprint": fp, "name": self.sweep.name}])
        lay.ensure()

    def _write_sweep_yaml(self) -> None:
        self.store.write_sweep(self.raw_text, self.sweep.source_dir, self.sweep.name)

    # -- workers -----------------------------------------------------------------------------
    def make_launcher(self) -> Launcher:
        kind = self.opts.launcher or self.sweep.launcher.get("type", "local")
        gpus = gpu_count() if kind == "local" else 0
        per_gpu = self.opts.workers_per_gpu or int(self.sweep.launcher.get("workers_per_gpu", 1))
        n = self.opts.workers or (gpus * per_gpu if gpus else self.sweep.workers)
        threads = self.sweep.launcher.get("threads") or max(1, (os.cpu_count() or 1) // n)
        spec = LaunchSpec(self.root, n, threads=threads, device=self.opts.device)
        if kind == "slurm":
            from hpsearch.run.launchers.slurm import SlurmLauncher

            return SlurmLauncher(spec, self.sweep.launcher, name=self.sweep.name)
        from hpsearch.run.launchers.local import LocalLauncher

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(gpus)]
        return LocalLauncher(spec, gpus=ids if gpus else [], workers_per_gpu=per_gpu)

    def _signals(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            if signum == signal.SIGHUP and not self.hangup:
                # the terminal is gone: what we print from now on goes to DIR/master.log, then we
                # stop as on Ctrl-C (workers release their trials)
                self.hangup = True
                with contextlib.suppress(OSError):
                    self._output_to(self.store.layout.master_log)
            self.interrupts += 1
            if self.interrupts >= 2:
                self._killed()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGHUP, handler)

    def _killed(self) -> None:
        """The second Ctrl-C: kill the local workers and exit 130 at once, leaving the directory as
        honest as a few seconds allow: the `stop` event (a fast second Ctrl-C can come before the
        main loop wrote the first one's), the killed workers' trials released (not their fault: no
        retry is spent), master.json `exited`. Done in a thread, on a store of its own, given 5 s:
        the main thread may hold the journal's lock, and a stuck disk must not keep the exit waiting
        (a later `master start` requeues whatever is left, as after kill -9)."""
        killed: set[int] = set()
        if self.launcher is not None and hasattr(self.launcher, "kill"):
            procs = list(getattr(self.launcher, "procs", []))
            self.launcher.kill()
            deadline = time.monotonic() + 10  # SIGKILL: gone at once, unless the machine is swamped
            for p in procs:
                with contextlib.suppress(Exception):
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                    killed.add(p.pid)

        def leave() -> None:
            store = Store(self.root)
            st = store.refresh()
            if not st.stop and not st.done:
                store.journal.append([{"ev": "stop", "reason": "master interrupted twice: workers killed"}])
            pids = {w: hb.get("pid") for w, hb in store.heartbeats().items() if hb.get("host") == HOST}
            why = "its worker was killed: the master was interrupted twice (Ctrl-C)"
            for t in store.refresh().trials.values():
                if t.state is State.RUNNING and pids.get(t.worker or "") in killed:
                    store.release(t.trial, t.attempt, why, epochs_done=t.epochs_done)
            if not self._replaced:
                self._write_master("exited")

        def safely() -> None:
            with contextlib.suppress(Exception):
                leave()

        self._beats_end.set()  # no late "running" beat over the "exited" one
        t = threading.Thread(target=safely, daemon=True)
        t.start()
        t.join(timeout=5.0)
        os._exit(130)

    # -- the stages --------------------------------------------------------------------------
    def run(self) -> int:
        check_trainable(
            self.sweep, self.opts.sweep_path
        )  # before the directory exists: a typo must leave nothing behind
        if self.store.exists():
            self._refuse_if_live()  # before any check that could change nothing anyway
            if self._finished_already():
                return 0
        self.open_directory(before_writes=self.take_master_role)
        if self.opts.detach:
            code = self._detach()
            if code is not None:
                return code  # the parent: the sweep runs on in the child
        for w in self._warnings():
            self.out.warn(w)
        if self.sweep.budget is not None:  # the plan, before anything runs (stages: auto planned it)
            self.out.say(budget_plan_text(self.sweep))
        self._signals()
        beats = threading.Thread(target=self._beat_loop, daemon=True)
        beats.start()
        st = self.store.refresh()
        if self.sweep.tensorboard is not None:
            from hpsearch.report.tensorboard import LiveTensorBoard

            out = self.sweep.tensorboard or os.path.join(self.root, "tensorboard")
            self._tensorboard = LiveTensorBoard(self.store, self.sweep, out)
            self.out.say(f"TensorBoard: writing live to {out} (tensorboard --logdir {out})")
        try:
            if not self.opts.no_workers:
                self.launcher = self.make_launcher()
                kept = self._adopt()
                self.out.say(
                    f"Sweep {self.sweep.name}: {len(self.sweep.stages)} stage(s), "
                    f"{self.launcher.describe()}, directory {self.root}"
                )
                self.launcher.start(max(0, self.launcher.spec.workers - kept))
            for k in range(1, len(self.sweep.stages) + 1):
                if k in st.stages_done:
                    continue
                if k > 1 and k not in st.stages and (hit := self._target_reached(k - 1)):
                    self.out.say(hit)  # (also when a master resumes between the two stages)
                    break
                if k not in st.stages:
                    self.plan(k)
                outcome = self.watch(k)
                if outcome == "stopped":
                    why = self.store.state.stop_reason
                    self.out.say(f"Stopped{f' ({why})' if why else ''}. Resume with: {self.again}")
                    return (129 if self.hangup else 130) if self.interrupts else 0
                if outcome == "failed" or no_usable_run(self.store.state.stage_trials(k)):
                    return self._failed(k)
                self._leave_if_replaced_or_full()  # a stage is finished, and the next planned, once
                self.finish_stage(k)
                st = self.store.state
            self._leave_if_replaced_or_full()
            self.store.journal.append([{"ev": "done"}])
        finally:
            if self.launcher is not None:
                self.launcher.stop(grace=30.0)
            self._sync_tensorboard(final=True)
            self._beats_end.set()
            beats.join(timeout=5)
            if not self._replaced:  # master.json is the new master's now
                with contextlib.suppress(HpsearchError, OSError):
                    self._write_master("exited")
        self.summary()
        return 0

    def _warnings(self) -> list[str]:
        """The sweep file's warnings, less the promote one once a finished run showed that the
        trainable hands over resumable state (on a resume it said again what the runs had disproved)."""
        st = self.store.state
        resumes = any(t.state.value == "finished" and t.resumable for t in st.trials.values())
        return [w for w in self.sweep.warnings if not (resumes and config.PROMOTE_WARNING in w)]

    def _finished_already(self) -> bool:
        """A start on this same sweep, finished (its `done` event: every stage done, or metric.target
        reached), reports it and writes nothing: no `resume` and `done` events, no workers (`--force`,
        with added stages, continues it)."""
        st = self.store.refresh()
        if self.opts.force or not st.done or st.fingerprint != config.fingerprint(self.raw):
            return False
        done, n = len(st.stages_done), len(self.sweep.stages)
        self.out.say(f"{self.sweep.name} in {self.root} is finished ({done} of {n} stage(s) done): nothing to run")
        self.summary()
        return True

    def _adopt(self) -> int:
        """Workers an earlier master of this sweep started on this host that still run: kept and
        counted toward `workers` (a master restarted after kill -9 only tops up)."""
        adopt = getattr(self.launcher, "adopt", None)
        if adopt is None:
            return 0
        live = [
            (hb["pid"], hb.get("pid_start"))
            for hb in self.store.heartbeats().values()
            if hb.get("launched_by")
            and hb.get("state") != "exited"
            and local_process_alive(hb)
            and elsewhere(hb, self.root) is None
        ]
        adopt(live)
        return len(live)

    def _failed(self, k: int) -> int:
        """Stop the sweep loudly: stage k has no usable run (or its first trials all failed the same way)."""
        trials = self.store.refresh().stage_trials(k)
        left = sum(1 for t in trials if not t.state.is_finished)
        why = self._failed_why or f"stage {k}: no trial finished"
        with contextlib.suppress(HpsearchError):  # a full disk may refuse even this line
            self.store.journal.append([{"ev": "stop", "reason": why}])
        if self.launcher is not None:
            self.launcher.stop(grace=60.0)
        self.out.close_line()
        self.out.say(failure_text(trials, self.root, k))
        fix = f"Fix the cause (the reasons above; `hpsearch report {self.root}` lists every trial's reason)"
        if left:
            self.out.say(f"Stopped early ({why}): the other {left} trial(s) of stage {k} were not run.")
            self.out.say(
                f"{fix}, then resume with: {self.again} (the failed trials stay failed; the rest run; "
                "a fix to the sweep file needs --force added, which continues here with the changed file)"
            )
        else:
            self.out.say(
                f"The sweep failed. {fix}, then run it in a new directory: "
                f"hpsearch master start {self.opts.sweep_path or '<sweep.yaml>'} --dir NEW_DIR"
            )
        return EXIT_FAILED

    def _target_reached(self, k: int) -> str | None:
        """The line saying the sweep ends after stage k because a run reached `metric.target`
        (W&B's meaning: the sweep finishes once any run reaches it), else None."""
        metric = self.sweep.metric
        runs = [t for t in self.store.state.trials.values() if t.best is not None and metric.reached(t.best)]
        if not runs:
            return None
        best = (max if metric.goal == "maximize" else min)(runs, key=lambda t: t.best or 0.0)
        return (
            f"metric.target {metric.target:g} reached: {best.trial} has {metric.name} {best.best:.4g}; "
            f"the sweep ends after stage {k} of {len(self.sweep.stages)} (remove target: to run every stage)"
        )

    def plan(self, k: int) -> None:
        st = self.store.state
        prev_space = sp.space_from_dict(st.stages[k - 1]["space"]) if k > 1 else None
        plan = (
            self._next_plan
            if self._next_plan is not None and self._next_plan.stage == k
            else self._plan_stage(k, prev_space, self.ranking_runs(k - 1) if k > 1 else [], history=history_of(st, k))
        )
        doc = {
            "stage": k,
            "epochs": self.sweep.stages[k - 1].epochs,
            "trials": len(plan.trials),
            "ranges": sp.space_to_dict(plan.space),
            "status": "running",
            "planned_from": {
                "stage": k - 1,
                "top": stages.top_count(self.sweep.stages[k - 1], len(plan.ranked)) if plan.ranked else 0,
            }
            if k > 1
            else None,
            "promoted": [t["parent"] for t in plan.trials if t.get("parent")],
        }
        if plan.notes:  # why the ranges are what they are, beyond border flags (e.g. a too-low lr range moved)
            doc["notes"] = list(plan.notes)
        if any(t.get("enqueued") for t in plan.trials):
            from hpsearch.search import enqueue as eq

            doc["enqueued"] = [
                {"trial": t["trial"], "params": t["params"], "outside": eq.outside(plan.space, t["params"])}
                for t in plan.trials
                if t.get("enqueued")
            ]
        atomic_write_json(self.store.layout.stage_file(k), doc)
        self.store.journal.append([{"ev": "stage", "stage": k, "space": doc["ranges"], "trials": plan.trials}])
        if k > 1 and prev_space is not None:
            self.out.say(ranges_text(prev_space, plan.space, k))
            if all(t.get("parent") for t in plan.trials):  # a promote-only stage samples nothing
                later = (
                    f"stage {k + 1} narrows from them" if k < len(self.sweep.stages) else "a follow-up starts from them"
                )
                self.out.say(
                    f"(stage {k} only continues earlier configurations: it draws nothing in these ranges; {later})"
                )
        for note in plan.notes:
            self.out.say(note)
        tpe = " (fresh ones drawn by TPE, sampler: tpe)" if self.sweep.stages[k - 1].sampler == "tpe" else ""
        self.out.say(
            f"Stage {k}/{len(self.sweep.stages)}: {len(plan.trials)} trial(s) x "
            f"{self.sweep.stages[k - 1].epochs} epoch(s){tpe}"
        )

    def watch(self, k: int) -> str:
        """Until every trial of stage k is finished ("done"), the sweep is stopped ("stopped"), or
        its failures say it cannot succeed ("failed", the reason in self._failed_why)."""
        liveness = Liveness(self.sweep.stale_after, self.root)
        self.out.stage_started()
        total = len(self.store.state.stage_trials(k))
        # failures recorded before this master started were judged by the one before (a resume
        # after a fix must not stop again on them): the early stop looks at new results only
        before = {t.trial for t in self.store.state.stage_trials(k) if t.state.is_finished}
        stop_sent = False
        while True:
            self._leave_if_replaced_or_full(read=False)  # the beat loop reads master.json each beat
            st = self.store.refresh()
            counts = counts_of(st, k)
            best = self._best(st, k)
            hbs = self.store.heartbeats()
            self.out.update(
                k,
                len(self.sweep.stages),
                counts,
                total,
                best,
                self.sweep.metric.name,
                running=running_trials(st, k, hbs, latest_lines(self.store, st, k), self.sweep.metric.name),
            )
            if sum(counts.get(s.value, 0) for s in State if s.is_finished) == total:
                self.out.close_line()
                return "done"
            if same_error_early([t for t in st.stage_trials(k) if t.trial not in before], self.sweep.max_failures):
                self._failed_why = (
                    f"the first {self.sweep.max_failures} results of stage {k} failed with the same error "
                    f"(max_failures: {self.sweep.max_failures})"
                )
                return "failed"
            if self.interrupts and not stop_sent:
                how = "terminal closed (SIGHUP)" if self.hangup else "master interrupted"
                self.out.say(
                    f"Stopping ({how}): workers finish their current epoch and release their trials"
                    + ("" if self.hangup else " (Ctrl-C again to kill)")
                )
                self.store.journal.append([{"ev": "stop", "reason": how}])
                stop_sent = True
            if st.stop:
                if self.launcher is not None:
                    self.launcher.stop(grace=60.0)
                self.out.close_line()
                return "stopped"
            lost = lost_trials(st, hbs, liveness)
            for tid, action in self.store.requeue_lost(lost, self.sweep.retries) if lost else []:
                self.out.say(f"{tid}: {lost[tid]}; {action}")
            if self.launcher is not None:
                verdict = self._check_workers(k)
                if verdict:
                    return verdict
            self._sync_tensorboard()
            time.sleep(self.opts.poll)

    def _leave_if_replaced_or_full(self, read: bool = True) -> None:
        """Raise HpsearchError (exit 2) when another master took this sweep over, writing nothing more
        (two masters would each finish and plan stages), or when the disk is full (as a local
        worker's exit code 4 says it: here for hand-started workers, from the master's own beat).
        `read`: read master.json now (before a stage is finished and at the end); the watch loop relies
        on the beat loop, which reads it before every beat."""
        if self._replaced or (read and self._taken_over()):
            self._beats_end.set()
            self.out.close_line()
            raise HpsearchError(
                f"another master ({self._replaced}) took this sweep over while this one was not beating "
                "(paused or frozen past stale_after): this one leaves and writes nothing more"
            )
        if self._disk_full:
            why = f"the disk holding {self.root} is full"
            with contextlib.suppress(HpsearchError, OSError):
                self.store.journal.append([{"ev": "stop", "reason": why}])
            if self.launcher is not None:
                self.launcher.stop(grace=60.0)
            self.out.close_line()
            raise HpsearchError(f"{why} ({self._disk_full}); free some space, then resume with: {self.again}")

    def _sync_tensorboard(self, final: bool = False) -> None:
        """Bring the live TensorBoard folder up to date, every heartbeat at most (and at the end)."""
        if self._tensorboard is None or (not final and time.monotonic() < self._tb_next):
            return
        self._tb_next = time.monotonic() + max(1.0, self.sweep.heartbeat)
        self._tensorboard.sync(self.store.refresh())
        if final:
            self._tensorboard.close()

    def _check_workers(self, k: int) -> str | None:
        assert self.launcher is not None
        codes: list[int] = getattr(self.launcher, "exit_codes", lambda: [])()
        if EXIT_DISK_FULL in codes:
            why = f"the disk holding {self.root} is full"
            with contextlib.suppress(HpsearchError):
                self.store.journal.append([{"ev": "stop", "reason": why}])
            self.launcher.stop(grace=60.0)
            self.out.close_line()
            raise HpsearchError(
                f"{why} (a worker could not write a checkpoint or metrics; its trial went back to the queue); "
                f"free some space, then resume with: {self.again}"
            )
        if 3 in codes:
            self._failed_why = f"a worker stopped after {self.sweep.max_failures} failed trials in a row"
            return "failed"
        if 2 in codes and self.launcher.alive() == 0:
            logs = getattr(self.launcher, "logs", f"{self.root}/workers/local-*.out")
            raise HpsearchError(f"every worker exited with an error (exit code 2); see {logs}")
        # a worker that finished the stage's last trial and left is no reason for a replacement:
        # the journal is read after the launcher saw it gone, so its last result is in it
        work_left = self.launcher.alive() < self.launcher.spec.workers and self._work_left(k)
        n = self.launcher.replace_dead(work_left=work_left)
        if n:
            self.out.say(f"started {n} replacement worker(s)")
        elif work_left and self.launcher.alive() == 0 and self.launcher.restarts >= self.launcher.max_restarts:
            raise HpsearchError(
                f"all workers have exited and the {self.launcher.max_restarts} replacements allowed "
                f"are used up; see {self.root}/workers/*.out, then resume with: {self.again}"
            )
        return None

    def _work_left(self, k: int) -> bool:
        return any(not t.state.is_finished for t in self.store.refresh().stage_trials(k))

    def ranking_runs(self, k: int) -> list[stages.Run]:
        """Stage k's runs; stage 1's are joined by a finished sweep's (`warm_start:`, run/warmstart.py)."""
        runs = runs_of(self.store.state, k)
        if k == 1 and self.sweep.warm_start:
            from hpsearch.run.warmstart import warm_runs

            runs = runs + warm_runs(self.sweep)
        return runs

    def _best(self, st: SweepState, k: int) -> float | None:
        vals = [t.best for t in st.stage_trials(k) if t.best is not None and t.state is State.FINISHED]
        if not vals:
            return None
        return max(vals) if self.sweep.metric.goal == "maximize" else min(vals)

    def _plan_stage(
        self,
        k: int,
        prev_space: sp.Space | None,
        runs: list[stages.Run],
        ranked: list[stages.Ranked] | None = None,
        history: list[stages.Run] | None = None,
    ) -> stages.StagePlan:
        """`stages.plan_stage`; a failure becomes one line, with nothing of stage k written."""
        try:
            return stages.plan_stage(self.sweep, k, prev_space, runs, ranked, history)
        except Exception as e:  # a bug in planning must not wedge the sweep: say so, keep the directory
            raise HpsearchError(
                f"planning stage {k} failed ({type(e).__name__}: {e}); nothing of stage {k} was written, "
                f"the sweep directory is intact: resume with the same command, or change the ranges "
                f"(parameters, margin, border, on_border) and resume with --force "
                f"(--debug shows the traceback)"
            ) from e

    def finish_stage(self, k: int) -> None:
        planning_error: HpsearchError | None = None
        st = self.store.state
        runs = self.ranking_runs(k)
        ranked = stages.rank(runs, self.sweep.metric)
        space = sp.space_from_dict(st.stages[k]["space"])
        flags = stages.all_border_flags(
            space, ranked, self.sweep.border, self.sweep.on_border, final=k == len(self.sweep.stages)
        )
        doc = read_json(self.store.layout.stage_file(k)) or {"stage": k, "ranges": st.stages[k]["space"]}
        from hpsearch.report import rungs

        doc.update(
            status="done",
            counts=counts_of(st, k),
            early_stopping=next(iter(rungs.summary(st, self.sweep, k)), None),
            ranking=[
                {
                    "config": r.config,
                    "trials": list(r.trials),
                    "params": r.params,
                    "mean": r.mean,
                    "std": r.std,
                    "count": r.count,
                    "best_epoch": r.best_epoch,
                    "pruned": r.pruned,
                }
                for r in ranked[:50]
            ],
            not_ranked=[
                {"trial": r.trial, "status": r.status, "reason": st.trials[r.trial].reason}
                for r in runs
                if r.status not in stages.RANKED_STATUSES and r.trial in st.trials
            ],
            border_flags=_flag_dicts(flags),
        )
        if k < len(self.sweep.stages):
            # the next ranges are a pure function of this stage's runs: compute them for the record
            # (kept for plan(k + 1): the same pure function of the same runs, computed once)
            try:
                self._next_plan = self._plan_stage(k + 1, space, runs, ranked, history_of(st, k + 1))
                doc["next_ranges"] = sp.space_to_dict(self._next_plan.space)
                if self._next_plan.flags:  # the plan's: a flag the next stage keeps (noise) says so
                    flags = self._next_plan.flags
                    doc["border_flags"] = _flag_dicts(flags)
            except HpsearchError as e:
                # stage k itself is complete: record it done, so a resume re-plans only stage k + 1
                planning_error = e
        else:  # the last stage: a learning rate the update ratio says is too low is for the follow-up
            moves, held = stages.too_low_moves(space, history_of(st, k + 1), self.sweep.on_border)
            if moves or held:
                lines = [
                    *(
                        f"{m.too_low}: `hpsearch next {self.root}` moves it to [{sp.sci(m.low)}, {sp.sci(m.high)}]"
                        for m in moves
                    ),
                    *held,
                ]
                doc["notes"] = [*doc.get("notes", []), *(f"after stage {k}: {line}" for line in lines)]
                for line in lines:
                    self.out.say(line)
        atomic_write_json(self.store.layout.stage_file(k), doc)
        self.store.journal.append([{"ev": "stage_done", "stage": k}])
        self.store.journal.write_snapshot()  # readers then fold only what follows this stage
        self.out.say(stage_text(self.store, self.sweep, k, flags))
        if planning_error is not None:
            raise planning_error
        if self.sweep.keep_top:
            from hpsearch.store.retention import prune_outside_top

            prune_outside_top(self.store, self.sweep, self._next_plan)

    def summary(self) -> None:
        from hpsearch.report.repeats import best_line

        line = best_line(self.store.state, self.sweep.metric)
        if line is not None:
            self.out.say(
                f"Done. {line}. Full ranking: hpsearch report {self.root}; "
                f"the next sweep: hpsearch next {self.root} -o {self.sweep.name}-next.yaml"
            )


def _flag_dicts(flags: list[stages.BorderFlag]) -> list[dict[str, Any]]:
    """Border flags as the stage file records them."""
    return [
        {
            "param": f.param,
            "side": f.side,
            "value": f.value,
            "position": f.position,
            "extends": f.extends,
            "message": f.message,
        }
        for f in flags
    ]


def budget_plan_text(sweep: Sweep) -> str:
    how = "planned from the budget (stages: auto)" if sweep.auto else "as written"
    return f"{budget.describe(sweep.stages, sweep.budget)}\n  ({how}; draws: {sweep.method})"


def ranges_text(old: sp.Space, new: sp.Space, k: int) -> str:
    width = max((len(n) for n in old), default=4)
    lines = [f"Ranges for stage {k} (old -> new):"]
    for name, dim in old.items():
        if sp.is_searched(dim):
            lines.append(f"  {name.ljust(width)}  {dim.describe():<32} -> {new[name].describe()}")
    return "\n".join(lines)


def stage_text(store: Store, sweep: Sweep, k: int, flags: list[stages.BorderFlag], top: int = 10) -> str:
    # pandas: once a stage is done
    from hpsearch.report.frames import add_checkpoints, runs_frame
    from hpsearch.report.tables import ranking_columns, text_table

    ranked = runs_frame(store.state, sweep.metric, stage=k, checkpoints=False)
    df = ranked.head(top)
    df = add_checkpoints(df, store.state, sweep.metric.name, store.checkpoint_files()) if len(df) else df
    df["rank"] = range(1, len(df) + 1)
    counts = counts_of(store.state, k)
    head = f"Stage {k} done: " + ", ".join(f"{v} {s}" for s, v in sorted(counts.items()))
    lines = [head, text_table(df, ranking_columns(df, sweep.metric.name, ranked)) if len(df) else "(no runs)"]
    if len(ranked) > len(df):  # say what the table leaves out, and where to see it
        lines.append(
            f"(the top {len(df)} of {len(ranked)} runs; all of them: hpsearch report {store.layout.root} --stage {k})"
        )
    from hpsearch.trainables.trial import PAST_EPOCHS  # torch-free

    past = [t.trial for t in store.state.stage_trials(k) if (t.reason or "").startswith(PAST_EPOCHS)]
    if past:  # the trainable trains longer than its trial: the stages and the budget count the trial's epochs
        lines.append(
            f"{len(past)} run(s) ({', '.join(past[:3])}{', ...' if len(past) > 3 else ''}) reported epochs past "
            f"the stage's {sweep.stages[k - 1].epochs} and were stopped there: does the trainable read {{epochs}} "
            "(or HPSEARCH_EPOCHS, trial.epoch_range)? A fixed `epochs` parameter (W&B's way) does not follow the stages"
        )
    if k == 1 and sweep.warm_start:  # carried-in runs rank with stage 1 but are no trials of this sweep
        from hpsearch.run.warmstart import warm_runs

        warm = warm_runs(sweep)
        joint = stages.rank(runs_of(store.state, 1) + warm, sweep.metric)[:top]
        carried = [r for r in joint if r.config.startswith(stages.WARM)]
        best = f"; the best is {carried[0].trials[0]} ({sweep.metric.name} {carried[0].mean:.4f})" if carried else ""
        lines.append(
            f"Warm start: {len(warm)} run(s) of {sweep.warm_start} ranked with this stage "
            f"(stages/stage-1.json), {len(carried)} of them in the joint top {top}{best}"
        )
    lines += [f"Border: {f.message}" for f in flags] or ["Border: no best value lies on the border of its range"]
    from hpsearch.report import rungs

    stopping = rungs.text(rungs.summary(store.state, sweep, k), sweep.metric.name)
    if stopping:
        lines.append(stopping)
    return "\n".join(lines)


def check_trainable(sweep: Sweep, source: str | None = None) -> None:
    """Fail at the door (exit 2) when the trainable cannot be found, before any worker starts;
    `source` (the sweep file as the user named it) names the file in the message, as a schema error does."""
    try:
        _check_trainable(sweep)
    except ConfigError as e:
        if source is None or e.source != "sweep file":
            raise
        raise ConfigError(e.problems, source) from None


def _check_trainable(sweep: Sweep) -> None:
    if any(s.sampler == "tpe" for s in sweep.stages):
        from hpsearch.search import tpe

        if not tpe.available():
            raise ConfigError([f"sampler: tpe needs Optuna, which is not installed: {tpe.INSTALL}"])
    if sweep.warm_start:  # the finished sweep must be readable before this one starts
        from hpsearch.run.warmstart import warm_runs

        warm_runs(sweep)
    from hpsearch.trainables.registry import check

    check(sweep)
    if sweep.tensorboard is not None:
        from hpsearch.report.tensorboard import require_tensorboard

        require_tensorboard()


def live_master(store: Store, stale_after: float) -> dict[str, Any] | None:
    """master.json of the sweep in `store` when the master that wrote it is alive (`master_alive`),
    else None: also when it is missing or torn (no live master keeps it torn longer than one beat)."""
    try:
        info = read_json(store.layout.master)
    except StoreError:
        return None
    return info if isinstance(info, dict) and master_alive(info, stale_after, root=store.layout.root) else None


def request_stop(root: str) -> str:
    """Ask the sweep in `root` to stop (a `stop` event); returns what to tell the user. A finished
    sweep is left as it is."""
    store = Store(root)
    if not store.exists():
        raise HpsearchError(store.missing())
    # the sweep's own lock kind: a hard lock taken beside soft ones would not exclude them
    sweep = store.load_sweep()
    store = Store(root, lock=sweep.lock)
    st = store.refresh()
    if st.done:
        return f"{root}: the sweep is already finished; nothing to stop (hpsearch report {root} shows its results)"
    again = st.stop  # asked already: one stop event is enough (a second said the same again)
    if not again:
        store.journal.append([{"ev": "stop", "reason": "hpsearch master stop"}])
    if store.layout.workers.joinpath("slurm-jobs.json").exists():
        from hpsearch.run.launchers.slurm import cancel_pending

        cancel_pending(root)  # queued Slurm tasks would only start to leave again
    alive = live_master(store, sweep.stale_after) is not None
    if again:
        how = "its master is still stopping" if alive else "no master is running"
        return f"{root}: the sweep was already asked to stop ({st.stop_reason or 'stop'}); {how}"
    if not alive:
        return f"Stop requested for {root}; no master is running, so workers still running release their trials."
    return f"Stop requested for {root}; workers release their trials at their next epoch, then the master exits."


def _already_there(root: str, fingerprint: str, n_stages: int, stale_after: float = 60.0) -> str | None:
    """What a real start would find in `root` (as `Master.open_directory` judges it), or None when it holds no sweep."""
    store = Store(root)
    if not store.exists():
        return None
    if (info := live_master(store, stale_after)) is not None:
        return (
            f"{root} already has a live master ({describe_master(info)}): a real start refuses to run a second "
            f"one; watch it with hpsearch master status {root}"
        )
    try:
        st = store.refresh()
    except StoreError as e:
        return f"{root} cannot be read ({e}): a real start would fail"
    if st.fingerprint and st.fingerprint != fingerprint:
        return (
            f"{root} holds a different sweep (its sweep.yaml differs from this file): a real start refuses it; "
            "use another --dir, or --force to continue it with the new file"
        )
    done = len(st.stages_done)
    if st.done or done >= n_stages:
        return f"{root} holds this sweep, finished ({done} of {n_stages} stage(s) done): a real start only reports it"
    return f"{root} holds this sweep: a real start resumes it ({done} of {n_stages} stage(s) done)"


def dry_run(
    sweep_path: str,
    root: str | None,
    workers: int | None,
    launcher: str | None,
    warn: Callable[[str], None] | None = None,
    no_workers: bool = False,
) -> str:
    """What `master start` would do, written nowhere: the plan of every stage and the epoch budget,
    and for Slurm the batch script. Validates the file and the trainable like a real start, and
    passes each warning it would print to `warn`."""
    sweep, raw = sweepfile.load(sweep_path)
    for w in sweep.warnings:
        if warn is not None:
            warn(w)
    check_trainable(sweep, sweep_path)
    root = root or os.path.join("runs", sweep.name)
    first = stages.plan_stage(sweep, 1, None, [])
    lines = [f"# hpsearch master start --dry-run: nothing is written; the sweep would run in {root}"]
    if (there := _already_there(root, config.fingerprint(raw), len(sweep.stages), sweep.stale_after)) is not None:
        lines.append(f"# {there}")
    if sweep.budget is not None:
        lines.append(budget_plan_text(sweep))
    lines.append(
        f"Sweep {sweep.name}: metric {sweep.metric.name} ({sweep.metric.goal}), trainable {sweep.trainable_kind}"
    )
    lines.append("Stage 1 ranges:")
    width = max((len(n) for n in first.space), default=4)
    for name, dim in first.space.items():
        lines.append(f"  {name.ljust(width)}  {dim.describe()}")
    lines.append("Stages (later stages' counts assume every trial finishes):")
    total, prev_configs, prev_repeats, prev_epochs = 0, 0, 1, 0
    for k, stage in enumerate(sweep.stages, 1):
        if stage.promote and k > 1:
            n = stage.promote if isinstance(stage.promote, int) else -(-stage.promote * prev_configs // 1)
            promoted = min(int(n), prev_configs)
        else:
            promoted = 0
        fresh = stage.trials * stage.repeats
        # a promoted configuration runs the stage's repeats: its first repeats continue, seeds it gains start afresh
        going_on = min(prev_repeats, stage.repeats)
        carried = promoted * stage.repeats
        epochs = fresh * stage.epochs + promoted * budget.promoted_epochs(
            prev_epochs, prev_repeats, stage.epochs, stage.repeats
        )
        total += epochs
        what = f"{fresh + carried} trial(s) x {stage.epochs} epoch(s)"
        gained = promoted * (stage.repeats - going_on)  # seeds a promoted configuration gains: from epoch 1
        if carried and not gained:
            what += f" ({carried} promoted from stage {k - 1}, each going on from epoch {prev_epochs})"
        elif carried:
            what += (
                f" ({carried} trial(s) of the {promoted} configuration(s) promoted from stage {k - 1}: "
                f"{carried - gained} going on from epoch {prev_epochs}, {gained} new seed(s) from epoch 1)"
            )
        top = f", ranges narrowed around the top {stage.top}" if k > 1 and stage.top else ""
        rule = sweep.early_stop_for(k)
        rungs = rule.rungs(stage.epochs)
        stop = f", early stopping {rule.describe()} at epoch(s) {list(rungs)}" if rule.active and rungs else ""
        draws = ", fresh trials drawn by TPE (sampler: tpe) from the earlier runs" if stage.sampler == "tpe" else ""
        lines.append(f"  stage {k}: {what}{top}{draws}{stop}: {epochs} epoch(s) to train")
        prev_configs, prev_repeats, prev_epochs = stage.trials + promoted, stage.repeats, stage.epochs
    lines.append(f"Total: at most {total} epoch(s) of training")
    kind = launcher or sweep.launcher.get("type", "local")
    if no_workers:
        lines.append(f"Workers: none started (--no-workers): start them by hand, hpsearch worker --dir {root}")
    elif kind == "slurm":
        from hpsearch.run.launchers.slurm import dry_run as slurm_dry_run

        lines.append(slurm_dry_run(sweep_path, root, workers))
    else:
        lines.append(f"Workers: {workers or sweep.workers} local worker process(es)")
    return "\n".join(lines)


def start(sweep_path: str, root: str | None, opts: StartOptions, out: Progress | None = None) -> int:
    sweep, raw = sweepfile.load(sweep_path)
    raw_text = Path(sweep_path).read_text()
    root = root or os.path.join("runs", sweep.name)
    opts.sweep_path = opts.sweep_path or sweep_path
    return Master(sweep, raw, raw_text, root, opts, out).run()
