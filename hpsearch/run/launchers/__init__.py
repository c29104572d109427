"""How worker processes are started, watched and stopped. One small interface, several backends."""

from __future__ import annotations

import abc
import shutil
import subprocess
import sys
from dataclasses import dataclass, field


@dataclass
class LaunchSpec:
    """What every backend needs to start workers on a sweep directory."""

    root: str
    workers: int
    threads: int | None = None
    device: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def worker_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "hpsearch", "worker", "--dir", self.root]
        if self.threads:
            argv += ["--threads", str(self.threads)]
        if self.device:
            argv += ["--device", self.device]
        return argv + self.extra_args


class Launcher(abc.ABC):
    """Starts workers; reports how many are alive; stops them."""

    max_restarts: int = 100

    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec
        self.restarts = 0

    @abc.abstractmethod
    def start(self, n: int) -> None:
        """Start n more workers."""

    @abc.abstractmethod
    def alive(self) -> int:
        """How many of the workers this launcher started are still running (or queued)."""

    @abc.abstractmethod
    def stop(self, grace: float = 30.0) -> None:
        """Ask every worker to stop (they release their trials), then kill what remains after `grace`."""

    def replace_dead(self, work_left: bool) -> int:
        """Start replacements for workers that ended while work remains (bounded)."""
        missing = self.spec.workers - self.alive()
        if not work_left or missing <= 0 or self.restarts >= self.max_restarts:
            return 0
        n = min(missing, self.max_restarts - self.restarts)
        self.restarts += n
        self.start(n)
        return n

    def describe(self) -> str:
        return f"{self.spec.workers} worker(s)"


def gpu_count() -> int:
    """GPUs visible to this process, without importing torch (it costs over a second)."""
    import os

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))
