"""The sweep directory: `Layout` names its paths, `Store` reads and writes them.

Layout (every file and journal event with its fields: docs/ARCHITECTURE.md "The sweep directory"):
    sweep.yaml, source.json, master.json, journal.jsonl(+.lock), snapshot.json, stages/stage-<k>.json,
    trials/<trial>/{params.json, metrics.jsonl, worker.log, error.txt, attempt-<n>/},
    checkpoints/<trial>_ep<NNN>_<metric><value>.pt, workers/<worker>.json
The launchers name their own files under workers/ (worker output, Slurm scripts and exit files).
Every file a reader may see is written to a temporary name beside it and `os.replace`d.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import StoreError, store_write_error
from hpsearch.store.atomic import append_whole, atomic_write_bytes, unlink_missing_ok
from hpsearch.store.fold import State, SweepState, TrialRecord
from hpsearch.store.journal import Journal

CKPT_RE = re.compile(
    r"^(?P<trial>s\d+-t\d+(?:-r\d+)?)_ep(?P<epoch>\d+)_(?P<metric>[A-Za-z0-9_.~-]+?)"
    r"(?P<value>-?(?:\d+\.\d+(?:e[-+]?\d+)?|nan|inf))\.pt$"
)
_FILE_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def metric_file_form(metric: str) -> str:
    """A metric name as it appears in a checkpoint's file name: letters, digits, `_`, `.` and `-`
    kept, every other byte of its UTF-8 as `~XX` (hex): `val/loss` -> `val~2Floss`."""
    return _FILE_SAFE.sub(lambda m: "".join(f"~{b:02X}" for b in m.group(0).encode()), metric)


def metric_from_file_form(text: str) -> str:
    """The metric name back from `metric_file_form`."""
    return re.sub(rb"~([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode()).decode(errors="replace")


@dataclass(frozen=True)
class CheckpointName:
    trial: str
    epoch: int
    metric: str
    value: float

    @property
    def name(self) -> str:
        return format_checkpoint(self.trial, self.epoch, self.metric, self.value)


def format_checkpoint(trial: str, epoch: int, metric: str, value: float) -> str:
    """`<trial>_ep<NNN>_<metric><value>.pt`, the metric in its file form (`metric_file_form`)."""
    if not (
        metric.isascii() and metric.isidentifier()
    ):  # an identifier is its own file form: the common case stays cheap
        metric = metric_file_form(metric)
    if -math.inf < value < math.inf:  # finite: the common case first (a report names 100,000)
        return f"{trial}_ep{epoch:03d}_{metric}{value:.4f}.pt"
    v = "nan" if value != value else "inf" if value > 0 else "-inf"
    return f"{trial}_ep{epoch:03d}_{metric}{v}.pt"


def parse_checkpoint(name: str, metric: str | None = None) -> CheckpointName | None:
    """The parts of a checkpoint's file name. Give the sweep's `metric` where it is known: a name
    ending in digits or `-` (`top1`, `val-`) cannot otherwise be told from the value that follows."""
    m = CKPT_RE.match(name)
    if not m:
        return None
    if metric is not None:
        head = f"{m['trial']}_ep{m['epoch']}_{metric_file_form(metric)}"
        rest = name[len(head) : -len(".pt")]
        if not name.startswith(head) or not re.fullmatch(r"-?(?:\d+\.\d+(?:e[-+]?\d+)?|nan|inf)", rest):
            return None
        return CheckpointName(m["trial"], int(m["epoch"]), metric, float(rest))
    return CheckpointName(m["trial"], int(m["epoch"]), metric_from_file_form(m["metric"]), float(m["value"]))


class Layout:
    """Every path inside a sweep directory, from (root, trial)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.sweep_yaml = self.root / "sweep.yaml"
        self.journal = self.root / "journal.jsonl"
        self.snapshot = self.root / "snapshot.json"  # a cache of the journal's fold (store/snapshot.py)
        self.stages = self.root / "stages"
        self.trials = self.root / "trials"
        self.checkpoints = self.root / "checkpoints"
        self.workers = self.root / "workers"
        self.master = self.root / "master.json"
        self.master_log = self.root / "master.log"  # a master started with --detach (or after SIGHUP) writes here
        self.source = self.root / "source.json"
        self.preflight = self.root / "preflight.json"  # `hpsearch check`: verdicts and the lr range test
        self.ensemble = self.root / "ensemble.json"  # `hpsearch ensemble`: accuracy curves of ensembles

    def stage_file(self, k: int) -> Path:
        return self.stages / f"stage-{k}.json"

    def trial_dir(self, trial: str) -> Path:
        if not isinstance(trial, str) or not re.fullmatch(r"s\d+-t\d+(-r\d+)?", trial):  # `$` allows a final \n
            raise StoreError(f"invalid trial id {trial!r}")
        return self.trials / trial

    def params_file(self, trial: str) -> Path:
        return self.trial_dir(trial) / "params.json"

    def metrics_file(self, trial: str) -> Path:
        return self.trial_dir(trial) / "metrics.jsonl"

    def log_file(self, trial: str) -> Path:
        return self.trial_dir(trial) / "worker.log"

    def error_file(self, trial: str) -> Path:
        return self.trial_dir(trial) / "error.txt"

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / name

    def program_dir(self, trial: str, attempt: int) -> Path:
        """Scratch folder of one attempt of a `command` trainable: its metrics file and checkpoints."""
        return self.trial_dir(trial) / f"attempt-{attempt}"

    def heartbeat(self, worker: str) -> Path:
        return self.workers / f"{worker}.json"

    def ensure(self) -> None:
        for d in (self.root, self.stages, self.trials, self.checkpoints, self.workers):
            d.mkdir(parents=True, exist_ok=True)


