"""The Slurm launcher's parts that need no Slurm: the batch script, option checks, sbatch missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from helpers import run_cli, write_sweep

from hpsearch.errors import ConfigError
from hpsearch.run.launchers import LaunchSpec
from hpsearch.run.launchers.slurm import SlurmLauncher
from hpsearch.run.launchers.slurm_script import batch_script
from hpsearch.search.config import parse
from hpsearch.search.launcher_options import check_options

SWEEP = {
    "name": "dry",
    "trainable": {"builtin": "noop"},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}},
    "stages": [{"trials": 4, "epochs": 1}],
    "workers": 2,
}


def directives(script: str) -> list[str]:
    return [line[len("#SBATCH ") :] for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_dry_run_prints_the_whole_batch_script(tmp_path):
    doc = {
        **SWEEP,
        "launcher": {
            "type": "slurm",
            "partition": "gpu",
            "account": "proj1",
            "qos": "short",
            "time": "2:00:00",
            "gpus_per_worker": 1,
            "cpus_per_worker": 4,
            "mem": "16G",
            "constraint": "a100",
            "extra": ["--exclusive", "#SBATCH --mail-type=END"],
            "setup": ["module load cuda", "source ~/venv/bin/activate"],
            "signal_seconds": 240,
        },
    }
    sweep = write_sweep(tmp_path, doc, "s.yaml")
    d = tmp_path / "runs with 'quotes' and spaces"
    p = run_cli(
        "master", "start", str(sweep), "--dir", str(d), "--launcher", "slurm", "--workers", "3", "--dry-run", check=True
    )
    plan, script = p.stdout.split("#!/bin/bash", 1)
    assert "Stage 1 ranges:" in plan and "Total: at most" in plan  # the plan first, as for a local sweep
    script = "#!/bin/bash" + script
    ds = directives(script)
    for want in (
        "--job-name=hpsearch-dry",
        "--array=0-2",
        "--partition=gpu",
        "--account=proj1",
        "--qos=short",
        "--time=2:00:00",
        "--gres=gpu:1",
        "--cpus-per-task=4",
        "--mem=16G",
        "--constraint=a100",
        "--signal=B:USR1@240",
        "--exclusive",
        "--mail-type=END",
        "--export=ALL",
        f'--output="{d}/workers/slurm-%A_%a.out"',
    ):
        assert want in ds, (want, ds)
    assert "module load cuda\nsource ~/venv/bin/activate\n" in script
    assert f"{sys.executable} -m hpsearch worker --dir " in script and "--threads 4" in script
    assert not d.exists()  # a dry run creates nothing
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_worker_that_cannot_start_is_recorded_in_the_exit_file(tmp_path):
    """Run the generated script with bash as Slurm would (no Slurm needed): a worker that cannot
    start fails fast, and the exit file says so."""
    root = tmp_path / "sweep"
    (root / "workers").mkdir(parents=True)
    script = batch_script(
        {"setup": "echo set up"}, name="x", root=str(root), tasks=1, python="/no/such/python", threads=1
    )
    env = {**os.environ, "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "0", "SLURM_JOB_ID": "8"}
    p = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 127 and "set up" in p.stdout
    rc, seconds = (root / "workers" / "slurm-7_0.exit").read_text().split()
    assert rc == "127" and int(seconds) < 5


def test_usr1_reaches_the_worker_through_the_script(tmp_path):
    """The trap passes USR1 on and the script exits with the worker's own status, not 128+10."""
    root = tmp_path / "sweep"
    (root / "workers").mkdir(parents=True)
    fake = tmp_path / "fake.py"
    # stands in for the worker: exits 0 on USR1, as the worker does after releasing its trial
    fake.write_text(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda *a: (print('released', flush=True), sys.exit(0)))\n"
        "while True: time.sleep(0.1)\n"
    )
    script = batch_script({}, name="x", root=str(root), tasks=1, python=sys.executable, threads=1)
    script = script.replace(" -m hpsearch worker ", f" {fake} ")
    env = {**os.environ, "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_ID": "9"}
    proc = subprocess.Popen(["bash", "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    proc.send_signal(10)  # SIGUSR1, as --signal=B:USR1@N sends it to the batch shell
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "released" in out
    assert (root / "workers" / "slurm-7_1.exit").read_text().split()[0] == "0"


def test_options_are_checked_at_the_door():
    bad = {
        "type": "slurm",
        "time": 3600,
        "gpus_per_worker": "lots",
        "cpus_per_worker": 0,
        "extra": "--exclusive",
        "partition": "a\nb",
        "signal_seconds": -1,
    }
    problems = check_options(bad)
    text = " ".join(problems)
    for key in (
        "launcher.time",
        "gpus_per_worker",
        "cpus_per_worker",
        "launcher.extra",
        "launcher.partition",
        "signal_seconds",
    ):
        assert key in text
    assert "quoted" in text  # YAML turns 1:00:00 into 3600: say so
    assert check_options({"type": "slurm", "time": "1-12:00:00", "gpus_per_worker": "a100:2", "mem": 4000}) == []
    with pytest.raises(ConfigError, match="launcher.time"):
        parse({**SWEEP, "launcher": {"type": "slurm", "time": 90}})


def test_sbatch_missing_is_a_clear_error(tmp_path):
    sweep = write_sweep(tmp_path, {**SWEEP, "launcher": {"type": "slurm"}}, "s.yaml")
    p = run_cli("master", "start", str(sweep), "--dir", str(tmp_path / "run"), env={"PATH": str(tmp_path)}, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]
    assert "sbatch not found" in p.stderr and "login node" in p.stderr


def test_script_paths_are_absolute_and_percent_is_escaped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    launcher = SlurmLauncher(LaunchSpec("runs/100%", 1), {"type": "slurm"}, name="p")
    script = launcher.script(1)
    assert f"--output={tmp_path}/runs/100%%/workers/slurm-%A_%a.out" in directives(script)
    assert f"--dir {tmp_path}/runs/100% " in script
