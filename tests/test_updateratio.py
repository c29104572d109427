"""A learning-rate range wholly too low moves to where the update-to-weight ratio is near 1e-3.

The notes' rule of thumb (search/updateratio.py): the fit of log10 ratio on log10 lr over earlier
runs, the band [lr(1e-4), lr(1e-2)] when the whole range lies on one side of 1e-3; through
`plan_stage` (incumbents not held, on_border keep respected) and through a real worker's journal.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from helpers import events, run_cli, write_sweep
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch.search import space as sp
from hpsearch.search import stages, updateratio
from hpsearch.search.config import parse


def run(stage: int, i: int, best: float | None, ratio: float | None, status: str = "finished", **params):
    tid = f"s{stage}-t{i:04d}"
    return stages.Run(tid, tid, params, status, best, 1, 1000 * stage + i, ratio)


def sweep(lr=(1e-6, 1e-3), **extra):
    return parse(
        {
            "trainable": "noop",
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": lr[0], "max": lr[1], **extra.pop("lr_extra", {})},
                "reg": {"distribution": "log_uniform_values", "min": 1e-6, "max": 0.1},
            },
            "stages": [{"trials": 16, "epochs": 1}, {"trials": 8, "epochs": 3}],
            "method": "random",
            **extra,
        }
    )


def too_low_stage(lr_star: float = 3e-3, noise: float = 0.0) -> list[stages.Run]:
    """Stage 1 over [1e-6, 1e-3] where the ratio is 1e-3 at lr_star (slope 1) and the metric is noise
    (chance level, the best one at the bottom of the range): what a 1-epoch stage of too-low rates shows."""
    rng = np.random.default_rng(0)
    lrs = 10 ** np.linspace(-6, -3, 16)
    return [
        run(
            1,
            i,
            0.1 + (0.12 if i == 1 else 0.01 * rng.random()),
            1e-3 * (lr / lr_star) * 10 ** (noise * rng.standard_normal()),
            lr=float(lr),
            reg=1e-4,
        )
        for i, lr in enumerate(lrs)
    ]


def test_fit_recovers_a_power_law():
    lrs = [1e-5, 1e-4, 1e-3, 1e-2]
    a, b = updateratio.fit(lrs, [2.0 * lr**0.9 for lr in lrs])
    assert b == pytest.approx(0.9)
    assert a == pytest.approx(math.log10(2.0))


def test_a_range_wholly_too_low_is_found_and_the_band_surrounds_the_target():
    runs = too_low_stage(lr_star=3e-3)
    (m,) = updateratio.misplaced(sweep().space, runs)
    assert m.param == "lr" and m.n == 16
    assert m.ratio == pytest.approx(1e-3 / 3, rel=1e-6)  # the fitted ratio at the top, 1e-3
    assert m.low == pytest.approx(3e-4, rel=1e-6) and m.high == pytest.approx(3e-2, rel=1e-6)
    assert "too low" in m.message and "[3e-04, 3e-02]" in m.message and "~1e-3" in m.message


def test_a_range_whose_top_is_less_than_half_a_decade_above_the_target_moves_up_to_the_band():
    """The notes' ~1e-3 on the range's upper border (ratio 2e-3 at its top, measured 1.3e-3 on the breast
    cancer task): most of the band lies above the range, and the next stage samples the band."""
    runs = too_low_stage(lr_star=5e-4)  # ratio 1e-3 at lr 5e-4: 2e-3 at the top, 1e-3
    (m,) = updateratio.misplaced(sweep().space, runs)
    assert m.ratio == pytest.approx(2e-3, rel=1e-6)
    assert m.low == pytest.approx(5e-5, rel=1e-6) and m.high == pytest.approx(5e-3, rel=1e-6)
    assert "less than half a decade above the notes' ~1e-3" in m.message and "the range is too low" in m.message
    assert "[5e-05, 5e-03]" in m.message
    # the trigger's edge: just below TARGET * REACH moves, just above does not
    edge = updateratio.TARGET * updateratio.REACH
    for factor, moves in [(0.99, True), (1.01, False)]:
        found = updateratio.misplaced(sweep().space, too_low_stage(lr_star=1e-6 / (edge * factor)))
        assert bool(found) == moves, factor


def test_a_range_wholly_too_high_is_left_to_the_divergence_and_border_rules():
    """Tried and measured worse (search/updateratio.py): a too-high range is not moved by the ratio."""
    runs = [run(1, i, 0.5, 1e-3 * (lr / 1e-4), lr=lr, reg=1e-4) for i, lr in enumerate([0.1, 0.3, 1.0, 3.0, 10.0])]
    assert updateratio.misplaced(sweep(lr=(0.1, 10.0)).space, runs) == []


@pytest.mark.parametrize(
    "why, runs, lr",
    [
        ("the top reaches half a decade above the target", too_low_stage(lr_star=1e-6 / 3.3e-3), (1e-6, 1e-3)),
        ("the range holds the band's upper decade", too_low_stage(lr_star=1e-4), (1e-6, 1e-3)),
        ("too few runs report a ratio", too_low_stage()[:4], (1e-6, 1e-3)),
        (
            "no ratio at all (synthetic, programs)",
            [r._replace(update_ratio=None) for r in too_low_stage()],
            (1e-6, 1e-3),
        ),
        (
            "the ratio falls with lr",
            [r._replace(update_ratio=1e-6 / r.params["lr"]) for r in too_low_stage()],
            (1e-6, 1e-3),
        ),
        ("above the target but within a decade of it at the bottom", too_low_stage(lr_star=1e-6 / 5), (1e-6, 1e-3)),
    ],
)
def test_no_conclusion(why, runs, lr):
    assert updateratio.misplaced(sweep(lr=lr).space, runs) == [], why


def test_only_learning_rate_parameters_on_a_log_scale_are_judged():
    sw = parse(
        {
            "trainable": "noop",
            "parameters": {"step": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-3}},
            "stages": [{"trials": 4, "epochs": 1}],
        }
    )
    runs = [r._replace(params={"step": r.params["lr"]}) for r in too_low_stage()]
    assert updateratio.misplaced(sw.space, runs) == []


def test_the_plan_moves_a_too_low_range_and_does_not_hold_it_to_the_noise_incumbent():
    sw = sweep()
    s1 = too_low_stage(lr_star=3e-3, noise=0.1)
    plan = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    lr = plan.space["lr"]
    assert isinstance(lr, sp.Numeric)
    assert 1e-4 < lr.low < 1e-3 and 1e-2 < lr.high < 1e-1  # about [3e-4, 3e-2]
    best = max(s1, key=lambda r: r.best or 0)  # chance level at lr 1.6e-6: not kept inside
    assert best.params["lr"] < lr.low
    assert any("update-to-weight ratio" in n and "too low" in n for n in plan.notes)


def test_when_the_ratio_moves_the_lr_the_other_ranges_are_kept_not_narrowed_around_the_noise():
    """Stage 1's best (noise) has reg near the top of its range: without the rule the reg range was
    narrowed around it and moved up (breast cancer, best lr above the range: up to reg 9.7)."""
    sw = sweep()
    s1 = [r._replace(params={**r.params, "reg": 0.09 if r.trial.endswith("0001") else 1e-4}) for r in too_low_stage()]
    plan = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    assert plan.space["reg"] == sw.space["reg"]  # the sweep's [1e-6, 0.1]: neither narrowed nor moved
    (flag,) = [f for f in plan.flags if f.param == "reg"]
    assert flag.noise and not flag.extends and flag.message.endswith(stages.NOISE_HELD)
    assert any("so the ranking was noise: reg keep their ranges" in n for n in plan.notes)
    assert plan.space["lr"].low > 1e-4  # lr itself moved to the band
    # no ratio move: reg narrowed and its flagged border moved as before
    calm = [r._replace(update_ratio=None) for r in s1]
    moved = stages.plan_stage(sw, 2, sw.space, calm, history=calm)
    assert moved.space["reg"] != sw.space["reg"] and not any(f.noise for f in moved.flags)


def test_on_border_keep_holds_the_range_and_says_so():
    for sw in (sweep(on_border="keep"), sweep(lr_extra={"on_border": "keep"})):
        s1 = too_low_stage()
        plan = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
        assert plan.space["lr"].high <= 1e-3 * (1 + 1e-9)
        (note,) = [n for n in plan.notes if "update-to-weight" in n]
        assert "too low; on_border: keep holds it" in note and "samples" not in note


@pytest.mark.parametrize(
    "lr_star, bounds, low, high, says",
    [
        (3e-3, [1e-7, 1e-2], 3e-4, 1e-2, "as near as its bounds allow"),  # the band's top clipped
        (0.1, [1e-8, 2e-3], 2e-4, 2e-3, "as near as its bounds allow"),  # the band [1e-2, 1] above: the top decade
        (3e-3, [1e-8, 3e-2], 3e-4, 3e-2, "where the ratio"),  # the band fits
    ],
)
def test_hard_bounds_hold_when_the_range_moves_and_the_message_says_where_it_went(lr_star, bounds, low, high, says):
    sw = sweep(lr_extra={"bounds": bounds})
    s1 = too_low_stage(lr_star=lr_star)
    plan = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    lr = plan.space["lr"]
    assert lr.low == pytest.approx(low, rel=1e-6) and lr.high == pytest.approx(high, rel=1e-6)
    (note,) = [n for n in plan.notes if "update-to-weight" in n]
    assert f"[{sp.sci(lr.low)}, {sp.sci(lr.high)}]" in note and says in note


def test_a_range_at_its_bound_already_is_held_and_says_so():
    sw = sweep(lr_extra={"bounds": [1e-8, 1e-3]})
    s1 = too_low_stage()
    plan = stages.plan_stage(sw, 2, sw.space, s1, history=s1)
    assert plan.space["lr"].high <= 1e-3
    assert any("too low; its bounds hold it" in n for n in plan.notes)


def test_each_branch_of_a_choice_is_judged_on_its_own_runs():
    sw = parse(
        {
            "trainable": "noop",
            "parameters": {
                "optimizer": {
                    "values": ["sgd", "adam"],
                    "branches": {
                        "sgd": {"lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-3}},
                        "adam": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}},
                    },
                },
            },
            "stages": [{"trials": 16, "epochs": 1}, {"trials": 8, "epochs": 1}],
        }
    )
    sgd = next(k for k in sw.space if k.startswith("lr[") and "sgd" in k)
    adam = next(k for k in sw.space if k.startswith("lr[") and "adam" in k)
    # sgd's lrs are too low (ratio 1e-3 at 3e-3); adam's range holds its ratio's 1e-3 (at 1e-3)
    runs = [r._replace(params={"optimizer": "sgd", "lr": r.params["lr"]}) for r in too_low_stage()] + [
        run(1, 100 + i, 0.5, lr, optimizer="adam", lr=lr) for i, lr in enumerate([1e-4, 3e-4, 1e-3, 1e-2, 1e-1])
    ]
    (m,) = updateratio.misplaced(sw.space, runs)
    assert m.param == sgd and m.n == 16
    plan = stages.plan_stage(sw, 2, sw.space, runs, history=runs)
    assert plan.space[sgd].low > 1e-4 and plan.space[sgd].high > 1e-2
    # adam's range is not moved as a whole: it still holds its own runs (1e-4 .. 1e-1, all tied: all
    # incumbents, which every range keeps, a branch's as a plain parameter's)
    assert plan.space[adam].low <= 1e-4 and plan.space[adam].high >= 1e-1


def test_a_nested_learning_rate_is_judged():
    sw = parse(
        {
            "trainable": "noop",
            "parameters": {
                "optim": {"parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-3}}}
            },
            "stages": [{"trials": 16, "epochs": 1}, {"trials": 8, "epochs": 1}],
        }
    )
    (key,) = sw.space
    runs = [r._replace(params={key: r.params["lr"]}) for r in too_low_stage()]
    (m,) = updateratio.misplaced(sw.space, runs)
    assert m.param == key == "optim.lr"
    assert stages.plan_stage(sw, 2, sw.space, runs, history=runs).space[key].low > 1e-4


@settings(max_examples=200, deadline=None)
@given(
    lr_star=st.floats(-9, 3).map(lambda e: 10**e),
    slope=st.floats(0.3, 2.0),
    lo=st.floats(-8, 0),
    width=st.floats(0.5, 6),
    noise=st.floats(0, 0.5),
    seed=st.integers(0, 2**16),
)
def test_the_next_range_is_valid_and_on_the_far_side(lr_star, slope, lo, width, noise, seed):
    """Whatever the runs say, the plan's lr range is valid; when moved, its top lies higher."""
    rng = np.random.default_rng(seed)
    low, high = 10**lo, 10 ** (lo + width)
    sw = sweep(lr=(low, high))
    lrs = 10 ** rng.uniform(lo, lo + width, 12)
    s1 = [
        run(
            1,
            i,
            float(rng.random()),
            float(1e-3 * (lr / lr_star) ** slope * 10 ** (noise * rng.standard_normal())),
            lr=float(lr),
            reg=1e-4,
        )
        for i, lr in enumerate(lrs)
    ]
    moved = updateratio.misplaced(sw.space, s1)
    nxt = stages.plan_stage(sw, 2, sw.space, s1, history=s1).space["lr"]
    assert stages.valid_range(nxt)
    for m in moved:
        assert math.isfinite(m.low) and 0 < m.low < m.high
        assert nxt.high > high


