"""The built-in trainables' names and settings, with their defaults: what a sweep may fix or search.

Validation of the sweep file needs them, so they live here, below the trainables that use them,
and stay import-light (no torch).
"""

from __future__ import annotations

# Settings the built-in classifier understands, with their defaults. A sweep may fix any of
# them under `trainable:` or search them under `parameters:`; anything else is a typo.
CLASSIFIER_DEFAULTS: dict[str, object] = {
    "dataset": "digits",  # digits | spiral | npz:PATH | cifar10:DIR
    "hidden": [100],  # layer widths; one int means one hidden layer
    "optimizer": "momentum",  # sgd | momentum | nesterov | adam | rmsprop
    "lr": 1e-2,
    "reg": 1e-4,  # L2 strength, added to the loss as reg * sum(W**2)
    "dropout": 0.0,
    "batch": 64,
    "momentum": 0.9,
    "lr_decay": 1.0,  # multiply lr by this after every epoch
    "lr_schedule": "constant",  # constant | step | exponential | inverse_time (search/schedules.py)
    "lr_drop": 0.5,  # step: multiply lr by this every lr_step epochs
    "lr_step": 5,
    "lr_k": 0.1,  # exponential: lr * exp(-lr_k * t); inverse_time: lr / (1 + lr_k * t)
    "ema": 0.0,  # exponential moving average of the weights (0: off); evaluated with the average
    "init_scale": None,  # None: Kaiming/He init; a float: N(0, init_scale**2) weights
    "diverge_factor": 3.0,  # stop when a batch loss exceeds this times the first loss
    "val_fraction": 0.25,  # for data sets without a given validation split
    "population": 1,  # train this many trials of a stage at once (batched)
    "max_batches": None,  # cap batches per epoch (quick tests)
}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop")
# What the built-in classifier reports each epoch (trainables/classifier.py, population.py): the
# sweep's `metric:` must be one of them, or every trial would fail at its first report.
CLASSIFIER_METRICS = (
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "eval_train_loss",
    "update_ratio",
    "lr",
    "seconds",
)
BUILTINS = ("classifier", "noop")
# noop: no training; any parameter is accepted. Its metric peaks where params equal `target`.
NOOP_DEFAULTS: dict[str, object] = {"sleep": 0.0, "metric_value": None, "fail": False, "target": None}


def builtin_defaults(name: str) -> dict[str, object]:
    """A fresh copy of the defaults of built-in `name` ('classifier' or 'noop')."""
    return dict(CLASSIFIER_DEFAULTS if name == "classifier" else NOOP_DEFAULTS)
