"""The Slurm launcher against a real Slurm (scripts/slurm/start.sh: one node on loopback).

`make test-slurm` runs these. Without a running Slurm they skip, saying why; in CI (CI=true) they
must run: the session fixture starts Slurm when we are root, and fails otherwise.
Only jobs these tests submitted (their ids are in each sweep's workers/slurm-jobs.json) are cancelled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, run_cli, spawn, wait_for, write_sweep

from hpsearch.store.sweepdir import Store

pytestmark = pytest.mark.slurm


def slurm_is_up() -> bool:
    if not (shutil.which("sbatch") and shutil.which("scontrol")):
        return False
    try:
        p = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return "is UP" in p.stdout


@pytest.fixture(scope="session")
def slurm() -> None:
    if slurm_is_up():
        return
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if in_ci and os.geteuid() == 0:
        p = subprocess.run(["bash", str(ROOT / "scripts/slurm/start.sh")], capture_output=True, text=True, timeout=600)
        if p.returncode != 0 or not slurm_is_up():
            pytest.fail(f"CI: scripts/slurm/start.sh could not bring Slurm up:\n{p.stdout}\n{p.stderr}")
    elif in_ci:
        pytest.fail("CI: Slurm is not running and we are not root, so scripts/slurm/start.sh cannot start it")
    else:
        why = "sbatch not found" if not shutil.which("sbatch") else "Slurm not up (scontrol ping)"
        pytest.skip(f"{why}: run `sudo bash scripts/slurm/start.sh` to test the Slurm launcher for real")


def base_sweep(name: str, **over: Any) -> dict[str, Any]:
    doc = {
        "name": name,
        "seed": 1,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop", "target": {"lr": 0.01}},
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}},
        "stages": [{"trials": 4, "epochs": 1}],
        "workers": 1,
        "heartbeat": 0.2,
        "stale_after": 3,
        "launcher": {"type": "slurm", "time": "0:10:00", "signal_seconds": 30},
    }
    doc.update(over)
    return doc


def arrays_of(d: Path) -> list[str]:
    path = d / "workers" / "slurm-jobs.json"
    return [j["job"] for j in json.loads(path.read_text())["jobs"]] if path.exists() else []


def listed(ids: list[str]) -> list[str]:
    """`squeue` lines (pending, running, completing) of these jobs: what a user would still see."""
    if not ids:
        return []
    p = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True)
    return p.stdout.splitlines()


def final_states(array: str) -> list[str]:
    p = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", array, "-o", "%T"], capture_output=True, text=True)
    return p.stdout.split()


@pytest.fixture
def cleanup():
    """Whatever a test leaves behind: its master is killed and the jobs of its sweep directories
    cancelled (ours only)."""
    left: list[Any] = []
    yield left.append
    for x in left:
        if isinstance(x, subprocess.Popen) and x.poll() is None:
            x.kill()
            x.communicate()
    ids = [a for x in left if isinstance(x, Path) for a in arrays_of(x)]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


def start_master(sweep: Path, d: Path, *args: str) -> subprocess.Popen[str]:
    return spawn("master", "start", str(sweep), "--dir", str(d), *args, capture=True)


def sweep_and_dir(tmp_path: Path, doc: dict[str, Any], cleanup: Any, name: str = "run") -> tuple[Path, Path]:
    """The sweep file and its (not yet created) directory, whose Slurm jobs `cleanup` cancels."""
    d = tmp_path / name
    cleanup(d)
    return write_sweep(tmp_path, doc, "s.yaml"), d


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    """The master's whole output (stdout, then stderr) once it has exited."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        raise AssertionError(f"master did not finish within {timeout:.0f} s:\n{out}{err}") from None
    return out + err


def epochs_logged(d: Path, trial: str) -> list[dict[str, Any]]:
    return Store(d).metrics(trial)


def claims(d: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (d / "journal.jsonl").read_text().splitlines() if '"ev":"claim"' in x]