# -- atomic files ------------------------------------------------------------------------
def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        raise StoreError(f"{path} is corrupt (not valid JSON); delete it or restore it from a backup") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSON-lines file; a torn or garbage line is skipped, never fatal."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in raw.split(b"\n"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


class Store:
    """A sweep directory: its journal-folded state, and the reads and writes every process needs."""

    def __init__(self, root: str | Path, lock: str = "auto", lock_timeout: float = 120.0) -> None:
        self.layout = Layout(root)
        self.journal = Journal(self.layout.journal, lock, lock_timeout, snapshot=self.layout.snapshot)

    @property
    def state(self) -> SweepState:
        return self.journal.state

    def exists(self) -> bool:
        return self.layout.journal.exists()

    def missing(self) -> str:
        """Why this is no sweep directory, in one phrase: the path does not exist, is a file, or has
        no journal (for an error message; call when `exists()` is False)."""
        root = self.layout.root
        if not Path(root).exists():
            return f"{root} does not exist (a typo in the path?)"
        if not Path(root).is_dir():
            return f"{root} is a file, not a sweep directory"
        return f"{root} is not a sweep directory (no journal.jsonl)"

    def refresh(self) -> SweepState:
        return self.journal.refresh()

    # -- the sweep file ----------------------------------------------------------------------
    def write_sweep(self, text: str, source_dir: str, name: str | None = None) -> None:
        """Keep the sweep file verbatim, where it came from (relative paths resolve there) and the
        sweep's name (a file without `name:` is named after the file, which sweep.yaml is not)."""
        atomic_write_bytes(self.layout.sweep_yaml, text.encode())
        atomic_write_json(self.layout.source, {"source_dir": source_dir, "name": name})

    def load_sweep(self) -> Any:
        """The sweep as started (not the file in sweeps/, which may have changed since)."""
        from hpsearch.store import sweepfile

        if not self.layout.sweep_yaml.exists():
            raise StoreError(
                f"{self.layout.root} lacks sweep.yaml; restart the master with the sweep file "
                "(hpsearch master start SWEEP.yaml --dir DIR) to restore it"
            )
        src = read_json(self.layout.source) or {}
        sweep, _ = sweepfile.load(
            self.layout.sweep_yaml, source_dir=src.get("source_dir"), default_name=src.get("name")
        )
        return sweep

    # -- trials --------------------------------------------------------------------------
    def claim(self, worker: str, n: int = 1, info: dict[str, Any] | None = None) -> list[TrialRecord]:
        """Claim up to n queued trials of one stage and epoch count, in queue order, for `worker`
        (one lock hold; never two owners per trial). `info` (e.g. {"device": "cuda:0 (GPU 1)"}) is
        recorded in each claim event."""
        with self.journal.locked():
            st = self.journal.refresh()
            if st.stop:
                return []
            picked: list[TrialRecord] = []
            for tid in st.next_queued():
                t = st.trials[tid]
                if picked and (t.epochs != picked[0].epochs or t.stage != picked[0].stage):
                    break  # a batch trains together: stop at the first trial that cannot join it
                picked.append(t)
                if len(picked) >= n:
                    break
            if not picked:
                return []
            self.journal.append_locked(
                [
                    {"ev": "claim", "trial": t.trial, "worker": worker, "attempt": t.attempt + 1, **(info or {})}
                    for t in picked
                ]
            )
        return [st.trials[t.trial] for t in picked if st.trials[t.trial].worker == worker]

    def owns(self, trial: str, attempt: int) -> bool:
        """Whether this claim still holds (refreshes from the journal; no lock needed)."""
        t = self.journal.refresh().trials.get(trial)
        return t is not None and t.state is State.RUNNING and t.attempt == attempt

    def finish(
        self,
        trial: str,
        attempt: int,
        status: str,
        best: float | None,
        best_epoch: int | None,
        epochs_done: int,
        reason: str | None = None,
        resumable: bool = True,
        update_ratio: float | None = None,
        diverged_reported: bool = False,
    ) -> bool:
        """Record a result if the claim still holds; False when another worker owns the trial now.
        `resumable=False`: the trial wrote no checkpoint it could resume from (recorded as such).
        `update_ratio`: the median of the update-to-weight ratios its epochs reported, if any."""
        with self.journal.locked():
            if not self.owns(trial, attempt):  # owns() refreshes the state
                return False
            t = self.state.trials[trial]
            # worker and device repeat the claim's: a result alone says who trained the trial, on what
            self.journal.append_locked(
                [
                    {
                        "ev": "result",
                        "trial": trial,
                        "attempt": attempt,
                        "status": status,
                        "best": _finite(best),
                        "best_epoch": best_epoch,
                        "epochs_done": epochs_done,
                        "reason": reason,
                        "worker": t.worker,
                        "device": t.device,
                        **({} if resumable else {"resumable": False}),
                        **({"diverged_reported": True} if diverged_reported else {}),
                        **({} if _finite(update_ratio) is None else {"update_ratio": _finite(update_ratio)}),
                    }
                ]
            )
        return True

    def rung(
        self, trial: str, attempt: int, epoch: int, value: float | None, decide: Callable[[list[float]], Any]
    ) -> Any | None:
        """Record a trial's value at a rung and decide, under the lock, whether it stops there.

        `decide(others)` gets the values the stage's other trials recorded at this rung before now
        (the journal's order) and returns an object with a bool `stop` (search.earlystop.Decision).
        The `rung` event carries the value and the decision, so a decision is a pure function of
        the events before it. Returns the Decision; a trial that already has a decision at this
        epoch (taken by an earlier attempt: it stands) gets that one back, with only its `stop`;
        None when the claim is lost.
        """
        with self.journal.locked():
            if not self.owns(trial, attempt):  # owns() refreshes the state
                return None
            st = self.state
            t = st.trials[trial]
            old = t.rung(epoch)
            if old is not None:
                return _Previous(bool(old[2]))
            d = decide(st.rung_values(t.stage, epoch, exclude=trial))
            self.journal.append_locked(
                [
                    {
                        "ev": "rung",
                        "trial": trial,
                        "attempt": attempt,
                        "epoch": epoch,
                        "value": _finite(value),
                        "stop": d.stop,
                    }
                ]
            )
        return d

    def release(
        self, trial: str, attempt: int, reason: str, lost: bool = False, epochs_done: int | None = None
    ) -> bool:
        """Give a claimed trial back to the queue (stopped, or its worker vanished)."""
        with self.journal.locked():
            if not self.owns(trial, attempt):  # owns() refreshes the state
                return False
            ev = {"ev": "release", "trial": trial, "attempt": attempt, "reason": reason, "lost": lost}
            if epochs_done is not None:
                ev["epochs_done"] = epochs_done
            self.journal.append_locked([ev])
        return True

    def requeue_lost(self, lost: dict[str, str], retries: int) -> list[tuple[str, str]]:
        """Requeue trials whose workers vanished ({trial: why}); fail those past the retry limit."""
        actions = []
        with self.journal.locked():
            st = self.journal.refresh()
            events = []
            for tid, why in lost.items():
                t = st.trials.get(tid)
                if t is None or t.state is not State.RUNNING:
                    continue
                if t.lost + 1 > retries:
                    events.append(
                        {
                            "ev": "result",
                            "trial": tid,
                            "attempt": t.attempt,
                            "status": "failed",
                            "worker": t.worker,
                            "device": t.device,
                            "best": None,
                            "best_epoch": None,
                            "epochs_done": t.epochs_done,
                            "reason": f"worker lost {t.lost + 1} times (retry limit {retries}); last: {why}",
                        }
                    )
                    actions.append((tid, "failed"))
                else:
                    events.append({"ev": "release", "trial": tid, "attempt": t.attempt, "reason": why, "lost": True})
                    actions.append((tid, "requeued"))
            if events:
                self.journal.append_locked(events)
        return actions

    def time_out(
        self,
        trial: str,
        attempt: int,
        why: str,
        retries: int,
        best: float | None = None,
        best_epoch: int | None = None,
        epochs_done: int | None = None,
    ) -> str | None:
        """A trial whose epoch outlived `epoch_timeout`: requeued like a lost worker's (counts toward
        `retries`), or failed with reason "timeout: ..." past the limit, keeping what its finished
        epochs reached (`best`, `best_epoch`, `epochs_done`: the worker's Trial knows them; a
        failure by exception keeps them too). Returns "requeued", "failed", or None when the claim
        no longer holds."""
        with self.journal.locked():
            if not self.owns(trial, attempt):  # owns() refreshes the state
                return None
            t = self.state.trials[trial]
            if t.lost + 1 > retries:
                reason = f"timeout: {why}" + (f" ({t.lost + 1} times, retry limit {retries})" if retries else "")
                ev: dict[str, Any] = {
                    "ev": "result",
                    "trial": trial,
                    "attempt": attempt,
                    "status": "failed",
                    "best": best,
                    "best_epoch": best_epoch if best is not None else None,
                    "epochs_done": t.epochs_done if epochs_done is None else epochs_done,
                    "reason": reason,
                    "worker": t.worker,
                    "device": t.device,
                }
                action = "failed"
            else:
                ev = {"ev": "release", "trial": trial, "attempt": attempt, "reason": f"timeout: {why}", "lost": True}
                action = "requeued"
            self.journal.append_locked([ev])
        return action

    def trial_files_ready(self, t: TrialRecord) -> None:
        """Create the trial's folder and params.json (rewritten if missing: the journal has them)."""
        d = self.layout.trial_dir(t.trial)
        d.mkdir(parents=True, exist_ok=True)
        pf = self.layout.params_file(t.trial)
        if not pf.exists():
            atomic_write_json(
                pf,
                {
                    "trial": t.trial,
                    "config": t.config,
                    "stage": t.stage,
                    "params": t.params,
                    "seed": t.seed,
                    "epochs": t.epochs,
                    "parent": t.parent,
                },
            )

    # -- metrics and checkpoints -------------------------------------------------------------
    def append_metrics(self, trial: str, line: dict[str, Any]) -> None:
        path = self.layout.metrics_file(trial)
        data = (json.dumps(line, default=_json_default) + "\n").encode()
        try:
            append_whole(path, data)
        except OSError as e:
            raise store_write_error(path, e) from None

    def metrics(self, trial: str) -> list[dict[str, Any]]:
        """One line per epoch (the latest attempt wins), sorted by epoch."""
        by_epoch: dict[int, dict[str, Any]] = {}
        for line in read_jsonl(self.layout.metrics_file(trial)):
            e = line.get("epoch")
            if isinstance(e, int) and line.get("attempt", 0) >= by_epoch.get(e, {}).get("attempt", 0):
                by_epoch[e] = line
        return [by_epoch[e] for e in sorted(by_epoch)]

    def rewrite_metrics(self, trial: str, lines: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(x, default=_json_default) + "\n" for x in lines).encode()
        atomic_write_bytes(self.layout.metrics_file(trial), data)

    def save_checkpoint(self, name: str, payload: dict[str, Any], verify: bool = False) -> Path:
        """Write a checkpoint (torch.save). `verify`: read it back first as `load_checkpoint` will
        (weights_only) and raise ValueError, writing nothing, when it cannot be: a state holding a
        module, a function or a numpy array would be written, then never resumed from."""
        import torch  # imported here: the rest of the store must stay light for report and master

        path = self.layout.checkpoint(name)
        buf = io.BytesIO()
        torch.save(payload, buf)  # in memory, then one write: torch's zip writer makes a dozen small ones
        if verify:
            try:
                torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
            except Exception as e:
                why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), type(e).__name__)
                raise ValueError(
                    f"report(state=...): the state cannot be read back to resume from ({why.split('. Please')[0]}); "
                    "state may hold tensors, dicts, lists, tuples, numbers, strings and None: save a module's "
                    "state_dict(), not the module or its class"
                ) from None
        atomic_write_bytes(path, buf.getbuffer())
        return path

    def adopt_checkpoint(self, src: Path, name: str) -> Path:
        """Move a file a user program wrote into the canonical checkpoint name."""
        dest = self.layout.checkpoint(name)
        try:
            os.replace(src, dest)
        except OSError:  # another filesystem: copy to a temp beside dest, then rename
            atomic_write_bytes(dest, Path(src).read_bytes())
            unlink_missing_ok(Path(src))
        return dest

    def load_checkpoint(self, name: str) -> dict[str, Any] | None:
        """Read a checkpoint with weights_only=True (nothing is unpickled); None if unreadable."""
        import torch

        path = self.layout.checkpoint(name)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # truncated, garbage, or not ours: resume from scratch instead
            return None

    def delete_checkpoint(self, name: str) -> None:
        unlink_missing_ok(self.layout.checkpoint(name))

    def checkpoint_files(self) -> set[str]:
        """The names of the files in checkpoints/ now (one scandir; empty before the folder exists)."""
        try:
            with os.scandir(self.layout.checkpoints) as it:
                return {entry.name for entry in it}
        except FileNotFoundError:
            return set()

    def checkpoint_names(self) -> Iterator[CheckpointName]:
        try:
            with os.scandir(self.layout.checkpoints) as it:
                for entry in it:
                    c = parse_checkpoint(entry.name)
                    if c is not None:
                        yield c
        except FileNotFoundError:
            return

    def log_note(self, trial: str, text: str) -> None:
        """Append one `hpsearch: ...` line to the trial's worker.log (what the trainable prints follows)."""
        path = self.layout.log_file(trial)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"hpsearch: {text}\n")

    def write_error(self, trial: str, text: str) -> None:
        atomic_write_bytes(self.layout.error_file(trial), text.encode())

    # -- heartbeats ------------------------------------------------------------------------
    def beat(self, worker: str, info: dict[str, Any]) -> None:
        atomic_write_json(self.layout.heartbeat(worker), {"worker": worker, **info})

    def heartbeats(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            entries = list(os.scandir(self.layout.workers))
        except FileNotFoundError:
            return out
        for entry in entries:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                try:
                    hb = json.loads(Path(entry.path).read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(hb, dict) and "worker" in hb:
                    out[hb["worker"]] = hb
        return out


@dataclass(frozen=True)
class _Previous:
    """A rung decision taken by an earlier attempt of the trial (it stands)."""

    stop: bool


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
