"""Built-in trainable: a fully connected classifier (ReLU, dropout, L2) on a built-in data set.

Small and direct on purpose: tensors are indexed in place (no DataLoader: for in-memory data it
only adds overhead), and the update-to-weight ratio of the first layer is measured every epoch
because the notes this tool follows say ~1e-3 is healthy.
"""

from __future__ import annotations

import copy
import time
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from hpsearch.search.schedules import lr_at
from hpsearch.trainables import data
from hpsearch.trainables.trial import Trial

_DATA_CACHE: dict[tuple[str, str, str, float], tuple[torch.Tensor, ...]] = {}


def hidden_sizes(hidden: Any) -> list[int]:
    """`hidden: 100` means one layer of 100; `hidden: [100, 50]` two layers; `[]` none."""
    if isinstance(hidden, (int, float)):
        return [int(hidden)]
    return [int(h) for h in hidden]


class MLP(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], n_out: int, dropout: float, init_scale: float | None) -> None:
        super().__init__()
        sizes = [n_in, *hidden, n_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        # the same Linear modules, typed (ModuleList yields plain Modules to a type checker)
        self.linears: list[nn.Linear] = [cast(nn.Linear, layer) for layer in self.layers]
        self.dropout = float(dropout)
        for layer in self.linears:
            if init_scale is None:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            else:
                nn.init.normal_(layer.weight, std=float(init_scale))
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, D] -> logits [B, C]
        for layer in self.linears[:-1]:
            x = F.relu(layer(x))
            if self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
        return self.linears[-1](x)

    def l2(self) -> torch.Tensor:
        total = (self.linears[0].weight ** 2).sum()  # summed in layer order, as the population's l2
        for layer in self.linears[1:]:
            total = total + (layer.weight**2).sum()
        return total


def make_optimizer(name: str, params: Any, lr: float, momentum: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r} (sgd, momentum, nesterov, adam, rmsprop)")


def tensors(p: dict[str, Any], source_dir: str, device: str) -> tuple[torch.Tensor, ...]:
    """Data set as tensors on the device, cached per worker process (trials share it)."""
    key = (str(p["dataset"]), source_dir, device, float(p.get("val_fraction", 0.25)))
    if key not in _DATA_CACHE:
        ds = data.load(key[0], source_dir, key[3])
        _DATA_CACHE[key] = tuple(torch.from_numpy(a).to(device) for a in (ds.X_train, ds.y_train, ds.X_val, ds.y_val))
    return _DATA_CACHE[key]


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, reg: float) -> tuple[float, float]:
    """(loss incl. L2, accuracy) in eval mode."""
    model.eval()
    logits = model(X)
    loss = F.cross_entropy(logits, y) + reg * cast(MLP, model).l2()
    return float(loss), float((logits.argmax(1) == y).float().mean())


def fit(p: dict[str, Any], trial: Trial) -> None:
    torch.manual_seed(trial.seed)
    device = trial.device
    Xtr, ytr, Xva, yva = tensors(p, trial.source_dir, device)
    n_classes = int(max(int(ytr.max()), int(yva.max())) + 1)
    model = MLP(Xtr.shape[1], hidden_sizes(p["hidden"]), n_classes, p["dropout"], p.get("init_scale")).to(device)
    reg, batch = float(p["reg"]), int(p["batch"])
    opt = make_optimizer(p["optimizer"], model.parameters(), float(p["lr"]), float(p["momentum"]))
    ema = float(p.get("ema") or 0.0)
    average = copy.deepcopy(model) if ema else None  # the weights' running average, evaluated instead
    averaged = False  # the average starts as a copy of the weights after the first step
    first_loss = None
    if trial.resume_state:
        model.load_state_dict(trial.resume_state["model"])
        opt.load_state_dict(trial.resume_state["optimizer"])
        first_loss = trial.resume_state.get("first_loss")
        if average is not None and "ema_model" in trial.resume_state:
            average.load_state_dict(trial.resume_state["ema_model"])
            averaged = True
    gen = torch.Generator().manual_seed(trial.seed)
    W0 = model.linears[0].weight
    for epoch in trial.epoch_range:
        for group in opt.param_groups:  # schedule from the epoch number, so resuming is exact
            group["lr"] = lr_at(p, epoch)
        gen.manual_seed(trial.seed * 1000 + epoch)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(Xtr), generator=gen).to(device)
        n_batches = (len(Xtr) + batch - 1) // batch
        if p.get("max_batches"):
            n_batches = min(n_batches, int(p["max_batches"]))
        losses = []
        for b in range(n_batches):
            if b == n_batches - 1:
                before = W0.detach().clone()
            idx = order[b * batch : (b + 1) * batch]
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx]) + reg * model.l2()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if average is not None:
                update_average(average, model, ema if averaged else 0.0)
                averaged = True
            value = loss.item()
            losses.append(value)
            if first_loss is None:
                first_loss = value
            if value != value or value in (float("inf"), float("-inf")) or value > p["diverge_factor"] * first_loss:
                factor = p["diverge_factor"]
                trial.mark_diverged(
                    f"batch loss {value:.3g} > {factor:g} x first {first_loss:.3g} (epoch {epoch}, batch {b + 1})"
                )
        # update-to-weight ratio of the first layer, measured on the epoch's last step
        ratio = float((W0.detach() - before).norm() / (before.norm() + 1e-12))
        judged = average if average is not None else model
        train_loss, train_acc = evaluate(judged, Xtr, ytr, reg)
        val_loss, val_acc = evaluate(judged, Xva, yva, reg)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "first_loss": first_loss}
        if average is not None:
            state["ema_model"] = average.state_dict()
        trial.report(
            epoch,
            state=state,
            train_loss=sum(losses) / len(losses),
            val_loss=val_loss,
            train_acc=train_acc,
            val_acc=val_acc,
            update_ratio=ratio,
            lr=opt.param_groups[0]["lr"],
            seconds=time.perf_counter() - t0,
            eval_train_loss=train_loss,
            extras={"losses": subsample(losses, 50)},
        )


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average = decay * average + (1 - decay) * model, parameter by parameter (decay 0 copies).

    The exponential moving average of the weights (Polyak averaging with a forgetting factor),
    the "running average of the parameters" of the CS231n notes; as torch.optim.swa_utils'
    EMA, the average starts as a copy of the weights after the first step."""
    for a, w in zip(average.parameters(), model.parameters()):
        a.lerp_(w, 1.0 - decay)


def subsample(xs: list[float], n: int) -> list[float]:
    """At most n evenly spaced points of a loss history (keeps metrics.jsonl small)."""
    if len(xs) <= n:
        return [round(x, 6) for x in xs]
    step = len(xs) / n
    return [round(xs[int(i * step)], 6) for i in range(n)]
