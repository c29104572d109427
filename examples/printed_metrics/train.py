"""A PyTorch script that knows nothing of hpsearch: it prints its progress the way pytorch/examples'
mnist/main.py does, and hpsearch reads its metrics from those lines (`metric_regex` in sweep.yaml).

    python train.py --lr 0.1 --epochs 3
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def spirals(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three interleaved spirals in 2-D, n points each: a small problem a linear model cannot solve."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for k in range(3):
        r = torch.linspace(0.05, 1, n)
        t = k * 2 * math.pi / 3 + 4 * r + 0.2 * torch.randn(n, generator=g)
        xs.append(torch.stack([r * torch.sin(t), r * torch.cos(t)], 1))
        ys.append(torch.full((n,), k))
    return torch.cat(xs), torch.cat(ys)


def main() -> None:
    ap = argparse.ArgumentParser(description="spirals, printed like pytorch/examples mnist")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    x_train, y_train = spirals(300, seed=0)
    x_test, y_test = spirals(100, seed=1)
    model = nn.Sequential(nn.Linear(2, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 3))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        for i, start in enumerate(range(0, len(order), args.batch_size)):
            idx = order[start : start + args.batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i % 10 == 0:
                print(
                    f"Train Epoch: {epoch} [{start}/{len(order)} ({100.0 * start / len(order):.0f}%)]"
                    f"\tLoss: {loss.item():.6f}"
                )
        model.eval()
        with torch.no_grad():
            out = model(x_test)
            test_loss = F.cross_entropy(out, y_test).item()
            correct = int((out.argmax(1) == y_test).sum())
        print(
            f"\nTest set: Average loss: {test_loss:.4f}, "
            f"Accuracy: {correct}/{len(y_test)} ({100.0 * correct / len(y_test):.0f}%)\n"
        )


if __name__ == "__main__":
    main()
