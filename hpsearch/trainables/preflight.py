"""Measurements of `hpsearch check`: a gradient check, the loss at initialization, overfitting a
tiny sample and a learning-rate range test, for the built-in classifier and for a python
trainable that offers the preflight contract. The verdicts are `hpsearch.search.preflight`'s.

The python contract (README, "The recipe"): the module of `fit` may define

    def preflight(params: dict) -> tuple[torch.nn.Module, Callable, Iterable]:
        return model, loss_fn, batches

a freshly initialized model mapping a batch x to outputs (logits [B, C] for a classifier), the
data loss `loss_fn(outputs, y)` without regularization, and an iterable of training batches
(x, y) that can be iterated more than once. Every check uses only these three.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hpsearch.search import preflight as pf
from hpsearch.trainables import classifier as single
from hpsearch.trainables.population import batched_forward_backward

GRAD_H = 1e-5  # centred-difference step in float64 (the notes: ~1e-5)
GRAD_BATCH = 8  # examples in the gradient check's batch
GRAD_COORDS = 20  # coordinates checked per weight or bias tensor (all of a smaller one)
GRAD_REG = 1e-3  # the L2 strength in the checked loss, so its gradient is checked too
RANGE_ITERS = 150  # iterations of the range test
RANGE_LRS = (1e-6, 10.0)  # its lr span, widened to hold the sweep's declared lr range
RANGE_WD = 1e-4  # "a small weight decay" during the range test (L2 on the weights)


@dataclass
class Probe:
    """What the checks drive: `make()` a fresh (model, loss_fn), the training `batches`, a sample of
    training examples (X, y), the number of classes (None: not a classifier), the optimizer for
    the range test, and `with_reg(model)`: the model's loss with regularization on, if known."""

    make: Callable[[], tuple[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]]
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
    X: torch.Tensor
    y: torch.Tensor
    n_classes: int | None
    optimizer: Callable[[Any, float], torch.optim.Optimizer]
    reg_loss: Callable[[nn.Module], torch.Tensor] | None = None
    reg: float = 0.0


# -- the built-in classifier ------------------------------------------------------------------------
def classifier_probe(p: dict[str, Any], source_dir: str, seed: int) -> Probe:
    """The built-in classifier with settings p (dropout and regularization off for the checks)."""
    Xtr, ytr, Xva, yva = single.tensors(p, source_dir, "cpu")
    n_classes = int(max(int(ytr.max()), int(yva.max())) + 1)
    hidden = single.hidden_sizes(p["hidden"])

    def make() -> tuple[nn.Module, Any]:
        torch.manual_seed(seed)
        return single.MLP(Xtr.shape[1], hidden, n_classes, 0.0, p.get("init_scale")), F.cross_entropy

    batch = int(p["batch"])

    def batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(Xtr), generator=torch.Generator().manual_seed(seed))
        return [(Xtr[order[i : i + batch]], ytr[order[i : i + batch]]) for i in range(0, len(Xtr), batch)]

    def optimizer(params: Any, lr: float) -> torch.optim.Optimizer:
        return single.make_optimizer(str(p["optimizer"]), params, lr, float(p["momentum"]))

    def reg_loss(model: nn.Module) -> torch.Tensor:
        return cast_mlp(model).l2()

    order = torch.randperm(len(Xtr), generator=torch.Generator().manual_seed(seed))
    return Probe(make, batches, Xtr[order], ytr[order], n_classes, optimizer, reg_loss, float(p["reg"]))


def cast_mlp(model: nn.Module) -> single.MLP:
    assert isinstance(model, single.MLP)
    return model


