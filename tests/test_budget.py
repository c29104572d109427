"""`budget:` and `stages: auto`: the planner never exceeds the budget, at plan time and as the sweep runs."""

from __future__ import annotations

import json
import math

import pytest
from helpers import run_cli, write, write_sweep
from hypothesis import given, settings
from hypothesis import strategies as st

from hpsearch.errors import ConfigError
from hpsearch.search import budget as bp
from hpsearch.search import stages
from hpsearch.search.config import parse


def auto_sweep(budget: int, epochs: int, **extra) -> dict:
    return {
        "trainable": "noop",
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1.0},
            "metric_value": {"min": 0.1, "max": 0.9},
        },
        "stages": "auto",
        "budget": budget,
        "epochs": epochs,
        **extra,
    }


def test_rungs_follow_hyperband_with_eta_3():
    assert bp.rungs(1) == [1]
    assert bp.rungs(8) == [1, 3, 8]
    assert bp.rungs(9) == [1, 3, 9]
    assert bp.rungs(27) == [1, 3, 9, 27]
    assert bp.rungs(20) == [1, 2, 7, 20]


def test_plan_for_a_first_time_user():
    plan = bp.plan(64, 8)
    assert [s.epochs for s in plan] == [1, 3, 8]
    assert plan[0].trials > plan[1].trials > plan[2].trials == 0
    assert plan[1].promote and plan[2].promote
    assert bp.cost(plan) == 64


def test_a_larger_budget_ends_with_fresh_full_length_trials():
    """200 epochs = 25 runs of 8: the bracket gets 70%, then 30% buys fresh 8-epoch trials, drawn
    in the ranges narrowed around the 8-epoch runs (the short-horizon correction, see budget.py)."""
    plan = bp.plan(200, 8)
    assert [s.epochs for s in plan] == [1, 3, 8, 8]
    assert plan[2].promote and not plan[2].trials
    assert plan[3] == bp.Stage(trials=7, epochs=8)
    assert bp.cost(plan) == 200
    below = bp.plan(bp.FINAL_FROM * 8 - 1, 8)
    assert [s.epochs for s in below] == [1, 3, 8]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 60), st.floats(0.05, 0.9), st.floats(0.0, 1.0))
def test_plan_never_exceeds_the_budget(budget, epochs, first_share, keep):
    if budget < epochs:
        with pytest.raises(ValueError):
            bp.plan(budget, epochs, first_share=first_share, keep=keep)
        return
    plan = bp.plan(budget, epochs, first_share=first_share, keep=keep)
    assert bp.cost(plan) <= budget
    assert plan[-1].epochs == epochs and plan[0].trials >= 1
    # rungs rise; a budget of FINAL_FROM full runs or more ends with a stage of fresh full-length trials
    final = budget >= bp.FINAL_FROM * epochs and epochs > 1
    rising = plan[:-1] if final else plan
    assert all(a.epochs < b.epochs for a, b in zip(rising, rising[1:]))
    if final:
        assert plan[-2].epochs == plan[-1].epochs == epochs and plan[-2].promote and not plan[-1].promote
        assert plan[-1].trials * epochs == int(bp.FINAL_SHARE * budget) // epochs * epochs
    assert all(s.trials >= 0 and (s.trials or s.promote) for s in plan)
    # the budget is used: what is left cannot pay for one more stage-1 trial
    assert budget - bp.cost(plan) < plan[0].epochs


