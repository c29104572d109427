"""Status tells the truth, through the real CLI: a killed worker is not shown alive once its trial
was requeued, a finished or stopped sweep has no ETA, a worker started by hand says what it does,
`--dry-run` prints the plan and writes nothing, `master stop` on a finished sweep says so, and a
command program's math libraries get the worker's thread count."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

from helpers import (
    HPSEARCH,
    alive,
    count_events,
    events,
    kill_pids,
    noop_sweep,
    run_cli,
    spawn,
    tree_hash,
    wait_for,
    worker_pids,
    write,
    write_sweep,
)

from hpsearch.store.sweepdir import Store


def test_a_killed_worker_is_not_shown_alive_and_a_finished_sweep_has_no_eta(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[10], epochs=3, sleep=0.3, workers=2))
    root = tmp_path / "d"
    m = spawn("master", "start", str(sweep), "--dir", str(root), log=tmp_path / "m.log")
    try:

        def training() -> tuple[str, dict] | None:
            for p in (root / "workers").glob("*.json"):
                with contextlib.suppress(OSError, ValueError):
                    hb = json.loads(p.read_text())
                    if hb.get("trial"):
                        return p.stem, hb
            return None

        victim, hb = wait_for(training, 90, "a worker's heartbeat naming its trial", proc=m)
        os.kill(hb["pid"], signal.SIGKILL)
        wait_for(lambda: not alive(hb["pid"]), 10, "the worker to die")
        # at once, before any requeue: its process is gone on this host, so it is not alive
        status = run_cli("master", "status", str(root), check=True).stdout
        line = next(ln for ln in status.splitlines() if ln.strip().startswith(f"{victim}:"))
        assert "gone" in line and "alive" not in line, line
        wait_for(
            lambda: any(e.get("ev") == "release" and e.get("lost") for e in events(root)), 60, "the requeue", proc=m
        )
        status = run_cli("master", "status", str(root), check=True).stdout
        line = next(ln for ln in status.splitlines() if ln.strip().startswith(f"{victim}:"))
        assert "gone" in line and "training" not in line, line  # its old trial belongs to someone else now
        assert m.wait(timeout=180) == 0
        status = run_cli("master", "status", str(root), check=True).stdout
        assert ": finished" in status.splitlines()[0]
        assert "left in stage" not in status  # no ETA once finished
        assert "master: none alive; the last one" in status and ") exited at " in status
        assert "resume with" not in status  # nothing to resume
        # stop on a finished sweep: says so, writes nothing
        before = (root / "journal.jsonl").read_bytes()
        r = run_cli("master", "stop", str(root), check=True)
        assert "the sweep is already finished; nothing to stop" in r.stdout
        assert (root / "journal.jsonl").read_bytes() == before
    finally:
        kill_pids([m.pid, *worker_pids(root)])


def test_a_worker_started_by_hand_says_what_it_does(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[3], epochs=2, workers=1))
    root = tmp_path / "d"
    m = spawn("master", "start", str(sweep), "--dir", str(root), "--no-workers", log=tmp_path / "m.log")
    try:
        wait_for(lambda: count_events(root, "stage") >= 1, 60, "stage 1", proc=m)
        r = run_cli("worker", "--dir", str(root), "--id", "mine", timeout=120)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith(f"hpsearch worker mine: joined sweep faults in {root} at stage 1 of 1 (3 trial(s)")
        for t in ("s1-t0000", "s1-t0001", "s1-t0002"):
            assert any(
                ln.startswith(f"hpsearch worker mine: claimed {t} (stage 1, attempt 1, 2 epoch(s))") for ln in lines
            )
            assert any(ln.startswith(f"hpsearch worker mine: {t}: finished, best val_acc ") for ln in lines)
        assert lines[-1] == "hpsearch worker mine: leaving: the sweep is done (3 trial(s) recorded here)"
        assert m.wait(timeout=60) == 0
    finally:
        kill_pids([m.pid, *worker_pids(root)])


def test_a_worker_on_a_stopped_sweep_says_why_it_leaves(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=[3], epochs=2, workers=1))
    root = tmp_path / "d"
    m = spawn("master", "start", str(sweep), "--dir", str(root), "--no-workers", log=tmp_path / "m.log")
    try:
        wait_for(lambda: count_events(root, "stage") >= 1, 60, "stage 1", proc=m)
        r = run_cli("master", "stop", str(root), check=True)
        assert "Stop requested" in r.stdout
        assert m.wait(timeout=60) == 0
        r = run_cli("master", "stop", str(root), check=True)
        assert "no master is running" in r.stdout
        r = run_cli("worker", "--dir", str(root), "--id", "late", timeout=120)
        assert r.returncode == 0
        assert r.stdout.splitlines()[-1].startswith("hpsearch worker late: leaving: the sweep was stopped")
    finally:
        kill_pids([m.pid, *worker_pids(root)])


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    text = noop_sweep(trials=[8, 4], epochs=[2, 5], workers=3)
    text = text.replace("  - {trials: 4, epochs: 5}", "  - {trials: 4, epochs: 5, promote: 2, top: 3}")
    sweep = write_sweep(tmp_path, text)
    root = tmp_path / "d"
    before = tree_hash(tmp_path)
    r = run_cli("master", "start", str(sweep), "--dir", str(root), "--dry-run", check=True)
    out = r.stdout
    assert "nothing is written" in out
    assert "Stage 1 ranges:" in out and "metric_value" in out
    assert "stage 1: 8 trial(s) x 2 epoch(s): 16 epoch(s) to train" in out
    # 4 new trials x 5 epochs, and 2 promoted going on from epoch 2 (3 more each)
    assert "stage 2: 6 trial(s) x 5 epoch(s) (2 promoted from stage 1, each going on from epoch 2)" in out
    assert ": 26 epoch(s) to train" in out and "Total: at most 42 epoch(s) of training" in out
    assert "Workers: 3 local worker process(es)" in out
    assert tree_hash(tmp_path) == before and not root.exists()
    # the same checks as a real start: a bad file is one line, exit 2, nothing written
    bad = write_sweep(tmp_path, text.replace("workers: 3", "workers: 0"), name="bad.yaml")
    before = tree_hash(tmp_path)
    r = run_cli("master", "start", str(bad), "--dir", str(root), "--dry-run")
    assert r.returncode == 2 and r.stderr.startswith("hpsearch: error: ") and "workers" in r.stderr
    assert tree_hash(tmp_path) == before


def test_dry_run_says_what_a_real_start_would_find_in_the_directory(tmp_path: Path) -> None:
    """A new-user trial: --dry-run said "the sweep would run in DIR" for a directory holding another,
    finished sweep, which a real start refuses."""
    sweep = write_sweep(tmp_path, noop_sweep(trials=[4], epochs=[1], workers=1))
    root = tmp_path / "d"
    assert "holds" not in run_cli("master", "start", str(sweep), "--dir", str(root), "--dry-run", check=True).stdout
    run_cli("master", "start", str(sweep), "--dir", str(root), check=True)
    other = write_sweep(tmp_path, noop_sweep(trials=[5], epochs=[1], workers=1), name="other.yaml")
    before = tree_hash(tmp_path)
    same = run_cli("master", "start", str(sweep), "--dir", str(root), "--dry-run", check=True).stdout
    assert f"{root} holds this sweep, finished (1 of 1 stage(s) done): a real start only reports it" in same
    r = run_cli("master", "start", str(other), "--dir", str(root), "--dry-run", check=True)
    assert f"{root} holds a different sweep" in r.stdout and "a real start refuses it" in r.stdout
    assert tree_hash(tmp_path) == before
    refused = run_cli("master", "start", str(other), "--dir", str(root))
    assert refused.returncode != 0 and "holds a different sweep" in refused.stderr


def test_a_stage_table_cut_to_its_top_says_so(tmp_path: Path) -> None:
    """A new-user trial: "Stage 2 done: 4 diverged, 7 finished" above 10 rows, one diverged run missing, unsaid."""
    sweep = write_sweep(tmp_path, noop_sweep(trials=[12, 10], epochs=[1, 1], workers=1))
    root = tmp_path / "d"
    out = run_cli("master", "start", str(sweep), "--dir", str(root), check=True).stdout
    assert f"(the top 10 of 12 runs; all of them: hpsearch report {root} --stage 1)" in out
    assert "of 10 runs" not in out  # stage 2's table is whole
    assert "only continues earlier configurations" not in out


def test_a_promote_only_stage_says_its_ranges_draw_nothing(tmp_path: Path) -> None:
    """A new-user trial: "Ranges for stage 3" were printed for a stage that drew no trial in them."""
    text = noop_sweep(trials=[6, 0, 3], epochs=[1, 2, 3], workers=1)
    text = text.replace("  - {trials: 0, epochs: 2}", "  - {trials: 0, epochs: 2, promote: 2}")
    out = run_cli("master", "start", str(write_sweep(tmp_path, text)), "--dir", str(tmp_path / "d"), check=True).stdout
    lines = out.splitlines()
    said = [i for i, line in enumerate(lines) if "only continues earlier configurations" in line]
    assert len(said) == 1 and lines[said[0]].startswith("(stage 2 ") and "stage 3 narrows from them" in lines[said[0]]
    assert lines[said[0] + 1].startswith("Stage 2/3: 2 trial(s)")


def test_dry_run_counts_promotions_with_repeats_as_the_run_does_and_warns_as_it(tmp_path: Path) -> None:
    """Stage 1 runs each configuration twice (repeats: 2); stage 2 promotes 2 configurations with
    one repeat each: 2 promoted trials, not 4 (the dry run counted the repeats it came from)."""
    text = noop_sweep(trials=[6, 3], epochs=[1, 3])
    text = text.replace("  - {trials: 6, epochs: 1}", "  - {trials: 6, epochs: 1, repeats: 2}")
    text = text.replace("  - {trials: 3, epochs: 3}", "  - {trials: 3, epochs: 3, promote: 2, top: 3}")
    # natural-log exponents given as values: a warning
    text = text.replace("parameters:\n", "parameters:\n  lr: {distribution: log_uniform, min: 1.0e-5, max: 1.0e-1}\n")
    sweep = write_sweep(tmp_path, text)
    r = run_cli("master", "start", str(sweep), "--dir", str(tmp_path / "d"), "--dry-run", check=True)
    dry = r.stdout
    assert "stage 2: 5 trial(s) x 3 epoch(s) (2 promoted from stage 1, each going on from epoch 1)" in dry
    # the other way round, a promoted configuration gains a seed, which trains from epoch 1
    grown = text.replace("repeats: 2}", "}").replace("promote: 2, top: 3}", "promote: 2, top: 3, repeats: 2}")
    regrown = run_cli("master", "start", str(write_sweep(tmp_path, grown, name="g.yaml")), "--dry-run", check=True)
    assert "(4 trial(s) of the 2 configuration(s) promoted from stage 1: 2 going on from epoch 1, 2 new seed(s)" in (
        regrown.stdout
    )
    assert "Total: at most 25 epoch(s) of training" in dry  # 12 x 1 + 3 x 3 + 2 x 2
    # warnings on stderr, as a real start writes them
    warned = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: parameters.lr: log_uniform")]
    real = run_cli("master", "start", str(sweep), "--dir", str(tmp_path / "d"), check=True)
    assert warned and all(w in real.stderr.splitlines() for w in warned) and "warning:" not in real.stdout
    planned = [
        json.loads(ln) for ln in (tmp_path / "d" / "journal.jsonl").read_text().splitlines() if '"ev":"stage"' in ln
    ]
    stage2 = planned[1]["trials"]
    assert len(stage2) == 5 and sum(bool(t.get("parent")) for t in stage2) == 2


def test_the_resume_hint_names_the_sweep_file_as_seen_from_where_status_runs(tmp_path: Path) -> None:
    """The master was started as `master start s.yaml` inside a/; status run from a/'s parent
    names a/s.yaml (it named s.yaml, which does not exist from there)."""
    (tmp_path / "a").mkdir()
    write_sweep(tmp_path / "a", noop_sweep(trials=4, epochs=1), name="s.yaml")
    m = spawn("master", "start", "s.yaml", "--dir", "run", "--no-workers", log=tmp_path / "m.log", cwd=tmp_path / "a")
    try:
        wait_for(lambda: count_events(tmp_path / "a" / "run", "stage") >= 1, 60, "stage 1", proc=m)
        run_cli("master", "stop", str(tmp_path / "a" / "run"), check=True)
        assert m.wait(timeout=60) == 0
    finally:
        kill_pids([m.pid])
    status = run_cli("master", "status", "a/run", cwd=tmp_path, check=True).stdout
    assert "resume with: hpsearch master start a/s.yaml --dir a/run" in status
    assert (tmp_path / "a" / "s.yaml").is_file()


THREADS_PROGRAM = """
import json, os
keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
for epoch in range(1, int(os.environ["HPSEARCH_EPOCHS"]) + 1):
    with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"epoch": epoch, "val_acc": 0.5, "env": [os.environ.get(k) for k in keys]}) + "\\n")
"""


def test_a_command_program_gets_the_workers_thread_count_unless_the_user_set_one(tmp_path: Path) -> None:
    write(tmp_path / "train.py", THREADS_PROGRAM)
    sweep = write_sweep(
        tmp_path,
        "name: threads\nmetric: {name: val_acc, goal: maximize}\ntrainable: {command: [python3, train.py]}\n"
        "parameters:\n  lr: {distribution: uniform, min: 0.1, max: 0.9}\nstages:\n  - {trials: 2, epochs: 1}\n"
        "workers: 2\nlauncher: {type: local, threads: 3}\nheartbeat: 0.2\nstale_after: 3\n",
    )
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    for env, want in ((clean, ["3", "3", "3"]), ({**clean, "OMP_NUM_THREADS": "7"}, ["7", "3", "3"])):
        root = tmp_path / f"d{want[0]}"
        r = subprocess.run(
            [*HPSEARCH, "master", "start", str(sweep), "--dir", str(root)],
            env=env,  # exactly this environment: the thread variables are absent unless given
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        st = Store(root).refresh()
        for t in st.trials.values():
            assert Store(root).metrics(t.trial)[0]["env"] == want
