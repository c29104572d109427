"""One self-contained HTML report: plots embedded as base64 PNGs, inline CSS, no scripts, no links
out, so it opens offline and can be mailed or archived as a single file."""

from __future__ import annotations

import base64
import html
import math
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from hpsearch.errors import HpsearchError
from hpsearch.report import rungs
from hpsearch.report.diagnostics import CHECKS, Finding
from hpsearch.report.importance import importance
from hpsearch.report.picture import headline
from hpsearch.report.plots import all_plots, png_bytes
from hpsearch.report.recipe import ensemble_html, preflight_html
from hpsearch.report.repeats import config_columns, configs_frame, has_repeats
from hpsearch.report.status import picture_of
from hpsearch.report.sweepdata import SweepData
from hpsearch.report.tables import format_value, ranking_columns
from hpsearch.search.space import fmt, from_dict
from hpsearch.store.atomic import atomic_write_bytes

SHOWN = 20  # ranking rows shown open; the rest up to MAX_ROWS sit in a <details>
MAX_ROWS = 500
LEFT = ("trial", "status", "checkpoint")
WIDE = ("loss_curves", "ranges", "parallel_coordinates")  # plots drawn across both columns

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
     color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666} table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f4f4f4} td.l,th.l{text-align:left}
tr.finished td{} tr.diverged td,tr.failed td{color:#a33} tr.best td{background:#fff7d6;font-weight:600}
ul.findings li{margin:6px 0} .kind{display:inline-block;min-width:120px;font-weight:600}
.advice{color:#2a6a2a} .flag{color:#b00;font-weight:600}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:12px} .plots .wide{grid-column:1/-1}
figure{margin:0} figcaption{color:#555;font-size:13px} img{max-width:100%;border:1px solid #eee}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _rows(data: SweepData, df: pd.DataFrame, cols: list[str], first: bool) -> str:
    rows = []
    for i, (_, r) in enumerate(df.iterrows()):
        cls = f"{r['status']}{' best' if first and i == 0 and r['status'] == 'finished' else ''}"
        cells = []
        for c in cols:
            v = r.get(c)
            # a parameter a run did not take (another branch's) is NaN in the frame: "-", as the text table
            number = isinstance(v, float) and not math.isnan(v)
            text = fmt(v) if c.startswith("p.") and number else format_value(v)
            cells.append(f"<td class='{'l' if c in LEFT else ''}'>{_e(text)}</td>")
        rows.append(f"<tr class='{cls}'>{''.join(cells)}</tr>")
    return "".join(rows)


def _no_ensembles(sweep: Any) -> str | None:
    """Why `hpsearch ensemble` refuses this sweep's trainable, when its kind alone says so (a python
    module is not imported for the report: whether it defines `predict` is `ensemble`'s to say)."""
    kind = sweep.trainable_kind
    if kind == "command":
        return "a command program's checkpoints are its own files, which hpsearch ensemble cannot load"
    if kind == "builtin" and sweep.trainable.get("builtin") != "classifier":
        return f"the built-in {sweep.trainable.get('builtin')} trains no model to ensemble"
    return None


def ranking_table(data: SweepData) -> str:
    """The best SHOWN runs, the rest (up to MAX_ROWS) folded away in a <details>."""
    df = data.runs.head(MAX_ROWS)
    if df.empty:
        return "<p id='ranking-empty'>No runs yet: the sweep has not planned any trial.</p>"
    cols = ranking_columns(df, data.metric, data.runs)
    head = (
        "<thead><tr>" + "".join(f"<th class='{'l' if c in LEFT else ''}'>{_e(c)}</th>" for c in cols) + "</tr></thead>"
    )
    html_ = f"<table id='ranking'>{head}<tbody>{_rows(data, df.head(SHOWN), cols, True)}</tbody></table>"
    if len(df) > SHOWN:
        html_ += (
            f"<details><summary>{len(df) - SHOWN} more run(s)</summary><table id='ranking-more'>{head}"
            f"<tbody>{_rows(data, df.iloc[SHOWN:], cols, False)}</tbody></table></details>"
        )
    if len(data.runs) > MAX_ROWS:
        html_ += (
            f"<p class='sub'>{len(data.runs) - MAX_ROWS} more run(s) not shown; "
            f"hpsearch report {_e(data.root)} lists them all.</p>"
        )
    return html_


def configs_table(data: SweepData) -> str:
    """With `repeats:`, the configurations ranked by the mean of their repeats (the text report's
    "Configurations" table; empty without repeats)."""
    st = data.store.state
    if not has_repeats(st):
        return ""
    cf = configs_frame(st, data.sweep.metric, None).head(MAX_ROWS)
    if cf.empty:
        return ""
    cols = config_columns(cf, data.metric)
    head = "".join(f"<th class='{'l' if c in LEFT else ''}'>{_e(c)}</th>" for c in cols)
    rows = "".join(
        "<tr>"
        + "".join(f"<td class='{'l' if c in LEFT else ''}'>{_e(format_value(r.get(c)))}</td>" for c in cols)
        + "</tr>"
        for _, r in cf.iterrows()
    )
    return (
        f"<h3>Configurations (ranked by the mean of their repeats' best {_e(data.metric)})</h3>"
        f"<table id='configurations'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def enqueued_list(data: SweepData) -> str:
    """The configurations run from `enqueue:`, with the values that lay outside their ranges."""
    items = [
        f"<li>stage {s['stage']}: {_e(e['trial'])} ({_e(why)})</li>"
        for s in data.stages
        for e in s.get("enqueued") or ()
        if (why := "; ".join(e.get("outside") or ()) or "inside the ranges")
    ]
    return f"<h3>Enqueued configurations</h3><ul id='enqueued'>{''.join(items)}</ul>" if items else ""


def ranges_table(data: SweepData) -> str:
    if not data.stages:
        return "<p>No stage planned yet.</p>"
    names = [n for n, d in data.stages[0]["ranges"].items() if d["kind"] != "constant"]
    head = "<th class='l'>parameter</th>" + "".join(f"<th class='l'>stage {s['stage']}</th>" for s in data.stages)
    rows = []
    for n in names:
        cells = "".join(
            f"<td class='l'>{_e(from_dict(s['ranges'][n]).describe()) if n in s['ranges'] else '-'}</td>"
            for s in data.stages
        )
        rows.append(f"<tr><td class='l'>{_e(n)}</td>{cells}</tr>")
    flags = [
        f"<li class='flag'>stage {s['stage']}: {_e(f['message'])}</li>"
        for s in data.stages
        for f in s.get("border_flags") or []
    ]
    flag_html = (
        f"<ul id='border-flags'>{''.join(flags)}</ul>"
        if flags
        else "<p id='border-flags'>No best value lies on the border of its range.</p>"
    )
    notes = [f"<li>{_e(note)}</li>" for s in data.stages for note in s.get("notes") or ()]
    notes_html = f"<h3>How the ranges were planned</h3><ul id='plan-notes'>{''.join(notes)}</ul>" if notes else ""
    return (
        f"<table id='ranges'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<h3>Border flags</h3>{flag_html}{notes_html}"
    )


def findings_list(findings: list[Finding], checked: list[tuple[str, str | None]] | None = None) -> str:
    done = [c for c, why in checked if why is None] if checked is not None else CHECKS.split(", ")
    skipped = [f"{c} ({why})" for c, why in checked or [] if why is not None]
    tail = f"<p id='not-checked' class='sub'>Not checked: {_e('; '.join(skipped))}.</p>" if skipped else ""
    if not findings:
        return f"<p id='diagnostics'>Nothing stands out (checked: {_e(', '.join(done) or 'nothing')}).</p>{tail}"
    items = "".join(
        f"<li><span class='kind'>{_e(f.kind)}</span> <b>{_e(f.scope)}</b>: {_e(f.message)}"
        f"<br><span class='advice'>&rarr; {_e(f.advice)}</span></li>"
        for f in findings
    )
    return f"<ul id='diagnostics' class='findings'>{items}</ul>{tail}"


def importance_table(imp: dict[str, Any]) -> str:
    """Each parameter's importance, for the whole sweep and per stage (a note where none was computed)."""
    scopes = [("whole sweep", imp["sweep"], imp["note"])] + [
        (f"stage {s['stage']}", s["importance"], s["note"]) for s in imp["stages"]
    ]
    params = list(dict.fromkeys(k for _, v, _ in scopes for k in v))
    if not imp["available"] or not params:
        return f"<p id='importance'>{_e(imp['note'] or 'No importance computed.')}</p>"
    head = "<th class='l'>parameter</th>" + "".join(f"<th>{_e(label)}</th>" for label, _, _ in scopes)
    rows = "".join(
        f"<tr><td class='l'>{_e(p)}</td>"
        + "".join(f"<td>{v[p]:.3f}</td>" if p in v else "<td>-</td>" for _, v, _ in scopes)
        + "</tr>"
        for p in params
    )
    notes = "".join(f"<li>{_e(label)}: {_e(note)}</li>" for label, _, note in scopes if note)
    return (
        f"<p class='sub'>{_e(imp['method'])}; each column sums to 1.</p>"
        f"<table id='importance'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        + (f"<ul class='sub'>{notes}</ul>" if notes else "")
    )


def early_stopping_section(data: SweepData) -> str:
    """Each stage's early-stopping rule, rungs and epochs saved ("" when no stage stops early)."""
    rows = rungs.summary(data.store.state, data.sweep)
    if not rows:
        return ""
    body = []
    for s in rows:
        for r in s["per_rung"]:
            best = "-" if r["best"] is None else f"{r['best']:.4f}"
            med = "-" if r["median"] is None else f"{r['median']:.4f}"
            body.append(
                f"<tr><td>{s['stage']}</td><td>{_e(s['describe'])}</td><td>{r['epoch']}</td><td>{r['reached']}</td>"
                f"<td>{r['continued']}</td><td>{r['stopped']}</td><td>{best}</td><td>{med}</td></tr>"
            )
    saved = "; ".join(
        f"stage {s['stage']}: {s['pruned']} pruned, {s['epochs_saved']} of {s['epochs_planned']} epochs saved"
        for s in rows
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("stage", "rule", "rung epoch", "reached", "continued", "stopped", f"best {data.metric}", "median")
    )
    return (
        f"<h2>Early stopping</h2><p>{_e(saved)}</p>"
        f"<table id='early-stopping'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def render_html(data: SweepData) -> str:
    pic = picture_of(data.store, data.sweep)
    imp = importance(data)
    plots = all_plots(data, imp) if not data.runs.empty else []
    figs = []
    for stem, title, fig in plots:
        b64 = base64.b64encode(png_bytes(fig)).decode()
        wide = " class='wide'" if stem in WIDE else ""
        figs.append(
            f"<figure id='plot-{_e(stem)}'{wide}><img alt='{_e(title)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{_e(title)}</figcaption></figure>"
        )
    status = headline(pic) if pic.stage else "not planned yet"
    desc = getattr(data.sweep, "description", "") or ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>hpsearch report: {_e(data.sweep.name)}</title>
<style>{CSS}</style></head>
<body>
<h1>{_e(data.sweep.name)}</h1>
<p class="sub">{_e(desc)}</p>
<p>{_e(status)}; ranked by <b>{_e(data.metric)}</b> ({_e(data.sweep.metric.goal)}).
Directory <code>{_e(data.root)}</code>, report written {_e(time.strftime("%Y-%m-%d %H:%M:%S"))}.</p>
<h2>Preflight</h2>
{preflight_html(data.root, data.sweep.name)}
<h2>Diagnostics</h2>
{findings_list(data.findings(), data.checks())}
<h2>Ranking</h2>
{ranking_table(data)}
{configs_table(data)}
<h2>Plots</h2>
<div class="plots">{"".join(figs) or "<p>No finished run to plot yet.</p>"}</div>
<h2>Parameter importance</h2>
{importance_table(imp)}
<h2>Ranges per stage</h2>
{ranges_table(data)}
{enqueued_list(data)}
{early_stopping_section(data)}
<h2>Ensembles</h2>
{ensemble_html(data.root, _no_ensembles(data.sweep))}
</body></html>
"""


def write_html(data: SweepData, path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise HpsearchError(f"--html {p}: is a directory; give a file name such as report.html")
    text = render_html(data)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HpsearchError(f"--html {p}: cannot create {p.parent}: {e.strerror}") from None
    atomic_write_bytes(p, text.encode())
    # the temp file was created 0600; a report is meant to be shared, so honour the umask instead
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(p, 0o666 & ~mask)
    return p
