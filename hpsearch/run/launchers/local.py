"""Workers as subprocesses of this machine; one per GPU (CUDA_VISIBLE_DEVICES) when GPUs exist."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from hpsearch.run.launchers import Launcher, LaunchSpec


class LocalLauncher(Launcher):
    def __init__(self, spec: LaunchSpec, gpus: list[str] | None = None, workers_per_gpu: int = 1) -> None:
        super().__init__(spec)
        self.gpus = gpus or []
        self.workers_per_gpu = max(1, workers_per_gpu)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def _env_for(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[(index // self.workers_per_gpu) % len(self.gpus)]
        env.setdefault("PYTHONUNBUFFERED", "1")
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
        return sum(1 for p in self.procs if p.poll() is None)

    def exit_codes(self) -> list[int]:
        return [p.returncode for p in self.procs if p.poll() is not None]

    def stop(self, grace: float = 30.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()

    def describe(self) -> str:
        where = f" on GPUs {','.join(self.gpus)}" if self.gpus else " on CPU"
        return f"{self.spec.workers} local worker process(es){where}"
