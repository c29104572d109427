"""Issue 12, kind 3: a range move never produces an invalid range; a planning error never wedges a sweep.

Property-based (Hypothesis): random ranges of every distribution, as a user writes them and as
the validation reads them, random top values drawn from them, every flag combination (border,
on_border, bounds), chained over several stages. Every next range must be valid and samplable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import run_cli, write, write_sweep
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hpsearch.search import space as sp
from hpsearch.search import stages
from hpsearch.search.paramspec import parse_parameters

NUMERIC = [
    "uniform",
    "q_uniform",
    "int_uniform",
    "log_uniform_values",
    "inv_log_uniform_values",
    "q_log_uniform_values",
    "int_log_uniform_values",
    "log_uniform",
    "q_log_uniform",
]
OTHER = ["normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta", "categorical"]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """One parameter as a sweep file writes it (W&B spellings), valid or not."""
    dist = draw(st.sampled_from(NUMERIC + OTHER))
    spec: dict[str, Any] = {"distribution": dist}
    if dist == "categorical":
        spec["values"] = draw(st.lists(st.integers(-5, 5), min_size=1, max_size=5, unique=True))
        return spec
    if "normal" in dist:
        spec["mu"], spec["sigma"] = draw(st.floats(-3, 3)), draw(st.floats(0.01, 3))
    elif "beta" in dist:
        spec["a"], spec["b"] = draw(st.floats(0.2, 5)), draw(st.floats(0.2, 5))
    elif dist in ("log_uniform", "q_log_uniform"):  # natural-log exponents
        lo = draw(st.floats(-30, 8))
        spec["min"], spec["max"] = lo, lo + draw(st.floats(0.01, 12))
    elif "log" in dist:
        e = draw(st.floats(-300, 250))
        lo = 10**e if "int" not in dist and not dist.startswith("q_") else draw(st.integers(1, 1000))
        hi = lo * 10 ** draw(st.floats(0.05, 40 if isinstance(lo, float) else 14))
        spec["min"], spec["max"] = lo, int(hi) if isinstance(lo, int) else hi
    elif dist == "int_uniform" or draw(st.booleans()):
        lo = draw(st.integers(-1000, 1000))
        spec["min"], spec["max"] = lo, lo + draw(st.integers(1, 5000))
    else:
        lo = draw(st.floats(-1e6, 1e6))
        spec["min"], spec["max"] = lo, lo + draw(st.floats(1e-3, 1e6))
    if dist.startswith("q_"):
        spec["q"] = draw(st.one_of(st.integers(1, 64), st.floats(0.01, 50)))
    if "min" in spec and draw(st.booleans()) and not dist.endswith("log_uniform"):
        spec["bounds"] = [spec["min"] - draw(st.floats(0, 100)), spec["max"] + draw(st.floats(0, 100))]
    if draw(st.booleans()):
        spec["on_border"] = draw(st.sampled_from(["extend", "keep"]))
    return spec


def check_samplable(name: str, dim: sp.Dim, rng: np.random.Generator) -> None:
    if isinstance(dim, sp.Numeric):
        assert stages.valid_range(dim), (name, dim)
        assert math.isfinite(dim.low) and math.isfinite(dim.high) and dim.low < dim.high, (name, dim)
        if dim.log:
            assert dim.low > 0, (name, dim)
            if dim.integer:
                assert dim.low >= 1 or math.ceil(dim.low) >= 1, (name, dim)
        if dim.bounds is not None:
            assert dim.bounds[0] <= dim.low and dim.high <= dim.bounds[1], (name, dim)
        if dim.q:
            first, last = sp.grid_span(dim.low, dim.high, dim.q)
            assert last - first >= 1, (name, dim)
        elif dim.integer:
            assert math.floor(dim.high) - math.ceil(dim.low) >= 1, (name, dim)
    for u in [0.0, 0.5, 1 - 1e-12, *rng.random(8)]:
        v = dim.from_unit(float(u))
        if isinstance(dim, sp.Numeric):
            assert dim.low <= v <= dim.high, (name, dim, u, v)
            assert math.isfinite(dim.to_unit(v)), (name, dim, v)
            if dim.integer:
                assert isinstance(v, int), (name, dim, v)
            if dim.q:
                k = v / dim.q
                assert abs(k - round(k)) <= 1e-9 + 1e-12 * abs(k), (name, dim, v)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs(),
    seed=st.integers(0, 2**32 - 1),
    n_top=st.integers(1, 6),
    border=st.floats(0.0, 0.5),
    margin=st.floats(0.0, 10.0),
    on_border=st.sampled_from(["extend", "keep"]),
    edge=st.sampled_from(["low", "high", "inside", "both"]),
)
@example(
    spec={"distribution": "q_uniform", "min": 3.895157008479603e-82, "max": 1.0, "q": 1},
    seed=0,
    n_top=1,
    border=0.5,
    margin=0.0,
    on_border="keep",
    edge="low",
)  # found by CI: a bound within the grid tolerance of point 0
def test_every_next_range_is_valid_and_samplable(
    spec: dict[str, Any], seed: int, n_top: int, border: float, margin: float, on_border: str, edge: str
) -> None:
    problems: list[str] = []
    space = parse_parameters({"p": spec}, problems, [])
    if problems:  # an invalid range is refused at the door; only valid ones reach the stages
        return
    dim = space["p"]
    rng = np.random.default_rng(seed)
    check_samplable("p", dim, rng)
    for _stage in range(6):  # several stages: each moved range is the next stage's input
        top = [dim.from_unit(float(u)) for u in rng.random(n_top)]
        if isinstance(dim, sp.Numeric) and edge != "inside":  # best values pressed against the edges
            top[0] = dim.from_unit(0.0) if edge in ("low", "both") else dim.from_unit(1 - 1e-12)
            if edge == "both" and len(top) > 1:
                top[1] = dim.from_unit(1 - 1e-12)
        flags = stages.border_flags({"p": dim}, {"p": top[0]}, border, on_border)
        nxt = stages.narrow(dim, top, flags, margin)
        check_samplable("p", nxt, rng)
        for f in flags:
            if not f.extends and isinstance(nxt, sp.Numeric):  # a side that may not move stays put
                # a quantized bound is a grid point: 3.9e-82 with q = 1 is point 0 (sp.GRID_TOL), and
                # both ranges draw the same values, so snapping it to 0 does not move it
                grid = sp.GRID_TOL * (dim.q or 0)
                if f.side == "low":
                    assert nxt.low >= dim.low - max(1e-9 * abs(dim.low), grid)
                else:
                    assert nxt.high <= dim.high + max(1e-9 * abs(dim.high), grid)
        dim = nxt


@pytest.mark.parametrize(
    "spec, best",
    [
        ({"distribution": "int_log_uniform_values", "min": 1, "max": 8}, 1),
        ({"distribution": "int_log_uniform_values", "min": 8, "max": 1024}, 8),
        ({"distribution": "q_log_uniform_values", "min": 1, "max": 100, "q": 1}, 1),
        ({"distribution": "q_log_uniform_values", "min": 10, "max": 1000, "q": 10}, 10),
        ({"distribution": "log_uniform_values", "min": 1e-300, "max": 1e-290}, 1e-300),
        ({"distribution": "log_uniform_values", "min": 1e290, "max": 1e300}, 1e300),
        ({"distribution": "uniform", "min": 0, "max": 1e300}, 1e300),
        ({"distribution": "q_uniform", "min": 0, "max": 100, "q": 10}, 0),
        ({"distribution": "int_uniform", "min": 1, "max": 2}, 1),
    ],
)
def test_the_issues_ranges_move_off_their_border_and_stay_valid(spec: dict[str, Any], best: Any) -> None:
    dim = parse_parameters({"p": spec}, [], [])["p"]
    assert isinstance(dim, sp.Numeric)
    for _ in range(10):
        flags = stages.border_flags({"p": dim}, {"p": best}, 0.1)
        dim2 = stages.narrow(dim, [best], flags, 0.25)
        assert isinstance(dim2, sp.Numeric)
        check_samplable("p", dim2, np.random.default_rng(0))
        dim, best = dim2, dim2.from_unit(0.0) if best <= dim.low * 1.0000001 or best == 0 else dim2.from_unit(0.999)


def test_a_normal_range_of_quantized_log_values_with_zeros_narrows() -> None:
    dim = sp.Normal(0.0, 1.0, log=True, q=1)
    assert stages.narrow(dim, [0, 0, 1], [], 0.25) == sp.Normal(0.0, 0.5, log=True, q=1)
    assert stages.narrow(dim, [0, 0], [], 0.25) == dim


TRAIN = """
def fit(params, trial):
    # the fewer layers and the smaller the batch, the better: the best sits on the low borders
    for epoch in trial.epoch_range:
        trial.report(epoch, val_loss=params["layers"] + params["batch"] / 1000 + params["width"] / 1e4)
