"""Population training matches one-by-one training of the built-in classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import events, run_cli, write_sweep

from hpsearch.errors import StopTrial
from hpsearch.search.builtins import CLASSIFIER_DEFAULTS
from hpsearch.store.sweepdir import Store
from hpsearch.trainables import classifier
from hpsearch.trainables.classifier import MLP, make_optimizer
from hpsearch.trainables.population import fit_population
from hpsearch.trainables.trial import Trial

# val_acc is a mean over 450 validation images: 1e-3 is less than half of one image, so the
# tolerance below says every prediction agrees; losses agree to float32 rounding.
VAL_ACC_TOL = 1e-3
LOSS_RTOL = 1e-3


def make_trials(
    root: Path, configs: list[dict[str, Any]], epochs: int, stage: int = 1, parents: list[str | None] | None = None
) -> tuple[Store, list[Trial]]:
    store = Store(root)
    store.layout.ensure()
    planned = [
        {
            "trial": f"s{stage}-t{i:04d}",
            "config": f"s{stage}-t{i:04d}",
            "params": c,
            "seed": 100 + i,
            "epochs": epochs,
            "parent": (parents or [None] * len(configs))[i],
        }
        for i, c in enumerate(configs)
    ]
    store.journal.append([{"ev": "stage", "stage": stage, "space": {}, "trials": planned}])
    recs = store.claim("w", n=len(configs))
    trials = []
    for rec in recs:
        store.trial_files_ready(rec)
        trials.append(
            Trial(
                store, rec, params={**CLASSIFIER_DEFAULTS, **rec.params}, metric="val_acc", goal="maximize", keep="all"
            )
        )
    return store, trials


def run_alone(trials: list[Trial]) -> None:
    for t in trials:
        try:
            classifier.fit(t.params, t)
        except StopTrial:
            pass


CONFIGS = [
    {"lr": 0.05, "reg": 1e-4, "optimizer": "momentum", "momentum": 0.9},
    {"lr": 0.01, "reg": 1e-3, "optimizer": "momentum", "momentum": 0.5},
    {"lr": 0.2, "reg": 1e-5, "optimizer": "momentum", "momentum": 0.3, "lr_decay": 0.7},
    {"lr": 1e-3, "reg": 1e-2, "optimizer": "momentum", "momentum": 0.9, "init_scale": 0.05},
]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "rmsprop"])
def test_population_matches_one_by_one(tmp_path: Path, optimizer: str) -> None:
    configs = [dict(c, optimizer=optimizer) for c in CONFIGS]
    if optimizer in ("adam", "rmsprop"):
        configs = [dict(c, lr=c["lr"] / 20) for c in configs]
    alone_store, alone = make_trials(tmp_path / "alone", configs, epochs=3)
    run_alone(alone)
    pop_store, pop = make_trials(tmp_path / "pop", configs, epochs=3)
    fit_population([t.params for t in pop], pop)
    for a, p in zip(alone, pop):
        ma, mp = alone_store.metrics(a.id), pop_store.metrics(p.id)
        assert [m["epoch"] for m in ma] == [m["epoch"] for m in mp] == [1, 2, 3]
        for x, y in zip(ma, mp):
            assert abs(x["val_acc"] - y["val_acc"]) <= VAL_ACC_TOL, (a.params, x["val_acc"], y["val_acc"])
            assert y["val_loss"] == pytest.approx(x["val_loss"], rel=LOSS_RTOL)
            assert y["lr"] == pytest.approx(x["lr"], rel=1e-12)
        assert (a.best, a.best_epoch) == pytest.approx((p.best, p.best_epoch), abs=VAL_ACC_TOL)


def test_checkpoint_loads_into_single_model_and_optimizer(tmp_path: Path) -> None:
    configs = [dict(c, optimizer="adam", lr=1e-3) for c in CONFIGS[:2]]
    store, pop = make_trials(tmp_path, configs, epochs=2)
    fit_population([t.params for t in pop], pop)
    ckpt = store.load_checkpoint(pop[0].history[-1]["checkpoint"])
    assert ckpt is not None and ckpt["epoch"] == 2
    model = MLP(64, [100], 10, 0.0, None)
    model.load_state_dict(ckpt["state"]["model"])  # strict: same keys and shapes
    opt = make_optimizer("adam", model.parameters(), 1e-3, 0.9)
    opt.load_state_dict(ckpt["state"]["optimizer"])
    # a checkpoint holds one member, not the stacked storage of the whole population
    assert ckpt["state"]["model"]["layers.0.weight"].untyped_storage().nbytes() == 100 * 64 * 4


def test_resume_from_population_checkpoint_matches_uninterrupted(tmp_path: Path) -> None:
    """A promoted trial resumes from its parent's population checkpoint, alone or in a population."""
    configs = [dict(c) for c in CONFIGS[:3]]
    _, parents = make_trials(tmp_path / "a", configs, epochs=2)
    fit_population([t.params for t in parents], parents)
    # promote: stage 2 trials resume from the stage-1 checkpoints and train to epoch 4
    store2 = Store(tmp_path / "a")
    planned = [
        {
            "trial": f"s2-t{i:04d}",
            "config": f"s2-t{i:04d}",
            "params": c,
            "seed": 100 + i,
            "epochs": 4,
            "parent": f"s1-t{i:04d}",
        }
        for i, c in enumerate(configs)
    ]
    store2.journal.append([{"ev": "stage", "stage": 2, "space": {}, "trials": planned}])
    recs = store2.claim("w2", n=3)
    for r in recs:
        store2.trial_files_ready(r)
    promoted = [
        Trial(store2, r, params={**CLASSIFIER_DEFAULTS, **r.params}, metric="val_acc", goal="maximize") for r in recs
    ]
    assert len(promoted) == 3
    assert all(t.start_epoch == 2 for t in promoted)
    run_alone(promoted[:1])
    fit_population([t.params for t in promoted[1:]], promoted[1:])
    _, straight = make_trials(tmp_path / "b", configs, epochs=4)
    run_alone(straight)
    for t, s in zip(promoted, straight):
        got = [m["val_acc"] for m in store2.metrics(t.id)]
        want = [h["val_acc"] for h in s.history]
        assert got == pytest.approx(want, abs=VAL_ACC_TOL)


