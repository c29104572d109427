"""The journal snapshot: a cache of the fold that must give exactly the state the journal gives."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT, run_cli, write_sweep

from hpsearch.store import snapshot
from hpsearch.store.fold import SweepState
from hpsearch.store.journal import Journal
from hpsearch.store.sweepdir import Layout, Store

SWEEP = {
    "name": "snap",
    "seed": 3,
    "trainable": {"builtin": "noop", "target": {"lr": 0.01}},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
        "batch": {"values": [32, 64]},
    },
    "stages": [{"trials": 6, "epochs": 1}, {"trials": 4, "epochs": 1, "top": 2}],
    "workers": 1,
    "heartbeat": 0.2,
    "stale_after": 2,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A real 2-stage sweep run through the CLI (the master writes the snapshot after each stage)."""
    tmp = tmp_path_factory.mktemp("snap")
    d = tmp / "run"
    run_cli("master", "start", str(write_sweep(tmp, SWEEP, "s.yaml")), "--dir", str(d), check=True)
    return d


@pytest.fixture
def sweep(finished: Path, tmp_path: Path) -> Path:
    d = tmp_path / "run"
    shutil.copytree(finished, d)
    return d


def scratch(d: Path) -> SweepState:
    """The journal folded from its first byte, no snapshot."""
    return Journal(Layout(d).journal).refresh()


def assert_same(a: SweepState, b: SweepState) -> None:
    assert list(a.trials) == list(b.trials)
    for tid, t in a.trials.items():
        for f in dataclasses.fields(t):
            assert getattr(t, f.name) == getattr(b.trials[tid], f.name), (tid, f.name)
    assert sorted(a.stages) == sorted(b.stages)
    for k in a.stages:
        assert a.stages[k]["trials"] == b.stages[k]["trials"] and a.stages[k]["space"] == b.stages[k]["space"]
        assert a.stages[k]["t"] == b.stages[k]["t"]
        assert a.stage_trials(k) == b.stage_trials(k)
    assert list(a.queue) == list(b.queue) and list(a.requeued) == list(b.requeued)  # order matters
    assert (a.stages_done, a.fingerprint, a.done, a.stop, a.bad_lines) == (
        b.stages_done,
        b.fingerprint,
        b.done,
        b.stop,
        b.bad_lines,
    )
    assert a == b


def snapshot_doc(d: Path) -> dict:
    return json.loads(Layout(d).snapshot.read_bytes())


def mark_snapshot(d: Path) -> None:
    """Change a field the journal's tail does not touch: a state that shows it then came from the snapshot."""
    doc = snapshot_doc(d)
    doc["fingerprint"] = "from-snapshot"
    Layout(d).snapshot.write_text(json.dumps(doc))


def test_master_writes_snapshot_at_last_stage_done(finished: Path):
    doc = snapshot_doc(finished)
    journal = Layout(finished).journal.read_bytes()
    assert doc["version"] == snapshot.VERSION and 0 < doc["offset"] < len(journal)
    last = json.loads(journal[: doc["offset"]].splitlines()[-1])
    assert last["ev"] == "stage_done" and last["stage"] == 2
    assert doc["stages_done"] == [1, 2] and len(doc["trials"]["trial"]) == 10
    assert not list(finished.glob(".snapshot.json.*"))  # no temporary file left behind


def test_snapshot_plus_tail_equals_fold_from_scratch(sweep: Path):
    base = scratch(sweep)
    # events after the snapshot: a new stage, claims, a result, a lost worker's release, a torn line, stop
    s2 = base.stage_trials(2)
    plan = [
        {
            "trial": f"s3-t{i:04d}",
            "config": f"s3-t{i:04d}",
            "params": dict(s2[i % len(s2)].params),
            "seed": 100 + i,
            "epochs": 2,
            "parent": s2[0].trial if i == 0 else None,
        }
        for i in range(5)
    ]
    j = Journal(Layout(sweep).journal)
    j.append(
        [
            {"ev": "resume"},
            {"ev": "stage", "stage": 3, "space": base.stages[2]["space"], "trials": plan},
            {"ev": "claim", "trial": "s3-t0002", "worker": "w1", "attempt": 1, "device": "cpu"},
            {"ev": "claim", "trial": "s3-t0000", "worker": "w2", "attempt": 1},
            {
                "ev": "result",
                "trial": "s3-t0002",
                "attempt": 1,
                "status": "finished",
                "best": 0.75,
                "best_epoch": 2,
                "epochs_done": 2,
                "reason": None,
                "worker": "w1",
                "device": "cpu",
            },
            {"ev": "release", "trial": "s3-t0000", "attempt": 1, "reason": "lost", "lost": True, "epochs_done": 1},
        ]
    )
    with open(Layout(sweep).journal, "ab") as f:
        f.write(b'{"ev":"claim","trial":"s3-t00')  # a writer killed mid-line
    j.append([{"ev": "claim", "trial": "s3-t0003", "worker": "w1", "attempt": 1}, {"ev": "stop"}])

    with open(Layout(sweep).journal, "rb") as f:
        assert snapshot.load(Layout(sweep).snapshot, f) is not None  # it matches: the tail is all that is parsed
    fresh = scratch(sweep)
    assert fresh.bad_lines == 1 and fresh.stop and list(fresh.requeued) == ["s3-t0000"]
    assert list(fresh.queue) == ["s3-t0001", "s3-t0004"]
    assert_same(Store(sweep).refresh(), fresh)

    # and a store started from the snapshot keeps folding what is appended later
    store = Store(sweep)
    store.refresh()
    j.append([{"ev": "resume"}, {"ev": "claim", "trial": "s3-t0000", "worker": "w3", "attempt": 2}])
    assert_same(store.refresh(), scratch(sweep))


