"""A training function tuned by hpsearch through `trainable: {python: "twolayer:fit"}`.

hpsearch imports this module (the sweep file's folder is on sys.path) and calls
fit(params, trial) once per trial: params holds the sampled and fixed values, trial is the
handle (hpsearch.Trial) that says which epochs to run, what to resume from, and records
each epoch with trial.report(...).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

import hpsearch


def spiral(n_per_class: int = 300, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D spiral arms: X [N, 2], y [N]."""
    g = torch.Generator().manual_seed(seed)
    r = torch.linspace(0, 1, n_per_class).repeat(classes)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    t = y * 4.0 + r * 4.0 + 0.2 * torch.randn(len(y), generator=g)
    X = torch.stack([r * torch.sin(t), r * torch.cos(t)], 1)
    perm = torch.randperm(len(y), generator=g)
    return X[perm], y[perm]


def fit(params: dict[str, Any], trial: hpsearch.Trial) -> None:
    torch.manual_seed(trial.seed)
    X, y = spiral()
    X, y = X.to(trial.device), y.to(trial.device)
    Xtr, ytr, Xva, yva = X[:675], y[:675], X[675:], y[675:]
    hidden, lr, reg = int(params["hidden"]), float(params["lr"]), float(params["reg"])
    model = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 3)).to(trial.device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    if trial.resume_state is not None:  # set when the trial continues (requeued or promoted)
        model.load_state_dict(trial.resume_state["model"])
        opt.load_state_dict(trial.resume_state["optimizer"])
        print(f"resumed at epoch {trial.start_epoch}", flush=True)

    for epoch in trial.epoch_range:  # start_epoch + 1 .. trial.epochs
        model.train()
        g = torch.Generator().manual_seed(trial.seed * 1000 + epoch)
        losses = []
        for idx in torch.randperm(len(Xtr), generator=g).split(64):
            idx = idx.to(trial.device)
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            loss = loss + reg * sum((p**2).sum() for n, p in model.named_parameters() if "weight" in n)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val_acc = (model(Xva).argmax(1) == yva).float().mean().item()
        print(f"epoch {epoch}: val_acc {val_acc:.4f}", flush=True)
        # records the epoch, writes the checkpoint (val_acc in its name); raises hpsearch.StopTrial
        # when the run diverged or the sweep is stopping: let it propagate
        trial.report(
            epoch,
            val_acc=val_acc,
            train_loss=sum(losses) / len(losses),
            state={"model": model.state_dict(), "optimizer": opt.state_dict()},
        )
        time.sleep(float(params.get("sleep", 0)))
