"""Each diagnostic fires on synthetic metrics that show it, and stays silent on ones that do not."""

from __future__ import annotations

import pandas as pd

from hpsearch.report import diagnostics as dg


def kinds(findings):
    return [f.kind for f in findings]


def epoch(e, **kw):
    return {"epoch": e, "attempt": 1, **kw}


def healthy_curve(n=3):
    falling = [2.3 - 0.04 * i for i in range(40)]
    return [
        epoch(
            e,
            train_acc=0.90 + 0.01 * e,
            val_acc=0.88 + 0.01 * e,
            update_ratio=1e-3,
            losses=falling if e == 1 else [0.5] * 10,
        )
        for e in range(1, n + 1)
    ]


def test_a_healthy_run_has_no_findings():
    assert dg.run_findings("s1-t0000", healthy_curve(), best_epoch=3) == []


def test_overfitting_needs_a_gap_above_the_threshold():
    c = healthy_curve()
    c[-1].update(train_acc=0.99, val_acc=0.85)
    f = dg.run_findings("s1-t0001", c, best_epoch=3)
    assert kinds(f) == ["overfitting"] and "more regularization" in f[0].advice
    c[-1].update(train_acc=0.95, val_acc=0.86)  # gap 0.09 <= 0.10
    assert dg.run_findings("s1-t0001", c, best_epoch=3) == []


def test_overfitting_is_judged_at_the_best_epoch():
    c = healthy_curve()
    c[0].update(train_acc=0.99, val_acc=0.70)  # epoch 1 overfits, the best epoch 3 does not
    assert dg.run_findings("t", c, best_epoch=1)[0].kind == "overfitting"
    assert dg.run_findings("t", c, best_epoch=3) == []


def test_underfitting_when_val_tracks_train_at_low_accuracy():
    c = healthy_curve()
    c[-1].update(train_acc=0.55, val_acc=0.54)
    f = dg.run_findings("t", c, best_epoch=3)
    assert kinds(f) == ["underfitting"] and "bigger model" in f[0].advice
    c[-1].update(train_acc=0.95, val_acc=0.94)  # tracks closely, but accuracy is high
    assert dg.run_findings("t", c, best_epoch=3) == []
    c[-1].update(train_acc=0.55, val_acc=0.48)  # low, but the gap is not small
    assert dg.run_findings("t", c, best_epoch=3) == []


def test_update_ratio_far_from_1e_3_either_way():
    for ratio, kind, word in ((2e-5, "update_ratio_low", "too low"), (5e-2, "update_ratio_high", "too high")):
        c = healthy_curve()
        for line in c:
            line["update_ratio"] = ratio
        f = dg.run_findings("t", c, best_epoch=3)
        assert kinds(f) == [kind] and word in f[0].advice
    c = healthy_curve()
    for line, r in zip(c, (3e-4, 2e-3, 5e-3)):  # within a factor 10 of 1e-3
        line["update_ratio"] = r
    assert dg.run_findings("t", c, best_epoch=3) == []


def test_loss_that_did_not_fall_in_the_first_epoch():
    c = healthy_curve()
    c[0]["losses"] = [2.30, 2.31, 2.29, 2.30, 2.30, 2.29, 2.31, 2.28]
    f = dg.run_findings("t", c, best_epoch=3)
    assert kinds(f) == ["loss_flat"] and "too low" in f[0].advice
    c[0]["losses"] = [2.3, 2.4, 2.8, 3.5, 4.0, 5.0, 6.0, 7.0]
    f = dg.run_findings("t", c, best_epoch=3)
    assert kinds(f) == ["loss_flat"] and "too high" in f[0].advice
    c[0]["losses"] = [2.3, 2.3, 2.3]  # too few points to say anything
    assert dg.run_findings("t", c, best_epoch=3) == []


def test_a_run_stuck_by_its_learning_rate_is_not_called_underfitting():
    c = healthy_curve()
    c[-1].update(train_acc=0.2, val_acc=0.19)
    for line in c:
        line["update_ratio"] = 1e-6
    assert kinds(dg.run_findings("t", c, best_epoch=3)) == ["update_ratio_low"]


def test_runs_without_accuracy_or_ratio_give_nothing():
    c = [epoch(1, val_loss=0.5), epoch(2, val_loss=0.4)]
    assert dg.run_findings("t", c, best_epoch=2) == []


def runs(statuses_lrs):
    return pd.DataFrame(
        [
            {
                "trial": f"s1-t{i:04d}",
                "status": s,
                "p.lr": lr,
                "val_acc": 0.5 if s == "finished" else None,
                "best_epoch": 1,
            }
            for i, (s, lr) in enumerate(statuses_lrs)
        ]
    )


def test_divergence_reports_the_lr_above_which_most_diverged():
    df = runs(
        [
            ("finished", 1e-4),
            ("finished", 1e-3),
            ("finished", 1e-2),
            ("diverged", 3e-2),
            ("finished", 0.1),
            ("diverged", 0.3),
            ("diverged", 1.0),
            ("diverged", 3.0),
        ]
    )
    f = dg.diverged_findings(df)
    assert len(f) == 1 and f[0].kind == "diverged"
    assert "4 of 8 completed run(s) diverged" in f[0].message
    assert "4 of the 5 run(s) with lr >= 0.03 diverged" in f[0].message and "below ~0.03" in f[0].advice


