"""Disk: per-trial retention (best_last / last / all) and keep_top across the sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import claimed_trial, run_cli, write_sweep

from hpsearch.search import config
from hpsearch.search.evidence import configuration_key
from hpsearch.store.retention import protected, prune_outside_top
from hpsearch.store.standing import configurations
from hpsearch.store.sweepdir import Store, format_checkpoint


@pytest.mark.parametrize("keep, kept_epochs", [("best_last", [2, 4]), ("last", [4]), ("all", [1, 2, 3, 4])])
def test_per_trial_retention(tmp_path: Path, keep: str, kept_epochs: list[int]) -> None:
    trial = claimed_trial(tmp_path, epochs=4, keep=keep)
    for epoch, acc in zip(range(1, 5), [0.5, 0.7, 0.6, 0.4]):
        trial.report(epoch, val_acc=acc, train_loss=1.0, state={"epoch": epoch})
    names = sorted(p.name for p in trial.store.layout.checkpoints.iterdir())
    assert names == sorted(
        format_checkpoint("s1-t0000", e, "val_acc", [0.5, 0.7, 0.6, 0.4][e - 1]) for e in kept_epochs
    )
    assert len(trial.store.metrics(trial.id)) == 4  # metrics of every epoch stay


def _sweep(keep_top: int, promote: int) -> config.Sweep:
    return config.parse(
        {
            "trainable": {"builtin": "noop"},
            "keep_top": keep_top,
            "parameters": {"metric_value": {"min": 0.1, "max": 0.9}},
            "stages": [{"trials": 6, "epochs": 1}, {"trials": 1, "epochs": 2, "promote": promote}],
        }
    )


def _stage_one(root: Path, bests: list[float | None], running: int | None = None) -> Store:
    store = Store(root)
    store.layout.ensure()
    ids = [f"s1-t{i:04d}" for i in range(len(bests))]
    store.journal.append(
        [
            {
                "ev": "stage",
                "stage": 1,
                "space": {
                    "metric_value": {
                        "kind": "numeric",
                        "low": 0.1,
                        "high": 0.9,
                        "log": False,
                        "integer": False,
                        "q": None,
                        "bounds": None,
                    }
                },
                "trials": [
                    {"trial": t, "config": t, "params": {"metric_value": 0.1 + 0.05 * i}, "seed": i, "epochs": 1}
                    for i, t in enumerate(ids)
                ],
            }
        ]
    )
    for _ in ids:
        store.claim("w")
    events = []
    for i, (t, b) in enumerate(zip(ids, bests)):
        if i == running:
            continue
        status = "finished" if b is not None else "failed"
        events.append(
            {
                "ev": "result",
                "trial": t,
                "attempt": 1,
                "status": status,
                "best": b,
                "best_epoch": 1 if b is not None else None,
                "epochs_done": 1,
            }
        )
        if b is not None:
            (store.layout.checkpoints / format_checkpoint(t, 1, "val_acc", b)).write_bytes(b"x")
    (store.layout.checkpoints / format_checkpoint(ids[running], 1, "val_acc", 0.1)).write_bytes(
        b"x"
    ) if running is not None else None
    store.journal.append(events)
    store.journal.append([{"ev": "stage_done", "stage": 1}])
    return store


def test_keep_top_spares_the_top_the_promoted_and_the_running(tmp_path: Path) -> None:
    # ranks: t0001 (0.9), t0003 (0.8), t0000 (0.7), t0005 (0.3), t0002 (0.2); t0004 is still running
    store = _stage_one(tmp_path, [0.7, 0.9, 0.2, 0.8, None, 0.3], running=4)
    sweep = _sweep(keep_top=1, promote=2)
    assert protected(store.refresh(), sweep) == {"s1-t0001", "s1-t0003", "s1-t0004"}
    deleted = prune_outside_top(store, sweep)
    assert [n.split("_")[0] for n in deleted] == ["s1-t0000", "s1-t0002", "s1-t0005"]
    left = sorted(c.trial for c in store.checkpoint_names())
    assert left == ["s1-t0001", "s1-t0003", "s1-t0004"]
    assert all(store.state.trials[t].best is not None for t in ("s1-t0000", "s1-t0002"))  # results stay


def test_keep_top_counts_configurations_not_trials(tmp_path: Path) -> None:
    store = _stage_one(tmp_path, [0.7, 0.9, 0.2])
    sweep = _sweep(keep_top=2, promote=0)
    assert protected(store.refresh(), sweep) == {"s1-t0000", "s1-t0001"}


def _run(tmp_path: Path, stages: list[dict], keep_top: int) -> Path:
    """A noop sweep with `keep_top`, run to the end through the CLI; its directory."""
    doc = {
        "name": "top",
        "seed": 0,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop"},
        "parameters": {"metric_value": {"min": 0.1, "max": 0.9}},
        "stages": stages,
        "keep_top": keep_top,
        "workers": 1,
    }
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    return d


def test_keep_top_keeps_k_configurations_when_the_best_was_promoted(tmp_path: Path) -> None:
    """Ranked by trial, a promoted run and its parent took two of the K places, and the second-best
    configuration's checkpoints were deleted while `hpsearch best --top 2` still named it."""
    d = _run(tmp_path, [{"trials": 6, "epochs": 1}, {"trials": 0, "epochs": 2, "promote": 1}], keep_top=2)
    store = Store(d)
    st = store.refresh()
    top = configurations(st, config.parse(yaml.safe_load((tmp_path / "sweep.yaml").read_text())).metric)[:2]
    assert top[0].stage == 2 and top[1].stage == 1  # the promoted best, then stage 1's second
    with_files = {c.trial for c in store.checkpoint_names()}
    for standing in top:
        key = configuration_key(standing.ranked.params)
        assert {t.trial for t in st.trials.values() if configuration_key(t.params) == key} <= with_files
    assert len(with_files) == 3  # the best's parent and child, and the second; the other four are gone


def test_the_report_names_only_checkpoint_files_still_on_disk(tmp_path: Path) -> None:
    """The `checkpoint` column named files keep_top had deleted (a user then tried to load them)."""
    d = _run(tmp_path, [{"trials": 5, "epochs": 1}], keep_top=1)
    runs = json.loads(run_cli("report", str(d), "--format", "json", check=True).stdout)["runs"]
    named = [r["checkpoint"] for r in runs if r["checkpoint"]]
    assert len(runs) == 5 and len(named) == 1 and (d / "checkpoints" / named[0]).is_file()
    table = run_cli("report", str(d), check=True).stdout
    assert table.count(".pt") == 1, table