def classifier_gradients(p: dict[str, Any], source_dir: str, seed: int) -> tuple[list[float], list[bool]]:
    """Gradient check of the population's hand-written batched backward, in float64.

    Two members (seeds `seed`, `seed + 1`: the batching must not mix them) on GRAD_BATCH training
    examples; the loss is each member's cross-entropy + GRAD_REG * sum(W**2), whose analytic
    gradient is the backward's plus 2 * GRAD_REG * W (as Population.update adds it). Returns the
    relative error of GRAD_COORDS sampled coordinates per tensor, and whether each step crossed a
    ReLU kink."""
    Xtr, ytr, Xva, yva = single.tensors(p, source_dir, "cpu")
    n_classes = int(max(int(ytr.max()), int(yva.max())) + 1)
    hidden = single.hidden_sizes(p["hidden"])
    Ws: list[list[torch.Tensor]] = []
    for s in (seed, seed + 1):
        torch.manual_seed(s)
        m = single.MLP(Xtr.shape[1], hidden, n_classes, 0.0, p.get("init_scale"))
        # a zero bias puts no unit near its kink by chance; small random biases make the check general
        Ws.append(
            [t for layer in m.linears for t in (layer.weight.detach().t(), 0.1 * torch.randn(1, layer.out_features))]
        )
    P = [torch.stack([w[i] for w in Ws]).double().contiguous() for i in range(len(Ws[0]))]
    x = Xtr[:GRAD_BATCH].double().expand(2, -1, -1).contiguous()  # [K, B, D]
    y = ytr[:GRAD_BATCH].expand(2, -1).contiguous()  # [K, B]
    batched_forward_backward(P, x, y, None)
    analytic: list[torch.Tensor] = []
    for i, T in enumerate(P):
        assert T.grad is not None
        analytic.append(T.grad + 2 * GRAD_REG * T if i % 2 == 0 else T.grad)

    def loss_and_masks() -> tuple[float, list[torch.Tensor]]:
        h, masks = x, []
        for li in range(len(P) // 2):
            h = torch.baddbmm(P[2 * li + 1], h, P[2 * li])
            if li < len(P) // 2 - 1:
                masks.append(h > 0)
                h = h.relu()
        ce = F.cross_entropy(h.transpose(1, 2), y, reduction="none").mean(1)  # [K]
        l2 = sum((W**2).sum((1, 2)) for W in P[0::2])
        return float((ce + GRAD_REG * l2).sum()), masks

    gen = torch.Generator().manual_seed(seed)
    errors, kinks = [], []
    with torch.no_grad():
        for i, T in enumerate(P):
            flat = T.view(-1)
            picks = torch.randperm(flat.numel(), generator=gen)[:GRAD_COORDS].tolist()
            for j in picks:
                old = float(flat[j])
                flat[j] = old + GRAD_H
                up, m_up = loss_and_masks()
                flat[j] = old - GRAD_H
                down, m_down = loss_and_masks()
                flat[j] = old
                numeric = (up - down) / (2 * GRAD_H)
                errors.append(pf.rel_error(float(analytic[i].view(-1)[j]), numeric))
                kinks.append(any(bool((a != b).any()) for a, b in zip(m_up, m_down)))
    return errors, kinks


# -- a python trainable's contract ------------------------------------------------------------------
def python_probe(fn: Callable[[dict[str, Any]], Any], params: dict[str, Any], seed: int) -> Probe:
    """The preflight contract's (model, loss_fn, batches), checked; ConfigError-free: a wrong return
    raises TypeError with what to return."""

    def make() -> tuple[nn.Module, Any]:
        torch.manual_seed(seed)
        out = fn(dict(params))
        if not (isinstance(out, tuple) and len(out) == 3 and isinstance(out[0], nn.Module) and callable(out[1])):
            raise TypeError("preflight(params) must return (model: torch.nn.Module, loss_fn, batches)")
        return out[0], out[1]

    torch.manual_seed(seed)
    data = fn(dict(params))[2]
    first = next(iter(data), None)
    if first is None:
        raise TypeError("preflight(params): batches gave no batch")
    xs, ys = zip(*itertools.islice(iter(data), 64))
    X, y = torch.cat(list(xs)), torch.cat(list(ys))
    with torch.no_grad():
        out = make()[0](X[:2])
    n_classes = int(out.shape[-1]) if out.dim() == 2 and out.shape[-1] > 1 and not y.is_floating_point() else None

    def optimizer(ps: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(ps, lr=lr, momentum=0.9)

    return Probe(make, lambda: data, X, y, n_classes, optimizer)


def autograd_gradients(probe: Probe, seed: int) -> tuple[list[float], list[bool]]:
    """Gradient check of a model's backward (autograd, with any custom Function in it) in float64."""
    model, loss_fn = probe.make()
    model = model.double()
    model.eval()
    x, y = probe.X[:GRAD_BATCH].double(), probe.y[:GRAD_BATCH]
    params = [q for q in model.parameters() if q.requires_grad]
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    gen = torch.Generator().manual_seed(seed)
    errors = []
    with torch.no_grad():
        for q, g in zip(params, grads):
            flat = q.view(-1)
            for j in torch.randperm(flat.numel(), generator=gen)[:GRAD_COORDS].tolist():
                old = float(flat[j])
                flat[j] = old + GRAD_H
                up = float(loss_fn(model(x), y))
                flat[j] = old - GRAD_H
                down = float(loss_fn(model(x), y))
                flat[j] = old
                a = 0.0 if g is None else float(g.reshape(-1)[j])
                errors.append(pf.rel_error(a, (up - down) / (2 * GRAD_H)))
    return errors, [False] * len(errors)


# -- the checks any probe supports -----------------------------------------------------------------
def initial_loss(probe: Probe) -> tuple[float, float | None]:
    """(data loss at initialization on the sample, the same plus reg * L2 when the probe knows it)."""
    model, loss_fn = probe.make()
    model.eval()
    with torch.no_grad():
        loss = float(loss_fn(model(probe.X), probe.y))
        if probe.reg_loss is None:
            return loss, None
        reg = probe.reg or 1e-2
        return loss, loss + reg * float(probe.reg_loss(model))


def overfit(probe: Probe, n: int = pf.OVERFIT_SAMPLE) -> list[dict[str, Any]]:
    """Full-batch plain SGD on n examples, regularization off, along the lr ladder until one try
    reaches 100% training accuracy (OVERFIT_STEPS steps at most each)."""
    X, y = probe.X[:n], probe.y[:n]
    tries = []
    for lr in pf.OVERFIT_LRS:
        model, loss_fn = probe.make()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        first = last = math.nan
        acc, exploded, steps = 0.0, False, 0
        for steps in range(1, pf.OVERFIT_STEPS + 1):
            out = model(X)
            loss = loss_fn(out, y)
            last = loss.item()
            first = last if steps == 1 else first
            if not math.isfinite(last) or last > 3 * first:
                exploded = True
                break
            acc = float((out.argmax(1) == y).float().mean()) if probe.n_classes else 0.0
            if acc >= 1.0:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        tries.append(
            {"lr": lr, "steps": steps, "train_acc": acc, "first_loss": first, "last_loss": last, "exploded": exploded}
        )
        if acc >= 1.0:
            break
    return tries


def lr_range(probe: Probe, declared: tuple[float, float] | None) -> tuple[list[float], list[float]]:
    """Smith's range test: RANGE_ITERS minibatch steps with the lr rising exponentially across
    RANGE_LRS (widened to hold `declared`), a small weight decay; stops once the loss diverges."""
    lo, hi = RANGE_LRS
    if declared:
        lo, hi = min(lo, declared[0]), max(hi, declared[1])
    model, loss_fn = probe.make()
    model.train()
    opt = probe.optimizer(model.parameters(), lo)
    weights = [q for q in model.parameters() if q.dim() > 1]
    lrs, losses = [], []
    avg, best = 0.0, math.inf  # the smoothed loss (pf.smooth, computed as it goes) and its minimum
    batches = itertools.cycle(list(probe.batches()))
    for i in range(RANGE_ITERS):
        lr = lo * (hi / lo) ** (i / (RANGE_ITERS - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        data_loss = loss_fn(model(x), y)
        loss = data_loss + RANGE_WD * sum((w**2).sum() for w in weights)
        value = data_loss.item()
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            break
        avg = pf.SMOOTH * avg + (1 - pf.SMOOTH) * value
        smoothed = avg / (1 - pf.SMOOTH ** (i + 1))
        best = min(best, smoothed)
        if smoothed > pf.DIVERGE * best:  # diverged: the rest teaches nothing
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return lrs, losses