@settings(max_examples=100, deadline=None)
@given(
    st.integers(20, 400),
    st.sampled_from([3, 6, 8, 9, 12]),
    st.randoms(use_true_random=False),
)
def test_a_running_sweep_never_trains_past_its_budget(budget, epochs, rnd):
    """Replays the master's calls with random outcomes (some diverged or pruned part-way, earlier
    incumbents promoted late) and counts epochs as the benchmark does: fresh trials from epoch 1,
    promoted ones past their parent's, the epoch a run diverged in included. What earlier stages did
    not train is spent later, and what promoted runs without resumable state trained again (from
    epoch 1) is paid later (`budget.balance`): never past the budget."""
    if budget < epochs:
        return
    sw = parse(auto_sweep(budget, epochs))
    done: dict[str, int] = {}
    lost: set[str] = set()  # runs that left no resumable state
    stateless = rnd.choice([0.0, 0.3, 1.0])  # 1.0: a python trainable that never passes state=
    history: list[stages.Run] = []
    prev_space, prev_runs, spent = None, [], 0
    for k in range(1, len(sw.stages) + 1):
        plan = stages.plan_stage(sw, k, prev_space, prev_runs, None, history)
        runs = []
        for t in plan.trials:
            # a promoted run whose parent left no resumable state trains again from epoch 1
            start = done[t["parent"]] if t.get("parent") and t["parent"] not in lost else 0
            status = rnd.choice(["diverged", "pruned", "failed"]) if rnd.random() < 0.2 else "finished"
            end = t["epochs"] if status == "finished" else rnd.randint(start + (status == "diverged"), t["epochs"])
            spent += end - start
            # a diverged run's journal counts the epochs before the one it diverged in, or that one
            # too when it was found after the epoch's report (a NaN validation loss)
            reported = status == "diverged" and end > start and rnd.random() < 0.5
            done[t["trial"]] = end - (status == "diverged" and end > start and not reported)
            # early stages sometimes hold the best: later promotions reach back to them
            best = rnd.random() * (1.3 if k == 1 else 1.0)
            run = stages.Run(t["trial"], t["config"], t["params"], status, best, 1, t["seed"])
            if rnd.random() < stateless:
                lost.add(t["trial"])
            runs.append(
                run._replace(
                    epochs_done=done[t["trial"]],
                    parent=t.get("parent"),
                    resumable=t["trial"] not in lost,
                    diverged_reported=reported,
                )
            )
        history += runs
        prev_space, prev_runs = plan.space, runs
    assert spent <= budget


def test_stages_auto_and_budget_are_validated_at_the_door():
    s = parse(auto_sweep(64, 8))
    assert s.auto and s.budget == 64 and [x.epochs for x in s.stages] == [1, 3, 8]
    with pytest.raises(ConfigError) as e:
        parse({**auto_sweep(64, 8), "budget": None, "epochs": 0})
    assert "stages: auto needs budget:" in str(e.value) and "stages: auto needs epochs:" in str(e.value)
    with pytest.raises(ConfigError, match="cannot train one run for 8 epochs"):
        parse(auto_sweep(5, 8))
    explicit = {**auto_sweep(64, 8), "stages": [{"trials": 30, "epochs": 3}]}
    del explicit["epochs"]
    with pytest.raises(ConfigError, match="train up to 90 epochs, over the budget of 64"):
        parse(explicit)
    assert parse({**explicit, "budget": 90}).budget == 90
    with pytest.raises(ConfigError, match="epochs: is read only with stages: auto"):
        parse({**explicit, "budget": 90, "epochs": 8})


def test_cli_prints_the_plan_before_it_runs_and_stays_within_budget(tmp_path):
    doc = {**auto_sweep(40, 6), "name": "auto", "workers": 1, "heartbeat": 0.2, "stale_after": 2}
    f = write_sweep(tmp_path, doc)
    p = run_cli("master", "start", str(f), "--dir", str(tmp_path / "run"), check=True)
    out = p.stdout
    assert "Plan: 3 stage(s) for a budget of 40 epochs" in out
    assert "planned from the budget (stages: auto)" in out
    assert out.index("Plan:") < out.index("Stage 1/3")
    assert "stage 1: " in out and "at most 40 epochs in all" in out
    results = [
        json.loads(line) for line in (tmp_path / "run" / "journal.jsonl").read_text().splitlines() if '"result"' in line
    ]
    planned = {
        t["trial"]: t
        for line in (tmp_path / "run" / "journal.jsonl").read_text().splitlines()
        if '"ev":"stage"' in line
        for t in json.loads(line)["trials"]
    }
    done = {r["trial"]: r["epochs_done"] for r in results}
    trained = sum(n - (done[planned[t]["parent"]] if planned[t].get("parent") else 0) for t, n in done.items())
    assert 0 < trained <= 40


