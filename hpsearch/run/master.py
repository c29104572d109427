"""The master: writes the plan of each stage, keeps workers running, requeues lost trials, and
narrows the ranges between stages. It holds no state of its own: everything is in the journal,
so a master that died is simply started again on the same directory and continues. (It caches
one thing: the next stage's plan, computed when a stage finishes, a pure function of the journal.)
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.report.picture import latest_lines, running_trials
from hpsearch.run.launchers import Launcher, LaunchSpec, gpu_count
from hpsearch.run.progress import Progress
from hpsearch.search import budget, config, stages
from hpsearch.search import space as sp
from hpsearch.search.config import Sweep
from hpsearch.store import sweepfile
from hpsearch.store.fold import State, SweepState
from hpsearch.store.liveness import Liveness, lost_trials
from hpsearch.store.sweepdir import Store, atomic_write_json, read_json


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


def runs_of(state: SweepState, k: int) -> list[stages.Run]:
    return stages.runs_from(state.stage_trials(k))


def runs_before(state: SweepState, k: int) -> list[stages.Run]:
    """The runs of every stage before k: what the next plan keeps its incumbents from."""
    return [r for j in range(1, k) for r in runs_of(state, j)]


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
        self._next_plan: stages.StagePlan | None = None  # computed when the previous stage finished

    # -- directory -------------------------------------------------------------------------
    def open_directory(self) -> None:
        """Create the sweep directory, or check that it holds this same sweep (resume)."""
        fp = config.fingerprint(self.raw)
        lay = self.store.layout
        if self.store.exists():
            st = self.store.refresh()
            if st.fingerprint and st.fingerprint != fp and not self.opts.force:
                raise HpsearchError(
                    f"{self.root} holds a different sweep (its sweep.yaml differs from this file); "
                    "use another --dir, or --force to continue it with the new file"
                )
            if st.fingerprint != fp:
                self._write_sweep_yaml()
                self.store.journal.append([{"ev": "created", "fingerprint": fp}])
            self.store.journal.append([{"ev": "resume"}])
            done = len(st.stages_done)
            self.out.say(f"Resuming {self.sweep.name} in {self.root}: {done} of {len(self.sweep.stages)} stage(s) done")
        else:
            if self.opts.resume:
                raise HpsearchError(f"--resume: {self.root} is not a sweep directory (no journal.jsonl)")
            if lay.root.exists() and any(lay.root.iterdir()):
                raise HpsearchError(f"{self.root} exists and is not empty, but holds no sweep; choose another --dir")
            try:
                lay.ensure()
            except OSError as e:
                raise HpsearchError(f"cannot create sweep directory {self.root}: {e.strerror}") from None
            self._write_sweep_yaml()
            self.store.journal.append([{"ev": "created", "fingerprint": fp, "name": self.sweep.name}])
        lay.ensure()

    def _write_sweep_yaml(self) -> None:
        self.store.write_sweep(self.raw_text, self.sweep.source_dir)

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
            self.interrupts += 1
            if self.interrupts >= 2:
                if self.launcher is not None and hasattr(self.launcher, "kill"):
                    self.launcher.kill()
                os._exit(130)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    # -- the stages --------------------------------------------------------------------------
    def run(self) -> int:
        check_trainable(self.sweep)  # before the directory exists: a typo must leave nothing behind
        self.open_directory()
        for w in self.sweep.warnings:
            self.out.say(f"warning: {w}")
        if self.sweep.budget is not None:  # the plan, before anything runs (stages: auto planned it)
            self.out.say(budget_plan_text(self.sweep))
        self._signals()
        st = self.store.refresh()
        if not self.opts.no_workers:
            self.launcher = self.make_launcher()
            self.out.say(
                f"Sweep {self.sweep.name}: {len(self.sweep.stages)} stage(s), "
                f"{self.launcher.describe()}, directory {self.root}"
            )
            self.launcher.start(self.launcher.spec.workers)
        try:
            for k in range(1, len(self.sweep.stages) + 1):
                if k in st.stages_done:
                    continue
                if k not in st.stages:
                    self.plan(k)
                if not self.watch(k):
                    self.out.say(f"Stopped. Resume with: hpsearch master start <sweep.yaml> --dir {self.root}")
                    return 130 if self.interrupts else 0
                self.finish_stage(k)
                st = self.store.state
            self.store.journal.append([{"ev": "done"}])
        finally:
            if self.launcher is not None:
                self.launcher.stop(grace=30.0)
        self.summary()
        return 0

    def plan(self, k: int) -> None:
        st = self.store.state
        prev_space = sp.space_from_dict(st.stages[k - 1]["space"]) if k > 1 else None
        plan = (
            self._next_plan
            if self._next_plan is not None and self._next_plan.stage == k
            else stages.plan_stage(
                self.sweep, k, prev_space, runs_of(st, k - 1) if k > 1 else [], history=runs_before(st, k)
            )
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
        atomic_write_json(self.store.layout.stage_file(k), doc)
        self.store.journal.append([{"ev": "stage", "stage": k, "space": doc["ranges"], "trials": plan.trials}])
        if k > 1 and prev_space is not None:
            self.out.say(ranges_text(prev_space, plan.space, k))
        self.out.say(
            f"Stage {k}/{len(self.sweep.stages)}: {len(plan.trials)} trial(s) x "
            f"{self.sweep.stages[k - 1].epochs} epoch(s)"
        )

    def watch(self, k: int) -> bool:
        """Until every trial of stage k is finished; False if the sweep was stopped."""
        liveness = Liveness(self.sweep.stale_after)
        self.out.stage_started()
        total = len(self.store.state.stage_trials(k))
        stop_sent = False
        while True:
            st = self.store.refresh()
            self._beat()
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
                return True
            if self.interrupts and not stop_sent:
                self.out.say(
                    "Stopping: workers finish their current epoch and release their trials (Ctrl-C again to kill)"
                )
                self.store.journal.append([{"ev": "stop", "reason": "master interrupted"}])
                stop_sent = True
            if st.stop:
                if self.launcher is not None:
                    self.launcher.stop(grace=60.0)
                self.out.close_line()
                return False
            lost = lost_trials(st, hbs, liveness)
            for tid, action in self.store.requeue_lost(lost, self.sweep.retries) if lost else []:
                self.out.say(f"{tid}: {lost[tid]}; {action}")
            if self.launcher is not None:
                self._check_workers(k)
            time.sleep(self.opts.poll)

    def _check_workers(self, k: int) -> None:
        assert self.launcher is not None
        codes: list[int] = getattr(self.launcher, "exit_codes", lambda: [])()
        if 3 in codes:
            raise HpsearchError(
                "a worker stopped after too many failed trials in a row; "
                f"see {self.root}/trials/*/error.txt (hpsearch report {self.root} shows the reasons)"
            )
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
                f"are used up; see {self.root}/workers/*.out, then resume with the same command"
            )

    def _beat(self) -> None:
        atomic_write_json(
            self.store.layout.master, {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        )

    def _work_left(self, k: int) -> bool:
        return any(not t.state.is_finished for t in self.store.refresh().stage_trials(k))

    def _best(self, st: SweepState, k: int) -> float | None:
        vals = [t.best for t in st.stage_trials(k) if t.best is not None and t.state is State.FINISHED]
        if not vals:
            return None
        return max(vals) if self.sweep.metric.goal == "maximize" else min(vals)

    def finish_stage(self, k: int) -> None:
        st = self.store.state
        runs = runs_of(st, k)
        ranked = stages.rank(runs, self.sweep.metric)
        space = sp.space_from_dict(st.stages[k]["space"])
        flags = (
            stages.border_flags(
                space, ranked[0].params, self.sweep.border, self.sweep.on_border, final=k == len(self.sweep.stages)
            )
            if ranked
            else []
        )
        doc = read_json(self.store.layout.stage_file(k)) or {"stage": k, "ranges": st.stages[k]["space"]}
        doc.update(
            status="done",
            counts=counts_of(st, k),
            ranking=[
                {
                    "config": r.config,
                    "trials": list(r.trials),
                    "params": r.params,
                    "mean": r.mean,
                    "std": r.std,
                    "count": r.count,
                    "best_epoch": r.best_epoch,
                }
                for r in ranked[:50]
            ],
            not_ranked=[
                {"trial": r.trial, "status": r.status, "reason": st.trials[r.trial].reason}
                for r in runs
                if r.status != "finished"
            ],
            border_flags=[
                {
                    "param": f.param,
                    "side": f.side,
                    "value": f.value,
                    "position": f.position,
                    "extends": f.extends,
                    "message": f.message,
                }
                for f in flags
            ],
        )
        if k < len(self.sweep.stages):
            # the next ranges are a pure function of this stage's runs: compute them for the record
            # (kept for plan(k + 1): the same pure function of the same runs, computed once)
            self._next_plan = stages.plan_stage(self.sweep, k + 1, space, runs, ranked, runs_before(st, k + 1))
            doc["next_ranges"] = sp.space_to_dict(self._next_plan.space)
        atomic_write_json(self.store.layout.stage_file(k), doc)
        self.store.journal.append([{"ev": "stage_done", "stage": k}])
        self.store.journal.write_snapshot()  # readers then fold only what follows this stage
        self.out.say(stage_text(self.store, self.sweep, k, flags))
        if self.sweep.keep_top:
            from hpsearch.store.retention import prune_outside_top

            prune_outside_top(self.store, self.sweep, self._next_plan)

    def summary(self) -> None:
        from hpsearch.report.frames import best_checkpoint, runs_frame

        df = runs_frame(self.store.state, self.sweep.metric, checkpoints=False)
        fin = df[df["status"] == "finished"]
        if len(fin):
            best = fin.iloc[0]
            st = self.store.state
            ckpt = best_checkpoint(st, st.trials[best["trial"]], self.sweep.metric.name)
            self.out.say(
                f"Done. Best {self.sweep.metric.name} {best[self.sweep.metric.name]:.4f} "
                f"({best['trial']}, checkpoint {ckpt}). "
                f"Full ranking: hpsearch report {self.root}"
            )


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

    df = runs_frame(store.state, sweep.metric, stage=k, checkpoints=False).head(top)
    df = add_checkpoints(df, store.state, sweep.metric.name) if len(df) else df
    df["rank"] = range(1, len(df) + 1)
    counts = counts_of(store.state, k)
    head = f"Stage {k} done: " + ", ".join(f"{v} {s}" for s, v in sorted(counts.items()))
    lines = [head, text_table(df, ranking_columns(df, sweep.metric.name)) if len(df) else "(no runs)"]
    lines += [f"Border: {f.message}" for f in flags] or ["Border: no best value lies on the border of its range"]
    return "\n".join(lines)


def check_trainable(sweep: Sweep) -> None:
    """Fail at the door (exit 2) when the trainable cannot be found, before any worker starts."""
    kind = sweep.trainable_kind
    if kind == "python":
        from hpsearch.trainables.python import load

        load(sweep.trainable["python"], sweep.source_dir)
    elif kind == "command":
        from hpsearch.trainables.command import check

        check(sweep)


def request_stop(root: str) -> None:
    store = Store(root)
    if not store.exists():
        raise HpsearchError(f"{root} is not a sweep directory (no journal.jsonl)")
    # the sweep's own lock kind: a hard lock taken beside soft ones would not exclude them
    store = Store(root, lock=store.load_sweep().lock)
    store.journal.append([{"ev": "stop", "reason": "hpsearch master stop"}])
    if store.layout.workers.joinpath("slurm-jobs.json").exists():
        from hpsearch.run.launchers.slurm import cancel_pending

        cancel_pending(root)  # queued Slurm tasks would only start to leave again


def start(sweep_path: str, root: str | None, opts: StartOptions, out: Progress | None = None) -> int:
    sweep, raw = sweepfile.load(sweep_path)
    raw_text = Path(sweep_path).read_text()
    root = root or os.path.join("runs", sweep.name)
    return Master(sweep, raw, raw_text, root, opts, out).run()
