"""What two new-user trials of 2026-12-01 (second round) found, through the real CLI: a follow-up that
dropped a q grid, a promoting stage with no more epochs than the one before it."""

from __future__ import annotations

from pathlib import Path

import yaml
from helpers import count_events, kill_pids, run_cli, spawn, wait_for, worker_pids, write_sweep


def noop_sweep(name: str, parameters: dict, stages: list) -> dict:
    return {
        "name": name,
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop"},
        "parameters": {"metric_value": {"min": 0.1, "max": 0.9}, **parameters},
        "stages": stages,
        "workers": 1,
        "seed": 0,
    }


def test_the_follow_up_of_a_q_grid_of_integers_keeps_its_grid(tmp_path: Path) -> None:
    grid = {
        "batch": {"distribution": "q_uniform", "min": 16, "max": 128, "q": 16},
        "hidden": {"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 16},
    }
    d = tmp_path / "run"
    sweep = write_sweep(tmp_path, noop_sweep("grid", grid, [{"trials": 8, "epochs": 1}]))
    run_cli("master", "start", str(sweep), "--dir", str(d), check=True)
    out = tmp_path / "next.yaml"
    run_cli("next", str(d), "-o", str(out), check=True)
    params = yaml.safe_load(out.read_text())["parameters"]
    assert params["batch"]["distribution"] == "q_uniform" and params["batch"]["q"] == 16
    assert params["hidden"]["distribution"] == "q_log_uniform_values" and params["hidden"]["q"] == 16
    # and the follow-up draws on the grid: every planned value a multiple of 16
    d2 = tmp_path / "run2"
    run_cli("master", "start", str(out), "--dir", str(d2), check=True)
    report = yaml.safe_load(run_cli("report", str(d2), "--format", "json", check=True).stdout)
    values = [r["params"][k] for r in report["runs"] for k in ("batch", "hidden")]
    assert values and all(v % 16 == 0 for v in values), values


def test_a_promoting_stage_without_more_epochs_is_refused_with_nothing_written(tmp_path: Path) -> None:
    doc = noop_sweep("dec", {}, [{"trials": 4, "epochs": 5}, {"trials": 4, "epochs": 2, "promote": 2}])
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "stages[2].promote: its epochs (2) are not more than stage 1's (5)" in lines[0]
    assert not d.exists()


def test_check_refuses_a_directory_holding_another_sweep_and_a_sweep_beside_other_checks_is_told(
    tmp_path: Path,
) -> None:
    one = write_sweep(tmp_path, noop_sweep("one", {}, [{"trials": 2, "epochs": 1}]), "one.yaml")
    two = write_sweep(tmp_path, noop_sweep("two", {}, [{"trials": 2, "epochs": 1}]), "two.yaml")
    d = tmp_path / "run"
    run_cli("master", "start", str(one), "--dir", str(d), check=True)
    p = run_cli("check", str(two), "--dir", str(d))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "holds a different sweep" in p.stderr and "give check another --dir" in p.stderr
    assert not (d / "preflight.json").exists()
    # checks of "one" left in a fresh directory, then sweep "two" started there: said, and shown
    fresh = tmp_path / "fresh"
    run_cli("check", str(one), "--dir", str(fresh), check=True)
    p = run_cli("master", "start", str(two), "--dir", str(fresh), check=True)
    assert "holds the checks of sweep 'one', not of 'two'" in p.stdout + p.stderr
    page = tmp_path / "r.html"
    run_cli("report", str(fresh), "--html", str(page), check=True)
    assert "These are the checks of sweep <b>one</b>, not of this sweep (two)" in page.read_text()


def test_report_of_a_stage_the_sweep_does_not_have_is_one_clear_line(tmp_path: Path) -> None:
    d = tmp_path / "run"
    run_cli(
        "master",
        "start",
        str(write_sweep(tmp_path, noop_sweep("s", {}, [{"trials": 2, "epochs": 1}]))),
        "--dir",
        str(d),
        check=True,
    )
    p = run_cli("report", str(d), "--stage", "9")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == "hpsearch: error: stage 9 does not exist: s has 1 stage(s), numbered from 1"


def test_a_missing_module_is_named_with_the_sweep_file(tmp_path: Path) -> None:
    doc = noop_sweep("m", {}, [{"trials": 2, "epochs": 1}]) | {"trainable": {"python": "nosuch:fit"}}
    sweep = write_sweep(tmp_path, doc, "m3.yaml")
    for args in (["--dry-run"], []):
        p = run_cli("master", "start", str(sweep), "--dir", str(tmp_path / "run"), *args)
        assert p.returncode == 2 and p.stderr.startswith(
            f"hpsearch: error: {sweep}: trainable.python: no module 'nosuch'"
        )
    assert not (tmp_path / "run").exists()


def test_the_wandb_command_the_warning_suggests_is_valid_yaml(tmp_path: Path) -> None:
    """The warning for W&B's top-level `command:` suggests a trainable block; pasted, it must parse
    (unquoted `${env}` items in a flow list are not YAML)."""
    doc = noop_sweep("w", {}, [{"trials": 2, "epochs": 1}]) | {"command": ["${env}", "${interpreter}", "${program}"]}
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(tmp_path / "run"), "--dry-run")
    line = next(x for x in p.stderr.splitlines() if "W&B key 'command' is not used" in x)
    block = line[line.index("trainable: {") : line.index("}, with program") + 1]
    assert yaml.safe_load(block)["trainable"]["command"] == ["${env}", "${interpreter}", "${program}", "${args}"]


