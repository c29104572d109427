"""The plots the notes say to look at, drawn with matplotlib's object API on the Agg canvas.

No pyplot: figures are plain `Figure` objects (no global state, no display needed). Each plot
is a (name, title, Figure); `write_plots` saves them as PNGs and `png_bytes` feeds the HTML.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from hpsearch.errors import HpsearchError
from hpsearch.report.diagnostics import metric_roles, reported
from hpsearch.report.sweepdata import SweepData
from hpsearch.search import conditional as cond
from hpsearch.search import space as sp

Plot = tuple[str, str, Any]  # (file stem, title, matplotlib Figure)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise HpsearchError(
            "plots and --html need matplotlib: pip install 'hpsearch[plots]' (or pip install matplotlib)"
        ) from None


def _figure(w: float = 7.5, h: float = 4.2) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _color(stage: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"]((int(stage) - 1) % 10)


def _dims(data: SweepData, name: str) -> list[tuple[int, sp.Dim]]:
    """(stage, dimension) of a parameter in each stage file."""
    return [(int(s["stage"]), sp.from_dict(s["ranges"][name])) for s in data.stages if name in s.get("ranges", {})]


def _searched(data: SweepData) -> tuple[list[str], list[str]]:
    """Numeric and categorical parameters searched in the first stage shown."""
    if not data.stages:
        return [], []
    num, cat = [], []
    for name, d in data.stages[0]["ranges"].items():
        dim = sp.from_dict(d)
        if isinstance(dim, sp.Categorical):
            cat.append(name)
        elif sp.is_searched(dim):
            num.append(name)
    return num, cat


def _in_branch(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows where parameter `name` exists: all, or for a conditional key (`lr[optimizer=adam]`)
    those whose parents hold the branch's values."""
    for parent, vals in cond.conditions(name):
        col = f"p.{parent}"
        if df.empty or col not in df:
            return df.iloc[0:0]
        df = df[[v is not None and v == v and cond.text(v) in vals for v in df[col]]]
    return df


def _stem(name: str) -> str:
    """A file-name-safe form of a parameter key: lr[optimizer=sgd|nesterov] -> lr__optimizer_sgd_or_nesterov."""
    return name.replace("[", "__").replace("]", "").replace("=", "_").replace("|", "_or_")


def _is_log(dim: sp.Dim) -> bool:
    return bool(getattr(dim, "log", False))


def _finished(data: SweepData) -> pd.DataFrame:
    df = data.runs
    if df.empty:
        return df
    return df[(df["status"] == "finished") & df[data.metric].notna()]


def _pruned(data: SweepData) -> pd.DataFrame:
    df = data.runs
    if df.empty:
        return df
    return df[(df["status"] == "pruned") & df[data.metric].notna()]


