"""A plain PyTorch training script, tuned by hpsearch through `trainable: {command: [...]}`.

It runs on its own too (`python train.py --lr 0.1`): without the HPSEARCH_* variables it only
prints. Under hpsearch it appends one JSON line per epoch to $HPSEARCH_METRICS_FILE, hands
over a checkpoint per epoch, and continues from $HPSEARCH_RESUME_FROM when resuming.
"""

import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def spiral(n_per_class=300, classes=3, seed=0):
    """2-D spiral arms: not linearly separable, so the hidden layer matters. X [N, 2], y [N]."""
    g = torch.Generator().manual_seed(seed)
    r = torch.linspace(0, 1, n_per_class).repeat(classes)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    t = y * 4.0 + r * 4.0 + 0.2 * torch.randn(len(y), generator=g)
    X = torch.stack([r * torch.sin(t), r * torch.cos(t)], 1)
    perm = torch.randperm(len(y), generator=g)
    return X[perm], y[perm]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--reg", type=float, default=1e-4)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sleep", type=float, default=0.0, help="pause after each epoch (demos, tests)")
    args = ap.parse_args()
    metrics_file = os.environ.get("HPSEARCH_METRICS_FILE")
    ckpt_dir = os.environ.get("HPSEARCH_CHECKPOINT_DIR")
    resume = os.environ.get("HPSEARCH_RESUME_FROM")

    torch.manual_seed(args.seed)
    X, y = spiral()
    Xtr, ytr, Xva, yva = X[:675], y[:675], X[675:], y[675:]
    model = nn.Sequential(nn.Linear(2, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 3))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    start = 0
    if resume:
        ckpt = torch.load(resume, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start = ckpt["epoch"]
        print(f"resumed from {resume} at epoch {start}", flush=True)

    for epoch in range(start + 1, args.epochs + 1):
        model.train()
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        losses = []
        for idx in torch.randperm(len(Xtr), generator=g).split(64):  # batches of 64
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            loss = loss + args.reg * sum((p**2).sum() for n, p in model.named_parameters() if "weight" in n)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val_acc = (model(Xva).argmax(1) == yva).float().mean().item()
        train_loss = sum(losses) / len(losses)
        print(f"epoch {epoch}: train_loss {train_loss:.4f} val_acc {val_acc:.4f}", flush=True)
        line = {"epoch": epoch, "val_acc": val_acc, "train_loss": train_loss}  # NaN is written as NaN
        if ckpt_dir:
            path = os.path.join(ckpt_dir, f"epoch{epoch}.pt")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, path)
            line["checkpoint"] = path  # written and closed before the line that names it
        if metrics_file:
            with open(metrics_file, "a") as f:
                f.write(json.dumps(line) + "\n")
        time.sleep(args.sleep)


if __name__ == "__main__":
    main()
