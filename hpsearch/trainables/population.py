"""Population training: K trials of the built-in classifier at once, in one process.

Tiny models spend their time in per-operation overhead, not in arithmetic, so K networks of one
architecture are trained together with batched matmuls: weights stacked as [K, in, out], biases
[K, 1, out], learning rate, L2, momentum and dropout as per-member tensors. Each member keeps its
own trial: the single classifier's initial weights under the member's seed, its own batch order
(the same permutation `classifier.fit` draws), its own metrics, checkpoint (in the single
classifier's state_dict format, so resume and promotion work either way) and divergence check;
a member that diverges, is lost or is stopped leaves the population and the others go on.
Optimizers are written out by hand with torch.optim's update rules (SGD, momentum, Nesterov,
Adam, RMSprop at their defaults), so results match one-by-one training up to float rounding.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F

from hpsearch.errors import StopTrial, failure_record
from hpsearch.search.schedules import lr_at
from hpsearch.trainables import classifier as single
from hpsearch.trainables.trial import Trial

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam defaults
RMS_ALPHA, RMS_EPS = 0.99, 1e-8  # torch.optim.RMSprop defaults
EVAL_CHUNK_FLOATS = 1 << 18  # activations per evaluation chunk: 1 MiB, cache-sized on a CPU


def group_key(p: dict[str, Any], trial: Trial) -> tuple[Any, ...]:
    """Settings members of one population must share: they fix tensor shapes and the update rule."""
    return (
        str(p["dataset"]),
        float(p.get("val_fraction", 0.25)),
        tuple(single.hidden_sizes(p["hidden"])),
        int(p["batch"]),
        str(p["optimizer"]),
        p.get("max_batches"),
        trial.start_epoch,
        trial.epochs,
        trial.device,
        trial.source_dir,
    )


def fit_population(params_list: list[dict[str, Any]], trials: list[Trial]) -> None:
    """Train claimed trials: groups of equal architecture together, singletons with `classifier.fit`.

    An exception inside one group is recorded on that group's trials (`trial.error`, read by the
    worker) so the other groups still run.
    """
    groups: dict[tuple[Any, ...], list[tuple[dict[str, Any], Trial]]] = {}
    for p, t in zip(params_list, trials):
        groups.setdefault(group_key(p, t), []).append((p, t))
    for members in groups.values():
        try:
            if len(members) == 1:
                _fit_alone(*members[0])
            else:
                Population(members).fit()
        except Exception as e:
            record = failure_record(e)
            for _, t in members:
                t.error = record  # type: ignore[attr-defined]


def _fit_alone(p: dict[str, Any], trial: Trial) -> None:
    try:
        single.fit(p, trial)
    except StopTrial:
        pass


def _col(values: list[float], device: str) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)  # [K, 1, 1]


@torch.no_grad()
def batched_forward_backward(
    P: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, drop_p: torch.Tensor | None
) -> torch.Tensor:
    """Population.forward_backward for weights P ([W0 [K,in,out], b0 [K,1,out], ...]); dropout
    probabilities drop_p [K, 1, 1] or None. Writes P[i].grad; returns the mean cross-entropy [K].
    Any float dtype: `hpsearch check` runs it in float64 for the gradient check."""
    n_layers = len(P) // 2
    inputs, drops = [], []  # each layer's input; each hidden layer's dropout mask
    h = x
    for li in range(n_layers):
        W, bias = P[2 * li], P[2 * li + 1]
        inputs.append(h)
        h = torch.baddbmm(bias, h, W)
        if li < n_layers - 1:
            h.relu_()
            if drop_p is not None:
                keep = 1 - drop_p
                drop = (torch.rand_like(h) < keep).to(h.dtype).div_(keep)
                h.mul_(drop)
                drops.append(drop)
    B = y.shape[1]
    # classes on dim 1 ([K, C, B]): log_softmax over a short last dim is several times slower
    logp = torch.log_softmax(h.transpose(1, 2), dim=1)  # [K, C, B]
    ce = -logp.gather(1, y.unsqueeze(1)).squeeze(1).mean(1)  # [K]
    dz = logp.exp_()
    dz.scatter_add_(1, y.unsqueeze(1), torch.full_like(dz[:, :1], -1.0))
    dz = dz.div_(B).transpose(1, 2)  # [K, B, C] view
    for li in range(n_layers - 1, -1, -1):
        W = P[2 * li]
        P[2 * li].grad = torch.bmm(inputs[li].transpose(1, 2), dz)  # [K, in, out]
        P[2 * li + 1].grad = dz.sum(1, keepdim=True)  # [K, 1, out]
        if li:
            # ReLU's backward (one fused op, as autograd does it): pass where the layer's output > 0
            dz = torch.ops.aten.threshold_backward(torch.bmm(dz, W.transpose(1, 2)), inputs[li], 0)
            if drops:
                dz.mul_(drops[li - 1])
    return ce


class Population:
    """One group of members with equal architecture; `fit` trains them all epoch by epoch."""

    def __init__(self, members: list[tuple[dict[str, Any], Trial]]) -> None:
        self.params = [p for p, _ in members]
        self.trials = [t for _, t in members]
        p0, t0 = members[0]
        self.device = dev = t0.device
        self.Xtr, self.ytr, self.Xva, self.yva = single.tensors(p0, t0.source_dir, dev)
        self.n_classes = int(max(int(self.ytr.max()), int(self.yva.max())) + 1)
        self.hidden = single.hidden_sizes(p0["hidden"])
        self.batch, self.opt_name = int(p0["batch"]), str(p0["optimizer"])
        self.max_batches = p0.get("max_batches")
        self.lr = _col([float(p["lr"]) for p in self.params], dev)
        self.ema = _col([float(p.get("ema") or 0.0) for p in self.params], dev)
        self.any_ema = any(float(p.get("ema") or 0.0) > 0 for p in self.params)
        self.reg = torch.tensor([float(p["reg"]) for p in self.params], device=dev)  # [K]
        self.mom = _col([float(p["momentum"]) for p in self.params], dev)
        self.drop = _col([float(p["dropout"]) for p in self.params], dev)
        self.any_dropout = any(float(p["dropout"]) > 0 for p in self.params)  # decided once: no sync per step
        self.factor = [float(p["diverge_factor"]) for p in self.params]
        self.first_loss: list[float | None] = []
        self.P: list[torch.Tensor] = []  # [W0 [K,in,out], b0 [K,1,out], W1, b1, ...]
        self.S: dict[str, list[torch.Tensor]] = {}  # optimizer state per parameter, same layout
        self.A: list[torch.Tensor] = []  # the weights' running average (ema), same layout; [] without ema
        self._init_members()

    # -- members' starting point ---------------------------------------------------------------
    def _init_members(self) -> None:
        """Each member starts exactly where `classifier.fit` would: its seed's init, or its resume state."""
        per_layer_W: list[list[torch.Tensor]] = []
        per_layer_b: list[list[torch.Tensor]] = []
        states: list[dict[int, dict[str, Any]]] = []
        averages: list[list[torch.Tensor] | None] = []
        for p, t in zip(self.params, self.trials):
            torch.manual_seed(t.seed)
            m = single.MLP(self.Xtr.shape[1], self.hidden, self.n_classes, p["dropout"], p.get("init_scale"))
            opt_state: dict[int, dict[str, Any]] = {}
            first = None
            if t.resume_state:
                m.load_state_dict(t.resume_state["model"])
                opt_state = t.resume_state["optimizer"].get("state", {})
                first = t.resume_state.get("first_loss")
            average = t.resume_state.get("ema_model") if t.resume_state else None
            averages.append(None if average is None else list(average.values()))  # W, b, W, b ... as P
            self.first_loss.append(first)
            states.append(opt_state)
            per_layer_W.append([layer.weight.detach().t() for layer in m.linears])  # [out,in] -> [in,out]
            per_layer_b.append([layer.bias.detach().view(1, -1) for layer in m.linears])
        n_layers = len(per_layer_W[0])
        for li in range(n_layers):
            for per_layer in (per_layer_W, per_layer_b):
                stacked = torch.stack([x[li] for x in per_layer]).to(self.device).contiguous()
                self.P.append(stacked)  # gradients are computed by hand (forward_backward)
        for key in self._state_keys():
            bufs = []
            for j, P in enumerate(self.P):
                rows = []
                for opt_state in states:
                    s = opt_state.get(j, {}).get(key)
                    # zeros equal torch.optim's own first step (a momentum buffer starts as the gradient)
                    rows.append(torch.zeros_like(P[0]) if s is None else (s.t() if j % 2 == 0 else s.view(1, -1)))
                bufs.append(torch.stack([r.to(self.device) for r in rows]).contiguous())
            self.S[key] = bufs
        steps = [float(st.get(0, {}).get("step", 0.0)) for st in states]
        self.step = _col(steps, self.device)
        # 1 where a member's average already runs (resumed), 0 where its first step starts it as a copy
        self.averaged = _col([float(a is not None) for a in averages], self.device)
        if self.any_ema:
            for j, P in enumerate(self.P):
                rows = [
                    P[k] if a is None else (a[j].t() if j % 2 == 0 else a[j].view(1, -1))
                    for k, a in enumerate(averages)
                ]
                self.A.append(torch.stack([r.to(self.device) for r in rows]).contiguous())

    def _state_keys(self) -> tuple[str, ...]:
        return {
            "sgd": (),
            "momentum": ("momentum_buffer",),
            "nesterov": ("momentum_buffer",),
            "adam": ("exp_avg", "exp_avg_sq"),
            "rmsprop": ("square_avg",),
        }[self.opt_name]

    # -- forward and update ----------------------------------------------------------------------
    def logits(self, x: torch.Tensor, P: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Evaluation forward pass (no dropout) with weights P (default self.P). x: [B, D] -> [K, B, C]."""
        P = self.P if P is None else P
        n_layers = len(P) // 2
        for li in range(n_layers):
            W, b = P[2 * li], P[2 * li + 1]
            x = torch.baddbmm(b, x, W) if x.dim() == 3 else torch.matmul(x, W).add_(b)
            if li < n_layers - 1:
                x.relu_()
        return x

    @torch.no_grad()
    def forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per member [K], with its gradients written to P.grad by hand.

        x: [K, B, D], y: [K, B]. Autograd's bookkeeping costs more than the arithmetic of these
        tiny batched matmuls; the backward of a ReLU MLP with softmax cross-entropy is short:
        dlogits = (softmax - onehot) / B, then per layer dW = a^T dz, db = sum dz, dz = (dz W^T) * [a > 0] * dropout.
        """
        return batched_forward_backward(self.P, x, y, self.drop if self.any_dropout else None)

    def l2(self, P: list[torch.Tensor] | None = None) -> torch.Tensor:  # [K]
        return sum((W**2).sum((1, 2)) for W in (self.P if P is None else P)[0::2])  # type: ignore[return-value]

    @torch.no_grad()
    def update_average(self) -> None:
        """A = ema * A + (1 - ema) * P per member, as classifier.update_average (a first step copies)."""
        weight = 1 - self.ema * self.averaged  # [K, 1, 1]
        for A, P in zip(self.A, self.P):
            A.lerp_(P, weight)
        self.averaged.fill_(1.0)

    @torch.no_grad()
    def update(self, lr: torch.Tensor) -> None:
        """One optimizer step per member, with torch.optim's formulas (lr: [K, 1, 1])."""
        name = self.opt_name
        self.step += 1
        for j, P in enumerate(self.P):
            g = P.grad
            assert g is not None
            if j % 2 == 0:  # weights: d(reg * sum W**2)/dW, as autograd gives it to classifier.fit
                g = g.addcmul_(P, 2 * self.reg.view(-1, 1, 1))
            # P -= lr * step as one fused addcmul_ (no temporary [K, in, out] tensor per layer)
            if name == "sgd":
                P.addcmul_(lr, g, value=-1)
            elif name in ("momentum", "nesterov"):
                buf = self.S["momentum_buffer"][j]
                buf.mul_(self.mom).add_(g)
                P.addcmul_(lr, g.addcmul_(self.mom, buf) if name == "nesterov" else buf, value=-1)
            elif name == "adam":
                b1, b2 = ADAM_BETAS
                m, v = self.S["exp_avg"][j], self.S["exp_avg_sq"][j]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                step_size = lr / (1 - b1**self.step)
                denom = (v.sqrt() / (1 - b2**self.step).sqrt()).add_(ADAM_EPS)
                P.sub_(step_size * m / denom)
            elif name == "rmsprop":
                sq = self.S["square_avg"][j]
                sq.mul_(RMS_ALPHA).addcmul_(g, g, value=1 - RMS_ALPHA)
                P.sub_(lr * g / sq.sqrt().add_(RMS_EPS))
            else:
                raise ValueError(f"unknown optimizer {name!r} (sgd, momentum, nesterov, adam, rmsprop)")
            P.grad = None

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> None:
        t0 = self.trials[0]
        for epoch in t0.epoch_range:
            if not self.trials:
                return
            self._epoch(epoch)

    def _epoch(self, epoch: int) -> None:
        K, dev = len(self.trials), self.device
        lrs = [lr_at(p, epoch) for p in self.params]  # schedule from the epoch number, as alone
        lr = _col(lrs, dev)
        start = time.perf_counter()
        # each member's own batch order: the permutation classifier.fit draws for this seed and epoch
        gen = torch.Generator()
        orders = []
        for t in self.trials:
            gen.manual_seed(t.seed * 1000 + epoch)
            orders.append(torch.randperm(len(self.Xtr), generator=gen))
        order = torch.stack(orders).to(dev)  # [K, N]
        n_batches = (len(self.Xtr) + self.batch - 1) // self.batch
        if self.max_batches:
            n_batches = min(n_batches, int(self.max_batches))
        losses = []
        for b in range(n_batches):
            if b == n_batches - 1:
                before = self.P[0].detach().clone()
            idx = order[:, b * self.batch : (b + 1) * self.batch]  # [K, B]
            data_loss = self.forward_backward(self.Xtr[idx], self.ytr[idx])  # [K]; fills P.grad
            losses.append(data_loss + self.reg * self.l2())  # the L2 gradient is added in update()
            self.update(lr)
            if self.any_ema:
                self.update_average()
        L = torch.stack(losses).cpu().tolist()  # [n_batches][K]
        after = self.P[0].detach()
        ratio = ((after - before).flatten(1).norm(dim=1) / (before.flatten(1).norm(dim=1) + 1e-12)).tolist()
        train_loss, train_acc = self.evaluate(self.Xtr, self.ytr)
        val_loss, val_acc = self.evaluate(self.Xva, self.yva)
        seconds = (time.perf_counter() - start) / K  # each member's share of the epoch
        keep = []
        for k, t in enumerate(self.trials):
            try:
                self._check_divergence(k, t, [row[k] for row in L], epoch)
                t.report(
                    epoch,
                    state=self.member_state(k, lrs[k]),
                    train_loss=sum(row[k] for row in L) / len(L),
                    val_loss=val_loss[k],
                    train_acc=train_acc[k],
                    val_acc=val_acc[k],
                    update_ratio=ratio[k],
                    lr=lrs[k],
                    seconds=seconds,
                    eval_train_loss=train_loss[k],
                    extras={"losses": single.subsample([row[k] for row in L], 50)},
                )
                keep.append(k)
            except StopTrial:
                pass  # diverged, lost or stopped: this member leaves, the others go on
        if len(keep) < K:
            self._keep(keep)

    def _check_divergence(self, k: int, t: Trial, losses: list[float], epoch: int) -> None:
        """The single classifier's per-batch test, replayed on this member's batch losses."""
        for b, value in enumerate(losses):
            if self.first_loss[k] is None:
                self.first_loss[k] = value
            first = self.first_loss[k]
            assert first is not None
            if value != value or value in (float("inf"), float("-inf")) or value > self.factor[k] * first:
                t.mark_diverged(
                    f"batch loss {value:.3g} > {self.factor[k]:g} x first {first:.3g} (epoch {epoch}, batch {b + 1})"
                )

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Per member: (loss incl. L2, accuracy), without dropout.

        In chunks of rows: all members' activations for a whole data set ([K, N, hidden], 17 MB at
        K = 32 on digits) would leave the cache, and evaluation then cost more than training."""
        K, N = len(self.trials), len(X)
        P = self.A if self.any_ema else self.P  # judged by the running average, as classifier.fit
        widest = max(P.shape[-1] for P in self.P[0::2])
        rows = max(1, EVAL_CHUNK_FLOATS // (K * widest))
        ce_sum = torch.zeros(K, device=X.device)
        correct = torch.zeros(K, device=X.device)
        for a in range(0, N, rows):
            logits = self.logits(X[a : a + rows], P).transpose(1, 2)  # [K, C, n]: classes off the last dim (faster)
            yc = y[a : a + rows]
            ce_sum += F.cross_entropy(logits, yc.expand(K, -1), reduction="none").sum(1)
            correct += (logits.argmax(1) == yc).sum(1)
        loss = ce_sum / N + self.reg * self.l2(P)
        return loss.tolist(), (correct / N).tolist()

    def member_state(self, k: int, lr: float) -> dict[str, Any]:
        """Member k as `classifier.fit` saves it: MLP state_dict, torch.optim state_dict, first loss.

        Tensors are cloned: a view would make torch.save write the whole stacked storage.
        """
        model: OrderedDict[str, torch.Tensor] = OrderedDict()
        for li in range(len(self.P) // 2):
            model[f"layers.{li}.weight"] = self.P[2 * li][k].detach().t().contiguous().cpu()
            model[f"layers.{li}.bias"] = self.P[2 * li + 1][k].detach().view(-1).clone().cpu()
        state: dict[int, dict[str, Any]] = {}
        for j in range(len(self.P)):
            entry: dict[str, Any] = {}
            for key, bufs in self.S.items():
                x = bufs[j][k]
                entry[key] = (x.t().contiguous() if j % 2 == 0 else x.view(-1).clone()).cpu()
            if self.opt_name in ("adam", "rmsprop"):
                entry = {"step": torch.tensor(float(self.step[k])), **entry}
            if entry:
                state[j] = entry
        group = {**self._group_template(), "lr": lr, "params": list(range(len(self.P)))}
        if "momentum" in group and self.opt_name in ("momentum", "nesterov"):
            group["momentum"] = float(self.mom[k])
        out = {
            "model": model,
            "optimizer": {"state": state, "param_groups": [group]},
            "first_loss": self.first_loss[k],
        }
        if float(self.params[k].get("ema") or 0.0) > 0:
            out["ema_model"] = OrderedDict(
                (name, (A[k].detach().t() if j % 2 == 0 else A[k].detach().view(-1)).contiguous().clone().cpu())
                for j, (name, A) in enumerate(zip(model, self.A))
            )
        return out

    def _group_template(self) -> dict[str, Any]:
        """torch.optim's own param_group keys for this optimizer (so load_state_dict accepts it)."""
        if not hasattr(self, "_template"):
            dummy = [torch.zeros(1, requires_grad=True) for _ in self.P]
            opt = single.make_optimizer(self.opt_name, dummy, float(self.lr[0]), float(self.mom[0]))
            self._template = {k: v for k, v in opt.state_dict()["param_groups"][0].items() if k != "params"}
        return self._template

    def _keep(self, keep: list[int]) -> None:
        """Drop members that left: every per-member tensor keeps only the rows in `keep`."""
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)  # [K'] (an empty list would be float)
        self.trials = [self.trials[k] for k in keep]
        self.params = [self.params[k] for k in keep]
        self.factor = [self.factor[k] for k in keep]
        self.any_dropout = any(float(p["dropout"]) > 0 for p in self.params)
        self.first_loss = [self.first_loss[k] for k in keep]
        self.P = [P.index_select(0, idx).contiguous() for P in self.P]
        self.S = {key: [b.index_select(0, idx).contiguous() for b in bufs] for key, bufs in self.S.items()}
        self.A = [A.index_select(0, idx).contiguous() for A in self.A]
        self.any_ema = any(float(p.get("ema") or 0.0) > 0 for p in self.params)
        for name in ("lr", "ema", "averaged", "reg", "mom", "drop", "step"):
            setattr(self, name, getattr(self, name).index_select(0, idx))