def test_whole_sweep_through_a_two_task_array(slurm, tmp_path, cleanup):
    doc = base_sweep(
        "slurm-e2e",
        trainable={"builtin": "noop", "target": {"lr": 0.01}, "sleep": 0.2},
        stages=[{"trials": 6, "epochs": 1}, {"trials": 2, "epochs": 2, "top": 2}],
        workers=1,
    )
    sweep, d = sweep_and_dir(tmp_path, doc, cleanup, "run dir")
    p = run_cli("master", "start", str(sweep), "--dir", str(d), "--workers", "2", timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 Slurm worker task(s)" in p.stdout and "Stage 2 done" in p.stdout
    st = Store(d).refresh()
    assert st.done and len(st.trials) == 8 and all(t.state.value == "finished" for t in st.trials.values())
    [array] = arrays_of(d)
    record = json.loads((d / "workers" / "slurm-jobs.json").read_text())["jobs"][0]
    assert record["tasks"] == 2 and (d / "workers" / record["script"]).exists()
    assert "#SBATCH --array=0-1" in (d / "workers" / record["script"]).read_text()
    # every trial was trained by a task of our array; each task wrote its log and left with status 0
    assert {c["worker"].split("-r")[0] for c in claims(d)} <= {f"slurm-{array}_0", f"slurm-{array}_1"}
    for i in (0, 1):
        assert (d / "workers" / f"slurm-{array}_{i}.exit").read_text().split()[0] == "0"
        assert f"array task {array}_{i}" in (d / "workers" / f"slurm-{array}_{i}.out").read_text()
    assert listed([array]) == []
    assert sorted(final_states(array)) == ["COMPLETED", "COMPLETED"]
    rep = run_cli("report", str(d), check=True).stdout
    assert "device" in rep.splitlines()[2] and " cpu " in rep


def test_scancelled_worker_trial_resumes_from_its_checkpoint(slurm, tmp_path, cleanup):
    doc = base_sweep(
        "slurm-scancel",
        trainable={"builtin": "noop", "target": {"lr": 0.01}, "sleep": 1.0},
        stages=[{"trials": 1, "epochs": 8}],
    )
    sweep, d = sweep_and_dir(tmp_path, doc, cleanup)
    proc = start_master(sweep, d)
    cleanup(proc)
    wait_for(lambda: len(epochs_logged(d, "s1-t0000")) >= 2, 180, "two epochs of the trial", poll=0.3, proc=proc)
    [first] = arrays_of(d)
    cancelled_at = time.time()
    subprocess.run(["scancel", first], check=True)
    out = finish(proc, 240)
    assert proc.returncode == 0, out
    t = Store(d).refresh().trials["s1-t0000"]
    assert t.state.value == "finished" and t.attempt == 2 and t.epochs_done == 8
    arrays = arrays_of(d)
    assert len(arrays) == 2 and arrays[0] == first  # one resubmission
    workers = [c["worker"] for c in claims(d)]
    assert workers[0].startswith(f"slurm-{first}_0") and workers[1].startswith(f"slurm-{arrays[1]}_0")
    lines = epochs_logged(d, "s1-t0000")
    assert [x["epoch"] for x in lines] == list(range(1, 9))
    # epochs done before the scancel were kept (resumed from the checkpoint), not trained again
    assert lines[0]["time"] < cancelled_at and lines[1]["time"] < cancelled_at
    assert "CANCELLED" in final_states(first)
    assert listed(arrays) == []


def test_master_stop_leaves_no_job_in_squeue(slurm, tmp_path, cleanup):
    # three tasks on a node with two cores: two run, one waits; `master stop` must clear all three
    doc = base_sweep(
        "slurm-stop",
        trainable={"builtin": "noop", "target": {"lr": 0.01}, "sleep": 0.5},
        stages=[{"trials": 20, "epochs": 4}],
        workers=3,
    )
    sweep, d = sweep_and_dir(tmp_path, doc, cleanup)
    proc = start_master(sweep, d)
    cleanup(proc)
    wait_for(
        lambda: any(x.get("epoch") for hb in [Store(d).heartbeats()] for x in hb.values()),
        180,
        "a worker training",
        poll=0.3,
        proc=proc,
    )
    ids = arrays_of(d)
    assert len(listed(ids)) == 3
    stop = run_cli("master", "stop", str(d), check=True)
    assert "Stop requested" in stop.stdout
    out = finish(proc, 150)
    assert proc.returncode == 0 and "Stopped (hpsearch master stop). Resume with" in out, out
    assert listed(ids) == []
    # every task that ran left cleanly (a USR1 that hit a worker still starting up used to kill it: 138)
    exits = [f.read_text().split()[0] for f in (d / "workers").glob("*.exit")]
    assert exits and set(exits) == {"0"}, exits
    st = Store(d).refresh()
    assert st.stop and not any(t.state.value == "running" for t in st.trials.values())


def test_time_limit_kill_requeues_and_resumes_the_trial(slurm, tmp_path, cleanup):
    # epoch 2 of the first attempt outlives the 1-minute limit: USR1 cannot help (the epoch never
    # ends), so Slurm kills the job (TIMEOUT); the trial must resume from epoch 1 in a new task
    (tmp_path / "slowfit.py").write_text(
        "import time\n"
        "def fit(params, trial):\n"
        "    for epoch in trial.epoch_range:\n"
        "        if epoch == 2 and trial.attempt == 1:\n"
        "            time.sleep(600)\n"
        "        trial.report(epoch, val_acc=0.1 * epoch, state={'epoch': epoch})\n"
    )
    doc = base_sweep(
        "slurm-timeout",
        trainable={"python": "slowfit:fit"},
        stages=[{"trials": 1, "epochs": 3}],
        launcher={"type": "slurm", "time": "0:01", "signal_seconds": 30},
    )
    sweep, d = sweep_and_dir(tmp_path, doc, cleanup)
    t0 = time.time()
    p = run_cli("master", "start", str(sweep), "--dir", str(d), timeout=400)
    assert p.returncode == 0, p.stdout + p.stderr
    arrays = arrays_of(d)
    # the arrays whose workers claimed the trial: attempt 1, killed at its time limit, then attempt 2
    took = [c["worker"].removeprefix("slurm-").split("_")[0] for c in claims(d)]
    assert len(took) == 2 and took[0] != took[1] and arrays.index(took[0]) < arrays.index(took[1])
    assert final_states(took[0]) == ["TIMEOUT"]
    assert not (d / "workers" / f"slurm-{took[0]}_0.exit").exists()  # killed, not a clean exit
    # Slurm may send --signal's USR1 up to 60 s early (sbatch(1)), so with a 1-minute limit a worker
    # can get it as it starts: it then leaves before claiming anything and the master replaces it
    for other in (a for a in arrays if a not in took):
        out = (d / "workers" / f"slurm-{other}_0.out").read_text()
        assert "stopped by SIGUSR1 (0 trial(s) recorded here)" in out, out
    t = Store(d).refresh().trials["s1-t0000"]
    assert t.state.value == "finished" and t.attempt == 2 and t.lost == 1
    second_claim = claims(d)[1]["t"]
    lines = epochs_logged(d, "s1-t0000")
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    assert lines[0]["time"] < second_claim < lines[1]["time"]  # epoch 1 kept from the first attempt
    assert time.time() - t0 > 60
    assert listed(arrays) == []


def test_rejected_submission_shows_slurms_reason(slurm, tmp_path, cleanup):
    doc = base_sweep("slurm-reject", launcher={"type": "slurm", "partition": "no-such-partition"})
    sweep, d = sweep_and_dir(tmp_path, doc, cleanup)
    p = run_cli("master", "start", str(sweep), "--dir", str(d), timeout=120)
    assert p.returncode == 2
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "Slurm rejected" in err and "Invalid partition name" in err, err
    assert arrays_of(d) == []


def test_worker_failing_at_once_shows_its_log(slurm, tmp_path, cleanup):
    doc = base_sweep(
        "slurm-fail",
        launcher={"type": "slurm", "time": "0:10:00", "setup": ["echo loading modules", "false  # a setup line fails"]},
    )
    sweep, d = sweep_and_dir(tmp_path, doc, cleanup)
    p = run_cli("master", "start", str(sweep), "--dir", str(d), timeout=180)
    assert p.returncode == 2, p.stdout + p.stderr
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "failed at once: exit status 1" in err and "loading modules" in err, err
    assert listed(arrays_of(d)) == []


def test_restarted_master_adopts_the_running_tasks(slurm, tmp_path, cleanup):
    doc = base_sweep(
        "slurm-adopt",
        trainable={"builtin": "noop", "target": {"lr": 0.01}, "sleep": 0.5},
        stages=[{"trials": 4, "epochs": 4}],
    )
    sweep, d = sweep_and_dir(tmp_path, doc, cleanup)
    proc = start_master(sweep, d)
    cleanup(proc)
    wait_for(
        lambda: any(x.get("epoch") for x in Store(d).heartbeats().values()),
        180,
        "a worker training",
        poll=0.3,
        proc=proc,
    )
    proc.kill()  # the master dies; its worker task goes on
    proc.communicate()
    [array] = arrays_of(d)
    assert len(listed([array])) == 1
    p = run_cli("master", "start", str(sweep), "--dir", str(d), timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    assert arrays_of(d) == [array]  # no second array: the running task was adopted
    assert Store(d).refresh().done and listed([array]) == []
