"""Write a sweep directory of N finished trials directly (no training), with hpsearch's own helpers.

The journal is written by `Journal.append_locked` (the writer every process uses), the stage
file by `atomic_write_json`, checkpoint names by `format_checkpoint`; checkpoint files are empty
(readers rank by name and never open them). Trial folders are not written: neither `report`
nor the master's stage summary reads them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import yaml

from hpsearch.search import config, stages
from hpsearch.search import space as sp
from hpsearch.store import sweepfile
from hpsearch.store.sweepdir import Store, atomic_write_json, format_checkpoint

SWEEP = {
    "name": "generated",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "seed": 0,
    "trainable": {"builtin": "classifier", "dataset": "digits"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 10},
        "reg": {"distribution": "log_uniform_values", "min": 1e-5, "max": 10},
        "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.9, "bounds": [0, 0.95]},
        "hidden": {"distribution": "int_log_uniform_values", "min": 32, "max": 512},
        "batch": {"values": [32, 64, 128]},
    },
    "stages": [{"trials": 0, "epochs": 5}, {"trials": 1000, "epochs": 10, "top": 20}],
}


def generate(root: Path, n: int, chunk: int = 20_000) -> Path:
    """A one-stage-done sweep of n finished trials in `root` (which must not exist)."""
    doc = dict(SWEEP, stages=[dict(SWEEP["stages"][0], trials=n), SWEEP["stages"][1]])
    text = yaml.safe_dump(doc, sort_keys=False)
    store = Store(root)
    store.layout.ensure()
    (root / "sweep.src.yaml").write_text(text)
    sweep, raw = sweepfile.load(root / "sweep.src.yaml")
    store.write_sweep(text, sweep.source_dir)
    plan = stages.plan_stage(sweep, 1, None, [])
    rng = np.random.default_rng(0)
    store.journal.append([{"ev": "created", "fingerprint": config.fingerprint(raw), "name": sweep.name}])
    atomic_write_json(
        store.layout.stage_file(1),
        {"stage": 1, "epochs": 5, "trials": n, "ranges": sp.space_to_dict(plan.space), "status": "running"},
    )
    store.journal.append([{"ev": "stage", "stage": 1, "space": sp.space_to_dict(plan.space), "trials": plan.trials}])
    ckpt_dir = store.layout.checkpoints
    with store.journal.locked():
        for lo in range(0, n, chunk):
            events = []
            for t in plan.trials[lo : lo + chunk]:
                # a smooth score peaked at lr 1e-2, reg 1e-4, plus noise: ranking has real structure
                d = (math.log10(t["params"]["lr"]) + 2) ** 2 + 0.3 * (math.log10(t["params"]["reg"]) + 4) ** 2
                best = float(min(0.99, max(0.05, math.exp(-0.3 * d) + rng.normal(0, 0.02))))
                epoch = int(rng.integers(1, 6))
                events.append({"ev": "claim", "trial": t["trial"], "worker": "gen-0", "attempt": 1})
                events.append(
                    {
                        "ev": "result",
                        "trial": t["trial"],
                        "attempt": 1,
                        "status": "finished",
                        "best": round(best, 4),
                        "best_epoch": epoch,
                        "epochs_done": 5,
                        "reason": None,
                    }
                )
                fd = os.open(
                    ckpt_dir / format_checkpoint(t["trial"], epoch, "val_acc", best), os.O_WRONLY | os.O_CREAT, 0o644
                )
                os.close(fd)
            store.journal.append_locked(events)
    return root