def test_error_txt_of_a_failed_program_leads_with_the_programs_own_lines() -> None:
    from hpsearch.errors import failure_record
    from hpsearch.trainables.command import ProgramFailed

    try:
        raise ProgramFailed(
            "train.py exited with code 1: RuntimeError: boom", detail="Traceback ...\nRuntimeError: boom"
        )
    except ProgramFailed as e:
        text, line = failure_record(e)
    assert text.startswith(
        "Traceback ...\nRuntimeError: boom\n\nhpsearch's traceback:\nTraceback (most recent call last)"
    )
    assert line == "ProgramFailed: train.py exited with code 1: RuntimeError: boom"


def test_a_metric_regex_that_matches_nothing_is_named_in_the_reason(tmp_path: Path) -> None:
    (tmp_path / "prints.py").write_text("print('val_acc: 0.97')\n")
    doc = noop_sweep("rx", {}, [{"trials": 2, "epochs": 1}]) | {
        "trainable": {"command": ["${interpreter}", "prints.py"], "metric_regex": "val_acc=(?P<val_acc>[0-9.]+)"}
    }
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d))
    assert p.returncode == 1
    assert "metric_regex matched none of its output lines" in p.stdout + p.stderr


def test_early_stop_hyperband_points_to_early_terminate(tmp_path: Path) -> None:
    doc = noop_sweep("hb", {}, [{"trials": 2, "epochs": 3}]) | {"early_stop": {"type": "hyperband", "min_iter": 3}}
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(tmp_path / "run"))
    assert p.returncode == 2 and "under early_terminate: {type: hyperband, min_iter: 3}" in p.stderr


def test_asha_with_stages_auto_gives_no_warning_for_its_one_epoch_first_stage() -> None:
    from hpsearch.search import config

    doc = noop_sweep("a", {}, []) | {"stages": "auto", "budget": 60, "epochs": 6, "early_stop": {"type": "asha"}}
    s = config.parse(doc)
    assert s.stages[0].epochs == 1 and not [w for w in s.warnings if "no rung" in w]
    # a rule that acts in no stage at all is still told
    one = config.parse(noop_sweep("b", {}, [{"trials": 2, "epochs": 1}]) | {"early_stop": {"type": "asha"}})
    assert any("no rung below the stage's 1 epoch" in w for w in one.warnings)


def test_a_sweep_that_failed_is_not_described_as_still_running(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("def fit(params, trial):\n    raise RuntimeError('boom')\n")
    doc = noop_sweep("f", {}, [{"trials": 3, "epochs": 1}, {"trials": 2, "epochs": 2}]) | {
        "trainable": {"python": "boom:fit"}
    }
    d = tmp_path / "run"
    assert run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d)).returncode == 1
    status = run_cli("master", "status", str(d)).stdout
    assert "the running one included" not in status and "not run when it stopped:" in status
    best = run_cli("best", str(d))
    assert best.returncode == 2 and "no finished run (" in best.stderr and " yet" not in best.stderr
    nxt = run_cli("next", str(d))
    assert nxt.returncode == 2 and "no stage has finished before the sweep stopped (" in nxt.stderr


def test_next_of_a_sweep_that_reached_its_target_says_the_target_is_kept(tmp_path: Path) -> None:
    doc = noop_sweep("t", {}, [{"trials": 4, "epochs": 1}, {"trials": 2, "epochs": 2}])
    doc["metric"] = {"name": "val_acc", "goal": "maximize", "target": 0.2}
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    p = run_cli("next", str(d), "-o", str(tmp_path / "next.yaml"), check=True)
    assert "Target: metric.target 0.2 was reached" in p.stdout + p.stderr
    assert yaml.safe_load((tmp_path / "next.yaml").read_text())["metric"]["target"] == 0.2