STATELESS = """
import json

def fit(params, trial):
    ran = list(trial.epoch_range)
    for epoch in ran:
        trial.report(epoch, val_acc=params["quality"] * (1 - 0.5 ** epoch))  # no state=: nothing to resume
    with open(trial.trial_dir.parent.parent / "ran.jsonl", "a") as f:
        f.write(json.dumps({"trial": trial.id, "ran": ran}) + "\\n")
"""


def _python_budget_sweep(tmp_path, module: str, code: str):
    """A `budget: 40`, `epochs: 6`, `stages: auto` sweep of python trainable `module:fit` (its code
    written beside the sweep file) run through the CLI: (its directory, the master's process)."""
    write(tmp_path / f"{module}.py", code)
    doc = {
        "name": module,
        "trainable": {"python": f"{module}:fit"},
        "parameters": {"quality": {"min": 0.1, "max": 0.9}},
        "stages": "auto",
        "budget": 40,
        "epochs": 6,
        "workers": 1,
        "heartbeat": 0.2,
        "stale_after": 3,
    }
    root = tmp_path / "run"
    return root, run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(root), check=True)


def test_a_trainable_without_state_retrains_promotions_within_the_budget(tmp_path):
    """Through the CLI, a python trainable that never passes state=: every promotion trains again from
    epoch 1 (the trainable's own log of the epochs it ran says so), and the sweep still trains at
    most its budget, the later stages paying for the restarts."""
    root, p = _python_budget_sweep(tmp_path, "stateless", STATELESS)
    assert "at most 40 epochs in all" in p.stdout
    ran = [json.loads(line) for line in (root / "ran.jsonl").read_text().splitlines()]
    planned = {
        t["trial"]: t
        for line in (root / "journal.jsonl").read_text().splitlines()
        if '"ev":"stage"' in line
        for t in json.loads(line)["trials"]
    }
    promoted = [r for r in ran if planned[r["trial"]].get("parent")]
    assert promoted and all(r["ran"][0] == 1 for r in promoted)  # started over
    assert 30 < sum(len(r["ran"]) for r in ran) <= 40


NAN_AT_2 = """
import math

def fit(params, trial):
    for epoch in trial.epoch_range:
        odd = int(params["quality"] * 1000) % 2  # about half of the configurations
        loss = math.nan if odd and epoch >= 2 else 1 - params["quality"]
        trial.report(epoch, val_acc=params["quality"] * (1 - 0.5 ** epoch), train_loss=loss, state={"e": epoch})
"""


def test_a_run_that_reports_a_nan_loss_is_counted_once_for_that_epoch(tmp_path):
    """A NaN reported at epoch 2 diverges the run after that epoch was recorded: the journal says so
    (`diverged_reported`), its epoch is not counted twice, and no stage is told that earlier ones
    trained more than planned (a last stage was left empty by that miscount)."""
    root, _ = _python_budget_sweep(tmp_path, "nan2", NAN_AT_2)
    results = [json.loads(x) for x in (root / "journal.jsonl").read_text().splitlines() if '"ev":"result"' in x]
    diverged = [r for r in results if r["status"] == "diverged"]
    assert diverged and all(r.get("diverged_reported") and r["epochs_done"] >= 2 for r in diverged)
    notes = [n for k in (2, 3) for n in json.loads((root / "stages" / f"stage-{k}.json").read_text()).get("notes", [])]
    assert not any("more than planned" in n for n in notes), notes
    assert json.loads((root / "stages" / "stage-3.json").read_text())["trials"]


def test_explore_epochs_sets_aside_whole_trials_at_least_one():
    assert bp.explore_epochs(10, 8) == 8  # half would be 5 epochs: the floor of one trial applies
    assert bp.explore_epochs(55, 8) == 24  # half of 55 buys 3 trials of 8
    assert bp.explore_epochs(55, 8, share=1.0) == 48
    assert bp.explore_epochs(7, 8) == 0 and bp.explore_epochs(10, 0) == 0


