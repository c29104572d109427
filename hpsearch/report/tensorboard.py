"""The sweep as TensorBoard event files: per-epoch scalars and the HParams plugin's summaries.

Layout under OUT (the `--logdir` to give TensorBoard):

    OUT/events.out.tfevents.*          the HParams experiment: every parameter (with its domain),
                                       `stage` and `status` as discrete hparams, the metrics
    OUT/<trial>/events.out.tfevents.*  one run per trial: every numeric per-epoch metric of
                                       metrics.jsonl as a scalar (tag = the metric's name, step =
                                       epoch, wall time = when the epoch was recorded), then
                                       `best/<metric>` (step = best epoch) and the trial's HParams
                                       session (its parameter values, stage and status)

Written with `torch.utils.tensorboard` (needs the `tensorboard` package: `pip install
'hpsearch[tensorboard]'`). A trial's event files are always rewritten whole, so exporting twice,
or after the trial ran on, never duplicates a point. `export` writes a finished sweep (or a
snapshot of a running one) at once; `LiveTensorBoard` is what the master runs when the sweep file
sets `tensorboard:`, appending each new epoch as it is reported and rewriting a trial once it ends.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.report.sweepdata import BOOKKEEPING, SweepData
from hpsearch.search import space as sp
from hpsearch.store.fold import State, SweepState, TrialRecord
from hpsearch.store.sweepdir import Store

STATUSES = [s.value for s in State]  # every status a run has (pruned was missing)
MARKER = ".hpsearch.json"  # in a trial's run: the result it shows (TensorBoard ignores the file)
INSTALL = "TensorBoard export needs the tensorboard package: pip install 'hpsearch[tensorboard]'"


def require_tensorboard() -> None:
    """Raise one clear HpsearchError when torch.utils.tensorboard cannot be used."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise HpsearchError(INSTALL) from None


def _writer(logdir: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(logdir), flush_secs=10)


def _clear(logdir: Path) -> None:
    """Delete the event files of one run (ours: TensorBoard's own name pattern), keep the rest."""
    for p in logdir.glob("events.out.tfevents.*"):
        p.unlink(missing_ok=True)


def _hparam_value(v: Any) -> Any:
    """A value TensorBoard's HParams accepts: numbers, strings and booleans as they are, the rest as JSON."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, default=str)


def _result(t: TrialRecord) -> dict[str, Any]:
    return {"status": t.state.value, "attempt": t.attempt, "epochs": t.epochs_done, "best": t.best}


def _scalars(line: dict[str, Any]) -> list[tuple[str, float]]:
    return [
        (k, float(v))
        for k, v in line.items()
        if k not in BOOKKEEPING and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]


class Experiment:
    """The HParams experiment of one sweep: what every session's hparams and metrics are."""

    def __init__(self, sweep: Any, space: dict[str, Any]) -> None:
        self.metric = sweep.metric.name
        self.n_stages = len(sweep.stages)
        self.space = space  # stage 1's ranges (stages/stage-1.json), or the sweep file's
        self.metrics: dict[str, None] = {f"best/{self.metric}": None}

    def summaries(self) -> list[Any]:
        from torch.utils.tensorboard.summary import hparams

        template: dict[str, Any] = {"stage": 1, "status": "finished"}
        discrete: dict[str, list[Any]] = {"stage": list(range(1, self.n_stages + 1)), "status": STATUSES}
        for name, d in self.space.items():
            dim = sp.from_dict(d) if isinstance(d, dict) else d
            if isinstance(dim, sp.Categorical):
                vals = [_hparam_value(v) for v in dim.values]
                # HParams wants one type per discrete domain: mixed values go as text
                if len({type(v) for v in vals}) > 1 or isinstance(vals[0], bool):
                    vals = [str(v) for v in vals]
                template[name], discrete[name] = vals[0], vals
            elif isinstance(dim, sp.Constant):
                template[name] = _hparam_value(dim.value)
            else:
                template[name] = 0.0
        exp, _, _ = hparams(template, dict.fromkeys(self.metrics, 0.0), hparam_domain_discrete=discrete)
        return [exp]

    def session(self, t: TrialRecord, status: str) -> list[Any]:
        """The session start and end summaries of one trial."""
        from torch.utils.tensorboard.summary import hparams

        values: dict[str, Any] = {"stage": int(t.stage), "status": status}
        for name, v in t.params.items():
            if v is None:
                continue
            dim = self.space.get(name)
            kind = dim.get("kind") if isinstance(dim, dict) else None
            if kind == "categorical" and not isinstance(v, (int, float, str)) or isinstance(v, bool):
                v = str(v)
            values[name] = _hparam_value(v)
        _, ssi, sei = hparams(values, {})
        return [ssi, sei]