# -- through the real CLI: the built-in classifier reports the ratio, the worker journals it -----
def run_too_low_digits_sweep(tmp_path, name: str, seed: int, stages_: list[dict] | str, **extra):
    """The built-in classifier on digits with lr in [1e-7, 1e-5] (a decade and more too low), one worker,
    through the real CLI: (sweep directory, the master's completed process)."""
    f = write_sweep(
        tmp_path,
        {
            "name": name,
            "metric": {"name": "val_acc", "goal": "maximize"},
            "seed": seed,
            "trainable": {"builtin": "classifier", "dataset": "digits", "hidden": [32], "optimizer": "momentum"},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-7, "max": 1e-5}},
            "stages": stages_,
            "workers": 1,
            **extra,
        },
    )
    root = tmp_path / "run"
    return root, run_cli("master", "start", str(f), "--dir", str(root), check=True)


def test_a_sweep_whose_lr_range_is_too_low_moves_it_through_the_journal(tmp_path):
    root, p = run_too_low_digits_sweep(tmp_path, "too-low", 0, [{"trials": 8, "epochs": 1}, {"trials": 3, "epochs": 1}])
    results = [e for e in events(root) if e["ev"] == "result" and e["trial"].startswith("s1-")]
    assert len(results) == 8 and all(0 < e["update_ratio"] < 1e-3 for e in results)
    assert "update-to-weight ratio" in p.stdout and "too low" in p.stdout
    stage2 = json.loads((root / "stages" / "stage-2.json").read_text())
    assert stage2["ranges"]["lr"]["low"] > 1e-5  # the whole next range lies above the old one
    (note,) = stage2["notes"]
    assert note.startswith("stage 2: lr: the update-to-weight ratio") and note in p.stdout
    assert note in run_cli("report", str(root), check=True).stdout  # the report says why the range jumped