def _last_stage(best_lr: float, auto: bool = True, failed: int = 0, budget: int = 64):
    """Plan stage 3 of a 64-epoch plan (1, 3, 8 epochs) whose stage-2 best run has `best_lr`; stage 1's
    runs spread over lr in [1e-5, 1] with a metric rising towards best_lr. `failed`: that many of
    stage 2's fresh runs (its worst) fail after 1 of their 3 epochs."""
    doc = auto_sweep(budget, 8)
    if not auto:
        by_hand = [{"trials": s.trials, "epochs": s.epochs, "promote": s.promote} for s in bp.plan(budget, 8)]
        doc = {**doc, "stages": by_hand}
        del doc["epochs"]
    sw = parse(doc)
    plan1 = stages.plan_stage(sw, 1, None, [])

    def score(lr: float) -> float:
        return 0.9 - 0.05 * abs(math.log10(lr) - math.log10(best_lr))

    runs1 = [
        stages.Run(
            t["trial"], t["config"], t["params"], "finished", score(t["params"]["lr"]), 1, t["seed"], epochs_done=1
        )
        for t in plan1.trials
    ]
    plan2 = stages.plan_stage(sw, 2, plan1.space, runs1, None, runs1)
    top = max((t for t in plan2.trials if not t.get("parent")), key=lambda t: t["params"]["lr"])
    if best_lr > plan2.space["lr"].high:  # its highest draw lies on the top border
        top["params"] = {**top["params"], "lr": plan2.space["lr"].high * 0.97}
    worst = sorted((t for t in plan2.trials if not t.get("parent")), key=lambda t: score(t["params"]["lr"]))
    stopped = {t["trial"] for t in worst[:failed]}
    runs2 = [
        stages.Run(
            t["trial"],
            t["config"],
            t["params"],
            "failed" if t["trial"] in stopped else "finished",
            None if t["trial"] in stopped else score(t["params"]["lr"]) + 0.01,
            3,
            t["seed"],
            epochs_done=1 if t["trial"] in stopped else 3,
            parent=t.get("parent"),
        )
        for t in plan2.trials
    ]
    plan3 = stages.plan_stage(sw, 3, plan2.space, runs2, None, runs1 + runs2)
    return sw, plan2, plan3


def test_a_promote_only_last_stage_whose_range_moved_also_samples_the_moved_range():
    """Breast cancer's worst seed (README "Performance"): a range moved before the last stage of
    `stages: auto` was never sampled, since that stage only promoted."""
    sw, plan2, plan3 = _last_stage(best_lr=1e6)  # better and better upwards: stage 2's best on its top border
    assert [(f.param, f.side) for f in plan3.flags if f.extends] == [("lr", "high")]
    assert plan3.space["lr"].high > plan2.space["lr"].high
    fresh = [t for t in plan3.trials if not t.get("parent")]
    promoted = [t for t in plan3.trials if t.get("parent")]
    assert len(fresh) == 1 and len(promoted) == 1  # 15 epochs: the incumbent's 5, one fresh trial's 8
    assert fresh[0]["epochs"] == 8 and plan3.space["lr"].low <= fresh[0]["params"]["lr"] <= plan3.space["lr"].high
    assert any("fresh trial(s) sample it" in n for n in plan3.notes)
    assert 5 * len(promoted) + 8 * len(fresh) <= bp.cost(sw.stages) - bp.cost(sw.stages[:2])