"""


def test_a_sweep_whose_best_sits_on_a_low_integer_log_border_runs_every_stage(tmp_path: Path) -> None:
    write(tmp_path / "ut_border.py", TRAIN)
    write_sweep(
        tmp_path,
        """
        name: border
        metric: {name: val_loss, goal: minimize}
        trainable: {python: "ut_border:fit"}
        parameters:
          layers: {distribution: int_log_uniform_values, min: 1, max: 8}
          batch: {distribution: int_log_uniform_values, min: 8, max: 1024}
          width: {distribution: q_log_uniform_values, min: 16, max: 256, q: 16}
        stages: [{trials: 12, epochs: 1}, {trials: 12, epochs: 1, top: 2}, {trials: 12, epochs: 1, top: 2}]
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        """,
        "s.yaml",
    )
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for k in (2, 3):
        ranges = json.loads((tmp_path / "run" / "stages" / f"stage-{k}.json").read_text())["ranges"]
        assert ranges["layers"]["low"] >= 1 and ranges["batch"]["low"] >= 1 and ranges["width"]["low"] >= 16
        assert ranges["width"]["low"] % 16 == 0 and ranges["width"]["high"] % 16 == 0


def test_a_planning_error_is_one_line_and_the_directory_stays_resumable(tmp_path: Path) -> None:
    """A stage written by an older version with a log range at 0 (what the planning bug made):
    the master says what failed in one line, records the finished stage, and a resume says the
    same again instead of a traceback; `report` still reads the directory."""
    write(tmp_path / "ut_border.py", TRAIN)
    write_sweep(
        tmp_path,
        """
        name: wedge
        metric: {name: val_loss, goal: minimize}
        trainable: {python: "ut_border:fit"}
        parameters:
          layers: {distribution: int_log_uniform_values, min: 1, max: 8}
          batch: {values: [8, 16]}
          width: {value: 16}
        stages: [{trials: 3, epochs: 1}, {trials: 3, epochs: 1}]
        heartbeat: 0.2
        stale_after: 3
        workers: 1
        """,
        "s.yaml",
    )
    journal = tmp_path / "run" / "journal.jsonl"
    r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # what an older hpsearch could leave: stage 1 planned over a log range reaching 0, not yet done
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    keep = []
    for ev in lines:
        if ev["ev"] == "stage" and ev["stage"] == 1:
            ev["space"]["layers"]["low"] = 0.0
        if ev["ev"] in ("stage_done", "done") or (ev["ev"] == "stage" and ev["stage"] == 2):
            break
        keep.append(ev)
    journal.write_text("".join(json.dumps(ev) + "\n" for ev in keep))
    (tmp_path / "run" / "snapshot.json").unlink(missing_ok=True)
    for _attempt in range(2):
        r = run_cli("master", "start", "s.yaml", "--dir", "run", cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and "planning stage 2 failed" in err[0] and "resume" in err[0], err
        assert "Traceback" not in r.stdout + r.stderr
    evs = [json.loads(x)["ev"] for x in journal.read_text().splitlines()]
    assert evs.count("stage_done") == 1 and evs.count("stage") == 1  # stage 1 recorded done, no stage 2
    assert run_cli("report", "run", cwd=tmp_path).returncode == 0


def test_a_grid_range_at_its_lowest_grid_point_is_not_flagged_to_move() -> None:
    """q_uniform {min: 16, max: 128, q: 16}: positive integers stay >= 1, and the first multiple of
    16 at or above 1 is 16 itself, so the range cannot move down: the flag must not say it will
    (found by a user: 'the next stage extends the range downward', and the range stayed)."""
    dim = sp.Numeric(16, 128, integer=True, q=16)
    flag = stages.border_flags({"width": dim}, {"width": 16}, 0.1)[0]
    assert flag.side == "low" and not flag.extends
    assert stages.narrow(dim, [16], [flag], 0.25).low == 16
    moving = sp.Numeric(32, 128, integer=True, q=16)  # one grid point below remains: it may move
    assert stages.border_flags({"width": moving}, {"width": 32}, 0.1)[0].extends