class TensorBoardExport:
    """Writes trials' runs and the experiment under `out`; `write_trial` replaces a run whole."""

    def __init__(self, store: Store, sweep: Any, out: str | Path, space: dict[str, Any] | None = None) -> None:
        require_tensorboard()
        self.store, self.sweep, self.out = store, sweep, Path(out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HpsearchError(f"tensorboard: cannot create {self.out}: {e.strerror}") from None
        if space is None:
            first = store.state.stages.get(1)
            space = first["space"] if first else {n: sp.to_dict(d) for n, d in sweep.space.items()}
        self.experiment = Experiment(sweep, space)
        self._experiment_written: tuple[str, ...] = ()

    def write_experiment(self) -> None:
        """(Re)write OUT's experiment summary when the set of metrics grew."""
        key = tuple(self.experiment.metrics)
        if key == self._experiment_written:
            return
        _clear(self.out)
        w = _writer(self.out)
        for s in self.experiment.summaries():
            w._get_file_writer().add_summary(s)
        w.close()
        self._experiment_written = key

    def append(self, w: Any, lines: list[dict[str, Any]]) -> None:
        """Each line's numeric metrics as scalars at step = epoch."""
        for line in lines:
            wall = line.get("time") if isinstance(line.get("time"), (int, float)) else None
            for tag, v in _scalars(line):
                self.experiment.metrics.setdefault(tag)
                w.add_scalar(tag, v, int(line["epoch"]), walltime=wall)

    def write_trial(self, t: TrialRecord, hparams: bool = True) -> int:
        """Rewrite trial t's run from its metrics.jsonl; with `hparams`, its session and best, and
        the marker `.hpsearch.json` that says which result the run shows. Returns the number of
        epochs written (0: nothing to write, no run made)."""
        lines = self.store.metrics(t.trial)
        logdir = self.out / t.trial
        if not lines:
            return 0
        logdir.mkdir(parents=True, exist_ok=True)
        _clear(logdir)
        (logdir / MARKER).unlink(missing_ok=True)
        w = _writer(logdir)
        self.append(w, lines)
        if hparams:
            self.finish(w, t)
        w.close()
        if hparams:
            (logdir / MARKER).write_text(json.dumps(_result(t)))
        return len(lines)

    def is_written(self, t: TrialRecord) -> bool:
        """Whether t's run already shows its current result (an earlier master or export wrote it)."""
        try:
            return bool(json.loads((self.out / t.trial / MARKER).read_text()) == _result(t))
        except (OSError, ValueError):
            return False

    def finish(self, w: Any, t: TrialRecord) -> None:
        """The trial's best metric and its HParams session, written into its open writer."""
        if t.best is not None and math.isfinite(t.best):
            w.add_scalar(f"best/{self.experiment.metric}", float(t.best), int(t.best_epoch or 0))
        for s in self.experiment.session(t, t.state.value):
            w._get_file_writer().add_summary(s)


def export(data: SweepData, out: str | Path) -> tuple[Path, int]:
    """Write every trial of `data` that reported an epoch, and the experiment, under `out`.

    Returns:
        (out, the number of trial runs written).
    Raises:
        HpsearchError: the tensorboard package is missing, or `out` cannot be created.
    """
    tb = TensorBoardExport(data.store, data.sweep, out)
    n = 0
    for trial in data.runs["trial"].tolist() if len(data.runs) else []:
        n += tb.write_trial(data.store.state.trials[trial]) > 0
    tb.write_experiment()
    return tb.out, n


class LiveTensorBoard:
    """What the master runs while the sweep goes on: `sync` appends the epochs reported since its
    last call (one open writer per running trial) and rewrites a trial whole once it has ended."""

    def __init__(self, store: Store, sweep: Any, out: str | Path) -> None:
        self.tb = TensorBoardExport(store, sweep, out)
        self.written: dict[str, int] = {}  # trial -> epochs written into its open writer
        self.writers: dict[str, Any] = {}
        self.done: set[str] = set()

    def sync(self, state: SweepState) -> None:
        """Bring OUT up to date with the journal's fold `state` (cheap: reads running trials' metrics)."""
        for tid, t in state.trials.items():
            if tid in self.done:
                continue
            if t.state.is_finished:
                self._close(tid)
                if self.tb.is_written(t):
                    self.done.add(tid)  # a master before this one wrote it: a resumed sweep is not rewritten
                elif self.tb.write_trial(t):
                    self.done.add(tid)
                elif t.epochs_done == 0:
                    self.done.add(tid)  # failed before its first epoch: no run to show
                continue
            if t.state.value != "running":
                self._close(tid)  # released back to the queue: its run restarts when claimed
                continue
            lines = self.tb.store.metrics(tid)
            if tid not in self.writers:
                if not lines:
                    continue
                (self.tb.out / tid).mkdir(parents=True, exist_ok=True)
                _clear(self.tb.out / tid)  # what an earlier master wrote: rewritten from the file
                (self.tb.out / tid / MARKER).unlink(missing_ok=True)
                self.writers[tid], self.written[tid] = _writer(self.tb.out / tid), 0
            new = [x for x in lines if int(x["epoch"]) > self.written[tid]]
            if new:
                self.tb.append(self.writers[tid], new)
                self.written[tid] = int(new[-1]["epoch"])
                self.writers[tid].flush()
        self.tb.write_experiment()

    def _close(self, tid: str) -> None:
        w = self.writers.pop(tid, None)
        if w is not None:
            w.close()
        self.written.pop(tid, None)

    def close(self) -> None:
        """Close the open writers (their runs stay, with the epochs written so far)."""
        for tid in list(self.writers):
            self._close(tid)