def test_html_shows_a_parameter_another_branch_took_as_a_dash_and_says_a_command_cannot_be_ensembled(
    tmp_path: Path,
) -> None:
    (tmp_path / "prog.py").write_text(
        "import json, os, sys\n"
        "with open(os.environ['HPSEARCH_METRICS_FILE'], 'a') as f:\n"
        "    f.write(json.dumps({'epoch': 1, 'val_acc': 0.5}) + '\\n')\n"
    )
    doc = noop_sweep("br", {}, [{"trials": 4, "epochs": 1}])
    doc["parameters"] = {
        "opt": {
            "values": ["adam", "sgd"],
            "branches": {"sgd": {"momentum": {"min": 0.5, "max": 0.9}}},
        }
    }
    doc["trainable"] = {"command": ["${interpreter}", "prog.py", "${args}"]}
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    page = tmp_path / "r.html"
    run_cli("report", str(d), "--html", str(page), check=True)
    html = page.read_text()
    ranking = html[html.index("<table id='ranking'>") : html.index("</table>", html.index("<table id='ranking'>"))]
    assert ">nan<" not in ranking and "<td class=''>-</td>" in ranking
    assert "No ensembles: a command program&#x27;s checkpoints are its own files" in html


def test_check_whose_every_verdict_was_skipped_says_nothing_was_verified(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep("nc", {}, [{"trials": 2, "epochs": 1}]))
    p = run_cli("check", str(sweep), "--dir", str(tmp_path / "run"), check=True)
    assert "No check ran (every one was skipped" in p.stdout and "go on with the sweep" not in p.stdout


def test_starting_a_finished_sweep_again_reports_it_and_writes_nothing(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, noop_sweep("fin", {}, [{"trials": 3, "epochs": 1}]))
    d = tmp_path / "run"
    run_cli("master", "start", str(sweep), "--dir", str(d), check=True)
    before = (d / "journal.jsonl").read_bytes()
    dry = run_cli("master", "start", str(sweep), "--dir", str(d), "--dry-run", check=True)
    assert "a real start only reports it" in dry.stdout + dry.stderr
    again = run_cli("master", "start", str(sweep), "--dir", str(d), check=True)
    assert "fin in " in again.stdout and "is finished (1 of 1 stage(s) done): nothing to run" in again.stdout
    assert "Done. " in again.stdout
    assert (d / "journal.jsonl").read_bytes() == before


def test_the_promote_warning_is_dropped_once_a_finished_run_handed_over_state(tmp_path: Path) -> None:
    import io

    from hpsearch.run.master import Master, StartOptions
    from hpsearch.run.progress import Progress
    from hpsearch.store.sweepdir import Store
    from hpsearch.store.sweepfile import load

    (tmp_path / "m.py").write_text("def fit(params, trial):\n    pass\n")
    doc = noop_sweep("pr", {}, [{"trials": 3, "epochs": 1}, {"trials": 1, "epochs": 2, "promote": 1}])
    doc["trainable"] = {"python": "m:fit"}
    f = write_sweep(tmp_path, doc)
    sweep, raw = load(f)
    m = Master(
        sweep, raw, f.read_text(), str(tmp_path / "run"), StartOptions(no_workers=True), out=Progress(io.StringIO())
    )
    m.open_directory()
    m.plan(1)
    assert any(".promote (stages counted from 1)" in w for w in m._warnings())  # nothing ran yet
    store = Store(tmp_path / "run")
    store.refresh()
    (t,) = store.claim("w")
    store.finish(t.trial, t.attempt, "finished", 0.5, 1, 1, resumable=False)
    m.store.refresh()
    assert any(".promote" in w for w in m._warnings())  # a run without state: still told
    (t2,) = store.claim("w")
    store.finish(t2.trial, t2.attempt, "finished", 0.6, 1, 1)
    m.store.refresh()
    assert not any(".promote" in w for w in m._warnings())  # a run that handed over state: not again


DECLINING = """
def fit(params, trial):
    for epoch in trial.epoch_range:
        trial.report(epoch, val_acc=params["metric_value"] / epoch, state={"epoch": epoch})
"""