def test_the_other_ranges_are_kept_when_the_ratio_moves_the_lr_through_the_cli(tmp_path):
    reg = {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-1}
    f = write_sweep(
        tmp_path,
        {
            "name": "too-low-reg",
            "metric": {"name": "val_acc", "goal": "maximize"},
            "seed": 0,
            "trainable": {"builtin": "classifier", "dataset": "digits", "hidden": [32], "optimizer": "momentum"},
            "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-7, "max": 1e-5}, "reg": reg},
            "stages": [{"trials": 8, "epochs": 1}, {"trials": 3, "epochs": 1}],
            "workers": 1,
        },
    )
    root = tmp_path / "run"
    p = run_cli("master", "start", str(f), "--dir", str(root), check=True)
    s1 = json.loads((root / "stages" / "stage-1.json").read_text())
    s2 = json.loads((root / "stages" / "stage-2.json").read_text())
    assert s2["ranges"]["reg"] == s1["ranges"]["reg"]  # neither narrowed nor moved by the noise
    line = "stage 2: the update ratio says lr was too low throughout, so the ranking was noise: reg keep their ranges"
    assert any(n.startswith(line) for n in s2["notes"]) and line in p.stdout
    for flag in (f for f in s1["border_flags"] if f["param"] == "reg"):
        assert not flag["extends"] and flag["message"].endswith(stages.NOISE_HELD)