def metric_vs_param(data: SweepData, name: str) -> Plot:
    """Metric against one numeric parameter: stages coloured (pruned runs hollow, at the best value
    they reached), ranges as bands, diverged and failed runs as crosses along the bottom, best and
    borders marked."""
    fig = _figure()
    ax = fig.add_subplot()
    col, m = f"p.{cond.public(name)}", data.metric
    fin = _in_branch(_finished(data), name)
    dims = _dims(data, name)
    for k, dim in dims:
        if isinstance(dim, sp.Numeric):
            ax.axvspan(dim.low, dim.high, color=_color(k), alpha=0.10, lw=0)
    for stage, grp in fin.groupby("stage"):
        ax.scatter(
            grp[col].astype(float),
            grp[m].astype(float),
            s=22,
            color=_color(int(stage)),  # type: ignore[arg-type]  # stage numbers are ints
            alpha=0.85,
            label=f"stage {stage}",
            edgecolors="none",
        )
    pruned = _in_branch(_pruned(data), name)
    if len(pruned) and col in pruned:
        # stopped early by the stage's rule: the best value they reached, hollow (it is not a full run's)
        ax.scatter(
            pruned[col].astype(float),
            pruned[m].astype(float),
            s=22,
            facecolors="none",
            edgecolors=[_color(int(k)) for k in pruned["stage"]],
            alpha=0.85,
        )
        # the legend's entry in grey: the hollow points take their stage's colour
        ax.scatter([], [], s=22, facecolors="none", edgecolors="0.35", label="pruned (best before it stopped)")
    bad = data.runs[data.runs["status"].isin(["diverged", "failed"])] if not data.runs.empty else data.runs
    bad = _in_branch(bad, name)
    if len(bad) and col in bad:
        # no metric to plot: a rug at the bottom shows where they were
        ax.scatter(
            bad[col].astype(float),
            [0.02] * len(bad),
            marker="x",
            color="0.35",
            s=24,
            transform=ax.get_xaxis_transform(),
            label="diverged/failed",
        )
    if len(fin):
        best = fin.iloc[0]
        ax.scatter(
            [float(best[col])],
            [float(best[m])],
            marker="*",
            s=260,
            color="gold",
            edgecolors="black",
            zorder=5,
            label=f"best {sp.fmt(best[col])}",
        )
    flags = [(s, f) for s in data.stages for f in s.get("border_flags") or [] if f.get("param") == name]
    for i, (s, f) in enumerate(flags):
        dim = sp.from_dict(s["ranges"][name])
        edge = getattr(dim, "high" if f["side"] == "high" else "low", None)
        if edge is not None:
            ax.axvline(edge, color="red", ls="--", lw=1.5)
            # one text line per flag, stacked, on the inner side of the edge
            ax.annotate(
                f" stage {s['stage']}: best on {'upper' if f['side'] == 'high' else 'lower'} border ",
                (edge, 0.97 - 0.06 * i),
                xycoords=("data", "axes fraction"),
                color="red",
                fontsize=8,
                ha="right" if f["side"] == "high" else "left",
                va="top",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
    if dims and _is_log(dims[0][1]):
        ax.set_xscale("log")
    ax.set_xlabel(f"{name}" + (" (log scale)" if dims and _is_log(dims[0][1]) else ""))
    ax.set_ylabel(m)
    ax.set_title(f"{m} vs {name} (bands: each stage's range)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return (f"metric_vs_{_stem(name)}", f"{m} vs {name}", fig)


def metric_by_value(data: SweepData, name: str) -> Plot:
    """Metric for each value of a categorical parameter (a strip of points and its median)."""
    fig = _figure(6.5, 3.8)
    ax = fig.add_subplot()
    fin = _in_branch(_finished(data), name)
    col, m = f"p.{cond.public(name)}", data.metric
    values = sorted({str(v) for v in fin[col]}, key=_natural) if len(fin) else []
    for i, v in enumerate(values):
        grp = fin[fin[col].astype(str) == v]
        jitter = [((j * 0.618) % 1 - 0.5) * 0.3 for j in range(len(grp))]  # deterministic spread
        ax.scatter(
            [i + x for x in jitter],
            grp[m].astype(float),
            s=20,
            c=[_color(int(k)) for k in grp["stage"]],
            alpha=0.85,
            edgecolors="none",
        )
        ax.hlines(float(grp[m].median()), i - 0.3, i + 0.3, color="black", lw=2)
    ax.set_xticks(range(len(values)), values)
    ax.set_xlabel(f"{name} (bar: median)")
    ax.set_ylabel(m)
    ax.set_title(f"{m} by {name}")
    ax.grid(alpha=0.3, axis="y")
    return (f"metric_by_{_stem(name)}", f"{m} by {name}", fig)


def _natural(v: str) -> tuple[int, float, str]:
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def _batch_losses(curve: list[dict[str, Any]], train_loss: str | None) -> tuple[list[float], list[float]]:
    """Per-batch loss history over fractional epochs (the epoch's training loss where none was kept)."""
    xs, ys = [], []
    for line in curve:
        ep = int(line.get("epoch", 0))
        hist = [v for v in line.get("losses") or [] if isinstance(v, (int, float)) and math.isfinite(v)]
        if hist:
            xs += [ep - 1 + (i + 0.5) / len(hist) for i in range(len(hist))]
            ys += hist
        elif train_loss and _is_num(line.get(train_loss)):
            xs.append(ep)
            ys.append(line[train_loss])
    return xs, ys


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _points(curve: list[dict[str, Any]], key: str | None) -> list[tuple[int, float]]:
    return [(line["epoch"], line[key]) for line in curve if key and _is_num(line.get(key))] if key else []


def _roles(data: SweepData) -> dict[str, str | None]:
    return metric_roles(reported(data.curves), data.metric)


def _label(data: SweepData, trial: str) -> str:
    row = data.runs[data.runs["trial"] == trial]
    v = row[data.metric].iloc[0] if len(row) else None
    return f"{trial} ({data.metric} {v:.3f})" if isinstance(v, float) and not math.isnan(v) else trial


def loss_curves(data: SweepData) -> Plot:
    """Training loss (per batch where kept, else per epoch) and held-out loss (per epoch) of the top
    runs, linear and log; the loss metrics are whatever the trials report (metric_roles)."""
    from matplotlib import colormaps

    roles = _roles(data)
    tl, vl = roles["train_loss"], roles["val_loss"]
    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2)
    cmap = colormaps["viridis"]
    n = max(1, len(data.curves))
    for i, (trial, curve) in enumerate(data.curves.items()):
        c = cmap(i / n)
        xs, ys = _batch_losses(curve, tl)
        val = _points(curve, vl)
        for ax in axes:
            if xs:
                ax.plot(xs, ys, color=c, lw=1.2, label=_label(data, trial))
            if val:
                label = None if xs else _label(data, trial)
                ax.plot(*zip(*val), color=c, lw=1.2, ls="--", marker="o", ms=3, label=label)
    names = " and ".join(x for x in (tl, vl) if x) or "loss"
    for ax, scale in zip(axes, ("linear", "log")):
        ax.set_yscale(scale)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" + (" (log scale)" if scale == "log" else ""))
        ax.set_title(f"{names}, {scale} (solid: train{' per batch' if _has_batches(data) else ''}, dashed: held-out)")
        ax.grid(alpha=0.3, which="both")
    if data.curves:
        axes[0].legend(fontsize=7)
    return ("loss_curves", "Loss curves of the top runs", fig)


def _has_batches(data: SweepData) -> bool:
    return any(line.get("losses") for c in data.curves.values() for line in c)


def accuracy_curves(data: SweepData) -> Plot:
    """Train (solid) and held-out (dashed) accuracy per epoch of the top runs: the gap is overfitting."""
    from matplotlib import colormaps

    roles = _roles(data)
    fig = _figure()
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    n = max(1, len(data.curves))
    for i, (trial, curve) in enumerate(data.curves.items()):
        c = cmap(i / n)
        labelled = False
        for key, ls in ((roles["train_acc"], "-"), (roles["val_acc"], "--")):
            pts = _points(curve, key)
            if pts:
                ax.plot(*zip(*pts), color=c, ls=ls, marker="o", ms=3, label=None if labelled else _label(data, trial))
                labelled = True
    names = " vs ".join(x for x in (roles["train_acc"], roles["val_acc"]) if x)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{names} of the top runs (solid: train, dashed: held-out)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return ("accuracy_curves", "Train vs validation accuracy", fig)


def metric_curves(data: SweepData) -> Plot:
    """The sweep's own metric per epoch of the top runs (drawn when no loss or accuracy plot shows it)."""
    from matplotlib import colormaps

    fig = _figure()
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    n = max(1, len(data.curves))
    for i, (trial, curve) in enumerate(data.curves.items()):
        pts = _points(curve, data.metric)
        if pts:
            ax.plot(*zip(*pts), color=cmap(i / n), marker="o", ms=3, label=_label(data, trial))
    ax.set_xlabel("epoch")
    ax.set_ylabel(data.metric)
    ax.set_title(f"{data.metric} per epoch of the top runs ({data.goal})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return ("metric_curves", f"{data.metric} per epoch", fig)


def update_ratio(data: SweepData) -> Plot:
    """Update-to-weight ratio per epoch of the top runs, against the healthy ~1e-3."""
    from matplotlib import colormaps

    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    ax.axhspan(1e-4, 1e-2, color="green", alpha=0.08, lw=0, label="1e-4 .. 1e-2")
    ax.axhline(1e-3, color="green", lw=1)
    cmap = colormaps["viridis"]
    n = max(1, len(data.curves))
    for i, (trial, curve) in enumerate(data.curves.items()):
        pts = [
            (line["epoch"], line["update_ratio"])
            for line in curve
            if isinstance(line.get("update_ratio"), (int, float)) and line["update_ratio"] > 0
        ]
        if pts:
            ax.plot(*zip(*pts), color=cmap(i / n), marker="o", ms=3, label=_label(data, trial))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("update / weight (log scale)")
    ax.set_title("update-to-weight ratio (healthy: about 1e-3)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ("update_ratio", "Update-to-weight ratio", fig)


def ranges_per_stage(data: SweepData, names: list[str]) -> Plot:
    """Each numeric parameter's range per stage (how the search zoomed in or moved), best value dotted."""
    fig = _figure(7.5, 1.0 + 1.3 * max(1, len(names)))
    axes = fig.subplots(max(1, len(names)), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        dims = _dims(data, name)
        for k, dim in dims:
            if isinstance(dim, sp.Numeric):
                ax.plot([dim.low, dim.high], [k, k], color=_color(k), lw=7, solid_capstyle="butt")
        for s in data.stages:
            top = (s.get("ranking") or [{}])[0].get("params", {})
            best = top.get(cond.public(name)) if cond.active(name, top) else None
            if isinstance(best, (int, float)):
                ax.plot([best], [s["stage"]], "o", color="black", ms=5)
        if dims and _is_log(dims[0][1]):
            ax.set_xscale("log")
        # the name above its panel, not as a rotated y label: a branch's `lr[optimizer=sgd]` is
        # longer than a panel is high, and neighbouring labels overlapped
        ax.set_title(name, loc="left", fontsize=9)
        ax.set_yticks([k for k, _ in dims], [f"stage {k}" for k, _ in dims], fontsize=8)
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x", which="both")
    fig.suptitle("range of each parameter per stage (dot: the stage's best value)", fontsize=10)
    return ("ranges", "Ranges per stage", fig)


def parallel_coordinates(data: SweepData, names: list[str]) -> Plot:
    """Every finished run as a line through its parameter values and its metric, coloured by the
    metric (the best drawn last, on top). Each axis spans the values seen, on the parameter's own
    scale (log where its range is log); a categorical's values are spread evenly along its axis."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    fin = _finished(data)
    m = data.metric
    dims = {n: _dims(data, n)[0][1] for n in names if _dims(data, n)}
    axes_names = [n for n in names if f"p.{n}" in fin] + [m]
    cols: list[list[float]] = []
    ticks: list[tuple[list[float], list[str]]] = []
    for name in axes_names:
        if name == m:
            vals = fin[m].astype(float).tolist()
            log = False
        else:
            vals, log = fin[f"p.{name}"].tolist(), _is_log(dims[name]) if name in dims else False
        if name != m and isinstance(dims.get(name), sp.Categorical):
            cats = sorted({str(v) for v in vals}, key=_natural)
            pos = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
            cols.append([pos[str(v)] for v in vals])
            ticks.append((list(pos.values()), list(pos)))
            continue
        x = [math.log10(float(v)) if log else float(v) for v in vals]
        lo, hi = min(x), max(x)
        span = (hi - lo) or 1.0
        cols.append([(v - lo) / span for v in x])
        tv = [lo, (lo + hi) / 2, hi] if hi > lo else [lo]
        ticks.append(([(t - lo) / span for t in tv], [sp.fmt(10**t if log else t) for t in tv]))
    fig = _figure(max(6.5, 1.6 * len(axes_names)), 4.6)
    ax = fig.add_subplot()
    values = fin[m].astype(float).tolist()
    norm = Normalize(min(values), max(values))
    cmap = colormaps["viridis" if data.goal == "maximize" else "viridis_r"]
    order = sorted(range(len(values)), key=lambda i: values[i] if data.goal == "maximize" else -values[i])
    xs = list(range(len(axes_names)))
    for i in order:  # worst first: the best lines end on top
        ax.plot(xs, [c[i] for c in cols], color=cmap(norm(values[i])), lw=1.3, alpha=0.8)
    for at, (where, labels) in zip(xs, ticks):
        ax.axvline(at, color="0.3", lw=1)
        for y, lab in zip(where, labels):
            ax.annotate(lab, (at, y), xytext=(3, 0), textcoords="offset points", fontsize=7, va="center")
    ax.set_xticks(xs, [f"{n}\n(log)" if n in dims and _is_log(dims[n]) else n for n in axes_names], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes_names) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=m)
    ax.set_title(f"parallel coordinates: {len(values)} finished run(s), coloured by {m}")
    return ("parallel_coordinates", "Parallel coordinates", fig)


def importance_plot(imp: dict[str, Any]) -> Plot:
    """Bars of each parameter's importance: the whole sweep, and each stage beside it."""
    fig = _figure(7.5, 3.8)
    ax = fig.add_subplot()
    scopes = [("whole sweep", imp["sweep"])] + [(f"stage {s['stage']}", s["importance"]) for s in imp["stages"]]
    scopes = [(label, v) for label, v in scopes if v]
    params = list(imp["sweep"]) or list(dict.fromkeys(k for _, v in scopes for k in v))
    width = 0.8 / max(1, len(scopes))
    for j, (label, values) in enumerate(scopes):
        ys = [i + j * width for i in range(len(params))]
        color = "0.25" if label == "whole sweep" else _color(int(label.split()[-1]))
        ax.barh(ys, [values.get(p, 0.0) for p in params], height=width, color=color, label=label)
    ax.set_yticks([i + 0.4 - width / 2 for i in range(len(params))], params)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("importance (sums to 1 per scope)")
    ax.set_title("parameter importance (PED-ANOVA)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    return ("importance", "Parameter importance", fig)


def all_plots(data: SweepData, imp: dict[str, Any] | None = None) -> list[Plot]:
    """Every plot the data allows, in the order the HTML shows them; a plot with nothing to draw
    is left out. `imp`: the importance already computed (`importance.importance`)."""
    require_matplotlib()
    num, cat = _searched(data)
    fin = _finished(data)
    bad = len(data.runs) > 0 and bool(data.runs["status"].isin(["diverged", "failed", "pruned"]).any())
    # a parameter plot needs a finished run (or a pruned one, or a failed one: a cross along the bottom)
    plots = [metric_vs_param(data, n) for n in num] if len(fin) or bad else []
    plots += [metric_by_value(data, n) for n in cat] if len(fin) else []
    if len(fin) >= 2 and num + cat:
        plots.append(parallel_coordinates(data, num + cat))
    if imp is not None and (imp["sweep"] or any(s["importance"] for s in imp["stages"])):
        plots.append(importance_plot(imp))
    if data.curves:
        roles = _roles(data)
        if roles["train_loss"] or roles["val_loss"] or _has_batches(data):
            plots.append(loss_curves(data))
        if roles["train_acc"] or roles["val_acc"]:
            plots.append(accuracy_curves(data))
        if data.metric not in roles.values():
            plots.append(metric_curves(data))
        if any(_is_num(line.get("update_ratio")) for c in data.curves.values() for line in c):
            plots.append(update_ratio(data))
    if num:
        plots.append(ranges_per_stage(data, num))
    return plots


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_plots(data: SweepData, outdir: str | Path, imp: dict[str, Any] | None = None) -> list[Path]:
    """Save every plot as OUTDIR/<name>.png; returns the paths."""
    plots = all_plots(data, imp)
    out = Path(outdir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HpsearchError(f"cannot create {out}: {e.strerror}") from None
    paths = []
    for stem, _, fig in plots:
        p = out / f"{_safe(stem)}.png"
        p.write_bytes(png_bytes(fig))
        paths.append(p)
    return paths


def _safe(stem: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
