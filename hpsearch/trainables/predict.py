"""Class probabilities on the validation set from a checkpoint, for `hpsearch ensemble`.

The built-in classifier predicts from its own checkpoints (the weights' running average when the
run kept one, `ema`). A python trainable takes part through an optional function in the module
of `fit` (README, "The recipe"):

    def predict(params: dict, state: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return probs, labels    # probs [N, C] (rows sum to 1) on the validation set, labels [N]

`state` is what the trial reported as `state=`. Every call must use the same validation split.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from hpsearch.errors import HpsearchError
from hpsearch.search.config import Sweep
from hpsearch.trainables import classifier as single

Predictor = Callable[[dict[str, Any]], tuple[torch.Tensor, torch.Tensor]]  # checkpoint -> (probs [N, C], labels [N])


def predictor_of(sweep: Sweep) -> Predictor:
    """The sweep's trainable as a Predictor of checkpoint dicts (trial, epoch, params, state, ...).

    Raises:
        HpsearchError: the trainable cannot predict (noop, a command program, a python module
        without `predict`), in one line saying what to add.
    """
    kind = sweep.trainable_kind
    fixed = sweep.fixed_settings()
    if kind == "builtin" and sweep.trainable["builtin"] == "classifier":
        return lambda ckpt: classifier_probs({**fixed, **ckpt["params"]}, ckpt["state"], sweep.source_dir)
    if kind == "python":
        from hpsearch.trainables.python import load

        spec = sweep.trainable["python"]
        load(spec, sweep.source_dir)
        module = importlib.import_module(spec.partition(":")[0])
        fn = getattr(module, "predict", None)
        if not callable(fn):
            raise HpsearchError(
                f"trainable.python: module {module.__name__!r} defines no predict(params, state) -> (probs [N, C], "
                "labels [N]), so its checkpoints cannot be ensembled (README, The recipe)"
            )
        return lambda ckpt: _checked(fn({**fixed, **ckpt["params"]}, ckpt["state"]), module.__name__)
    what = "a command program's checkpoints are its own files" if kind == "command" else "noop trains no model"
    raise HpsearchError(f"this sweep's trainable does not support ensembles: {what}")


def _checked(out: Any, module: str) -> tuple[torch.Tensor, torch.Tensor]:
    ok = isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)
    if not ok or out[0].dim() != 2 or out[1].dim() != 1 or len(out[0]) != len(out[1]):
        raise HpsearchError(f"{module}.predict must return (probs [N, C], labels [N]) as torch tensors")
    return out[0].detach().float().cpu(), out[1].detach().long().cpu()


@torch.no_grad()
def classifier_probs(p: dict[str, Any], state: dict[str, Any], source_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of the built-in classifier on its validation set: probs [N, C], labels [N] (on the CPU)."""
    Xtr, ytr, Xva, yva = single.tensors(p, source_dir, "cpu")
    n_classes = int(max(int(ytr.max()), int(yva.max())) + 1)
    model = single.MLP(Xtr.shape[1], single.hidden_sizes(p["hidden"]), n_classes, 0.0, None)
    model.load_state_dict(state.get("ema_model") or state["model"])
    model.eval()
    return torch.softmax(model(Xva), dim=1), yva


def averages_weights(sweep: Sweep) -> bool:
    """Whether checkpoints of one run can be averaged weight by weight (the built-in classifier's can)."""
    return sweep.trainable_kind == "builtin" and sweep.trainable["builtin"] == "classifier"


def why_not_averaged(sweep: Sweep, ckpts: list[dict[str, Any]]) -> str | None:
    """Why the checkpoints `ckpts` of one run cannot be averaged weight by weight (`average_states`),
    or None when they can: the built-in classifier's always can; a python trainable's when each
    reported `state` holds a `model` state_dict of tensors with the same names and shapes."""
    if len(ckpts) < 2:
        return "needs two or more checkpoints of the best run: set `checkpoints: all` in the sweep"
    if averages_weights(sweep):
        return None
    shapes = []
    for c in ckpts:
        state = c.get("state")
        model = state.get("model") if isinstance(state, dict) else None
        if not isinstance(model, dict) or not model or not all(isinstance(v, torch.Tensor) for v in model.values()):
            return (
                "the reported state has no 'model' state_dict to average: report "
                "state={'model': model.state_dict(), ...} (predict then receives the average under 'model')"
            )
        shapes.append({k: tuple(v.shape) for k, v in model.items()})
    if any(s != shapes[0] for s in shapes[1:]):
        return "the checkpoints' 'model' weights differ in names or shapes: they cannot be averaged"
    return None


def average_states(ckpts: list[dict[str, Any]]) -> dict[str, Any]:
    """One checkpoint whose model (and ema_model) weights are the mean of those of `ckpts` (same architecture)."""
    out = dict(ckpts[0])
    state = dict(ckpts[0]["state"])
    for key in ("model", "ema_model"):
        if all(key in c["state"] for c in ckpts):
            state[key] = {n: torch.stack([c["state"][key][n].float() for c in ckpts]).mean(0) for n in state[key]}
    out["state"] = state
    return out