def test_a_promote_only_last_stage_of_stages_auto_samples_the_moved_range(tmp_path):
    """budget 12, epochs 3: stage 1 draws 6 one-epoch trials, the last stage would promote 3; the range
    moved, so it promotes the incumbent and draws one fresh 3-epoch trial above the old range."""
    root, p = run_too_low_digits_sweep(tmp_path, "auto", 0, "auto", budget=12, epochs=3)
    (planned,) = [e["trials"] for e in events(root) if e["ev"] == "stage" and e["stage"] == 2]
    fresh = [t for t in planned if not t.get("parent")]
    assert len(fresh) == 1 and len(planned) == 2
    assert fresh[0]["params"]["lr"] > 1e-5 and fresh[0]["epochs"] == 3
    stage2 = json.loads((root / "stages" / "stage-2.json").read_text())
    assert stage2["promoted"] == [next(t["parent"] for t in planned if t.get("parent"))]
    assert any("fresh trial(s) sample it" in n for n in stage2["notes"]) and stage2["counts"] == {"finished": 2}


def test_after_the_last_stage_the_move_is_named_and_hpsearch_next_applies_it(tmp_path):
    root, p = run_too_low_digits_sweep(tmp_path, "one-stage", 1, [{"trials": 8, "epochs": 1}])
    assert "the range is too low: `hpsearch next" in p.stdout
    n = run_cli("next", str(root), "-o", str(tmp_path / "next.yaml"), check=True)
    assert "Update ratio: lr: the update-to-weight ratio" in n.stdout and "the follow-up samples" in n.stdout
    lr = yaml.safe_load((tmp_path / "next.yaml").read_text())["parameters"]["lr"]
    assert lr["min"] > 1e-5 and lr["max"] > lr["min"]  # above the whole old range


def test_an_extreme_fit_gives_no_overflow():
    """A fit whose band would lie past the largest float concludes nothing instead of raising."""
    runs = [
        run(1, i, 0.5, 1e-300 * (lr / 1e-6) ** 0.3, lr=lr, reg=1e-4)
        for i, lr in enumerate(10 ** np.linspace(-6, -3, 8))
    ]
    assert updateratio.misplaced(sweep().space, runs) == []


def test_the_diagnostics_find_a_nested_learning_rate_as_the_planner_does():
    import pandas as pd

    from hpsearch.report.diagnostics import lr_column

    assert lr_column(pd.DataFrame(columns=["p.optim.lr", "p.reg"])) == "p.optim.lr"
    assert lr_column(pd.DataFrame(columns=["p.optim.lr", "p.lr"])) == "p.lr"  # a plain name first
    assert lr_column(pd.DataFrame(columns=["p.reg", "p.lr_decay"])) is None
