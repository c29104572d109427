"""The recipe through the real CLI on the bundled digits: check, then a sweep, then best, ensemble, next."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import run_cli, write, write_sweep

from hpsearch.store import sweepfile
from hpsearch.store.sweepdir import Store

DIGITS = {
    "name": "recipe",
    "seed": 2,
    "metric": {"name": "val_acc", "goal": "maximize"},
    "trainable": {"builtin": "classifier", "dataset": "digits", "hidden": [32], "max_batches": 6},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-2, "max": 0.5},
        "reg": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-3},
        "ema": {"values": [0.0, 0.9]},
        "lr_schedule": {"values": ["step", "inverse_time"]},
    },
    "stages": [{"trials": 6, "epochs": 2}, {"trials": 4, "epochs": 3, "top": 3}],
    "checkpoints": "all",
    "workers": 2,
    "heartbeat": 0.5,
}


def lines(text: str, word: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip().startswith(word)]


@pytest.fixture(scope="module")
def checked_sweep(tmp_path_factory):
    """`hpsearch check` into a directory, then the sweep in the same directory."""
    tmp = tmp_path_factory.mktemp("recipe")
    f = write_sweep(tmp, DIGITS, "recipe.yaml")
    d = tmp / "run dir"
    check = run_cli("check", str(f), "--dir", str(d), "--write", str(tmp / "lr.yaml"))
    sweep = run_cli("master", "start", str(f), "--dir", str(d), timeout=600)
    return tmp, f, d, check, sweep


def test_check_passes_on_digits_and_writes_preflight_and_lr_sweep(checked_sweep) -> None:
    tmp, f, d, check, _ = checked_sweep
    assert check.returncode == 0, check.stdout + check.stderr
    verdicts = {ln.split()[1]: ln.split()[0] for ln in check.stdout.splitlines() if ln[:6].strip() in ("PASS", "WARN")}
    assert verdicts["gradient"] == verdicts["initial_loss"] == verdicts["overfit"] == "PASS", check.stdout
    assert verdicts["lr_range"] in ("PASS", "WARN")
    doc = json.loads((d / "preflight.json").read_text())
    assert [v["check"] for v in doc["verdicts"]] == ["gradient", "initial_loss", "overfit", "lr_range"]
    lr = doc["verdicts"][3]["data"]
    new, _ = sweepfile.load(tmp / "lr.yaml")  # a valid sweep file, same but for lr
    assert (new.space["lr"].low, new.space["lr"].high) == pytest.approx(tuple(lr["suggested"]), rel=1e-2)
    assert new.space["reg"] == sweepfile.load(f)[0].space["reg"]


def test_sweep_runs_beside_preflight_and_the_report_shows_it(checked_sweep) -> None:
    tmp, _, d, _, sweep = checked_sweep
    assert sweep.returncode == 0, sweep.stderr
    assert f"hpsearch next {d} -o recipe-next.yaml" in sweep.stdout  # the master's last line names the next step
    html = tmp / "report.html"
    run_cli("report", str(d), "--html", str(html), check=True)
    page = html.read_text()
    assert "<h2>Preflight</h2>" in page and "id='plot-preflight_lr_range'" in page
    assert page.count("verdict-pass") >= 3


def test_ema_and_schedules_are_searched_and_recorded(checked_sweep) -> None:
    _, _, d, _, _ = checked_sweep
    store = Store(d)
    st = store.refresh()
    seen = {(t.params["ema"], t.params["lr_schedule"]) for t in st.trials.values()}
    assert {e for e, _ in seen} == {0.0, 0.9} and {s for _, s in seen} == {"step", "inverse_time"}
    for t in st.trials.values():
        if t.state.value != "finished":
            continue
        m = store.metrics(t.trial)
        ckpt = store.load_checkpoint(m[-1]["checkpoint"])
        assert ckpt is not None and ("ema_model" in ckpt["state"]) == (t.params["ema"] > 0)
        if t.params["lr_schedule"] == "inverse_time" and len(m) >= 2:  # lr / (1 + 0.1 t)
            assert m[1]["lr"] == pytest.approx(t.params["lr"] / 1.1)


def test_best_in_each_format(checked_sweep) -> None:
    _, _, d, _, _ = checked_sweep
    rows = json.loads(run_cli("best", str(d), "--top", "3", "--format", "json", check=True).stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["val_acc"] >= rows[1]["val_acc"] >= rows[2]["val_acc"]
    assert all(Path(r["checkpoint"]).is_file() for r in rows)
    assert yaml.safe_load(run_cli("best", str(d), check=True).stdout)[0]["trial"] == rows[0]["trial"]
    args = run_cli("best", str(d), "--format", "args", check=True).stdout.split()
    p = rows[0]["params"]
    # exactly what ${args} gave the trial: the stored float, not rounded (pasting it reproduces the run)
    assert args[0] == f"--lr={p['lr']!r}" and float(args[0].split("=")[1]) == p["lr"]
    assert f"--lr_schedule={p['lr_schedule']}" in args


def test_ensemble_curves_and_report(checked_sweep) -> None:
    tmp, _, d, _, _ = checked_sweep
    p = run_cli("ensemble", str(d), "--top", "4", check=True)
    doc = json.loads((d / "ensemble.json").read_text())
    top, single, avg = doc["curves"]
    assert [pt["k"] for pt in top["points"]] == [1, 2, 3, 4]
    best = json.loads(run_cli("best", str(d), "--format", "json", check=True).stdout)[0]
    assert top["points"][0]["accuracy"] == pytest.approx(best["val_acc"], abs=1e-6)  # K=1 is the best run
    assert doc["best_single"] == top["points"][0]["accuracy"]
    assert len({m.split()[0] for m in top["points"][-1]["members"]}) == 4  # four different runs
    assert best["trial"] in single["label"] and len(single["points"]) >= 2  # checkpoints: all
    assert "parameter average" in avg["label"] and len(avg["points"]) == len(single["points"])
    assert "Best single run" in p.stdout
    html = tmp / "report2.html"
    run_cli("report", str(d), "--html", str(html), check=True)
    assert "id='plot-ensemble'" in html.read_text()


def test_next_writes_a_follow_up_that_runs_with_a_warm_start(checked_sweep) -> None:
    tmp, f, d, _, _ = checked_sweep
    out = tmp / "next.yaml"
    p = run_cli("next", str(d), "-o", str(out), "--warm-start", check=True)
    assert "Ranges from stage 2" in p.stdout and f"hpsearch master start {out}" in p.stdout
    new, raw = sweepfile.load(out)
    old, _ = sweepfile.load(f)
    assert new.trainable == old.trainable and new.metric == old.metric and new.seed == old.seed + 1
    last = json.loads((d / "stages" / "stage-2.json").read_text())
    assert new.stages[0].epochs == 3 and new.stages[1].epochs == 6
    assert raw["warm_start"] == str(d.resolve())
    # the new lr range: narrowed around stage 2's top runs, or moved past a flagged edge
    flagged = {fl["param"] for fl in last["border_flags"]}
    lo, hi = last["ranges"]["lr"]["low"], last["ranges"]["lr"]["high"]
    if "lr" not in flagged:  # (the file holds 6 significant digits: a bound may round past the old one)
        assert lo * (1 - 1e-5) <= new.space["lr"].low < new.space["lr"].high <= hi * (1 + 1e-5)
    small = yaml.safe_load(out.read_text())
    small["stages"] = [{"trials": 3, "epochs": 3}, {"trials": 2, "epochs": 4, "top": 2}]
    f2 = write_sweep(tmp, small, "next-small.yaml")
    started = run_cli("master", "start", str(f2), "--dir", str(tmp / "next run"), timeout=600, check=True)
    ranking = json.loads((tmp / "next run" / "stages" / "stage-1.json").read_text())["ranking"]
    warm = [r for r in ranking if r["config"].startswith("warm:")]
    assert warm and len(ranking) == len(warm) + 3  # carried runs ranked with stage 1's own
    # and the master's stage-1 summary says so (its table lists this sweep's own trials)
    said = next(ln for ln in started.stdout.splitlines() if ln.startswith("Warm start: "))
    assert said.startswith(f"Warm start: {len(warm)} run(s) of {d.resolve()} ranked with this stage")
    assert {r["config"][5:] for r in warm} <= {t for t in Store(d).refresh().trials}


def test_warm_runs_rank_as_they_stood_after_the_new_stage_ones_epochs(checked_sweep) -> None:
    """A follow-up whose stage 1 trains 1 epoch ranks the carried-in 3-epoch runs by their best
    value up to epoch 1 (`stages: auto` starts at 1 epoch: the 3-epoch runs took the whole top)."""
    from hpsearch.run.warmstart import _read, warm_runs
    from hpsearch.search.config import parse

    tmp, f, d, _, _ = checked_sweep
    doc = {**yaml.safe_load(f.read_text()), "warm_start": str(d), "stages": [{"trials": 2, "epochs": 1}]}
    _read.cache_clear()
    warm = {r.trial.removeprefix("warm:"): r for r in warm_runs(parse(doc))}
    store = Store(d)
    assert warm and all(r.best_epoch == 1 for r in warm.values())
    for trial, r in warm.items():
        assert r.best == pytest.approx(store.metrics(trial)[0]["val_acc"])
    full = {**doc, "stages": [{"trials": 2, "epochs": 3}]}  # as long as they trained: their own best
    for r in warm_runs(parse(full)):
        assert r.best == pytest.approx(store.refresh().trials[r.trial.removeprefix("warm:")].best)


def test_next_says_when_it_replaces_a_file(checked_sweep) -> None:
    tmp, _, d, _, _ = checked_sweep
    out = tmp / "again.yaml"
    first = run_cli("next", str(d), "-o", str(out), check=True).stdout
    second = run_cli("next", str(d), "-o", str(out), check=True).stdout
    assert f"wrote {out}; run it with" in first and "replaced" not in first
    assert f"wrote {out} (it replaced the file that was there); run it with" in second


def test_printed_follow_up_goes_to_stdout(checked_sweep) -> None:
    _, _, d, _, _ = checked_sweep
    p = run_cli("next", str(d), check=True)
    assert yaml.safe_load(p.stdout)["name"] == "recipe-next" and "Ranges from stage 2" in p.stderr


# -- what must fail ----------------------------------------------------------------------------------
def sweep_with(tmp: Path, **trainable) -> Path:
    doc = {**DIGITS, "trainable": {**DIGITS["trainable"], **trainable}}
    return write_sweep(tmp, doc, "broken.yaml")


def test_huge_last_layer_fails_the_initial_loss_check(tmp_path: Path) -> None:
    p = run_cli("check", str(sweep_with(tmp_path, init_scale=5.0)), "--dir", str(tmp_path / "d"))
    assert p.returncode == 1
    (fail,) = lines(p.stdout, "FAIL")
    assert "initial_loss" in fail and "check the initialization or the last layer" in fail


def test_no_capacity_fails_the_overfit_check(tmp_path: Path) -> None:
    doc = {**DIGITS, "trainable": {**DIGITS["trainable"], "hidden": [1]}}
    f = write_sweep(tmp_path, doc, "tiny.yaml")
    p = run_cli("check", str(f), "--dir", str(tmp_path / "d"))
    assert p.returncode == 1
    assert any("overfit" in ln and "capacity" in ln for ln in lines(p.stdout, "FAIL")), p.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "missing.yaml"], "no such file"),
        (["check", "{f}", "--write", "{f}"], "that is the sweep file being checked"),
        (["best", "{d}"], "does not exist (a typo in the path?)"),
        (["ensemble", "{d}"], "does not exist (a typo in the path?)"),
        (["next", "{d}"], "does not exist (a typo in the path?)"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path: Path, args: list[str], message: str) -> None:
    f = write_sweep(tmp_path, DIGITS, "s.yaml")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [a.format(f=f, d=tmp_path / "nowhere") for a in args]
    p = run_cli(*argv, cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("verb", ["check", "master start"])
def test_bad_recipe_settings_are_listed_at_once(tmp_path: Path, verb: str) -> None:
    doc = {**DIGITS, "trainable": {**DIGITS["trainable"], "lr_step": 0, "lr_schedule": "cosine"}}
    doc["parameters"] = {**DIGITS["parameters"], "ema": {"values": [0.0, 1.5]}}
    del doc["parameters"]["lr_schedule"]
    f = write_sweep(tmp_path, doc, "bad.yaml")
    p = run_cli(*verb.split(), str(f), cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    for part in ("trainable.lr_schedule", "trainable.lr_step", "parameters.ema: every value must be in [0, 1)"):
        assert part in p.stderr
    assert not (tmp_path / "runs").exists()


# -- python trainables and command programs ----------------------------------------------------------
TRAIN_PY = """
import torch, torch.nn as nn, torch.nn.functional as F
from hpsearch.trainables import data

