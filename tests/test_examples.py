"""The examples, end to end through the CLI, including a worker killed mid-trial (SIGKILL)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, metrics, run_cli, spawn, wait_for, write, write_sweep


def _example(tmp_path: Path, example: str, sleep: float) -> Path:
    """A copy of the example with a small sweep: 2 trials x 5 epochs, then the best goes on to 7."""
    folder = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, folder)
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
    sweep["stages"] = [{"trials": 2, "epochs": 5}, {"trials": 0, "epochs": 7, "promote": 1}]
    sweep.update(heartbeat=0.2, stale_after=3, workers=1)
    if "python" in sweep["trainable"]:
        sweep["trainable"]["sleep"] = sleep
    else:
        sweep["trainable"]["command"] += ["--sleep", str(sleep)]
    write_sweep(folder, yaml.safe_dump(sweep))  # keys sorted: the order of the parameters fixes the draws
    return folder


def _worker_pid(root: Path, trial: str) -> int | None:
    for hb in (root / "workers").glob("*.json"):
        try:
            doc = json.loads(hb.read_text())
        except ValueError:
            continue
        if doc.get("trial") == trial and doc.get("state") == "training":
            return int(doc["pid"])
    return None


@pytest.mark.slow
@pytest.mark.parametrize("example", ["python_module", "torch_script"])
def test_example_resumes_from_its_checkpoint_after_the_worker_is_killed(tmp_path: Path, example: str) -> None:
    folder = _example(tmp_path, example, sleep=0.5)
    root = folder / "run"
    master = spawn("master", "start", "sweep.yaml", "--dir", "run", cwd=folder, log=tmp_path / "master.log")
    try:
        wait_for(lambda: len(metrics(root, "s1-t0000")) >= 2, 180, "two epochs of s1-t0000")
        pid = wait_for(lambda: _worker_pid(root, "s1-t0000"), 30, "the worker of s1-t0000")
        os.kill(pid, signal.SIGKILL)
        master.wait(timeout=400)
    finally:
        if master.poll() is None:
            master.kill()
    out = (tmp_path / "master.log").read_text()
    assert master.returncode == 0, out
    assert "s1-t0000: worker" in out and "requeued" in out
    log = (root / "trials" / "s1-t0000" / "worker.log").read_text()
    resumed = re.findall(r"resumed .*at epoch (\d+)", log)
    assert len(resumed) == 1 and int(resumed[0]) >= 2
    k = int(resumed[0])
    assert log.count("epoch 1:") == 1  # not retrained from epoch 1
    after = re.findall(r"epoch (\d+):", log.split("resumed", 1)[1])
    assert [int(e) for e in after] == list(range(k + 1, 6))
    assert [x["epoch"] for x in metrics(root, "s1-t0000")] == [1, 2, 3, 4, 5]
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=folder).stdout)
    runs = {x["trial"]: x for x in doc["runs"]}
    assert {x["status"] for x in runs.values()} == {"finished"} and runs["s1-t0000"]["attempts"] == 2
    # the promoted configuration went on from its parent's last checkpoint
    child = (root / "trials" / "s2-t0000" / "worker.log").read_text()
    assert re.findall(r"resumed .*at epoch (\d+)", child) == ["5"] and "epoch 1:" not in child


PROGRAM = """
import json, os, sys
lr, epochs = float(sys.argv[1]), int(sys.argv[2])
w = json.load(open(os.environ["HPSEARCH_RESUME_FROM"]))["w"] if "HPSEARCH_RESUME_FROM" in os.environ else 0.0
for epoch in range(int(os.environ["HPSEARCH_START_EPOCH"]) + 1, epochs + 1):
    w += lr
    ck = os.path.join(os.environ["HPSEARCH_CHECKPOINT_DIR"], f"w{epoch}.json")
    json.dump({"w": w}, open(ck, "w"))
    with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"epoch": epoch, "val_acc": w, "checkpoint": ck}) + "\\n")
"""


def test_a_program_through_the_cli(tmp_path: Path) -> None:
    """Fast: a stdlib-only program, promoted from stage 1 to 2 and resumed from its own file."""
    write(tmp_path / "prog.py", PROGRAM)
    write_sweep(
        tmp_path,
        """
        name: prog
        trainable: {command: ["${interpreter}", prog.py, "{lr}", "{epochs}"]}
        parameters:
          lr: {distribution: log_uniform_values, min: 0.01, max: 0.1}
        stages: [{trials: 3, epochs: 1}, {trials: 0, epochs: 3, promote: 1}]
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        """,
        "s.yaml",
    )
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    runs = {x["trial"]: x for x in doc["runs"]}
    child = runs["s2-t0000"]
    lr = child["params"]["lr"]
    assert child["status"] == "finished" and child["val_acc"] == pytest.approx(3 * lr)  # w carried over
    assert child["parent"] == max((x for x in runs.values() if x["stage"] == 1), key=lambda x: x["val_acc"])["trial"]
    bad = write_sweep(tmp_path, (tmp_path / "s.yaml").read_text().replace("{lr}", "{rate}"), "bad.yaml")
    r = run_cli("master", "start", bad.name, "--dir", "run2", cwd=tmp_path)
    assert r.returncode == 2 and "unknown placeholder {rate}" in r.stderr
