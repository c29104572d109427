"""The `command` contract: arguments, environment, metrics lines, checkpoints, exit codes, signals."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import claimed_trial, release, write

from hpsearch import StopTrial
from hpsearch.errors import ConfigError
from hpsearch.search import config
from hpsearch.trainables.command import ProgramFailed, check, expand, make_runner

PY = sys.executable


def test_expand_placeholders_and_wandb_forms() -> None:
    values = {"lr": 0.001, "hidden": [64, 32], "trial": "s1-t0003", "name": "a b"}
    params = {"lr": 0.001, "hidden": [64, 32]}
    argv = [
        "${interpreter}",
        "t.py",
        "--lr={lr}",
        "{trial}",
        "{{lr}}",
        "{name}",
        '{"x": 1}',
        "${args}",
        "${args_no_hyphens}",
        "${args_json}",
    ]
    assert expand(argv, values, params) == [
        PY,
        "t.py",
        "--lr=0.001",
        "s1-t0003",
        "{lr}",
        "a b",
        '{"x": 1}',
        "--lr=0.001",
        "--hidden=[64, 32]",
        "lr=0.001",
        "hidden=[64, 32]",
        '{"hidden": [64, 32], "lr": 0.001}',
    ]
    with pytest.raises(KeyError):
        expand(["{nope}"], values, params)
    with pytest.raises(KeyError):
        expand(["x${args}"], values, params)


def _sweep(tmp_path: Path, command: list[str], **trainable: object) -> config.Sweep:
    return config.parse(
        {
            "trainable": {"command": command, **trainable},
            "stages": [{"trials": 1, "epochs": 1}],
            "parameters": {"lr": {"min": 0.1, "max": 1.0}},
        },
        source_dir=str(tmp_path),
    )


def test_check_at_the_door(tmp_path: Path) -> None:
    write(tmp_path / "train.py", "pass\n")
    check(_sweep(tmp_path, ["${interpreter}", "train.py", "--lr", "{lr}", "{epochs}", "${args}"]))
    with pytest.raises(ConfigError, match=r"unknown placeholder \{lrr\}"):
        check(_sweep(tmp_path, ["${interpreter}", "train.py", "{lrr}"]))
    with pytest.raises(ConfigError, match="not found"):
        check(_sweep(tmp_path, ["no-such-program-xyz", "{lr}"]))
    with pytest.raises(ConfigError, match="grace"):
        check(_sweep(tmp_path, [PY], grace="soon"))


REPORTER = """
import json, os, sys
env = {k: v for k, v in os.environ.items() if k.startswith(("HPSEARCH_", "CUDA_"))}
seen = {"argv": sys.argv[1:], "env": env, "cwd": os.getcwd()}
json.dump(seen, open(os.path.join(env["HPSEARCH_TRIAL_DIR"], "seen.json"), "w"))
start, epochs = int(env["HPSEARCH_START_EPOCH"]), int(env["HPSEARCH_EPOCHS"])
values = json.loads(sys.argv[1])
for epoch in range(start + 1, epochs + 1):
    ck = os.path.join(env["HPSEARCH_CHECKPOINT_DIR"], f"e{epoch}.bin")
    open(ck, "wb").write(b"weights-%d" % epoch)
    with open(env["HPSEARCH_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"epoch": epoch, "val_acc": values[epoch - 1], "train_loss": 1.0,
                            "checkpoint": ck, "note": "hi", "time": 3.5}) + "\\n")
    print("did epoch", epoch)
if len(sys.argv) > 2:
    sys.exit(int(sys.argv[2]))