def test_snapshot_is_what_the_first_read_uses(sweep: Path):
    mark_snapshot(sweep)
    st = Store(sweep).refresh()
    assert st.fingerprint == "from-snapshot"
    assert_same(st, dataclasses.replace(scratch(sweep), fingerprint="from-snapshot"))


def test_master_rewrites_its_snapshot_from_its_own_fold(sweep: Path):
    mark_snapshot(sweep)
    j = Journal(Layout(sweep).journal, snapshot=Layout(sweep).snapshot)
    j.refresh()
    Layout(sweep).snapshot.unlink()
    j.append([{"ev": "resume"}])
    assert j.write_snapshot()
    doc = snapshot_doc(sweep)
    assert doc["offset"] == Layout(sweep).journal.stat().st_size and doc["fingerprint"] == "from-snapshot"
    assert_same(Store(sweep).refresh(), dataclasses.replace(scratch(sweep), fingerprint="from-snapshot"))


@pytest.mark.parametrize(
    "damage",
    [
        "corrupt_json",
        "truncated_json",
        "wrong_version",
        "journal_rewritten",
        "offset_beyond_journal",
        "journal_replaced",
        "column_missing",
    ],
)
def test_snapshot_that_does_not_match_is_ignored(sweep: Path, damage: str):
    lay = Layout(sweep)
    mark_snapshot(sweep)
    doc = snapshot_doc(sweep)
    raw = lay.journal.read_bytes()
    if damage == "corrupt_json":
        lay.snapshot.write_bytes(b"\x00garbage{")
    elif damage == "truncated_json":
        lay.snapshot.write_bytes(lay.snapshot.read_bytes()[:-40])
    elif damage == "wrong_version":
        lay.snapshot.write_text(json.dumps({**doc, "version": snapshot.VERSION + 1}))
    elif damage == "column_missing":
        del doc["trials"]["best"]
        lay.snapshot.write_text(json.dumps(doc))
    elif damage == "journal_rewritten":
        # the same events in other bytes: the snapshot's offset no longer falls after the same event
        lines = [json.dumps(json.loads(x)) for x in raw.decode().splitlines()]
        lay.journal.write_text("\n".join(lines) + "\n")
    elif damage == "offset_beyond_journal":
        lay.journal.write_bytes(raw[: doc["offset"] // 2].rsplit(b"\n", 1)[0] + b"\n")
    elif damage == "journal_replaced":
        # a journal of the same length and head up to a byte before the offset (another sweep's, copied in)
        at = doc["offset"] - 30
        lay.journal.write_bytes(raw[:at] + (b"1" if raw[at : at + 1] != b"1" else b"2") + raw[at + 1 :])
    st = Store(sweep).refresh()
    assert st.fingerprint != "from-snapshot"
    assert_same(st, scratch(sweep))


def test_no_snapshot_while_a_torn_line_is_pending(sweep: Path):
    lay = Layout(sweep)
    before = lay.snapshot.read_bytes()
    with open(lay.journal, "ab") as f:
        f.write(b'{"ev":"stop"')
    j = Journal(lay.journal, snapshot=lay.snapshot)
    j.refresh()
    assert not j.write_snapshot() and lay.snapshot.read_bytes() == before
    assert not Journal(lay.journal).write_snapshot()  # a journal with no snapshot path writes none


def test_layout_and_readme_name_the_snapshot(tmp_path: Path):
    assert Layout(tmp_path).snapshot == tmp_path / "snapshot.json"
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"## The sweep directory\n(.*?)\n## ", readme, re.DOTALL).group(1)
    assert "snapshot.json" in section
