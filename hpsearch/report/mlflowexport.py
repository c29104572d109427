"""The sweep as MLflow runs: one parent run for the sweep, one nested run per trial.

Per trial run (name = trial id, tag `mlflow.parentRunId` = the sweep's run):
    params   every parameter value (searched and fixed; lists and dicts as JSON), `seed`, `epochs`
    metrics  every numeric per-epoch metric of metrics.jsonl, step = epoch, timestamp = when the
             epoch was recorded; `best/<metric>` at step = the best epoch
    tags     `hpsearch.trial`, `stage`, `status` (finished, running, diverged, failed),
             `parent_trial` (the trial a promoted trial continues), `reason`, `device`
    status   FINISHED, RUNNING, or FAILED (diverged and failed trials)
    artifact with `checkpoints=True`: the best epoch's checkpoint under `checkpoints/`
The parent run (name = sweep name) has the sweep's metric, goal, trainable and stage count as
params, `best/<metric>` and the best trial as a tag.

Metric and parameter names keep their form where MLflow allows it (`eval/accuracy`); other
characters become `_` (`mlflow_key`). Running it again finds the runs by their tags
(`hpsearch.sweep_id`: the sweep's fingerprint and absolute directory; `hpsearch.trial`) and adds
only what is new: epochs reported since (tracked in the tag `hpsearch.epochs_logged`), status
changes, the checkpoint if not yet logged. It never creates a second run for a sweep or a trial.

Uses `MlflowClient` (`pip install 'hpsearch[mlflow]'`: mlflow-skinny, SQLAlchemy and Alembic,
enough for a local SQLite store); any tracking URI MLflow accepts works, `sqlite:///mlflow.db`
by default.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import HpsearchError
from hpsearch.report.sweepdata import BOOKKEEPING, SweepData
from hpsearch.store.fold import TrialRecord

DEFAULT_URI = "sqlite:///mlflow.db"
INSTALL = "MLflow export needs mlflow-skinny, SQLAlchemy and Alembic: pip install 'hpsearch[mlflow]'"
MLFLOW_STATUS = {"finished": "FINISHED", "running": "RUNNING", "diverged": "FAILED", "failed": "FAILED"}
BATCH = 1000  # MLflow's limit of metrics in one log_batch call


@dataclass
class ExportResult:
    """What `export` did: the experiment, the sweep's run, and counts of trial runs."""

    uri: str
    experiment: str
    parent_run_id: str
    created: int  # trial runs created by this call
    updated: int  # existing trial runs that got new epochs, status or artifacts
    unchanged: int
    epochs_logged: int  # per-epoch lines logged by this call (over all trials)


def require_mlflow() -> None:
    """Raise one clear HpsearchError when MlflowClient cannot be imported."""
    try:
        import sqlalchemy  # noqa: F401
        from mlflow.tracking import MlflowClient  # noqa: F401
    except ImportError:
        raise HpsearchError(INSTALL) from None


def normalize_uri(uri: str) -> str:
    """A tracking URI: a bare file name ending in .db or .sqlite becomes sqlite:///<absolute path>."""
    if "://" not in uri and uri.endswith((".db", ".sqlite")):
        return f"sqlite:///{os.path.abspath(uri)}"
    return uri


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a SQLite file (MLflow's default is ./mlruns
    under the working directory, wherever that happens to be)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return str((db.parent if db.is_absolute() else Path.cwd() / db.parent) / "mlartifacts")
    return None


def _quiet() -> None:
    # creating a SQLite store logs every Alembic migration at INFO: not the user's business
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


_KEY_OK = re.compile(r"[^A-Za-z0-9_\-. :/]")  # what MLflow allows in metric and param names


def mlflow_key(name: str) -> str:
    """A metric or parameter name as MLflow accepts it: other characters become `_` (`acc@1` -> `acc_1`)."""
    return _KEY_OK.sub("_", name)[:250]


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def sweep_id(data: SweepData) -> str:
    """The sweep's identity in MLflow: its fingerprint (journal `created`) and absolute directory."""
    key = f"{data.store.state.fingerprint}|{os.path.abspath(data.root)}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def export(
    data: SweepData,
    uri: str = DEFAULT_URI,
    experiment: str | None = None,
    checkpoints: bool = False,
) -> ExportResult:
    """Log the sweep in `data` to the MLflow tracking server or store at `uri` (see the module docstring).

    Args:
        data: the sweep, read with `hpsearch.open` / `sweepdata.load`.
        uri: an MLflow tracking URI (`sqlite:///mlflow.db`, `http://host:5000`, ...).
        experiment: the MLflow experiment (created if missing); default the sweep's name.
        checkpoints: also log each trial's best checkpoint file as an artifact.
    Raises:
        HpsearchError: MLflow is not installed, or it refused the URI or a request.
    """
    require_mlflow()
    _quiet()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = normalize_uri(uri)
    name = experiment or data.sweep.name
    try:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(name, _artifact_root(uri))
        return _Exporter(client, exp_id, data, uri, name, checkpoints).run()
    except MlflowException as e:
        raise HpsearchError(f"--mlflow {uri}: {str(e).splitlines()[0]}") from None