def test_diverged_member_stops_and_others_go_on(tmp_path: Path) -> None:
    configs = [dict(CONFIGS[0]), dict(CONFIGS[0], lr=50.0, momentum=0.9), dict(CONFIGS[1])]
    store, pop = make_trials(tmp_path, configs, epochs=3)
    fit_population([t.params for t in pop], pop)
    assert pop[1].stop_reason == "diverged"
    assert pop[0].stop_reason is None and len(pop[0].history) == 3
    assert pop[2].stop_reason is None and len(pop[2].history) == 3
    _, alone = make_trials(tmp_path / "alone", configs[1:2], epochs=3)
    run_alone(alone)
    assert alone[0].stop_reason == "diverged" and len(alone[0].history) == len(pop[1].history)


def test_a_population_whose_members_all_leave_in_one_epoch_ends_cleanly(tmp_path: Path) -> None:
    """Every member diverging in the same epoch left an empty population, whose float index tensor
    made index_select raise: the worker then recorded every member as failed, not diverged (seen in
    the quality bench, breast cancer with the best lr below the range)."""
    configs = [dict(CONFIGS[0], lr=50.0, momentum=0.9), dict(CONFIGS[0], lr=80.0, momentum=0.9)]
    _, pop = make_trials(tmp_path, configs, epochs=3)
    fit_population([t.params for t in pop], pop)
    assert [t.stop_reason for t in pop] == ["diverged", "diverged"]
    assert all(getattr(t, "error", None) is None for t in pop)


def test_a_sweep_whose_population_all_diverges_records_divergence_through_the_worker(tmp_path: Path) -> None:
    f = write_sweep(
        tmp_path,
        {
            "name": "pop-diverges",
            "metric": {"name": "val_acc", "goal": "maximize"},
            "trainable": {"builtin": "classifier", "dataset": "digits", "hidden": [32], "population": 4},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 50, "max": 100}},
            "stages": [{"trials": 4, "epochs": 2}],
            "workers": 1,
        },
    )
    p = run_cli("master", "start", str(f), "--dir", str(tmp_path / "run"))
    results = [e for e in events(tmp_path / "run") if e["ev"] == "result"]
    assert sorted(e["status"] for e in results) == ["diverged"] * 4, results
    assert p.returncode == 1 and "4 x diverged" in p.stdout and "exception" not in p.stdout


def test_mixed_architectures_are_grouped(tmp_path: Path) -> None:
    configs = [
        dict(CONFIGS[0], hidden=[32]),
        dict(CONFIGS[1], hidden=[32]),
        dict(CONFIGS[0], hidden=[16, 16]),
        dict(CONFIGS[0], batch=32, max_batches=3),
    ]
    store, pop = make_trials(tmp_path, configs, epochs=1)
    fit_population([t.params for t in pop], pop)
    assert all(len(t.history) == 1 and getattr(t, "error", None) is None for t in pop)
    ckpt = store.load_checkpoint(pop[2].history[-1]["checkpoint"])
    assert ckpt is not None
    assert ckpt["state"]["model"]["layers.1.weight"].shape == torch.Size([16, 16])


