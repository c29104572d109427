"""A compacted snapshot of the folded journal: a cache that spares readers most of the fold.

The master writes it after each stage (`Journal.write_snapshot`); a journal's first refresh loads
it instead of parsing the events before its offset, then folds the tail as usual. It is only a
cache: anything wrong with it (missing, corrupt, another version, or not matching the journal's
bytes at its offset) and the journal is folded from the start.

Format: one JSON object, trial records by column (one list per `TrialRecord` field: a 100,000-trial
sweep loads in a fraction of the time its 200,000 events take to parse and fold).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from hpsearch.errors import StoreError
from hpsearch.store.atomic import atomic_write_bytes
from hpsearch.store.fold import STATES, SweepState, TrialRecord

VERSION = 3  # 2: the stop reason (stop_reason); 3: the trials judged before the last resume (judged)
CHECK_BYTES = 256  # the journal's first and last bytes before the offset identify it
FIELDS = [f.name for f in dataclasses.fields(TrialRecord)]


def journal_check(f: BinaryIO, offset: int) -> str:
    """A hash of the journal's head and of the bytes just before `offset`: a snapshot of another
    journal, or of this one before it was truncated or rewritten, does not match it."""
    f.seek(0)
    head = f.read(min(CHECK_BYTES, offset))
    f.seek(max(0, offset - CHECK_BYTES))
    tail = f.read(offset - max(0, offset - CHECK_BYTES))
    return hashlib.sha256(head + b"\0" + tail).hexdigest()


def encode(state: SweepState, offset: int, check: str) -> bytes:
    recs = list(state.trials.values())
    cols: dict[str, list[Any]] = {name: [getattr(t, name) for t in recs] for name in FIELDS}
    cols["state"] = [s.value for s in cols["state"]]
    stages = [[k, ev] for k, ev in state.stages.items()]  # JSON keys are strings; stage numbers are not
    doc = {
        "version": VERSION,
        "offset": offset,
        "check": check,
        "fields": FIELDS,
        "trials": cols,
        "stages": stages,
        "stages_done": list(state.stages_done),
        "queue": list(state.queue),
        "requeued": list(state.requeued),
        "fingerprint": state.fingerprint,
        "done": state.done,
        "stop": state.stop,
        "stop_reason": state.stop_reason,
        "bad_lines": state.bad_lines,
        "judged": sorted(state.judged),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(data: bytes) -> tuple[SweepState, int, str] | None:
    """(state, journal offset, check) from a snapshot's bytes; None if they are not a valid one."""
    try:
        doc = json.loads(data)
        if doc.get("version") != VERSION or doc.get("fields") != FIELDS:
            return None
        cols = doc["trials"]
        columns = [cols[name] for name in FIELDS]
        if len({len(c) for c in columns}) > 1:
            return None
        cols["state"][:] = [STATES[s] for s in cols["state"]]
        trials = {t.trial: t for t in map(TrialRecord, *columns)}
        stages = {k: ev for k, ev in doc["stages"]}
        state = SweepState(
            fingerprint=doc["fingerprint"],
            trials=trials,
            stages=stages,
            stages_done=set(doc["stages_done"]),
            queue=dict.fromkeys(doc["queue"]),
            requeued=dict.fromkeys(doc["requeued"]),
            done=bool(doc["done"]),
            stop=bool(doc["stop"]),
            stop_reason=doc.get("stop_reason"),
            bad_lines=int(doc["bad_lines"]),
            judged=set(doc["judged"]),
        )
        offset, check = int(doc["offset"]), str(doc["check"])
        named = [*state.queue, *state.requeued, *(tid for ev in stages.values() for tid in ev["trials"])]
        if offset <= 0 or not all(tid in trials for tid in named):
            return None  # not a fold of any journal: a later claim or report would fail on it
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return state, offset, check


def load(path: Path, journal: BinaryIO) -> tuple[SweepState, int] | None:
    """The snapshot at `path` if it matches the open journal, with the offset to read on from."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    got = decode(data)
    if got is None:
        return None
    state, offset, check = got
    if journal.seek(0, os.SEEK_END) < offset or journal_check(journal, offset) != check:
        return None
    journal.seek(offset)
    return state, offset


def write(path: Path, data: bytes) -> bool:
    """Write atomically (temp beside it, then rename); False if it could not be written."""
    try:
        atomic_write_bytes(path, data)
        return True
    except StoreError:
        return False
