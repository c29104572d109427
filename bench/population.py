"""Section population: K trials of the built-in classifier on digits trained at once in one process
(`population: K`) vs the same trials one by one with `classifier.fit`, both through real `Trial`
objects (metrics lines and a checkpoint per epoch included), on CPU and on a GPU when one is present."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import Section


def configs(k: int, seed: int = 0) -> list[dict[str, Any]]:
    """K non-chaotic configurations (lr up to 0.3 with momentum 0.9), dropout 0 so results can match."""
    rng = np.random.default_rng(seed)
    return [
        {
            "lr": float(10 ** rng.uniform(-3, -0.5)),
            "reg": float(10 ** rng.uniform(-5, -2)),
            "optimizer": "momentum",
            "momentum": 0.9,
            "dropout": 0.0,
            "hidden": [100],
            "batch": 64,
        }
        for _ in range(k)
    ]


def make_trials(root: Path, cfgs: list[dict[str, Any]], epochs: int, device: str) -> list[Any]:
    from hpsearch.search.builtins import CLASSIFIER_DEFAULTS
    from hpsearch.store.sweepdir import Store
    from hpsearch.trainables.trial import Trial

    store = Store(root)
    store.layout.ensure()
    planned = [
        {
            "trial": f"s1-t{i:04d}",
            "config": f"s1-t{i:04d}",
            "params": c,
            "seed": 1000 + i,
            "epochs": epochs,
            "parent": None,
        }
        for i, c in enumerate(cfgs)
    ]
    store.journal.append([{"ev": "stage", "stage": 1, "space": {}, "trials": planned}])
    out = []
    for rec in store.claim("bench", n=len(cfgs)):
        store.trial_files_ready(rec)
        out.append(
            Trial(
                store,
                rec,
                params={**CLASSIFIER_DEFAULTS, **rec.params},
                metric="val_acc",
                goal="maximize",
                device=device,
            )
        )
    return out


def one_by_one(trials: list[Any]) -> None:
    from hpsearch.errors import StopTrial
    from hpsearch.trainables import classifier

    for t in trials:
        try:
            classifier.fit(t.params, t)
        except StopTrial:
            pass


def together(trials: list[Any]) -> None:
    from hpsearch.trainables.population import fit_population

    fit_population([t.params for t in trials], trials)


def compare(tmp: Path, k: int, epochs: int, device: str, s: Section, repeats: int = 3) -> dict[str, Any]:
    """Both ways `repeats` times, alternating (so a burst of load hits both), median times."""
    import torch

    cfgs = configs(k)
    # warm up both paths (first optimizer step imports torch._dynamo; data sets load once per process)
    one_by_one(make_trials(tmp / f"warm1-{device}-{k}", cfgs[:1], 1, device))
    together(make_trials(tmp / f"warm2-{device}-{k}", cfgs[:2], 1, device))
    runs: dict[str, list[float]] = {"one_by_one": [], "population": []}
    results = {}
    for rep in range(repeats):
        for label, fn in (("one_by_one", one_by_one), ("population", together)):
            trials = make_trials(tmp / f"{label}-{device}-{k}-{rep}", cfgs, epochs, device)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(trials)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            runs[label].append(time.perf_counter() - t0)
            results[label] = [[h["val_acc"] for h in t.history] for t in trials]
    timings = {label: float(np.median(ts)) for label, ts in runs.items()}
    diffs = [abs(a - b) for ra, rb in zip(results["one_by_one"], results["population"]) for a, b in zip(ra, rb)]
    lengths_equal = all(len(a) == len(b) for a, b in zip(results["one_by_one"], results["population"]))
    fig = {
        "k": k,
        "epochs": epochs,
        "device": device,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "one_by_one_runs_s": runs["one_by_one"],
        "population_runs_s": runs["population"],
        "one_by_one_s": timings["one_by_one"],
        "population_s": timings["population"],
        "one_by_one_trials_per_s": k / timings["one_by_one"],
        "population_trials_per_s": k / timings["population"],
        "speedup": timings["one_by_one"] / timings["population"],
        "max_abs_val_acc_diff": max(diffs) if diffs else None,
        "mean_abs_val_acc_diff": float(np.mean(diffs)) if diffs else None,
        "same_epochs_per_trial": lengths_equal,
    }
    s.say(
        f"K={k} x {epochs} epochs on {device} (median of {repeats}): "
        f"one by one {fig['one_by_one_trials_per_s']:.1f} trials/s, "
        f"population {fig['population_trials_per_s']:.1f} trials/s -> {fig['speedup']:.1f}x; "
        f"val_acc max |diff| {fig['max_abs_val_acc_diff']:.2e} (mean {fig['mean_abs_val_acc_diff']:.1e})"
    )
    return fig


def run(quick: bool = False) -> Section:
    import torch

    s = Section("population")
    epochs = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as d:
        tmp = Path(d)
        cpu = compare(tmp, 32, epochs, "cpu", s, repeats=1 if quick else 3)
        s.figures["cpu_k32"] = cpu
        s.goal("cpu_speedup_k32", cpu["speedup"], ">= 5x", cpu["speedup"] >= 5.0)
        if not quick:
            s.figures["cpu_k128"] = compare(tmp, 128, 2, "cpu", s, repeats=1)
        if torch.cuda.is_available():
            for k in (32, 256):
                s.figures[f"cuda_k{k}"] = compare(tmp, k, epochs, "cuda", s)
        else:
            s.skip("gpu", "no CUDA device visible")
    return s
