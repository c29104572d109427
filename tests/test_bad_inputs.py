"""Bad input through the real CLI: exit code 2, one line on stderr, no traceback, nothing damaged.

Sweep files live in tests/bad_inputs/*.yaml (first line: `# expect: <part of the message>`).
Directory corruptions are built here on a planned sweep directory. Corruptions that must NOT be
errors (a torn journal tail, a garbage checkpoint, a missing params.json) are tested to go on.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import noop_sweep, plan, run_cli, spawn, tree_hash, write_sweep

from hpsearch.store.fold import State
from hpsearch.store.sweepdir import Store
from hpsearch.trainables.trial import Trial

CORPUS = Path(__file__).parent / "bad_inputs"
SWEEP_CASES = sorted(CORPUS.glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    return first.split("# expect:", 1)[1].strip() if first.startswith("# expect:") else "cannot read it"


def assert_one_line_error(r, expect: str | None = None) -> str:
    assert r.returncode == 2, f"exit {r.returncode}; stderr: {r.stderr!r}; stdout: {r.stdout[-500:]!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"want exactly one stderr line, got {lines!r}"
    assert lines[0].startswith("hpsearch: error: "), lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    if expect:
        assert expect in lines[0], f"{expect!r} not in {lines[0]!r}"
    return lines[0]


def test_corpus_is_big_enough() -> None:
    assert len(SWEEP_CASES) >= 25


@pytest.fixture(scope="module")
def corpus_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, dict, dict]]:
    """Run every sweep-file case at once (they are independent; this keeps the suite fast).

    Each runs from a scratch folder, aimed at an existing sweep directory: nothing may change.
    """
    started = {}
    for case in SWEEP_CASES:
        tmp = tmp_path_factory.mktemp(case.stem)
        src = tmp / case.name
        shutil.copy(case, src)
        plan(write_sweep(tmp, noop_sweep(trials=2, epochs=1), "ok.yaml"), tmp / "sweep")
        before = tree_hash(tmp)
        proc = spawn("master", "start", str(src), "--dir", str(tmp / "sweep"), cwd=tmp, capture=True)
        started[case.stem] = (tmp, before, proc)
    out = {}
    for name, (tmp, before, proc) in started.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), before, tree_hash(tmp))
    return out


@pytest.mark.parametrize("case", SWEEP_CASES, ids=[p.stem for p in SWEEP_CASES])
def test_bad_sweep_file(case: Path, corpus_runs: dict) -> None:
    r, before, after = corpus_runs[case.stem]
    assert_one_line_error(r, expected(case))
    assert after == before


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    r = run_cli("--debug", "master", "start", str(CORPUS / "zero_trials.yaml"), "--dir", str(tmp_path / "d"))
    assert r.returncode != 0 and "Traceback" in r.stderr


# -- directory corruptions that must be refused ------------------------------------------------
def _full_disk(limit_of: Path) -> Callable[[], None]:
    """The child may not grow any file past the journal's size: writes fail with EFBIG, like a full disk."""
    size = limit_of.stat().st_size

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return preexec


def _corrupt(root: Path, how: str) -> None:
    lay = root
    if how == "garbage_sweep_yaml":
        (lay / "sweep.yaml").write_text("name: [unclosed\n")
    elif how == "missing_sweep_yaml":
        (lay / "sweep.yaml").unlink()
    elif how == "garbage_stage_file":
        (lay / "stages" / "stage-1.json").write_text('{"stage": 1, "ranges": ')
    elif how == "garbage_source_json":
        (lay / "source.json").write_bytes(b"\x00\x01binary")
    elif how == "journal_is_a_directory":
        (lay / "journal.jsonl").rename(lay / "journal.old")
        (lay / "journal.jsonl").mkdir()
    elif how == "sweep_yaml_is_a_directory":
        (lay / "sweep.yaml").unlink()
        (lay / "sweep.yaml").mkdir()
    else:
        raise AssertionError(how)


DIR_CASES = {
    # name: (corruption, argv after `hpsearch` with {d} for the directory, expected text)
    "report_garbage_sweep_yaml": ("garbage_sweep_yaml", ["report", "{d}"], "not valid YAML"),
    "report_missing_sweep_yaml": ("missing_sweep_yaml", ["report", "{d}"], "lacks sweep.yaml"),
    "report_garbage_stage_file": ("garbage_stage_file", ["report", "{d}"], "stage-1.json is corrupt"),
    "report_garbage_source_json": ("garbage_source_json", ["report", "{d}"], "source.json is corrupt"),
    "status_journal_is_a_directory": ("journal_is_a_directory", ["master", "status", "{d}"], "journal.jsonl"),
    "worker_sweep_yaml_is_a_directory": ("sweep_yaml_is_a_directory", ["worker", "--dir", "{d}"], "sweep.yaml"),
    "stop_journal_is_a_directory": ("journal_is_a_directory", ["master", "stop", "{d}"], "journal.jsonl"),
}


@pytest.mark.parametrize("case", sorted(DIR_CASES))
def test_corrupt_directory(case: str, tmp_path: Path) -> None:
    how, argv, expect = DIR_CASES[case]
    sweep = write_sweep(tmp_path, noop_sweep(trials=3, epochs=1))
    root = tmp_path / "d"
    plan(sweep, root)
    _corrupt(root, how)
    before = tree_hash(root)
    r = run_cli(*[a.format(d=root) for a in argv])
    assert_one_line_error(r, expect)
    assert tree_hash(root) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{d}"],
        ["worker", "--dir", "{d}"],
        ["master", "stop", "{d}"],
        ["master", "status", "{d}"],
        ["master", "start", "{s}", "--dir", "{d}", "--resume"],
    ],
)
def test_not_a_sweep_directory(argv: list[str], tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep())
    root = tmp_path / "empty"
    root.mkdir()
    r = run_cli(*[a.format(d=root, s=sweep) for a in argv])
    assert_one_line_error(r, "not a sweep directory")
    assert list(root.iterdir()) == []


