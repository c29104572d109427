"""What every benchmark section shares: a result record, timing helpers, sweep files, the hpsearch CLI."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RESULTS = Path(__file__).resolve().parent / "results"
HPSEARCH = [sys.executable, "-m", "hpsearch"]


@dataclass
class Section:
    """One section's figures (written to JSON) and the lines it prints."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    goals: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(f"[{self.name}] {text}", flush=True)

    def goal(self, key: str, value: float, target: str, met: bool) -> None:
        self.goals[key] = {"value": value, "target": target, "met": bool(met)}
        self.say(f"goal {key}: {value:.3g} (target {target}) -> {'MET' if met else 'MISSED'}")

    def skip(self, what: str, why: str) -> None:
        self.skipped[what] = why
        self.say(f"skipped {what}: {why}")


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_avg": os.getloadavg(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_results(sections: list[Section], quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    doc = {
        "machine": machine(),
        "quick": quick,
        "sections": {s.name: {"figures": s.figures, "goals": s.goals, "skipped": s.skipped} for s in sections},
    }
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return path


def write_sweep(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# Runs the CLI in a fresh interpreter and prints that process's own peak RSS when it exits.
_MEASURED = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: sys.stderr.write('MAXRSS_KB %d\\n' % "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
    "from hpsearch.cli import main\n"
    "sys.argv = ['hpsearch', *sys.argv[1:]]\n"
    "main()\n"
)


def run_cli(args: list[str], timeout: float = 900) -> tuple[float, float, str]:
    """Run the hpsearch CLI with ARGS in a new process: (wall seconds, its peak RSS in MiB, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"hpsearch {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    kb = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB ")]
    return wall, (kb[-1] / 1024.0 if kb else float("nan")), proc.stdout


def rate(times: list[float], lo: int, hi: int) -> float:
    """Events per second between the lo-th and hi-th event of a sorted list of timestamps."""
    hi = min(hi, len(times) - 1)
    return (hi - lo) / max(times[hi] - times[lo], 1e-9)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