def test_a_failing_group_records_traceback_and_one_line_reason(tmp_path: Path) -> None:
    bad = {"lr": 0.1, "reg": 1e-4, "optimizer": "lbfgs", "dropout": 0.0, "hidden": [8], "batch": 32}
    _, trials = make_trials(tmp_path / "a", [bad, dict(bad)], epochs=1)
    fit_population([t.params for t in trials], trials)
    for t in trials:
        tb, reason = t.error  # type: ignore[attr-defined]
        assert tb.startswith("Traceback") and "lbfgs" in reason and "\n" not in reason


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_hand_written_backward_equals_autograd(tmp_path: Path, dropout: float) -> None:
    """forward_backward's loss and gradients against autograd on the same weights and the same
    dropout draws (re-seeded), for two hidden layers and members with different dropout."""
    from hpsearch.trainables.population import Population

    configs = [dict(CONFIGS[i], hidden=[24, 12], dropout=dropout * i / 3) for i in range(4)]
    _, trials = make_trials(tmp_path, configs, epochs=1)
    pop = Population(list(zip([t.params for t in trials], trials)))
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(pop.Xtr), (len(trials), 16), generator=gen)
    x, y = pop.Xtr[idx], pop.ytr[idx]
    torch.manual_seed(7)
    ce = pop.forward_backward(x, y)
    grads = [P.grad.clone() for P in pop.P]

    torch.manual_seed(7)
    leaves = [P.detach().clone().requires_grad_(True) for P in pop.P]
    h = x
    for li in range(len(leaves) // 2):
        h = torch.baddbmm(leaves[2 * li + 1], h, leaves[2 * li])
        if li < len(leaves) // 2 - 1:
            h = torch.relu(h)
            if pop.any_dropout:
                keep = 1 - pop.drop
                h = h * (torch.rand_like(h) < keep) / keep
    want = (
        torch.nn.functional.cross_entropy(h.flatten(0, 1), y.flatten(), reduction="none").view(len(trials), -1).mean(1)
    )
    want.sum().backward()
    assert ce == pytest.approx(want.detach(), rel=1e-5)
    for got, leaf in zip(grads, leaves):
        assert torch.allclose(got, leaf.grad, rtol=1e-4, atol=1e-6)
    if dropout:
        assert pop.any_dropout  # the dropout path really ran


def test_population_with_dropout_learns(tmp_path: Path) -> None:
    configs = [dict(CONFIGS[0], dropout=d) for d in (0.2, 0.5)]
    _, trials = make_trials(tmp_path, configs, epochs=3)
    fit_population([t.params for t in trials], trials)
    assert all(t.stop_reason is None and t.best > 0.85 for t in trials), [t.best for t in trials]


SCHEDULED = [
    {"lr": 0.05, "reg": 1e-4, "lr_schedule": "step", "lr_step": 2, "lr_drop": 0.3, "ema": 0.9},
    {"lr": 0.02, "reg": 1e-3, "lr_schedule": "exponential", "lr_k": 0.5},
    {"lr": 0.08, "reg": 1e-5, "lr_schedule": "inverse_time", "lr_k": 1.0, "ema": 0.99},
]


def test_schedules_and_ema_match_one_by_one(tmp_path: Path) -> None:
    """lr schedules and the weights' running average give the same run in a population as alone."""
    alone_store, alone = make_trials(tmp_path / "alone", SCHEDULED, epochs=3)
    run_alone(alone)
    pop_store, pop = make_trials(tmp_path / "pop", SCHEDULED, epochs=3)
    fit_population([t.params for t in pop], pop)
    for a, p in zip(alone, pop):
        ma, mp = alone_store.metrics(a.id), pop_store.metrics(p.id)
        assert [m["lr"] for m in ma] == pytest.approx([m["lr"] for m in mp], rel=1e-12)
        for x, y in zip(ma, mp):
            assert abs(x["val_acc"] - y["val_acc"]) <= VAL_ACC_TOL
            assert y["val_loss"] == pytest.approx(x["val_loss"], rel=LOSS_RTOL)
    # the step schedule drops the lr every 2 epochs; ema runs save their average beside the weights
    assert [m["lr"] for m in alone_store.metrics(alone[0].id)] == pytest.approx([0.05, 0.05, 0.015])
    for store, trials in ((alone_store, alone), (pop_store, pop)):
        ckpts = [store.load_checkpoint(t.history[-1]["checkpoint"]) for t in trials]
        assert ["ema_model" in c["state"] for c in ckpts] == [True, False, True]  # type: ignore[index]


def test_ema_metrics_are_those_of_the_average(tmp_path: Path) -> None:
    """val_acc of an ema run is the accuracy of the averaged weights its checkpoint holds."""
    store, (t,) = make_trials(tmp_path, [{"lr": 0.05, "reg": 1e-4, "ema": 0.95}], epochs=2)
    run_alone([t])
    ckpt = store.load_checkpoint(t.history[-1]["checkpoint"])
    assert ckpt is not None
    Xtr, ytr, Xva, yva = classifier.tensors(t.params, t.source_dir, "cpu")
    avg, raw = MLP(64, [100], 10, 0.0, None), MLP(64, [100], 10, 0.0, None)
    avg.load_state_dict(ckpt["state"]["ema_model"])
    raw.load_state_dict(ckpt["state"]["model"])
    _, acc_avg = classifier.evaluate(avg, Xva, yva, 1e-4)
    _, acc_raw = classifier.evaluate(raw, Xva, yva, 1e-4)
    assert ckpt["metrics"]["val_acc"] == pytest.approx(acc_avg, abs=1e-9)
    assert not torch.equal(avg.linears[0].weight, raw.linears[0].weight)