ds = data.digits()
X, y = torch.from_numpy(ds.X_train), torch.from_numpy(ds.y_train)
Xv, yv = torch.from_numpy(ds.X_val), torch.from_numpy(ds.y_val)


class Doubled(torch.autograd.Function):  # x * 2, with a backward that may be broken on purpose
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * BACKWARD


def model():
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        net[2].weight.mul_(LAST_SCALE)  # the last layer's initialization, huge on purpose in one test
    return nn.Sequential(net[0], nn.ReLU(), Lambda(), net[2])


class Lambda(nn.Module):
    def forward(self, x):
        return Doubled.apply(x)


def fit(params, trial):
    torch.manual_seed(trial.seed)
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=params["lr"])
    for epoch in trial.epoch_range:
        for i in range(0, 256, 64):
            loss = F.cross_entropy(m(X[i:i + 64]), y[i:i + 64])
            opt.zero_grad(); loss.backward(); opt.step()
        acc = (m(Xv).argmax(1) == yv).float().mean().item()
        trial.report(epoch, val_acc=acc, state={"model": m.state_dict()})
"""
CONTRACTS = """

def preflight(params):
    return model(), F.cross_entropy, [(X[i:i + 64], y[i:i + 64]) for i in range(0, len(X), 64)]


def predict(params, state):
    m = model()
    m.load_state_dict(state["model"])
    with torch.no_grad():
        return torch.softmax(m(Xv), 1), yv