def test_divergence_advice_fits_the_range():
    """Every run diverged from the range's bottom up ([10, 1000]): "keep lr below ~12.6" would still
    diverge everywhere, so the advice is to move the range down. An enqueued lr 3 above a range that
    ends at 1: the max is below the threshold already, and the advice says so."""
    all_diverged = runs([("diverged", lr) for lr in (12.6, 20.0, 50.0, 200.0, 900.0)])
    (f,) = dg.diverged_findings(all_diverged, [{"stage": 1, "ranges": {"lr": {"low": 10.0, "high": 1000.0}}}])
    assert "5 of the 5 run(s) with lr >= 12.6 diverged" in f.message
    assert f.advice.startswith("no run below lr 12.6 finished: move lr's range down, a decade or more below 12.6")
    outside = runs([("finished", 1e-3), ("finished", 0.1), ("finished", 0.5), ("diverged", 3.0), ("diverged", 3.0)])
    (f,) = dg.diverged_findings(outside, [{"stage": 1, "ranges": {"lr": {"low": 1e-3, "high": 1.0}}}])
    assert f.advice == (
        "lr's range already ends at 1, below that: the diverged runs lie outside it "
        "(enqueued, or an earlier stage's range)"
    )
    (f,) = dg.unusable_findings(all_diverged.assign(stage=1, reason="diverged: batch loss 9 > 3 x first 2.3"))
    assert f.advice.startswith("lower the learning rate's range") and "error.txt" not in f.advice


def test_divergence_scattered_over_lr_gives_no_threshold():
    df = runs(
        [
            ("diverged", 1e-4),
            ("finished", 1e-3),
            ("finished", 1e-2),
            ("diverged", 0.1),
            ("finished", 1.0),
            ("finished", 3.0),
        ]
    )
    f = dg.diverged_findings(df)
    assert len(f) == 1 and "lr >=" not in f[0].message


def test_no_diverged_runs_no_finding():
    assert dg.diverged_findings(runs([("finished", 1e-3), ("failed", 1.0)])) == []
    assert dg.diverged_findings(pd.DataFrame()) == []


def test_border_flags_with_direction_and_the_last_stage_asks_to_widen():
    stages = [
        {
            "stage": 1,
            "border_flags": [{"param": "lr", "side": "high", "value": 9.0, "position": 0.97, "extends": True}],
        },
        {
            "stage": 2,
            "border_flags": [{"param": "reg", "side": "low", "value": 1e-5, "position": 0.02, "extends": True}],
        },
        {"stage": 3, "border_flags": []},
    ]
    f = dg.border_findings(stages, n_stages=2)
    assert kinds(f) == ["border", "border"]
    assert "lr = 9 lies on the upper border" in f[0].message and "moved the range upward" in f[0].advice
    assert "lower border" in f[1].message and "widen reg's range downward" in f[1].advice
    assert dg.border_findings([{"stage": 1, "border_flags": []}], 1) == []


def test_a_best_value_outside_the_stages_range_is_not_called_on_its_border():
    flag = {"param": "dropout", "side": "low", "value": 0.172, "position": -1.33, "extends": True}
    (f,) = dg.border_findings([{"stage": 3, "border_flags": [flag]}], n_stages=3)
    assert "lies below the stage's range (a promoted or enqueued configuration" in f.message
    assert "border" not in f.message.split("lies", 1)[1]


def test_a_held_border_is_not_advised_to_widen():
    """A flag the planner could not act on (a hard bound, on_border: keep) says why, on any stage: the
    advice to widen a range past `bounds: [0, 0.95]` contradicted the master's own line."""

    def flag(message):
        return {
            "param": "dropout",
            "side": "low",
            "value": 0.011,
            "position": 0.02,
            "extends": False,
            "message": message,
        }

    flagged = "best dropout 0.011 lies in the bottom 2% of [0, 0.5] on a linear scale"
    bound = f"{flagged}: the range cannot move past its hard bound 0 (bounds:)"
    keep = f"{flagged}: the range is held by on_border: keep"
    for n in (1, 2):
        (f,) = dg.border_findings([{"stage": 1, "border_flags": [flag(bound)]}], n_stages=n)
        assert "widen" not in f.advice
        assert (
            f.advice
            == "the range cannot move past its hard bound 0 (bounds:): no wider search is possible on that side"
        )
    (f,) = dg.border_findings([{"stage": 1, "border_flags": [flag(keep)]}], n_stages=1)
    assert f.advice == "the range is held by on_border: keep: drop on_border: keep to let it move"


def test_findings_text_says_what_was_checked_when_nothing_fires():
    assert "nothing stands out" in dg.findings_text([])
    text = dg.findings_text(dg.run_findings("s2-t0001", [epoch(1, train_acc=1.0, val_acc=0.5)], 1))
    assert "[s2-t0001]" in text and "overfitting" in text


def test_a_sweep_with_no_finished_run_is_not_said_to_have_nothing_standing_out():
    """`report` of a sweep whose runs were all planned or running said "nothing stands out
    (checked: border, divergence)": a claim of checks that had nothing to look at."""
    runs = pd.DataFrame({"trial": ["s1-t0000", "s1-t0001"], "status": ["running", "planned"]})
    checked = dg.checks(runs, [{"stage": 1}], {})
    assert dict(checked)["border"] == "no finished run yet"
    assert dict(checked)["divergence"] == "no run has finished or diverged yet"
    text = dg.findings_text([], checked)
    assert text.startswith("Diagnostics: nothing to check yet") and "nothing stands out" not in text
    # one diverged run is enough to look at divergence; a finished one, at borders too
    diverged = dg.checks(runs.assign(status=["diverged", "planned"]), [{"stage": 1}], {})
    assert dict(diverged)["divergence"] is None and dict(diverged)["border"] == "no finished run yet"
    finished = dg.checks(runs.assign(status=["finished", "planned"]), [{"stage": 1}], {})
    assert dict(finished)["border"] is None and "nothing stands out (checked: border, divergence)" in (
        dg.findings_text([], finished)
    )
