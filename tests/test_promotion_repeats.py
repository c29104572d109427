"""End to end through the CLI: promoted configurations resume, repeats rank by their mean, keep_top prunes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import metrics, run_cli, write, write_sweep

TRAIN = """
import json, random

def fit(params, trial):
    if trial.resume_state is not None:
        assert trial.resume_state["epoch"] == trial.start_epoch
    ran = []
    noise = random.Random(trial.seed).uniform(-0.05, 0.05)
    for epoch in trial.epoch_range:
        ran.append(epoch)
        acc = params["quality"] * (1 - 0.5 ** epoch) + noise
        trial.report(epoch, val_acc=acc, train_loss=1 - acc, state={"epoch": epoch})
    with open(trial.trial_dir / "ran.jsonl", "a") as f:
        f.write(json.dumps({"start": trial.start_epoch, "ran": ran}) + "\\n")
"""


def _sweep(tmp_path: Path, stages: str, extra: str = "") -> Path:
    write(tmp_path / "ut_train.py", TRAIN)
    return write_sweep(
        tmp_path,
        f"""
        name: t
        trainable: {{python: "ut_train:fit"}}
        parameters:
          quality: {{min: 0.1, max: 0.9}}
        stages: {stages}
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        {extra}
        """,
        "s.yaml",
    )


def test_promoted_configurations_continue_from_their_checkpoints(tmp_path: Path) -> None:
    _sweep(tmp_path, "[{trials: 5, epochs: 2}, {trials: 1, epochs: 4, promote: 2}]", "keep_top: 1")
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    root = tmp_path / "run"
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    runs = {x["trial"]: x for x in doc["runs"]}
    assert len(runs) == 8  # report knows every run, pruned or not
    stage1 = sorted((x for x in runs.values() if x["stage"] == 1), key=lambda x: -x["val_acc"])
    stage2 = [x for x in runs.values() if x["stage"] == 2]
    promoted = {x["trial"]: x["parent"] for x in stage2 if x["parent"]}
    assert sorted(promoted.values()) == sorted(x["trial"] for x in stage1[:2])
    for child, parent in promoted.items():
        assert runs[child]["params"] == runs[parent]["params"]
        ran = [json.loads(x) for x in (root / "trials" / child / "ran.jsonl").read_text().splitlines()]
        assert ran == [{"start": 2, "ran": [3, 4]}]  # epochs 1-2 were not trained again
        lines = metrics(root, child)
        assert [x["epoch"] for x in lines] == [1, 2, 3, 4]
        assert [x["val_acc"] for x in lines[:2]] == [x["val_acc"] for x in metrics(root, parent)]
        assert runs[child]["status"] == "finished" and runs[child]["val_acc"] > runs[parent]["val_acc"]
    fresh = [x["trial"] for x in stage2 if not x["parent"]]
    assert len(fresh) == 1
    assert json.loads((root / "trials" / fresh[0] / "ran.jsonl").read_text())["ran"] == [1, 2, 3, 4]
    # promoted and fresh are ranked together, by the same metric
    ranking = json.loads((root / "stages" / "stage-2.json").read_text())["ranking"]
    assert sorted(t for r in ranking for t in r["trials"]) == sorted(x["trial"] for x in stage2)
    assert [r["mean"] for r in ranking] == sorted((r["mean"] for r in ranking), reverse=True)
    # keep_top: 1 -> only the best configuration of the sweep keeps checkpoints
    best = max(runs.values(), key=lambda x: x["val_acc"])["trial"]
    left = {p.name.split("_")[0] for p in (root / "checkpoints").iterdir()}
    assert left == {best}
    table = run_cli("report", "run", cwd=tmp_path).stdout
    assert "Configurations" not in table  # repeats: 1 changes nothing


def test_repeats_rank_by_the_mean_and_report_mean_std_count(tmp_path: Path) -> None:
    _sweep(tmp_path, "[{trials: 3, epochs: 1, repeats: 3}, {trials: 1, epochs: 1, top: 1}]")
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    by_config: dict[str, list[float]] = {}
    for x in doc["runs"]:
        if x["stage"] == 1:
            by_config.setdefault(x["config"], []).append(x["val_acc"])
    assert sorted(len(v) for v in by_config.values()) == [3, 3, 3]
    configs = {c["config"]: c for c in doc["configs"]}
    for config, vals in by_config.items():
        assert configs[config]["count"] == 3 and configs[config]["mean"] == pytest.approx(sum(vals) / 3)
        assert configs[config]["std"] > 0  # seeds differ, so repeats differ
    # the master narrowed around the best mean, not the best single run
    stage1 = json.loads((tmp_path / "run" / "stages" / "stage-1.json").read_text())
    assert stage1["ranking"][0]["config"] == max(by_config, key=lambda c: sum(by_config[c]))
    table = run_cli("report", "run", "--stage", "1", cwd=tmp_path).stdout
    head, _, configs_part = table.partition("Configurations")
    assert head.count("-r0 ") == 3 and head.count("-r2 ") == 3  # the per-trial table is still there
    best = stage1["ranking"][0]
    assert f"{best['mean']:.4f} ± {best['std']:.4f}" in configs_part.splitlines()[3]


# -- issue 12, kind 8 ----------------------------------------------------------------------------
def test_promoted_configurations_keep_the_stages_repeats_and_the_last_line_names_a_configuration(
    tmp_path: Path,
) -> None:
    _sweep(tmp_path, "[{trials: 4, epochs: 1}, {trials: 2, epochs: 2, promote: 2, repeats: 2}]")
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(run_cli("report", "run", "--format", "json", cwd=tmp_path).stdout)
    stage2 = [x for x in doc["runs"] if x["stage"] == 2]
    by_config: dict[str, list[dict]] = {}
    for x in stage2:
        by_config.setdefault(x["config"], []).append(x)
    assert len(by_config) == 4 and all(len(v) == 2 for v in by_config.values())  # 2 promoted + 2 fresh, 2 seeds each
    promoted = [v for v in by_config.values() if any(x["parent"] for x in v)]
    assert len(promoted) == 2
    for runs in promoted:
        continued = [x for x in runs if x["parent"]]
        new_seed = [x for x in runs if not x["parent"]]
        assert len(continued) == 1 and len(new_seed) == 1  # stage 1 had one seed: one more, trained afresh
        assert continued[0]["params"] == new_seed[0]["params"]
        assert (tmp_path / "run" / "trials" / new_seed[0]["trial"] / "ran.jsonl").read_text().count('"start": 0') == 1
    ranking = json.loads((tmp_path / "run" / "stages" / "stage-2.json").read_text())["ranking"]
    assert [x["count"] for x in ranking] == [2, 2, 2, 2]  # like with like
    best = ranking[0]
    done = [line for line in r.stdout.splitlines() if line.startswith("Done.")]
    assert len(done) == 1
    assert f"configuration {best['config']}" in done[0] and "mean of 2 repeats" in done[0]
    assert f"{best['mean']:.4f}" in done[0] and f"quality={best['params']['quality']:.4g}" in done[0]
    # the report's configurations: a promoted one once, at stage 2, never beside its stage-1 parent
    listed = [c["config"] for c in doc["configs"]]
    parents = {x["parent"] for x in stage2 if x["parent"]}
    assert len(listed) == len(set(listed)) == 4 + 2 and parents.isdisjoint(listed)  # 4 of stage 2, 2 unpromoted
    assert listed[0] == best["config"]


def _runs(values: list[float | None]) -> list:
    from hpsearch.search.stages import Run

    return [
        Run(f"s1-t{i:04d}", f"s1-t{i:04d}", {"lr": lr, "opt": "adam" if i % 2 else "sgd"}, "finished", 0.5 + i / 10)
        if lr is not None
        else Run(f"s1-t{i:04d}", f"s1-t{i:04d}", {"lr": 0.01, "opt": "sgd"}, "failed")
        for i, lr in enumerate(values)
    ]


@pytest.mark.parametrize("finished", [1, 2])
def test_too_few_finished_runs_keep_the_ranges_and_say_why(finished: int) -> None:
    from hpsearch.search.config import parse
    from hpsearch.search.stages import MIN_TO_NARROW, plan_stage

    sweep = parse(
        {
            "trainable": "noop",
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 10},
                "opt": {"values": ["adam", "sgd"]},
            },
            "stages": [{"trials": 5}, {"trials": 5}],
        }
    )
    runs = _runs([1e-3, 2e-3][:finished] + [None] * 3)
    plan = plan_stage(sweep, 2, sweep.space, runs)
    assert finished < MIN_TO_NARROW
    assert plan.space == sweep.space  # five decades stay five decades; both optimizers stay
    assert any(f"only {finished} configuration(s) of stage 1 finished" in n for n in plan.notes)
    # a best value on a border still moves the range past it, and only there
    runs = _runs([2e-6, 3e-6][:finished])
    plan = plan_stage(sweep, 2, sweep.space, runs)
    lr = plan.space["lr"]
    assert lr.low < 1e-6 and lr.high == 10
    assert any("moved only past the flagged border of lr" in n for n in plan.notes)
    # from MIN_TO_NARROW finished configurations on, the ranges narrow as before
    plan = plan_stage(sweep, 2, sweep.space, _runs([1e-3, 2e-3, 3e-3]))
    assert plan.space["lr"].high < 1 and not plan.notes