"""


def test_program_reports_epochs_and_hands_over_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    src = tmp_path / "src dir"
    write(src / "prog.py", REPORTER)
    trial = claimed_trial(tmp_path / "sweep", epochs=3, params={"lr": 0.5, "tag": "x y"})
    fit = make_runner([PY, "prog.py", "[0.5, 0.7, 0.6]"], str(src), {"command": [], "grace": 5})
    fit(trial.params, trial)
    seen = json.loads((trial.trial_dir / "seen.json").read_text())
    env = seen["env"]
    assert seen["cwd"] == str(src) and seen["argv"] == ["[0.5, 0.7, 0.6]"]
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["HPSEARCH_TRIAL_ID"] == "s1-t0000"
    assert json.loads(env["HPSEARCH_PARAMS"]) == {"lr": 0.5, "tag": "x y"}
    assert env["HPSEARCH_START_EPOCH"] == "0" and "HPSEARCH_RESUME_FROM" not in env
    assert all(
        Path(env[k]).is_absolute() for k in ("HPSEARCH_TRIAL_DIR", "HPSEARCH_METRICS_FILE", "HPSEARCH_CHECKPOINT_DIR")
    )
    lines = trial.store.metrics(trial.id)
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    assert lines[0]["note"] == "hi" and lines[0]["program_time"] == 3.5 and lines[0]["time"] != 3.5
    # best (epoch 2) and last (epoch 3) kept under canonical names, holding the program's bytes
    ckpts = sorted(p.name for p in trial.store.layout.checkpoints.iterdir())
    assert ckpts == ["s1-t0000_ep002_val_acc0.7000.pt", "s1-t0000_ep003_val_acc0.6000.pt"]
    assert (trial.store.layout.checkpoints / ckpts[1]).read_bytes() == b"weights-3"
    assert not Path(env["HPSEARCH_CHECKPOINT_DIR"]).exists()  # scratch of the attempt is gone
    assert "did epoch 3" in (trial.trial_dir / "worker.log").read_text()


def test_resume_gets_the_last_handed_over_checkpoint(tmp_path: Path) -> None:
    write(tmp_path / "prog.py", REPORTER)
    trial = claimed_trial(tmp_path / "sweep", epochs=4)
    fit = make_runner([PY, "prog.py", "[0.1, 0.2, 0.3, 0.4]", "0"], str(tmp_path), {"command": []})
    # attempt 1 dies (exit 1) after two epochs
    fit2 = make_runner(
        [
            PY,
            "-c",
            "import runpy, sys; sys.argv = ['p', '[0.1, 0.2]', '1']; "
            "import os; os.environ['HPSEARCH_EPOCHS'] = '2'; runpy.run_path('prog.py')",
        ],
        str(tmp_path),
        {"command": []},
    )
    with pytest.raises(ProgramFailed):
        fit2(trial.params, trial)
    release(trial)
    again = claimed_trial(tmp_path / "sweep", epochs=4, plan=False)
    assert again.start_epoch == 2 and again.resume_checkpoint is not None
    fit(again.params, again)
    env = json.loads((again.trial_dir / "seen.json").read_text())["env"]
    assert env["HPSEARCH_START_EPOCH"] == "2"
    assert env["HPSEARCH_RESUME_FROM"] == str(again.resume_checkpoint.absolute())
    lines = again.store.metrics(again.id)
    assert [(x["epoch"], x["attempt"]) for x in lines] == [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
    ]  # each epoch keeps the attempt that trained it
    assert "did epoch 1" not in (again.trial_dir / "worker.log").read_text().split("attempt 2")[1]


def test_nonzero_exit_fails_with_the_end_of_the_log(tmp_path: Path) -> None:
    trial = claimed_trial(tmp_path / "sweep")
    fit = make_runner(
        [PY, "-c", "import sys; print('loading data'); sys.exit('CUDA out of memory')"], str(tmp_path), {"command": []}
    )
    # the reason leads with the log's last line (a report's reason column is narrow), the error.txt
    # text (`detail`) is the program's own lines, not hpsearch's traceback
    with pytest.raises(
        ProgramFailed, match=r"python3? exited with code 1: CUDA out of memory \(before it in its log: loading data\)"
    ) as e:
        fit({}, trial)
    assert e.value.detail.endswith("):\nloading data\nCUDA out of memory") and "worker.log" in e.value.detail


def test_broken_metrics_line_fails_the_trial(tmp_path: Path) -> None:
    trial = claimed_trial(tmp_path / "sweep")
    prog = (
        "import os, time; open(os.environ['HPSEARCH_METRICS_FILE'], 'a').write('{\"epoch\": 1, \"loss\": 2}\\n');"
        " time.sleep(30)"
    )
    t0 = time.monotonic()
    with pytest.raises(ProgramFailed, match="metrics line 1: .*val_acc"):
        make_runner([PY, "-c", prog], str(tmp_path), {"command": [], "grace": 5})({}, trial)
    assert time.monotonic() - t0 < 10  # the program was stopped, not waited for


SIGNALS = """
import json, os, signal, sys, time
marker = os.path.join(os.environ["HPSEARCH_TRIAL_DIR"], "sigterm")
def on_term(*a):
    open(marker, "w").write("got it")
    if sys.argv[1] == "obey":
        sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
    f.write(json.dumps({"epoch": 1, "val_acc": 0.5, "train_loss": 1.0}) + "\\n")
    f.write(json.dumps({"epoch": 2, "val_acc": 0.5, "train_loss": float(sys.argv[2])}) + "\\n")
for _ in range(600):
    time.sleep(0.05)
"""


def test_divergence_sends_sigterm(tmp_path: Path) -> None:
    write(tmp_path / "prog.py", SIGNALS)
    trial = claimed_trial(tmp_path / "sweep", epochs=5)
    with pytest.raises(StopTrial, match="diverged"):
        make_runner([PY, "prog.py", "obey", "nan"], str(tmp_path), {"command": [], "grace": 20})({}, trial)
    assert trial.stop_reason == "diverged"
    assert (trial.trial_dir / "sigterm").read_text() == "got it"


def test_worker_stop_forwards_sigterm_then_kills_after_grace(tmp_path: Path) -> None:
    write(tmp_path / "prog.py", SIGNALS)
    trial = claimed_trial(tmp_path / "sweep", epochs=5)
    threading.Timer(1.0, trial._stop_event.set).start()  # what the worker's SIGTERM handler does
    t0 = time.monotonic()
    with pytest.raises(StopTrial, match="stopped"):
        make_runner([PY, "prog.py", "ignore", "1.0"], str(tmp_path), {"command": [], "grace": 0.5})({}, trial)
    assert time.monotonic() - t0 < 15
    assert (trial.trial_dir / "sigterm").exists() and trial.stop_reason == "stopped"
    assert [x["epoch"] for x in trial.store.metrics(trial.id)] == [1, 2]


def test_a_program_that_writes_an_epoch_twice_fails_with_the_line_and_the_fix(tmp_path: Path) -> None:
    trial = claimed_trial(tmp_path / "sweep")
    prog = (
        "import json, os\n"
        "f = open(os.environ['HPSEARCH_METRICS_FILE'], 'a')\n"
        "for v in (0.5, 0.9):\n"
        "    f.write(json.dumps({'epoch': 1, 'val_acc': v}) + '\\n'); f.flush()\n"
    )
    fit = make_runner([PY, "-c", prog], str(tmp_path), {"command": []})
    with pytest.raises(ProgramFailed, match=r"metrics line 2: epoch 1 after epoch 1: write each epoch once, in order"):
        fit({}, trial)
    assert trial.best == 0.5
