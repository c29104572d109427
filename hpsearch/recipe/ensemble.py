"""`hpsearch ensemble DIR`: ensembles from a search's checkpoints, measured on the validation set.

The notes' ensembles ("Neural Networks Part 3", Model Ensembles): average the predicted class
probabilities of (1) the top few configurations of the search and (2) several checkpoints of a
single model, the best run; and (3) a running average of the parameters, here the average of
that run's checkpoints' weights (the `ema` setting averages during training instead). Each is
reported for K = 1 .. Kmax members. Which members, in which order, is `search.ensemble`'s choice.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from hpsearch.errors import HpsearchError
from hpsearch.report.frames import best_checkpoint, open_sweep
from hpsearch.search import ensemble as choose
from hpsearch.search.evidence import configuration_key
from hpsearch.store.standing import configurations
from hpsearch.store.sweepdir import Store, atomic_write_json
from hpsearch.trainables import predict


def measure(root: str, top: int) -> dict[str, Any]:
    """Measure the three curves for up to `top` members; write DIR/ensemble.json; return its content.

    Raises:
        StoreError: not a sweep directory. HpsearchError: nothing finished, checkpoints deleted, or a
        trainable without predictions (a python module without `predict`, a command program).
    """
    store, sweep = open_sweep(root)
    started = time.perf_counter()
    predictor = predict.predictor_of(sweep)
    metric = sweep.metric.name
    ranking = configurations(store.state, sweep.metric)  # a promoted configuration once, as `hpsearch best`
    if not ranking:
        raise HpsearchError(f"{root}: no finished run yet to ensemble")
    ranked = [
        (s.run.trial, configuration_key(s.ranked.params), best_checkpoint(store.state, s.run, metric)) for s in ranking
    ]
    members = choose.top_configs(ranked, top, lambda name: store.layout.checkpoint(name).exists())
    if not members:
        if all(ckpt is None for _, _, ckpt in ranked):
            raise HpsearchError(
                f"{root}: no run saved a checkpoint: nothing to load (a python trainable passes state= to "
                "trial.report; a command program hands over checkpoint files)"
            )
        raise HpsearchError(f"{root}: the best runs' checkpoints were deleted (keep_top, or by hand): nothing to load")
    probs, labels = [], None
    for _, name in members:
        p, y = predictor(_state(store, name))
        probs.append(p)
        labels = y if labels is None else labels
        if y.shape != labels.shape or not torch.equal(y, labels):
            raise HpsearchError("predict: the members' validation labels differ; every call must return the same split")
    assert labels is not None
    curves = [_curve("top-K configurations (average of probabilities)", members, probs, labels)]
    best_trial = members[0][0]
    # its lineage's: a promoted run's first epochs (and maybe its best) are its parent's checkpoints
    lineage, t = [], store.state.trials.get(best_trial)
    while t is not None and t.trial not in lineage:
        lineage.append(t.trial)
        t = store.state.trials.get(t.parent) if t.parent else None
    names = list(store.checkpoint_names())  # read once, walked per run of the lineage
    by_epoch: dict[int, Any] = {}
    for trial in lineage:  # the run first: an epoch it trained again after a restart is its own
        for c in names:
            if c.trial == trial:
                by_epoch.setdefault(c.epoch, c)
    own = [by_epoch[e] for e in sorted(by_epoch, reverse=True)][:top]
    # each named by the run that wrote it: a promoted run's first epochs are its parent's files
    singles = [(f"{c.trial} epoch {c.epoch}", c.name) for c in own]
    states = [_state(store, name) for _, name in singles]
    single_probs = [predictor(s)[0] for s in states]
    note = "" if len(own) > 1 else "only one checkpoint kept: set `checkpoints: all` in the sweep to keep every epoch"
    curves.append(
        _curve(f"checkpoints of the best run {best_trial} (latest first)", singles, single_probs, labels, note)
    )
    avg_label = f"parameter average of {best_trial}'s checkpoints"
    why_not = predict.why_not_averaged(sweep, states)
    if why_not is None:
        avg_points = []
        for k in range(1, len(states) + 1):
            p, _ = predictor(predict.average_states(states[:k]))
            avg_points.append({"k": k, "accuracy": accuracy(p, labels), "members": [m for m, _ in singles[:k]]})
        curves.append({"label": avg_label, "points": avg_points})
    else:  # said, not left out: README promises the third curve
        curves.append({"label": avg_label, "points": [], "note": f"not measured: {why_not}"})
    doc = {
        "time": time.time(),
        "seconds": time.perf_counter() - started,
        "split": "val",
        "metric": metric,
        "n": int(labels.numel()),
        "best_single": curves[0]["points"][0]["accuracy"],
        "curves": curves,
    }
    atomic_write_json(store.layout.ensemble, doc)
    return doc


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose most probable class is the label. probs [N, C], labels [N]."""
    return float((probs.argmax(1) == labels).float().mean())


def _curve(
    label: str, members: list[tuple[str, str]], probs: list[torch.Tensor], labels: torch.Tensor, note: str = ""
) -> dict[str, Any]:
    points = []
    total = torch.zeros_like(probs[0])
    for k, p in enumerate(probs, 1):
        total += p
        points.append({"k": k, "accuracy": accuracy(total / k, labels), "members": [m for m, _ in members[:k]]})
    out: dict[str, Any] = {"label": label, "points": points}
    if note:
        out["note"] = note
    return out


def _state(store: Store, name: str) -> dict[str, Any]:
    ckpt = store.load_checkpoint(name)
    if ckpt is None:
        raise HpsearchError(f"checkpoint {name} is missing")
    return ckpt


def text(doc: dict[str, Any]) -> str:
    """The curves as a table: one line per curve, accuracy for K = 1, 2, ..."""
    lines = [f"Validation accuracy of ensembles ({doc['n']} examples); K = number of members:"]
    for c in doc["curves"]:
        pts = "  ".join(f"K={p['k']}: {p['accuracy']:.4f}" for p in c["points"])
        lines.append(
            f"  {c['label']}" + (f"\n    {pts}" if pts else "") + (f"\n    note: {c['note']}" if c.get("note") else "")
        )
    top = doc["curves"][0]["points"]
    best_k = max(top, key=lambda p: (p["accuracy"], -p["k"]))
    gain = best_k["accuracy"] - doc["best_single"]
    lines.append(
        f"Best single run {doc['best_single']:.4f}; best top-K ensemble {best_k['accuracy']:.4f} at K={best_k['k']} "
        f"({gain:+.4f}). Measured on the validation set that also ranked the runs: confirm on held-out data."
    )
    return "\n".join(lines)
