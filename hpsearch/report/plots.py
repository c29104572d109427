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


def metric_vs_param(data: SweepData, name: str) -> Plot:
    """Metric against one numeric parameter: stages coloured, ranges as bands, best and borders marked."""
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


def _batch_losses(curve: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Per-batch loss history over fractional epochs (the epoch's train_loss where none was kept)."""
    xs, ys = [], []
    for line in curve:
        ep = int(line.get("epoch", 0))
        hist = [v for v in line.get("losses") or [] if isinstance(v, (int, float)) and math.isfinite(v)]
        if hist:
            xs += [ep - 1 + (i + 0.5) / len(hist) for i in range(len(hist))]
            ys += hist
        elif isinstance(line.get("train_loss"), (int, float)):
            xs.append(ep)
            ys.append(line["train_loss"])
    return xs, ys


def _label(data: SweepData, trial: str) -> str:
    row = data.runs[data.runs["trial"] == trial]
    v = row[data.metric].iloc[0] if len(row) else None
    return f"{trial} ({data.metric} {v:.3f})" if isinstance(v, float) and not math.isnan(v) else trial


def loss_curves(data: SweepData) -> Plot:
    """Training loss (per batch) and validation loss (per epoch) of the top runs, linear and log."""
    from matplotlib import colormaps

    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2)
    cmap = colormaps["viridis"]
    n = max(1, len(data.curves))
    for i, (trial, curve) in enumerate(data.curves.items()):
        c = cmap(i / n)
        xs, ys = _batch_losses(curve)
        vx = [line["epoch"] for line in curve if isinstance(line.get("val_loss"), (int, float))]
        vy = [line["val_loss"] for line in curve if isinstance(line.get("val_loss"), (int, float))]
        for ax in axes:
            ax.plot(xs, ys, color=c, lw=1.2, label=_label(data, trial))
            if vx:
                ax.plot(vx, vy, color=c, lw=1.2, ls="--", marker="o", ms=3)
    for ax, scale in zip(axes, ("linear", "log")):
        ax.set_yscale(scale)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" + (" (log scale)" if scale == "log" else ""))
        ax.set_title(f"loss, {scale} scale (solid: train per batch, dashed: val)")
        ax.grid(alpha=0.3, which="both")
    if data.curves:
        axes[0].legend(fontsize=7)
    return ("loss_curves", "Loss curves of the top runs", fig)


def accuracy_curves(data: SweepData) -> Plot:
    """Train (solid) and validation (dashed) accuracy per epoch of the top runs: the gap is overfitting."""
    from matplotlib import colormaps

    fig = _figure()
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    n = max(1, len(data.curves))
    for i, (trial, curve) in enumerate(data.curves.items()):
        c = cmap(i / n)
        for key, ls, lab in (("train_acc", "-", _label(data, trial)), ("val_acc", "--", None)):
            pts = [(line["epoch"], line[key]) for line in curve if isinstance(line.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), color=c, ls=ls, marker="o", ms=3, label=lab)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("train (solid) vs validation (dashed) accuracy of the top runs")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return ("accuracy_curves", "Train vs validation accuracy", fig)


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
        ax.set_ylabel(name)
        ax.set_yticks([k for k, _ in dims], [f"stage {k}" for k, _ in dims], fontsize=8)
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x", which="both")
    axes[0].set_title("range of each parameter per stage (dot: the stage's best value)")
    return ("ranges", "Ranges per stage", fig)


def all_plots(data: SweepData) -> list[Plot]:
    """Every plot the data allows, in the order the HTML shows them."""
    require_matplotlib()
    num, cat = _searched(data)
    plots = [metric_vs_param(data, n) for n in num] + [metric_by_value(data, n) for n in cat]
    if data.curves:
        plots.append(loss_curves(data))
        if any("train_acc" in line or "val_acc" in line for c in data.curves.values() for line in c):
            plots.append(accuracy_curves(data))
        if any("update_ratio" in line for c in data.curves.values() for line in c):
            plots.append(update_ratio(data))
    if num:
        plots.append(ranges_per_stage(data, num))
    return plots


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_plots(data: SweepData, outdir: str | Path) -> list[Path]:
    """Save every plot as OUTDIR/<name>.png; returns the paths."""
    plots = all_plots(data)
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