def test_the_brackets_last_stage_samples_a_moved_range_before_the_full_length_stage():
    """With 200 epochs the promote-only stage 3 is not the sweep's last (7 fresh 8-epoch trials
    follow); when its range moved it samples there too, so that the full-length stage is narrowed
    around runs in the moved range as well (breast cancer, best lr above the range, 200 epochs:
    median 0.951 -> 0.972 over 10 seeds, README "Performance")."""
    sw, plan2, plan3 = _last_stage(best_lr=1e6, budget=200)
    assert len(sw.stages) == 4 and sw.stages[2].promote and not sw.stages[2].trials
    assert [(f.param, f.side) for f in plan3.flags if f.extends] == [("lr", "high")]
    fresh = [t for t in plan3.trials if not t.get("parent")]
    assert fresh
    assert all(plan3.space["lr"].low <= t["params"]["lr"] <= plan3.space["lr"].high for t in fresh)
    assert any("fresh trial(s) sample it" in n for n in plan3.notes)
    _, _, stayed = _last_stage(best_lr=1e-2, budget=200)
    assert all(t.get("parent") for t in stayed.trials)


def test_a_last_stage_whose_range_stayed_only_promotes():
    _, _, plan3 = _last_stage(best_lr=1e-2)  # the best inside the range: no border flag
    assert not [t for t in plan3.trials if not t.get("parent")] and len(plan3.trials) == 3
    assert not any("fresh trial(s)" in n for n in plan3.notes)


def test_stages_written_by_hand_keep_the_promotions_they_ask_for():
    _, _, plan3 = _last_stage(best_lr=1e6, auto=False)
    assert not [t for t in plan3.trials if not t.get("parent")] and len(plan3.trials) == 3


def test_epochs_earlier_stages_did_not_train_are_spent_by_the_next():
    """A 200-epoch plan (63 x 1; 13 x 3 + 1 promoted; 8 promoted to 8; 7 x 8): five stage-2 runs fail
    after 1 of 3 epochs, 10 epochs unspent; the promote-only third stage spends them on incumbents (a
    stage-2 one costs 5 more epochs, a stage-1 one 7) beyond its own 40, within the 200."""

    def cost3(plan3):
        return sum(8 - (3 if t["parent"].startswith("s2-") else 1) for t in plan3.trials)

    sw, plan2, plan3 = _last_stage(best_lr=1e-2, failed=5, budget=200)
    assert [s.trials for s in sw.stages] == [63, 13, 0, 7] and sw.stages[2].promote == 8
    assert all(t.get("parent") for t in plan3.trials)
    assert 40 < cost3(plan3) <= 40 + 10  # 63 + 14 x 3 - 10 + cost3 + 7 x 8 <= 200
    assert any("10 epoch(s) earlier stages were counted for but did not train" in n for n in plan3.notes)
    _, _, planned = _last_stage(best_lr=1e-2, failed=0, budget=200)
    assert cost3(planned) <= 40 and not any("did not train" in n for n in planned.notes)


def test_balance_counts_what_runs_trained_against_the_plan():
    plan = bp.plan(64, 8)  # 32 x 1, 5 x 3 + 1 promoted (2 more epochs), 3 promoted (5 more)
    run = stages.Run
    s1 = [run(f"s1-t{i:04d}", "c", {}, "finished", 0.5, 1, i, None, 1) for i in range(32)]
    s2 = [run(f"s2-t{i:04d}", "c", {}, "finished", 0.5, 3, i, None, 3) for i in range(5)]
    s2.append(run("s2-t0005", "c", {}, "finished", 0.5, 3, 9, None, 3, "s1-t0000"))
    assert bp.balance(plan[:2], s1 + s2) == 0
    s2[0] = run("s2-t0000", "c", {}, "diverged", None, None, 0, None, 0)  # diverged in its first epoch
    s2[1] = run("s2-t0001", "c", {}, "pruned", 0.5, 1, 1, None, 1)
    assert bp.balance(plan[:2], s1 + s2) == 2 + 2
    assert bp.balance(plan[:2], [*s1, *s2, run("warm:s1-t0000", "w", {}, "finished", 0.9, 9, 0, None, 9)]) == 4
    assert bp.balance(plan[:2], [*s1, run("x", "c", {}, "finished")]) == 0  # epochs not known: none carried
    # the promoted s2-t0005 trained again from epoch 1 (its parent left no state): 1 epoch over the count
    s1[0] = s1[0]._replace(resumable=False)
    assert bp.balance(plan[:2], s1 + s2) == 2 + 2 - 1
    s2[0] = s2[0]._replace(status="finished", best=0.5, epochs_done=3)
    s2[1] = s2[1]._replace(status="finished", epochs_done=3)
    assert bp.balance(plan[:2], s1 + s2) == -1  # negative: the next stage pays it
    # a run that diverged in an epoch it had reported (a NaN loss) counts that epoch once
    s1[0] = s1[0]._replace(resumable=True)
    s2[0] = s2[0]._replace(status="diverged", best=None, epochs_done=2, diverged_reported=True)
    assert bp.balance(plan[:2], s1 + s2) == 1
    s2[0] = s2[0]._replace(diverged_reported=False)  # inside epoch 3, which it did not report
    assert bp.balance(plan[:2], s1 + s2) == 0
    # and never more than its stage's epochs (a journal without the flag, diverged at its last epoch)
    s2[0] = s2[0]._replace(epochs_done=3)
    assert bp.balance(plan[:2], s1 + s2) == 0


