"""Where users already look: the notebook API (`hpsearch.open`), TensorBoard (read back with
TensorBoard's own reader) and MLflow (a real SQLite store read back with MlflowClient), on a real
two-stage sweep with promotion run by the real CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import claimed_trial, run_cli, write_sweep

import hpsearch
from hpsearch.cli import main
from hpsearch.store.sweepdir import Store, read_jsonl

SWEEP = """
name: bridges
metric: {name: val_acc, goal: maximize}
seed: 5
trainable: {builtin: classifier, dataset: digits, hidden: [16], optimizer: momentum, max_batches: 4}
parameters:
  lr:       {distribution: log_uniform_values, min: 1.0e-3, max: 1}
  reg:      {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}
  batch:    {values: [32, 64]}
stages:
  - {trials: 10, epochs: 1}
  - {trials: 2, epochs: 3, top: 3, promote: 2}
workers: 1
heartbeat: 0.2
stale_after: 5
tensorboard: tb-live
"""
SKIP = ("epoch", "attempt", "checkpoint", "time", "adopted")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> str:
    """A real sweep (10 trials, then 2 fresh and 2 promoted), TensorBoard written live, by the CLI."""
    d = tmp_path_factory.mktemp("bridges")
    root = str(d / "run")
    r = run_cli("master", "start", str(write_sweep(d, SWEEP, "sweep.yaml")), "--dir", root, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"TensorBoard: writing live to {d / 'tb-live'}" in r.stdout
    return root


def metrics_of(root: str, trial: str) -> list[dict]:
    """metrics.jsonl as the user sees it (one line per epoch, the last attempt's)."""
    return Store(root).metrics(trial)


def numeric(line: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in line.items()
        if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


# -- the reading API -------------------------------------------------------------------------
def test_open_returns_the_sweep_as_data(sweep_dir):
    sw = hpsearch.open(sweep_dir)
    runs = sw.runs
    assert isinstance(runs, pd.DataFrame) and len(runs) == 14
    for col in ("rank", "stage", "trial", "status", "val_acc", "best_epoch", "parent", "p.lr", "p.reg", "p.batch"):
        assert col in runs.columns
    assert runs["rank"].tolist() == list(range(1, 15))
    fin = runs[runs["status"] == "finished"]
    assert fin["val_acc"].tolist() == sorted(fin["val_acc"].tolist(), reverse=True)
    assert sw.metric_names()[0] == "val_acc" and {"train_loss", "val_loss", "train_acc"} <= set(sw.metric_names())
    promoted = runs[runs["parent"].notna()]
    assert len(promoted) == 2 and set(promoted["parent"]) <= set(runs.loc[runs["stage"] == 1, "trial"])
    # the same rows report --format json gives (report reads through the same API)
    doc = json.loads(CliRunner().invoke(main, ["report", sweep_dir, "--format", "json"]).output)
    assert [r["trial"] for r in doc["runs"]] == runs["trial"].tolist()
    assert [r["params"]["lr"] for r in doc["runs"]] == pytest.approx(runs["p.lr"].tolist(), rel=1e-14)


def test_history_is_metrics_jsonl_and_histories_stack_them(sweep_dir):
    sw = hpsearch.open(sweep_dir)
    for trial in sw.runs["trial"]:
        h = sw.history(trial)
        lines = read_jsonl(Path(sweep_dir) / "trials" / trial / "metrics.jsonl")
        assert h["epoch"].tolist() == [x["epoch"] for x in lines]
        if lines:
            assert h["val_acc"].tolist() == [x["val_acc"] for x in lines]
            assert isinstance(h["losses"].iloc[0], list)  # extra data kept as it is
    promoted = sw.runs[sw.runs["parent"].notna()].iloc[0]
    h = sw.history(promoted["trial"])
    assert h["epoch"].tolist() == [1, 2, 3]  # epoch 1 is its parent's, and says so
    assert h["inherited"].iloc[0] == promoted["parent"] and h["inherited"].iloc[1:].isna().all()
    long = sw.histories()
    assert list(long.columns[:3]) == ["trial", "stage", "epoch"]
    assert len(long) == sum(len(sw.history(t)) for t in sw.runs["trial"])
    with pytest.raises(hpsearch.HpsearchError, match="no trial 's9-t0000'"):
        sw.history("s9-t0000")


def test_ranges_and_best(sweep_dir):
    sw = hpsearch.open(sweep_dir)
    r = sw.ranges
    stage_files = [json.loads(p.read_text()) for p in sorted((Path(sweep_dir) / "stages").glob("stage-*.json"))]
    assert len(r) == sum(len(s["ranges"]) for s in stage_files)
    for s in stage_files:
        rows = r[r["stage"] == s["stage"]].set_index("param")
        lr = s["ranges"]["lr"]
        assert rows.loc["lr", "low"] == lr["low"] and rows.loc["lr", "high"] == lr["high"] and rows.loc["lr", "log"]
        assert rows.loc["batch", "kind"] == "categorical" and math.isnan(rows.loc["batch", "low"])
        flagged = {f["param"]: f["side"] for f in s.get("border_flags", [])}
        assert {p: rows.loc[p, "flag"] for p in rows.index if pd.notna(rows.loc[p, "flag"])} == flagged
    best = sw.best
    top = sw.runs.iloc[0]
    assert best["trial"] == top["trial"] and best["value"] == top["val_acc"]
    assert best["params"] == {"lr": top["p.lr"], "reg": top["p.reg"], "batch": top["p.batch"]}
    assert best["checkpoint"] and Path(best["checkpoint"]).is_file()
    assert f"_ep{best['epoch']:03d}_" in best["checkpoint"]


def test_import_hpsearch_does_not_import_pandas():
    code = "import sys, hpsearch; assert 'pandas' not in sys.modules; print(callable(hpsearch.open))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_open_on_a_folder_that_is_no_sweep(tmp_path):
    with pytest.raises(hpsearch.HpsearchError, match="not a sweep directory"):
        hpsearch.open(str(tmp_path))


# -- TensorBoard ---------------------------------------------------------------------------------
def read_tb(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def hparams_of(logdir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    ea = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    ea.Reload()
    try:
        content = ea.PluginTagToContent("hparams")
    except KeyError:  # no HParams summary in this run
        return {}
    return {k: plugin_data_pb2.HParamsPluginData.FromString(v) for k, v in content.items()}


def assert_tb_equals_metrics(root: str, tb: Path) -> None:
    sw = hpsearch.open(root)
    written = sorted(p.name for p in tb.iterdir() if p.is_dir())
    with_epochs = sorted(t for t in sw.runs["trial"] if metrics_of(root, t))
    assert written == with_epochs
    for trial in with_epochs:
        lines = metrics_of(root, trial)
        scalars = read_tb(tb / trial)
        expected: dict[str, list[tuple[int, float]]] = {}
        for line in lines:
            for k, v in numeric(line).items():
                expected.setdefault(k, []).append((line["epoch"], v))
        got = {k: v for k, v in scalars.items() if not k.startswith("best/")}
        assert set(got) == set(expected), trial
        for k in expected:  # TensorBoard stores float32
            assert [s for s, _ in got[k]] == [s for s, _ in expected[k]], (trial, k)
            assert [v for _, v in got[k]] == pytest.approx([v for _, v in expected[k]], rel=1e-6), (trial, k)
        t = sw.store.state.trials[trial]
        if t.best is not None:
            assert scalars["best/val_acc"] == [(t.best_epoch, pytest.approx(t.best, rel=1e-6))]
        session = hparams_of(tb / trial)["_hparams_/session_start_info"].session_start_info.hparams
        assert session["stage"].number_value == t.stage
        assert session["status"].string_value == t.state.value
        assert session["lr"].number_value == pytest.approx(t.params["lr"])
        assert session["batch"].number_value == t.params["batch"]


def test_report_tensorboard_equals_metrics_jsonl(sweep_dir, tmp_path):
    out = tmp_path / "tb"
    r = CliRunner().invoke(main, ["report", sweep_dir, "--tensorboard", str(out)])
    assert r.exit_code == 0, r.output
    assert f"to {out}; view them with: tensorboard --logdir {out}" in r.output
    assert "rank" not in r.output  # files only: no table
    assert_tb_equals_metrics(sweep_dir, out)
    exp = hparams_of(out)["_hparams_/experiment"].experiment
    infos = {h.name: h for h in exp.hparam_infos}
    assert {"lr", "reg", "batch", "stage", "status"} <= set(infos)
    assert [v.number_value for v in infos["stage"].domain_discrete.values] == [1, 2]
    assert {v.string_value for v in infos["status"].domain_discrete.values} >= {"finished", "diverged", "failed"}
    assert [v.number_value for v in infos["batch"].domain_discrete.values] == [32, 64]
    assert {m.name.tag for m in exp.metric_infos} >= {"best/val_acc", "val_acc", "train_loss"}
    # a second export rewrites, never duplicates
    assert CliRunner().invoke(main, ["report", sweep_dir, "--tensorboard", str(out)]).exit_code == 0
    assert_tb_equals_metrics(sweep_dir, out)


def test_live_tensorboard_of_the_sweep_key_equals_metrics_jsonl(sweep_dir):
    assert_tb_equals_metrics(sweep_dir, Path(sweep_dir).parent / "tb-live")


def test_missing_tensorboard_is_one_line_and_exit_2(sweep_dir, tmp_path, monkeypatch):
    for mod in [m for m in sys.modules if m.startswith(("tensorboard.", "torch.utils.tensorboard"))]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what an uninstalled package looks like
    r = CliRunner().invoke(main, ["report", sweep_dir, "--tensorboard", str(tmp_path / "tb")])
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0
    assert "pip install 'hpsearch[tensorboard]'" in r.output
    assert not (tmp_path / "tb").exists()


# -- MLflow --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_export_mlflow_parent_and_nested_runs(sweep_dir, mlflow_db):
    r = run_cli("export", sweep_dir, "--mlflow", mlflow_db, "--checkpoints", timeout=300)
    assert r.returncode == 0, r.stderr
    sw = hpsearch.open(sweep_dir)
    exported = [t for t in sw.runs["trial"] if sw.store.state.trials[t].state.value != "planned"]
    assert f"trial runs: {len(exported)} created, 0 updated" in r.stdout
    c = client(mlflow_db)
    exp = c.get_experiment_by_name("bridges")
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [x for x in runs if x.data.tags.get("hpsearch.kind") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params["metric"] == "val_acc" and parent.info.status == "FINISHED"
    assert parent.data.tags["best_trial"] == sw.best["trial"]
    assert parent.data.metrics["best/val_acc"] == pytest.approx(sw.best["value"])
    nested = {x.info.run_name: x for x in runs if x.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(nested) == sorted(exported) and len(runs) == len(exported) + 1
    for trial, run in nested.items():
        t = sw.store.state.trials[trial]
        assert run.data.params["lr"] == str(t.params["lr"]) and run.data.params["batch"] == str(t.params["batch"])
        assert run.data.tags["stage"] == str(t.stage) and run.data.tags["status"] == t.state.value
        assert run.data.tags.get("parent_trial", "") == (t.parent or "")
        assert run.info.status == {"finished": "FINISHED", "diverged": "FAILED", "failed": "FAILED"}[t.state.value]
        lines = metrics_of(sweep_dir, trial)
        for key in ("val_acc", "train_loss"):
            hist = sorted((m.step, m.value) for m in c.get_metric_history(run.info.run_id, key))
            assert hist == [(x["epoch"], pytest.approx(x[key])) for x in lines if key in x], (trial, key)
        if t.state.value == "finished":
            arts = [a.path for a in c.list_artifacts(run.info.run_id, "checkpoints")]
            assert arts == [f"checkpoints/{sw.runs.set_index('trial').loc[trial, 'checkpoint']}"]


def test_export_mlflow_twice_does_not_duplicate(sweep_dir, mlflow_db):
    c = client(mlflow_db)
    exp = c.get_experiment_by_name("bridges")
    before = c.search_runs([exp.experiment_id], max_results=1000)
    r = CliRunner().invoke(main, ["export", sweep_dir, "--mlflow", mlflow_db, "--checkpoints"])
    assert r.exit_code == 0, r.output
    assert "0 created, 0 updated" in r.output and "(0 epoch(s) logged)" in r.output
    after = c.search_runs([exp.experiment_id], max_results=1000)
    assert sorted(x.info.run_id for x in after) == sorted(x.info.run_id for x in before)
    for run in after:
        for key in run.data.metrics:
            steps = [m.step for m in c.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), (run.info.run_name, key)
        if run.data.tags.get("hpsearch.checkpoint"):
            assert len(c.list_artifacts(run.info.run_id, "checkpoints")) == 1


def test_export_mlflow_of_a_running_trial_adds_only_new_epochs(tmp_path, mlflow_db):
    from hpsearch.report.mlflowexport import export
    from hpsearch.report.sweepdata import load

    root = tmp_path / "live"
    root.mkdir()
    (root / "sweep.yaml").write_text(
        "name: live\nmetric: {name: val_acc, goal: maximize}\ntrainable: {builtin: noop}\n"
        "parameters: {metric_value: {value: 0.5}}\nstages: [{trials: 1, epochs: 3}]\n"
    )
    trial = claimed_trial(root, epochs=3, params={"lr": 0.1})
    trial.report(1, val_acc=0.3, train_loss=1.0)
    first = export(load(str(root)), mlflow_db, experiment="live-exp")
    trial.report(2, val_acc=0.4, train_loss=0.8)
    second = export(load(str(root)), mlflow_db, experiment="live-exp")
    assert (first.created, first.epochs_logged) == (1, 1)
    assert (second.created, second.updated, second.epochs_logged) == (0, 1, 1)
    c = client(mlflow_db)
    run = c.search_runs([c.get_experiment_by_name("live-exp").experiment_id], "tags.`hpsearch.trial` = 's1-t0000'")[0]
    assert run.info.status == "RUNNING" and run.data.tags["status"] == "running"
    assert [(m.step, m.value) for m in c.get_metric_history(run.info.run_id, "val_acc")] == [(1, 0.3), (2, 0.4)]


def test_export_bad_tracking_uri_is_one_line(sweep_dir, tmp_path):
    r = CliRunner().invoke(main, ["export", sweep_dir, "--mlflow", "nosuchscheme://x"])
    assert r.exit_code == 2 and r.output.startswith("hpsearch: error: --mlflow nosuchscheme://x")
    assert r.output.strip().count("\n") == 0


def test_mlflow_keys():
    from hpsearch.report.mlflowexport import mlflow_key

    assert mlflow_key("eval/accuracy") == "eval/accuracy" and mlflow_key("val-acc.top 1:x") == "val-acc.top 1:x"
    assert mlflow_key("acc@1") == "acc_1" and mlflow_key("loss(λ)") == "loss___"


def test_live_tensorboard_appends_each_epoch_then_rewrites_the_ended_trial(tmp_path):
    """LiveTensorBoard, driven the way the master drives it, on a real store and a trial reporting."""
    from hpsearch.report.tensorboard import LiveTensorBoard
    from hpsearch.search.config import parse

    root = tmp_path / "live"
    trial = claimed_trial(root, epochs=3, params={"lr": 0.1, "batch": 32})
    sweep = parse(
        {
            "name": "live",
            "trainable": {"builtin": "noop"},
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1},
                "batch": {"values": [32, 64]},
            },
            "stages": [{"trials": 1, "epochs": 3}],
        }
    )
    out = tmp_path / "tb"
    live = LiveTensorBoard(trial.store, sweep, out)
    live.sync(trial.store.refresh())
    assert not (out / trial.id).exists()  # nothing reported yet: no run
    trial.report(1, val_acc=0.3, train_loss=1.0)
    live.sync(trial.store.refresh())
    assert read_tb(out / trial.id) == {"val_acc": [(1, pytest.approx(0.3))], "train_loss": [(1, 1.0)]}
    trial.report(2, val_acc=0.5, train_loss=0.7)
    live.sync(trial.store.refresh())
    live.sync(trial.store.refresh())  # nothing new: nothing written twice
    assert read_tb(out / trial.id)["val_acc"] == [(1, pytest.approx(0.3)), (2, pytest.approx(0.5))]
    assert "_hparams_/session_start_info" not in hparams_of(out / trial.id)  # not ended yet
    trial.report(3, val_acc=0.4, train_loss=0.6)
    assert trial.store.finish(trial.id, trial.attempt, "finished", 0.5, 2, 3)
    live.sync(trial.store.refresh())
    scalars = read_tb(out / trial.id)
    assert [s for s, _ in scalars["val_acc"]] == [1, 2, 3] and scalars["best/val_acc"] == [(2, pytest.approx(0.5))]
    session = hparams_of(out / trial.id)["_hparams_/session_start_info"].session_start_info.hparams
    assert session["status"].string_value == "finished" and session["lr"].number_value == pytest.approx(0.1)
    files = list((out / trial.id).glob("events.out.tfevents.*"))
    assert len(files) == 1  # rewritten whole, one file
    live.close()
    # a master started again on the sweep does not rewrite what already shows the trial's result
    again = LiveTensorBoard(trial.store, sweep, out)
    again.sync(trial.store.refresh())
    assert list((out / trial.id).glob("events.out.tfevents.*")) == files and trial.id in again.done
    again.close()


def test_tensorboard_sweep_key(tmp_path):
    from hpsearch.search.config import parse

    base = {
        "trainable": {"builtin": "noop"},
        "parameters": {"lr": {"min": 0.1, "max": 1.0}},
        "stages": [{"trials": 1, "epochs": 1}],
    }
    assert parse(base).tensorboard is None
    assert parse({**base, "tensorboard": True}, source_dir=str(tmp_path)).tensorboard == ""
    assert parse({**base, "tensorboard": "tb"}, source_dir=str(tmp_path)).tensorboard == str(tmp_path / "tb")
    assert parse({**base, "tensorboard": "/abs/tb"}, source_dir=str(tmp_path)).tensorboard == "/abs/tb"


def test_export_without_mlflow_or_on_no_sweep_is_one_line_and_exit_2(sweep_dir, tmp_path, monkeypatch):
    r = CliRunner().invoke(main, ["export", str(tmp_path), "--mlflow", f"sqlite:///{tmp_path / 'm.db'}"])
    assert r.exit_code == 2 and "is not a sweep directory" in r.output and r.output.count("\n") == 1
    for mod in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an uninstalled package looks like
    r = CliRunner().invoke(main, ["export", sweep_dir, "--mlflow", f"sqlite:///{tmp_path / 'm.db'}"])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "pip install 'hpsearch[mlflow]'" in r.output
    assert not (tmp_path / "m.db").exists()