class _Exporter:
    def __init__(self, client: Any, exp_id: str, data: SweepData, uri: str, name: str, checkpoints: bool) -> None:
        self.client, self.exp_id, self.data, self.uri, self.name = client, exp_id, data, uri, name
        self.checkpoints = checkpoints
        self.sid = sweep_id(data)

    def run(self) -> ExportResult:
        parent = self._parent()
        existing = self._trial_runs(parent.info.run_id)
        created = updated = unchanged = epochs = 0
        state = self.data.store.state
        for trial in self.data.runs["trial"].tolist() if len(self.data.runs) else []:
            t = state.trials[trial]
            if t.state.value == "planned" and t.epochs_done == 0 and t.trial not in existing:
                continue  # never claimed: nothing to show yet
            run = existing.get(trial)
            if run is None:
                run = self.client.create_run(
                    self.exp_id,
                    run_name=trial,
                    tags={
                        "mlflow.parentRunId": parent.info.run_id,
                        "hpsearch.sweep_id": self.sid,
                        "hpsearch.trial": trial,
                    },
                )
                created += 1
                self._params(run.info.run_id, t)
                new = True
            else:
                new = False
            n, changed = self._trial(run, t)
            epochs += n
            if not new:
                updated += changed
                unchanged += not changed
        self._parent_summary(parent)
        return ExportResult(self.uri, self.name, parent.info.run_id, created, updated, unchanged, epochs)

    # -- the sweep's run -----------------------------------------------------------------------
    def _parent(self) -> Any:
        found = self.client.search_runs(
            [self.exp_id], filter_string=f"tags.`hpsearch.sweep_id` = '{self.sid}' and tags.`hpsearch.kind` = 'sweep'"
        )
        if found:
            return found[0]
        sweep = self.data.sweep
        run = self.client.create_run(
            self.exp_id,
            run_name=sweep.name,
            tags={
                "hpsearch.kind": "sweep",
                "hpsearch.sweep_id": self.sid,
                "hpsearch.dir": os.path.abspath(self.data.root),
            },
        )
        from mlflow.entities import Param

        params = [
            Param("metric", sweep.metric.name),
            Param("goal", sweep.metric.goal),
            Param("trainable", _text(sweep.trainable)[:6000]),
            Param("stages", str(len(sweep.stages))),
            Param("seed", str(sweep.seed)),
        ]
        self.client.log_batch(run.info.run_id, params=params)
        return run

    def _parent_summary(self, parent: Any) -> None:
        """The sweep's best value and trial, and its status; only what changed since the last export."""
        run_id, key = parent.info.run_id, mlflow_key(f"best/{self.data.metric}")
        best = self.data.best
        if best is not None and (
            parent.data.metrics.get(key) != best["value"] or parent.data.tags.get("best_trial") != best["trial"]
        ):
            self.client.log_metric(run_id, key, best["value"], step=best["stage"])
            self.client.set_tag(run_id, "best_trial", best["trial"])
        status = "FINISHED" if self.data.store.state.done else "RUNNING"
        if parent.info.status != status:
            if status == "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            else:
                self.client.set_terminated(run_id, status)

    def _trial_runs(self, parent_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.exp_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
                max_results=1000,
                page_token=token,
            )
            for r in page:
                out.setdefault(r.data.tags.get("hpsearch.trial"), r)
            token = page.token
            if not token:
                return out

    # -- one trial's run -----------------------------------------------------------------------
    def _params(self, run_id: str, t: TrialRecord) -> None:
        from mlflow.entities import Param

        params = [Param(mlflow_key(k), _text(v)[:6000]) for k, v in t.params.items()]
        params += [Param("seed", str(t.seed)), Param("epochs", str(t.epochs))]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            self.client.log_batch(run_id, params=params[i : i + 100])

    def _trial(self, run: Any, t: TrialRecord) -> tuple[int, bool]:
        """Log what is new for trial t; returns (epochs logged, whether anything changed)."""
        from mlflow.entities import Metric, RunTag

        run_id, tags = run.info.run_id, run.data.tags
        logged = int(tags.get("hpsearch.epochs_logged", 0))
        lines = [x for x in self.data.store.metrics(t.trial) if int(x["epoch"]) > logged]
        now = int(time.time() * 1000)
        metrics = []
        for line in lines:
            ts = int(line["time"] * 1000) if isinstance(line.get("time"), (int, float)) else now
            for k, v in line.items():
                if k not in BOOKKEEPING and isinstance(v, (int, float)) and not isinstance(v, bool):
                    metrics.append(Metric(mlflow_key(k), float(v), ts, int(line["epoch"])))
        if t.best is not None and math.isfinite(t.best) and (lines or tags.get("status") != t.state.value):
            metrics.append(Metric(mlflow_key(f"best/{self.data.metric}"), float(t.best), now, int(t.best_epoch or 0)))
        want = {
            "stage": str(t.stage),
            "status": t.state.value,
            "parent_trial": t.parent or "",
            "reason": (t.reason or "")[:5000],
            "device": t.device or "",
        }
        if lines:
            want["hpsearch.epochs_logged"] = str(int(lines[-1]["epoch"]))
        new_tags = [RunTag(k, v) for k, v in want.items() if tags.get(k, "") != v and (v or k in tags)]
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + BATCH])
        if new_tags:
            self.client.log_batch(run_id, tags=new_tags)
        changed = bool(lines or new_tags)
        if self.checkpoints and t.best is not None:
            changed |= self._checkpoint(run_id, t, tags)
        status = MLFLOW_STATUS.get(t.state.value)
        if status is not None and run.info.status != status:
            if status == "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            else:
                self.client.set_terminated(run_id, status)
            changed = True
        return len(lines), changed

    def _checkpoint(self, run_id: str, t: TrialRecord, tags: dict[str, str]) -> bool:
        from hpsearch.report.frames import best_checkpoint

        name = best_checkpoint(self.data.store.state, t, self.data.metric)
        if not name or tags.get("hpsearch.checkpoint") == name:
            return False
        path = self.data.store.layout.checkpoint(name)
        if not path.is_file():
            return False  # deleted by retention (keep_top) or not written
        self.client.log_artifact(run_id, str(path), "checkpoints")
        self.client.set_tag(run_id, "hpsearch.checkpoint", name)
        return True
