"""The quality suite's real tasks (all offline): data sets written as .npz, and a small convnet trainable.

Every method trains a task with the same code: the built-in classifier (`hpsearch.trainables.classifier.fit`)
for the MLP tasks, `fit_convnet` below for the convnet; hpsearch through its master and worker,
Optuna's peers by calling the same function with a real `Trial`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The lr ranges of the three cases. The tasks' best learning rate with SGD + momentum 0.9 lies
# near 1e-2 (the in-range sweeps find 3e-3..5e-2): "best_below" declares [0.1, 10] (the best lr a
# decade or more below the range), "best_above" [1e-6, 1e-3] (a decade or more above it).
LR_CASES = {"in_range": (1e-5, 10.0), "best_below": (0.1, 10.0), "best_above": (1e-6, 1e-3)}
REG = (1e-6, 1e-1)


@dataclass(frozen=True)
class Task:
    name: str
    epochs: int  # R: what a good run needs
    trainable: dict[str, Any]  # the sweep's trainable block (its data path filled in by `prepare`)
    params: dict[str, dict[str, Any]]  # searched parameters besides lr
    data: str = ""  # which builder writes the .npz
    notes: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)


def _classifier(hidden: list[int], population: int = 16) -> dict[str, Any]:
    return {"builtin": "classifier", "hidden": hidden, "optimizer": "momentum", "batch": 32, "population": population}


TASKS = {
    "noisy_digits_mlp": Task(
        "noisy_digits_mlp",
        8,
        _classifier([64, 64]),
        {
            "reg": {"distribution": "log_uniform_values", "min": REG[0], "max": REG[1]},
            "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.8, "bounds": [0, 0.95]},
        },
        data="noisy_digits",
        notes="64-64-64-10 MLP, digits with 30% of training labels replaced by noise (validation clean)",
    ),
    "digits_convnet": Task(
        "digits_convnet",
        6,
        {"python": "bench.tasks:fit_convnet"},
        {
            "reg": {"distribution": "log_uniform_values", "min": REG[0], "max": REG[1]},
            "width": {"distribution": "int_log_uniform_values", "min": 4, "max": 32},
        },
        data="digits_images",
        notes="conv(3x3, width)-ReLU-conv(3x3, 2 width)-ReLU-maxpool-linear on the 8x8 digits, SGD momentum 0.9",
    ),
    "deep_mlp_classification": Task(
        "deep_mlp_classification",
        8,
        _classifier([64, 64, 64, 64]),
        {
            "reg": {"distribution": "log_uniform_values", "min": REG[0], "max": REG[1]},
            "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.8, "bounds": [0, 0.95]},
        },
        data="classification",
        notes="4 hidden layers of 64 on make_classification (4 classes, 40 features, 10% flipped labels)",
    ),
    "breast_cancer_mlp": Task(
        "breast_cancer_mlp",
        8,
        _classifier([32], population=8),
        {
            "reg": {"distribution": "log_uniform_values", "min": REG[0], "max": REG[1]},
            "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.8, "bounds": [0, 0.95]},
        },
        data="breast_cancer",
        notes="one hidden layer of 32 on scikit-learn's breast cancer set (standardized)",
    ),
}


def prepare(task: Task, folder: Path) -> dict[str, Any]:
    """Write the task's data set under `folder`; the trainable block with its path filled in."""
    path = folder / f"{task.data}.npz"
    if not path.exists():
        np.savez(path, **BUILDERS[task.data]())
    block = dict(task.trainable)
    if "builtin" in block:
        block["dataset"] = f"npz:{path}"
    else:
        block["data"] = str(path)
    return block


def _noisy_digits() -> dict[str, np.ndarray]:
    from hpsearch.trainables import data

    ds = data.digits()
    rng = np.random.default_rng(0)
    y = ds.y_train.copy()
    flip = rng.random(len(y)) < 0.3
    y[flip] = rng.integers(0, 10, int(flip.sum()))
    return dict(X_train=ds.X_train, y_train=y, X_val=ds.X_val, y_val=ds.y_val)