def test_existing_unrelated_directory_is_refused(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep())
    root = tmp_path / "mine"
    root.mkdir()
    (root / "thesis.tex").write_text("precious")
    before = tree_hash(root)
    assert_one_line_error(run_cli("master", "start", str(sweep), "--dir", str(root)), "not empty")
    assert tree_hash(root) == before


def test_a_file_where_the_directory_should_be(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep())
    f = tmp_path / "file"
    f.write_text("not a directory")
    assert_one_line_error(run_cli("master", "start", str(sweep), "--dir", str(f / "sub")), "Not a directory")
    # `--dir FILE` itself is caught by click's argument check: a usage message, exit 2, no traceback
    r = run_cli("master", "start", str(sweep), "--dir", str(f))
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr
    assert_one_line_error(run_cli("report", str(f / "sub")), "does not exist (a typo in the path?)")
    assert f.read_text() == "not a directory"


def test_full_disk_refuses_cleanly(tmp_path: Path) -> None:
    """A write that fails for lack of space (EFBIG under RLIMIT_FSIZE) is one line, and the journal is intact."""
    sweep = write_sweep(tmp_path, noop_sweep(trials=3, epochs=1))
    root = tmp_path / "d"
    plan(sweep, root)
    before = tree_hash(root)
    r = run_cli("master", "stop", str(root), preexec=_full_disk(root / "journal.jsonl"))
    assert_one_line_error(r, "is the disk full or read-only?")
    assert tree_hash(root) == before


def test_directory_that_cannot_be_created(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep())
    # /proc refuses new entries even to root (a read-only directory would not stop root)
    assert_one_line_error(run_cli("master", "start", str(sweep), "--dir", "/proc/self/hpsearch-nohere/d"))


def test_different_sweep_on_same_directory_needs_force(tmp_path: Path) -> None:
    a = write_sweep(tmp_path, noop_sweep(trials=2, epochs=1, workers=1), "a.yaml")
    b = write_sweep(tmp_path, noop_sweep(trials=3, epochs=1, workers=1), "b.yaml")
    root = tmp_path / "d"
    plan(a, root)
    before = tree_hash(root)
    assert_one_line_error(run_cli("master", "start", str(b), "--dir", str(root), "--no-workers"), "--force")
    assert tree_hash(root) == before
    # --force is accepted: the master continues the directory with the new file
    r = run_cli("master", "start", str(b), "--dir", str(root), "--force", timeout=120)
    assert r.returncode == 0, r.stderr
    assert (root / "sweep.yaml").read_text() == b.read_text()
    assert Store(root).refresh().done


# -- corruptions that are NOT errors: the sweep goes on ------------------------------------------
def test_torn_journal_tail_is_not_an_error(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep(trials=3, epochs=1))
    root = tmp_path / "d"
    plan(sweep, root)
    with open(root / "journal.jsonl", "ab") as f:
        f.write(b'{"ev":"claim","trial":"s1-t0001","wor')  # a writer killed mid-append
    r = run_cli("report", str(root), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert {run["status"] for run in json.loads(r.stdout)["runs"]} == {"planned"}


def _trial_with_epochs(tmp_path: Path, epochs_done: int) -> tuple[Store, object]:
    sweep = write_sweep(tmp_path, noop_sweep(trials=1, epochs=5))
    store = plan(sweep, tmp_path / "d")
    rec = store.claim("w1")[0]
    store.trial_files_ready(rec)
    t = Trial(store, rec, params=rec.params, metric="val_acc", goal="maximize", keep="all")
    for e in range(1, epochs_done + 1):
        t.report(e, state={"epoch_marker": e}, val_acc=0.1 * e)
    return store, rec


def test_garbage_checkpoint_resumes_from_the_one_before(tmp_path: Path) -> None:
    store, rec = _trial_with_epochs(tmp_path, 3)
    names = [line["checkpoint"] for line in store.metrics(rec.trial)]
    store.layout.checkpoint(names[2]).write_bytes(b"\x00garbage, not a zip archive")
    store.requeue_lost({rec.trial: "test"}, retries=3)
    rec2 = store.claim("w2")[0]
    t = Trial(store, rec2, params=rec2.params, metric="val_acc", goal="maximize", keep="all")
    assert t.start_epoch == 2 and t.resume_state == {"epoch_marker": 2}
    assert [m["epoch"] for m in store.metrics(rec.trial)] == [1, 2]


def test_all_checkpoints_garbage_resumes_from_scratch(tmp_path: Path) -> None:
    store, rec = _trial_with_epochs(tmp_path, 2)
    for line in store.metrics(rec.trial):
        store.layout.checkpoint(line["checkpoint"]).write_bytes(b"PK\x03\x04truncated")
    store.requeue_lost({rec.trial: "test"}, retries=3)
    rec2 = store.claim("w2")[0]
    t = Trial(store, rec2, params=rec2.params, metric="val_acc", goal="maximize")
    assert t.start_epoch == 0 and t.resume_state is None
    assert list(t.epoch_range) == [1, 2, 3, 4, 5]


def test_missing_params_json_is_rewritten_from_the_journal(tmp_path: Path) -> None:
    store, rec = _trial_with_epochs(tmp_path, 1)
    pf = store.layout.params_file(rec.trial)
    original = json.loads(pf.read_text())
    pf.unlink()
    store.trial_files_ready(store.state.trials[rec.trial])
    assert json.loads(pf.read_text()) == original
    assert store.state.trials[rec.trial].state is State.RUNNING