def test_a_promotion_without_resumable_state_is_priced_from_epoch_1():
    """64 epochs (32 x 1; 5 x 3 + 1 promoted; 3 promoted to 8): when no run leaves state (a python
    trainable that never passes state=), each promotion retrains from epoch 1: stage 2's share (17)
    buys the promotion (3) and 4 fresh trials, 2 epochs left over; the last stage's 15 + 2 buy two
    8-epoch promotions, not three of 5 (ranges kept at their borders: no fresh draws there)."""
    sw = parse(auto_sweep(64, 8, on_border="keep"))
    plan1 = stages.plan_stage(sw, 1, None, [])
    s1 = [
        stages.Run(t["trial"], t["config"], t["params"], "finished", i / 100, 1, t["seed"], epochs_done=1)
        for i, t in enumerate(plan1.trials)
    ]
    for resumable in (True, False):
        runs1 = [r._replace(resumable=resumable) for r in s1]
        plan2 = stages.plan_stage(sw, 2, plan1.space, runs1, None, runs1)
        promoted2 = [t for t in plan2.trials if t.get("parent")]
        # stage 2's share is 5 x 3 + 2: a promotion from epoch 1 costs 3, so one fresh trial fewer
        assert len(promoted2) == 1 and len(plan2.trials) == (6 if resumable else 5)
        s2 = [
            stages.Run(
                t["trial"],
                t["config"],
                t["params"],
                "finished",
                0.5 + i / 100,
                3,
                t["seed"],
                epochs_done=3,
                parent=t.get("parent"),
                resumable=resumable,
            )
            for i, t in enumerate(plan2.trials)
        ]
        plan3 = stages.plan_stage(sw, 3, plan2.space, s2, None, runs1 + s2)
        trained = 32 + sum(3 - (1 if t.get("parent") and resumable else 0) for t in plan2.trials)
        trained += sum(8 - (3 if t.get("parent") and resumable else 0) for t in plan3.trials)
        assert trained <= 64
        assert all(t.get("parent") for t in plan3.trials)
        assert len(plan3.trials) == (3 if resumable else 2)
        assert trained == (64 if resumable else 63)


def test_cost_counts_the_seeds_a_promoted_configuration_gains_from_epoch_1():
    """Stage 2 promotes 2 configurations with 3 repeats each: one run of each continues from epoch 2
    (3 more epochs), the 2 seeds it gains train all 5, as `master start --dry-run` and
    `stages._within_budget` count them (one function, `promoted_epochs`)."""
    from hpsearch.search.config import Stage

    planned = [Stage(trials=4, epochs=2), Stage(trials=0, epochs=5, promote=2, repeats=3)]
    assert bp.promoted_epochs(2, 1, 5, 3) == 3 + 2 * 5
    assert bp.cost(planned) == 4 * 2 + 2 * (3 + 2 * 5)
    assert bp.promoted_epochs(2, 5, 5, 3) == 3 * 3  # never more continuing runs than repeats