def test_a_configuration_promoted_twice_names_the_checkpoint_of_the_stage_its_best_epoch_was_trained_in(
    tmp_path: Path,
) -> None:
    (tmp_path / "declining.py").write_text(DECLINING)
    doc = noop_sweep(
        "chain",
        {},
        [
            {"trials": 2, "epochs": 1},
            {"trials": 0, "epochs": 2, "promote": 1},
            {"trials": 0, "epochs": 3, "promote": 1},
        ],
    )
    doc["trainable"] = {"python": "declining:fit"}
    d = tmp_path / "run"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    runs = yaml.safe_load(run_cli("report", str(d), "--format", "json", check=True).stdout)["runs"]
    s3 = next(r for r in runs if r["trial"].startswith("s3-"))
    assert s3["best_epoch"] == 1 and s3["checkpoint"].startswith("s1-t")  # the grandparent's epoch-1 file
    assert (d / "checkpoints" / s3["checkpoint"]).is_file()
    best = yaml.safe_load(run_cli("best", str(d), "--format", "json", check=True).stdout)
    assert best[0]["checkpoint"] is not None and best[0]["checkpoint"].endswith(s3["checkpoint"])


def test_an_epoch_reported_twice_or_backwards_fails_the_trial_with_a_clear_reason(tmp_path: Path) -> None:
    import pytest
    from helpers import claimed_trial

    t = claimed_trial(tmp_path / "a")
    t.report(1, val_acc=0.5)
    t.report(2, val_acc=0.6)
    for epoch in (2, 1):  # the same epoch again, an earlier one
        with pytest.raises(ValueError, match=r"after epoch 2 was reported: report each epoch once, in order"):
            t.report(epoch, val_acc=0.99)
    assert t.best == 0.6 and [h["epoch"] for h in t.store.metrics(t.id)] == [1, 2]  # 0.99 never ranks


def test_a_stop_that_comes_with_a_rung_epoch_is_judged_there_first(tmp_path: Path) -> None:
    """The rung's decision is taken before the stop releases the trial: the resumed trial starts after
    that epoch, so a skipped decision was never taken (a new user's journal had no rung event)."""
    import pytest
    from helpers import claimed_trial

    from hpsearch.errors import StopTrial

    t = claimed_trial(tmp_path / "b", epochs=3)
    judged: list[int] = []
    t._rungs = (1,)
    t._judge = judged.append  # type: ignore[method-assign]  # the rung's decision, recorded
    t._stop_event.set()  # a stop arrives during epoch 1
    with pytest.raises(StopTrial, match="^stopped"):
        t.report(1, val_acc=0.5)
    assert judged == [1]


def test_a_search_space_written_in_optunas_spelling_is_fixed_in_one_go() -> None:
    import pytest

    from hpsearch.errors import ConfigError
    from hpsearch.search import config

    doc = noop_sweep("o", {}, [{"trials": 2, "epochs": 1}])
    doc["parameters"] = {
        "lr": {"low": 1e-5, "high": 1.0, "log": True},
        "act": {"choices": ["relu", "tanh"]},
        "wd": {"distribution": "loguniform", "min": 1e-6, "max": 1e-2},
    }
    with pytest.raises(ConfigError) as e:
        config.parse(doc)
    text = str(e.value)
    assert "parameters.lr: unknown keys 'low', 'high', 'log'; in this file's spelling: low -> min, high -> max" in text
    assert "log -> distribution: log_uniform_values" in text and "choices -> values" in text
    assert "parameters.wd.distribution: unknown 'loguniform'; for 'loguniform' write log_uniform_values" in text


def test_a_tpe_stage_says_so_in_the_dry_run_and_the_stage_line(tmp_path: Path) -> None:
    import importlib.util

    import pytest

    if importlib.util.find_spec("optuna") is None:
        pytest.skip("sampler: tpe needs Optuna (pip install -e '.[tpe]')")
    doc = noop_sweep("t", {}, [{"trials": 4, "epochs": 1}, {"trials": 3, "epochs": 1, "sampler": "tpe"}])
    sweep = write_sweep(tmp_path, doc)
    dry = run_cli("master", "start", str(sweep), "--dir", str(tmp_path / "run"), "--dry-run", check=True)
    assert "stage 2: 3 trial(s) x 1 epoch(s), fresh trials drawn by TPE (sampler: tpe)" in dry.stdout
    assert "drawn by TPE" not in dry.stdout.split("stage 2:")[0]
    p = run_cli("master", "start", str(sweep), "--dir", str(tmp_path / "run"), check=True)
    assert "Stage 2/2: 3 trial(s) x 1 epoch(s) (fresh ones drawn by TPE, sampler: tpe)" in p.stdout


