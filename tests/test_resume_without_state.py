"""Issue 12, kind 7: resuming never invents history.

A trial without resumable state (a python trainable that passes no `state=`, a command that hands
over no checkpoint file) restarts from epoch 1 and says so; its lost epochs are superseded, and
no checkpoint file is written that could not resume anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from helpers import claimed_trial, metrics, release, run_cli, write, write_sweep

from hpsearch.store.sweepdir import Store
from hpsearch.trainables.trial import Trial


def _again(store: Store) -> Trial:
    rec = store.claim("w2")[0]
    store.trial_files_ready(rec)
    return Trial(store, rec, params={}, metric="val_acc", goal="maximize")


def test_a_lost_attempt_without_state_restarts_from_epoch_1_and_its_epochs_are_superseded(tmp_path: Path) -> None:
    t = claimed_trial(tmp_path, epochs=4)
    t.report(1, val_acc=0.1)
    t.report(2, val_acc=0.2)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # nothing that could resume: no file
    assert [m["checkpoint"] for m in metrics(tmp_path, t.id)] == [None, None]
    release(t)  # the worker was lost after epoch 2
    t2 = _again(t.store)
    assert t2.start_epoch == 0 and list(t2.epoch_range) == [1, 2, 3, 4] and t2.resume_state is None
    assert t2.restarted and "ran 2 epoch(s)" in t2.restarted and "state=" in t2.restarted
    assert metrics(tmp_path, t.id) == [] and t2.history == []  # superseded, not kept
    log = (tmp_path / "trials" / t.id / "worker.log").read_text()
    assert "hpsearch: restarted from epoch 1 at attempt 2" in log
    for epoch in t2.epoch_range:
        t2.report(epoch, val_acc=epoch / 10)
    lines = metrics(tmp_path, t.id)
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4] and {m["attempt"] for m in lines} == {2}
    assert not t2.resumable


def test_with_state_the_trial_still_resumes(tmp_path: Path) -> None:
    t = claimed_trial(tmp_path, epochs=4)
    t.report(1, state={"w": torch.ones(1)}, val_acc=0.1)
    t.report(2, state={"w": torch.ones(1) * 2}, val_acc=0.2)
    release(t)
    t2 = _again(t.store)
    assert t2.start_epoch == 2 and t2.restarted is None and t2.resumable
    assert t2.resume_state is not None and float(t2.resume_state["w"]) == 2.0


def test_an_old_checkpoint_without_state_is_not_resumed_from(tmp_path: Path) -> None:
    """Checkpoints an older hpsearch wrote with `state: None`: resuming from them would relabel epochs."""
    t = claimed_trial(tmp_path, epochs=4)
    t.report(1, state={"w": torch.ones(1)}, val_acc=0.1)
    name = metrics(tmp_path, t.id)[0]["checkpoint"]
    path = tmp_path / "checkpoints" / name
    torch.save({**torch.load(path, weights_only=True), "state": None}, path)
    release(t)
    t2 = _again(t.store)
    assert t2.start_epoch == 0 and t2.restarted is not None


TRAIN = """
import json

def fit(params, trial):
    ran = []
    for epoch in trial.epoch_range:
        ran.append(epoch)
        trial.report(epoch, val_acc=params["q"] * epoch)   # no state=: nothing to resume from
    with open(trial.trial_dir / "ran.jsonl", "a") as f:
        f.write(json.dumps({"start": trial.start_epoch, "ran": ran}) + "\\n")
"""

PROGRAM = """
import json, os
start = int(os.environ["HPSEARCH_START_EPOCH"])
with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
    for epoch in range(start + 1, int(os.environ["HPSEARCH_EPOCHS"]) + 1):
        f.write(json.dumps({"epoch": epoch, "val_acc": 0.1 * epoch}) + "\\n")
"""


def _promoting_sweep(tmp_path: Path, trainable: str) -> None:
    write_sweep(
        tmp_path,
        f"""
        name: nostate
        trainable: {trainable}
        parameters:
          q: {{min: 0.1, max: 0.9}}
        stages: [{{trials: 3, epochs: 2}}, {{trials: 0, epochs: 4, promote: 1}}]
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        """,
        "s.yaml",
    )


def _check_promoted_child(tmp_path: Path, r) -> dict:  # type: ignore[no-untyped-def]
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        "warning: stages[2].promote (stages counted from 1): a promoted trial continues only from resumable state"
        in (r.stderr)
    )
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    (child,) = [x for x in doc["runs"] if x["stage"] == 2]
    assert child["parent"] and child["status"] == "finished"
    lines = metrics(tmp_path / "run", child["trial"])
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]  # no epoch twice, none copied from the parent
    assert child["reason"].startswith("restarted from epoch 1") and child["checkpoint"] is None
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))  # no file that resumes nothing
    log = (tmp_path / "run" / "trials" / child["trial"] / "worker.log").read_text()
    assert f"its parent {child['parent']} ran 2 epoch(s)" in log
    text = run_cli("report", "run", cwd=tmp_path).stdout
    assert "1 trial(s) restarted from epoch 1 without resumable state" in text
    return child


def test_a_promoted_python_trial_without_state_trains_from_epoch_1(tmp_path: Path) -> None:
    write(tmp_path / "ut_nostate.py", TRAIN)
    _promoting_sweep(tmp_path, '{python: "ut_nostate:fit"}')
    child = _check_promoted_child(tmp_path, run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path))
    ran = (tmp_path / "run" / "trials" / child["trial"] / "ran.jsonl").read_text()
    assert json.loads(ran) == {"start": 0, "ran": [1, 2, 3, 4]}  # the model really trained 4 epochs


def test_a_promoted_command_without_checkpoints_has_one_history(tmp_path: Path) -> None:
    write(tmp_path / "prog.py", PROGRAM)
    _promoting_sweep(tmp_path, f"{{command: [{sys.executable}, prog.py]}}")
    _check_promoted_child(tmp_path, run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path))


def test_resumed_epochs_keep_the_attempt_that_trained_them_and_inherited_ones_name_their_trainer(
    tmp_path: Path,
) -> None:
    """metrics.jsonl relabelled a resumed trial's earlier epochs with the new attempt, and a
    promoted trial's parent epochs looked like its own."""
    parent = claimed_trial(tmp_path, "s1-t0000", epochs=2)
    parent.report(1, state={"w": torch.ones(1)}, val_acc=0.1)
    parent.report(2, state={"w": torch.ones(1)}, val_acc=0.2)
    parent.store.finish(parent.id, parent.attempt, "finished", 0.2, 2, 2, None)
    child = claimed_trial(tmp_path, "s2-t0000", epochs=4, parent="s1-t0000")
    child.report(3, state={"w": torch.ones(1)}, val_acc=0.3)
    release(child)  # its worker was lost after epoch 3
    again = _again(child.store)
    assert again.start_epoch == 3 and again.attempt == 2
    again.report(4, state={"w": torch.ones(1)}, val_acc=0.4)
    lines = metrics(tmp_path, child.id)
    assert [(m["epoch"], m["attempt"], m.get("inherited")) for m in lines] == [
        (1, 1, "s1-t0000"),
        (2, 1, "s1-t0000"),
        (3, 1, None),
        (4, 2, None),
    ]
