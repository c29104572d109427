"""The recipe's files in the HTML report: `hpsearch check`'s preflight.json (verdicts and the loss
against lr of the range test) and `hpsearch ensemble`'s ensemble.json (accuracy against the
number of members). A section says what to run when its file is absent; plots are
(stem, title, Figure) as in `report.plots`, embedded as base64 PNGs.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from hpsearch.report.plots import Plot, _figure, png_bytes
from hpsearch.store.sweepdir import Layout, read_json

MARK = {"pass": "&#10003; pass", "warn": "! warn", "fail": "&#10007; fail", "skip": "&ndash; skip"}
CSS = ".verdict-fail{color:#a33;font-weight:600} .verdict-warn{color:#a60} .verdict-pass{color:#2a6a2a}"


def preflight_of(root: str) -> dict[str, Any] | None:
    """DIR/preflight.json, or None when `hpsearch check` never wrote one there."""
    doc = read_json(Layout(root).preflight)
    return doc if isinstance(doc, dict) else None


def ensemble_of(root: str) -> dict[str, Any] | None:
    """DIR/ensemble.json, or None when `hpsearch ensemble` never wrote one there."""
    doc = read_json(Layout(root).ensemble)
    return doc if isinstance(doc, dict) else None


def lr_range_plot(doc: dict[str, Any]) -> Plot | None:
    """Loss against lr (log scale) of the range test, smoothed, with the suggested range shaded."""
    v = next((v for v in doc.get("verdicts", []) if v.get("check") == "lr_range" and v["data"].get("lrs")), None)
    if v is None:
        return None
    d = v["data"]
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(d["lrs"], d["losses"], color="#bbb", lw=1, label="loss (per batch)")
    ax.plot(d["lrs"], d["smoothed"], color="#1f77b4", lw=2, label="smoothed")
    lo, hi = d["suggested"]
    ax.axvspan(lo, hi, color="#2ca02c", alpha=0.15, label=f"suggested stage-1 range [{lo:.2g}, {hi:.2g}]")
    if d.get("diverged_lr"):
        ax.axvline(d["diverged_lr"], color="#d62728", ls="--", lw=1, label=f"diverges ({d['diverged_lr']:.2g})")
    ax.set_xscale("log")
    top = max(d["smoothed"][0] * 1.5, min(d["smoothed"]) * 2)
    ax.set_ylim(0, top)
    ax.set_xlabel("learning rate (raised exponentially, one batch each)")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    return ("preflight_lr_range", "Learning-rate range test: loss against lr", fig)


def ensemble_plot(doc: dict[str, Any]) -> Plot | None:
    """Validation accuracy of the ensembles against their number of members, each curve of ensemble.json."""
    curves = [c for c in doc.get("curves", []) if c.get("points")]
    if not curves:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, c in enumerate(curves):  # line styles apart: equal curves (often the last two) stay visible
        ks = [p["k"] for p in c["points"]]
        style = {"ls": ("-", "--", ":")[i % 3], "marker": "osv"[i % 3], "ms": 7 - 2 * (i % 3)}
        ax.plot(ks, [p["accuracy"] for p in c["points"]], label=c["label"], **style)
    if doc.get("best_single") is not None:
        ax.axhline(doc["best_single"], color="#888", ls=":", lw=1, label="best single run")
    ax.set_xlabel("members in the ensemble (K)")
    ax.set_ylabel(f"validation accuracy ({doc.get('split', 'val')})")
    ax.legend(fontsize=8)
    return ("ensemble", "Ensembles: accuracy against members", fig)


def _e(x: object) -> str:
    return html.escape(str(x))


def _figure_tag(plot: Plot | None) -> str:
    if plot is None:
        return ""
    stem, title, fig = plot
    b64 = base64.b64encode(png_bytes(fig)).decode()
    return (
        f"<figure id='plot-{_e(stem)}'><img alt='{_e(title)}' src='data:image/png;base64,{b64}'>"
        f"<figcaption>{_e(title)}</figcaption></figure>"
    )


def preflight_html(root: str, sweep_name: str | None = None) -> str:
    """The Preflight section's body: one row per check, then the range test's plot; a caption when
    the checks were of another sweep than `sweep_name` (`hpsearch check` of another file there)."""
    doc = preflight_of(root)
    if doc is None:
        return (
            "<p id='preflight'>No sanity checks recorded: run "
            f"<code>hpsearch check SWEEP.yaml --dir {_e(root)}</code> before the sweep.</p>"
        )
    checked = doc.get("sweep")
    other = (
        f"<p class='warn'>These are the checks of sweep <b>{_e(checked)}</b>, not of this sweep "
        f"({_e(sweep_name)}): run <code>hpsearch check SWEEP.yaml --dir {_e(root)}</code> to check this one.</p>"
        if sweep_name is not None and checked is not None and checked != sweep_name
        else ""
    )
    rows = "".join(
        f"<tr><td class='l'>{_e(v['check'])}</td>"
        f"<td class='l verdict-{_e(v['status'])}'>{MARK.get(v['status'], '')}</td>"
        f"<td class='l' style='white-space:normal'>{_e(v['message'])}</td></tr>"
        for v in doc.get("verdicts", [])
    )
    table = f"<table id='preflight'><tbody>{rows}</tbody></table>"
    return f"<style>{CSS}</style>{other}{table}{_figure_tag(lr_range_plot(doc))}"


def ensemble_html(root: str, unsupported: str | None = None) -> str:
    """The Ensembles section's body: each curve's accuracy per K, then the plot. `unsupported`: why
    the sweep's trainable cannot be ensembled (a command program, noop), said instead of the hint."""
    doc = ensemble_of(root)
    if doc is None and unsupported:
        return f"<p id='ensembles'>No ensembles: {_e(unsupported)}.</p>"
    if doc is None:
        return f"<p id='ensembles'>No ensembles measured: run <code>hpsearch ensemble {_e(root)}</code>.</p>"
    items = []
    for c in doc.get("curves", []):
        pts = ", ".join(f"K={p['k']}: {p['accuracy']:.4f}" for p in c.get("points", []))
        items.append(f"<li><b>{_e(c['label'])}</b>: {_e(pts) or _e(c.get('note', ''))}</li>")
    return f"<ul id='ensembles'>{''.join(items)}</ul>{_figure_tag(ensemble_plot(doc))}"