"""
PY_SWEEP = """
name: py
metric: {name: val_acc, goal: maximize}
trainable: {python: "train:fit"}
parameters:
  lr: {distribution: log_uniform_values, min: 0.01, max: 0.3}
stages: [{trials: 3, epochs: 2}]
workers: 1
"""


def python_sweep(tmp: Path, backward: float, contracts: bool, last_scale: float = 1.0) -> Path:
    code = TRAIN_PY.replace("BACKWARD", str(backward)).replace("LAST_SCALE", str(last_scale))
    write(tmp / "train.py", code + (CONTRACTS if contracts else ""))
    return write(tmp / "sweep.yaml", PY_SWEEP)


@pytest.mark.slow  # a sweep of its own: make test-slow
def test_python_contract_checks_and_ensembles(tmp_path: Path) -> None:
    f = python_sweep(tmp_path, 2.0, contracts=True)
    p = run_cli("check", str(f), "--dir", str(tmp_path / "d"), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert lines(p.stdout, "PASS")[0].split()[1] == "gradient"
    assert any("initial_loss" in ln for ln in lines(p.stdout, "PASS") + lines(p.stdout, "WARN"))
    run_cli("master", "start", str(f), "--dir", str(tmp_path / "d"), cwd=tmp_path, check=True)
    p = run_cli("ensemble", str(tmp_path / "d"), "--top", "3", cwd=tmp_path, check=True)
    doc = json.loads((tmp_path / "d" / "ensemble.json").read_text())
    assert [pt["k"] for pt in doc["curves"][0]["points"]] == [1, 2, 3]
    # the third curve of README: the best run's checkpoints averaged (state={"model": ...}), or why not
    _, single, avg = doc["curves"]
    assert "parameter average" in avg["label"] and "parameter average" in p.stdout
    if len(single["points"]) > 1:
        assert len(avg["points"]) == len(single["points"])
    else:
        assert avg["note"].startswith("not measured: needs two or more checkpoints") and avg["note"] in p.stdout


def test_python_wrong_backward_fails_the_gradient_check(tmp_path: Path) -> None:
    f = python_sweep(tmp_path, 2.5, contracts=True)  # the backward of x * 2 says 2.5
    p = run_cli("check", str(f), cwd=tmp_path)
    assert p.returncode == 1
    assert any("gradient" in ln and "probably wrong" in ln for ln in lines(p.stdout, "FAIL")), p.stdout


def test_python_huge_last_layer_fails_the_initial_loss_check(tmp_path: Path) -> None:
    f = python_sweep(tmp_path, 2.0, contracts=True, last_scale=100.0)
    p = run_cli("check", str(f), cwd=tmp_path)
    assert p.returncode == 1
    (fail,) = [ln for ln in lines(p.stdout, "FAIL") if "initial_loss" in ln]
    assert "expected ln(10) = 2.303" in fail and "check the initialization or the last layer" in fail


@pytest.mark.slow  # a sweep of its own: make test-slow
def test_python_without_contracts_skips_and_refuses_with_one_line(tmp_path: Path) -> None:
    f = python_sweep(tmp_path, 2.0, contracts=False)
    p = run_cli("check", str(f), "--dir", str(tmp_path / "d"), cwd=tmp_path)
    assert p.returncode == 0 and len(lines(p.stdout, "SKIP")) == 4 and "defines no preflight" in p.stdout
    run_cli("master", "start", str(f), "--dir", str(tmp_path / "d"), cwd=tmp_path, check=True)
    e = run_cli("ensemble", str(tmp_path / "d"), cwd=tmp_path)
    assert e.returncode == 2 and "defines no predict(params, state)" in e.stderr
    assert not (tmp_path / "d" / "ensemble.json").exists()


def test_python_predict_without_saved_state_says_no_checkpoint_was_written(tmp_path: Path) -> None:
    f = python_sweep(tmp_path, 2.0, contracts=True)
    train = tmp_path / "train.py"
    train.write_text(train.read_text().replace(', state={"model": m.state_dict()})', ")"))
    run_cli("master", "start", str(f), "--dir", str(tmp_path / "d"), cwd=tmp_path, check=True)
    e = run_cli("ensemble", str(tmp_path / "d"), cwd=tmp_path)
    assert e.returncode == 2 and "no run saved a checkpoint" in e.stderr and "state=" in e.stderr
    assert len(e.stderr.strip().splitlines()) == 1 and not (tmp_path / "d" / "ensemble.json").exists()


def test_check_write_puts_the_lr_range_into_the_checked_branch(tmp_path: Path) -> None:
    """`hpsearch check --write` on a sweep whose lr lives under `branches:` wrote a top-level lr
    beside them (a file that does not start) and listed the branch not taken."""
    doc = {
        "name": "branches",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "classifier", "dataset": "digits", "hidden": [16], "max_batches": 4},
        "parameters": {
            "optimizer": {
                "values": ["adam", "momentum"],
                "branches": {
                    "adam": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}},
                    "momentum": {
                        "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0},
                        "momentum": {"min": 0.5, "max": 0.99},
                    },
                },
            },
        },
        "stages": [{"trials": 4, "epochs": 1}],
    }
    out = tmp_path / "lr.yaml"
    p = run_cli("check", str(write_sweep(tmp_path, doc)), "--dir", str(tmp_path / "d"), "--write", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    head = lines(p.stdout, "Checking")[0]
    assert "optimizer=adam" in head and "lr=" in head and "[" not in head.split(":", 1)[1] and "momentum=" not in head
    assert lines(p.stdout, "wrote " + str(out))[0].startswith(f"wrote {out} with lr (optimizer=adam) in [")
    assert "does not start" not in p.stdout
    new = yaml.safe_load(out.read_text())["parameters"]
    assert set(new) == {"optimizer"}  # no top-level lr beside the branches
    suggested = json.loads((tmp_path / "d" / "preflight.json").read_text())["verdicts"][3]["data"]["suggested"]
    adam = new["optimizer"]["branches"]["adam"]["lr"]
    assert (adam["min"], adam["max"]) == pytest.approx(tuple(suggested), rel=1e-2)
    assert new["optimizer"]["branches"]["momentum"] == doc["parameters"]["optimizer"]["branches"]["momentum"]
    run_cli("master", "start", str(out), "--dir", str(tmp_path / "n"), "--dry-run", check=True)


def test_next_on_conditional_parameters_writes_a_sweep_that_starts(tmp_path: Path) -> None:
    """`hpsearch next` on a sweep with `branches:` and `when:` (it crashed with a KeyError)."""
    doc = {
        "name": "cond",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "trainable": {"builtin": "noop"},
        "parameters": {
            "optimizer": {
                "values": ["adam", "sgd"],
                "branches": {
                    "adam": {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2}},
                    "sgd": {"lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1.0}},
                },
            },
            "momentum": {"min": 0.5, "max": 0.99, "when": {"optimizer": ["sgd"]}},
            "metric_value": {"min": 0.1, "max": 0.9},
        },
        "stages": [{"trials": 12, "epochs": 1}],
        "workers": 1,
        "heartbeat": 0.2,
    }
    d = tmp_path / "d"
    run_cli("master", "start", str(write_sweep(tmp_path, doc)), "--dir", str(d), check=True)
    n = run_cli("next", str(d), "-o", str(tmp_path / "next.yaml"), "--warm-start")
    assert n.returncode == 0 and "Traceback" not in n.stderr, n.stderr
    assert "lr[optimizer=adam]" in n.stdout and "Warm start: stage 1's 12 ranked run(s)" in n.stdout
    new = yaml.safe_load((tmp_path / "next.yaml").read_text())
    assert set(new["parameters"]["optimizer"]["branches"]) == {"adam", "sgd"}
    run_cli("master", "start", str(tmp_path / "next.yaml"), "--dir", str(tmp_path / "n"), "--dry-run", check=True)


PROGRAM = """
import json, os, math, random
subset = int(os.environ.get("HPSEARCH_SUBSET", "0")) or 200
random.seed(0)
xs = [[random.gauss(c, 1.0) for _ in range(4)] for c in (0, 3) for _ in range(subset // 2)]
ys = [0] * (subset // 2) + [1] * (subset // 2)
w, b = [0.0] * 4, 0.0
def loss_acc():
    loss, ok = 0.0, 0
    for x, y in zip(xs, ys):
        z = sum(a * c for a, c in zip(w, x)) + b
        p = 1 / (1 + math.exp(-z))
        loss -= math.log(p if y else 1 - p)
        ok += (p > 0.5) == bool(y)
    return loss / len(xs), ok / len(xs)
initial = loss_acc()[0]
with open(os.environ["HPSEARCH_METRICS_FILE"], "a") as f:
    for epoch in range(1, int(os.environ["HPSEARCH_EPOCHS"]) + 1):
        for x, y in zip(xs, ys):
            z = sum(a * c for a, c in zip(w, x)) + b
            g = 1 / (1 + math.exp(-z)) - y
            w = [a - 0.1 * g * c for a, c in zip(w, x)]
            b -= 0.1 * g
        loss, acc = loss_acc()
        line = {"epoch": epoch, "val_acc": acc, "train_loss": loss, "train_acc": acc}
        if os.environ.get("HPSEARCH_CHECK"):
            line.update(initial_loss=initial, classes=2)
        f.write(json.dumps(line) + "\\n")
"""


def test_command_program_honours_the_check_flags(tmp_path: Path) -> None:
    write(tmp_path / "prog.py", PROGRAM)
    f = write(
        tmp_path / "sweep.yaml",
        textwrap.dedent(
            """
            name: prog
            trainable: {command: ["${interpreter}", prog.py]}
            parameters:
              lr: {distribution: log_uniform_values, min: 0.01, max: 0.3}
            stages: [{trials: 2, epochs: 2}]
            """
        ),
    )
    p = run_cli("check", str(f), "--dir", str(tmp_path / "d"), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    passed = {ln.split()[1] for ln in lines(p.stdout, "PASS")}
    skipped = {ln.split()[1] for ln in lines(p.stdout, "SKIP")}
    assert passed == {"initial_loss", "overfit"} and skipped == {"gradient", "lr_range"}
    assert "ln(2) = 0.6931" in p.stdout
    # a program is only asked for 20 examples and no regularization: the verdict says so, and counts epochs
    (overfit,) = [ln for ln in lines(p.stdout, "PASS") if ln.split()[1] == "overfit"]
    assert "as asked by HPSEARCH_SUBSET=20 and HPSEARCH_NO_REG=1" in overfit and "epoch(s) at lr" in overfit
    assert "plain SGD" not in overfit


@pytest.mark.slow  # a sweep of its own: make test-slow
def test_noop_sweep_has_nothing_to_ensemble(tmp_path: Path) -> None:
    f = write(
        tmp_path / "noop.yaml",
        "name: n\ntrainable: {builtin: noop}\nparameters:\n  x: {distribution: uniform, min: 0, max: 1}\n"
        "stages: [{trials: 2, epochs: 1}]\n",
    )
    run_cli("master", "start", str(f), "--dir", str(tmp_path / "d"), check=True)
    e = run_cli("ensemble", str(tmp_path / "d"))
    assert e.returncode == 2 and "does not support ensembles" in e.stderr


def test_a_python_trainables_checkpoints_are_averaged_when_their_state_holds_a_model() -> None:
    """`ensemble` left the parameter average out for python trainables, with no word."""
    import torch

    from hpsearch.search import config
    from hpsearch.trainables.predict import average_states, why_not_averaged

    sweep = config.parse(
        {"trainable": {"python": "m:fit"}, "parameters": {"x": {"min": 0.0, "max": 1.0}}, "stages": [{"trials": 1}]}
    )

    def ckpt(w: float, **extra: object) -> dict:
        return {"params": {}, "state": {"model": {"w": torch.full((2,), w)}, **extra}}

    assert why_not_averaged(sweep, [ckpt(1.0), ckpt(3.0)]) is None
    assert torch.equal(average_states([ckpt(1.0), ckpt(3.0)])["state"]["model"]["w"], torch.full((2,), 2.0))
    assert "needs two or more checkpoints" in (why_not_averaged(sweep, [ckpt(1.0)]) or "")
    no_model = [{"state": {"weights": [1.0]}}, {"state": {"weights": [2.0]}}]
    assert "no 'model' state_dict" in (why_not_averaged(sweep, no_model) or "")
    other = {"params": {}, "state": {"model": {"w": torch.ones(3)}}}
    assert "differ in names or shapes" in (why_not_averaged(sweep, [ckpt(1.0), other]) or "")
