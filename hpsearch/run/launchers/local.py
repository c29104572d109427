"""Workers as subprocesses of this machine; one per GPU (CUDA_VISIBLE_DEVICES) when GPUs exist."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

from hpsearch.run.launchers import Launcher, LaunchSpec
from hpsearch.store.liveness import process_start_time

LAUNCHED_BY = "HPSEARCH_LAUNCHED_BY"  # set for the workers a master starts: "host:pid" of that master


class LocalLauncher(Launcher):
    def __init__(self, spec: LaunchSpec, gpus: list[str] | None = None, workers_per_gpu: int = 1) -> None:
        super().__init__(spec)
        self.gpus = gpus or []
        self.workers_per_gpu = max(1, workers_per_gpu)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.adopted: list[tuple[int, str | None]] = []  # (pid, start time) of workers an earlier master started
        self.started = 0

    def adopt(self, workers: list[tuple[int, str | None]]) -> None:
        """Count live workers that an earlier master of this sweep started (on this host) as ours:
        they are watched, counted toward `workers` and stopped like the ones we start."""
        self.adopted = list(workers)

    def _adopted_alive(self) -> list[int]:
        return [pid for pid, start in self.adopted if (now := process_start_time(pid)) and (not start or now == start)]

    def _env_for(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[(index // self.workers_per_gpu) % len(self.gpus)]
        env.setdefault("PYTHONUNBUFFERED", "1")
        env[LAUNCHED_BY] = f"{socket.gethostname()}:{os.getpid()}"
        return env

    def start(self, n: int) -> None:
        logdir = os.path.join(self.spec.root, "workers")
        os.makedirs(logdir, exist_ok=True)
        for _ in range(n):
            index = self.started
            self.started += 1
            log = open(os.path.join(logdir, f"local-{index}.out"), "ab")  # noqa: SIM115 (the worker's, closed below)
            # own session: a Ctrl-C on the terminal reaches the master only, which stops workers cleanly
            self.procs.append(
                subprocess.Popen(
                    self.spec.worker_argv(),
                    env=self._env_for(index),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            log.close()

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None) + len(self._adopted_alive())

    def exit_codes(self) -> list[int]:
        return [p.returncode for p in self.procs if p.poll() is not None]

    def stop(self, grace: float = 30.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        self._signal_adopted(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        while self._adopted_alive() and time.monotonic() < deadline:  # not our children: no wait(), poll
            time.sleep(0.1)
        self._signal_adopted(signal.SIGKILL)

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        self._signal_adopted(signal.SIGKILL)

    def _signal_adopted(self, sig: int) -> None:
        for pid in self._adopted_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def describe(self) -> str:
        where = f" on GPUs {','.join(self.gpus)}" if self.gpus else " on CPU"
        adopted = len(self._adopted_alive())
        kept = f" ({adopted} still running from the previous master, kept)" if adopted else ""
        return f"{self.spec.workers} local worker process(es){where}{kept}"