def _digits_images() -> dict[str, np.ndarray]:
    from hpsearch.trainables import data

    ds = data.digits()
    return dict(X_train=ds.X_train, y_train=ds.y_train, X_val=ds.X_val, y_val=ds.y_val)


def _standardized(X: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    cut = int(0.75 * len(y))
    tr, va = idx[:cut], idx[cut:]
    mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-8
    X = ((X - mu) / sd).astype(np.float32)
    return dict(X_train=X[tr], y_train=y[tr].astype(np.int64), X_val=X[va], y_val=y[va].astype(np.int64))


def _classification() -> dict[str, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=3000, n_features=40, n_informative=20, n_redundant=10, n_classes=4, flip_y=0.1, random_state=0
    )
    return _standardized(X, y)


def _breast_cancer() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _standardized(d.data, d.target)


BUILDERS = {
    "noisy_digits": _noisy_digits,
    "digits_images": _digits_images,
    "classification": _classification,
    "breast_cancer": _breast_cancer,
}


def fit_convnet(params: dict[str, Any], trial: Any) -> None:
    """A small convnet on the 8x8 digits: SGD with momentum 0.9, L2 `reg`, batch 32; reports val_acc and
    the first layer's update-to-weight ratio (`update_ratio`) each epoch.

    A batch loss above 3x the run's first (or not finite) stops the run as diverged, as the built-in
    does; the first loss is saved with the state, so a promoted run resumed from a checkpoint is
    judged against its own start, not against its first batch after the resume (which judged every
    promotion of the convnet "diverged" until 2026-11-30)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from hpsearch.errors import StopTrial

    d = np.load(params["data"])
    Xtr = torch.tensor(d["X_train"], dtype=torch.float32).reshape(-1, 1, 8, 8)  # [N, 1, 8, 8]
    Xva = torch.tensor(d["X_val"], dtype=torch.float32).reshape(-1, 1, 8, 8)
    ytr, yva = torch.tensor(d["y_train"]), torch.tensor(d["y_val"])
    torch.manual_seed(trial.seed)
    w = int(params["width"])
    model = nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # [N, 2w, 4, 4]
        nn.Flatten(),
        nn.Linear(2 * w * 16, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["reg"])
    first = None  # the run's first batch loss: the divergence test's reference, kept across a resume
    if trial.resume_state is not None:
        model.load_state_dict(trial.resume_state["model"])
        opt.load_state_dict(trial.resume_state["opt"])
        first = trial.resume_state.get("first_loss")
    gen = torch.Generator().manual_seed(trial.seed)
    for epoch in trial.epoch_range:
        model.train()
        order = torch.randperm(len(ytr), generator=gen)
        first_layer = model[0].weight
        for i in range(0, len(order), 32):
            b = order[i : i + 32]
            before = first_layer.detach().clone()
            loss = F.cross_entropy(model(Xtr[b]), ytr[b])
            first = float(loss.detach()) if first is None else first
            if not torch.isfinite(loss) or float(loss.detach()) > 3 * first:
                trial.stop_reason = "diverged"
                raise StopTrial(f"diverged: batch loss {float(loss):.3g} > 3 x the first ({first:.3g})")
            opt.zero_grad()
            loss.backward()
            opt.step()
        # the notes' update-to-weight ratio of the first layer on the epoch's last step, as the
        # built-in classifier reports it (hpsearch reads it to tell a too-low lr range)
        ratio = float((first_layer.detach() - before).norm() / (before.norm() + 1e-12))
        model.eval()
        with torch.no_grad():
            val_acc = float((model(Xva).argmax(1) == yva).float().mean())
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "first_loss": first}
        trial.report(epoch, val_acc=val_acc, update_ratio=ratio, state=state)