def test_a_no_workers_master_keeps_no_workers_in_every_resume_hint_and_its_dry_run(tmp_path: Path) -> None:
    import io
    import json

    from hpsearch.report.status import status_text
    from hpsearch.run.master import Master, StartOptions
    from hpsearch.run.progress import Progress
    from hpsearch.store.sweepfile import load

    f = write_sweep(tmp_path, noop_sweep("h", {}, [{"trials": 2, "epochs": 1}]))
    root = str(tmp_path / "run")
    dry = run_cli("master", "start", str(f), "--dir", root, "--no-workers", "--dry-run", check=True)
    assert f"Workers: none started (--no-workers): start them by hand, hpsearch worker --dir {root}" in dry.stdout
    sweep, raw = load(f)
    m = Master(
        sweep, raw, f.read_text(), root, StartOptions(no_workers=True, sweep_path=str(f)), out=Progress(io.StringIO())
    )
    m.open_directory(before_writes=m.take_master_role)
    m.plan(1)
    assert m.again.endswith(f"--dir {root} --no-workers")
    info = json.loads((tmp_path / "run" / "master.json").read_text())
    (tmp_path / "run" / "master.json").write_text(json.dumps({**info, "pid": 999999, "time": 0}))  # gone
    assert f"resume with: hpsearch master start {f} --dir {root} --no-workers" in status_text(root)


def test_a_stage_promoting_fewer_than_it_asks_says_why(tmp_path: Path) -> None:
    """It promoted fewer in silence: the user could not tell a failed stage 1 from a bug."""
    doc = noop_sweep(
        "few",
        {"fail": {"values": [0, 1]}},
        [{"trials": 4, "epochs": 1}, {"trials": 1, "epochs": 2, "promote": 6}],
    )
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d))
    report = yaml.safe_load(run_cli("report", str(d), "--format", "json", check=True).stdout)
    finished = [r for r in report["runs"] if r["stage"] == 1 and r["status"] == "finished"]
    promoted = [r for r in report["runs"] if r["stage"] == 2 and r.get("parent")]
    assert len(promoted) == len(finished) < 6
    note = (
        f"stage 2: {len(finished)} configuration(s) promoted, not the 6 planned: only {len(finished)} "
        "configuration(s) of earlier stages can continue (runs that diverged or failed are not promoted"
    )
    assert note in p.stdout, p.stdout
    stage2 = yaml.safe_load((d / "stages" / "stage-2.json").read_text())
    assert any(n.startswith(note) for n in stage2["notes"])  # the stage file keeps it for `report`


def test_a_stage_promoting_what_it_asks_has_no_such_note(tmp_path: Path) -> None:
    doc = noop_sweep("all", {}, [{"trials": 4, "epochs": 1}, {"trials": 1, "epochs": 2, "promote": 2}])
    d = tmp_path / "run"
    p = run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    assert "promoted, not the" not in p.stdout


def test_next_on_a_running_or_stopped_sweep_says_which_stage_it_starts_from(tmp_path: Path) -> None:
    """`hpsearch next` on a running sweep wrote a follow-up of stage 1 with no word that stage 2 was
    still training (the user took it for the sweep's result)."""
    doc = noop_sweep("live", {}, [{"trials": 2, "epochs": 1}, {"trials": 4, "epochs": 30}])
    doc["trainable"] = {"builtin": "noop", "sleep": 0.5}
    sweep = write_sweep(tmp_path, doc)
    d = tmp_path / "run"
    m = spawn("master", "start", str(sweep), "--dir", str(d), capture=True)
    try:
        wait_for(lambda: count_events(d, "stage_done") >= 1, 120, "stage 1 done", proc=m)
        p = run_cli("next", str(d), "-o", str(tmp_path / "next.yaml"), check=True)
        assert "Note: live is still running (stage 2 of 2): this follow-up starts from stage 1" in p.stdout, p.stdout
        run_cli("master", "stop", str(d), check=True)
        m.communicate(timeout=120)
        p = run_cli("next", str(d), "-o", str(tmp_path / "next.yaml"), check=True)
        assert "Note: live stopped (" in p.stdout and "after stage 1 of 2" in p.stdout, p.stdout
    finally:
        kill_pids([m.pid, *worker_pids(d)])


def test_next_on_a_finished_sweep_has_no_such_note(tmp_path: Path) -> None:
    d = tmp_path / "run"
    sweep = write_sweep(tmp_path, noop_sweep("fin", {}, [{"trials": 2, "epochs": 1}]))
    run_cli("master", "start", str(sweep), "--dir", str(d), check=True)
    p = run_cli("next", str(d), "-o", str(tmp_path / "next.yaml"), check=True)
    assert "Note: fin" not in p.stdout
