"""Section reading: `hpsearch report` and the master's stage summary on a generated sweep of 100,000
finished trials, each in a fresh process (imports included), with its peak resident memory.
The summary runs as at the stage's end (journal only); the reports after it, from the snapshot."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Section, run_cli
from .gen_sweep import generate

# What the master does when a stage ends (master.finish_stage, minus writing files): fold the
# journal, rank, flag borders, plan the next stage's ranges and trials, and format the summary.
SUMMARY = """
import json, resource, sys, time
t0 = time.perf_counter()
from hpsearch.search import space as sp
from hpsearch.search import stages
from hpsearch.run.master import runs_of, stage_text
from hpsearch.store.sweepdir import Store
t1 = time.perf_counter()
store = Store(sys.argv[1]); sweep = store.load_sweep(); st = store.refresh()
t2 = time.perf_counter()
runs = runs_of(st, 1)
ranked = stages.rank(runs, sweep.metric)
space = sp.space_from_dict(st.stages[1]["space"])
flags = stages.border_flags(space, ranked[0].params, sweep.border, sweep.on_border)
plan = stages.plan_stage(sweep, 2, space, runs, ranked)  # as master.finish_stage: ranked once
t3 = time.perf_counter()
text = stage_text(store, sweep, 1, flags)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "fold_journal_s": t2 - t1, "rank_border_plan_s": t3 - t2,
                  "summary_text_s": t4 - t3, "total_s": t4 - t0, "planned_next": len(plan.trials),
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

STAGE_DONE = """
import sys
from hpsearch.store.sweepdir import Store
store = Store(sys.argv[1]); store.refresh()
store.journal.append([{"ev": "stage_done", "stage": 1}])
assert store.journal.write_snapshot()
"""


def run(quick: bool = False) -> Section:
    s = Section("reading")
    n = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as d:
        root = Path(d) / "sweep"
        t0 = time.perf_counter()
        generate(root, n)
        s.figures.update(trials=n, generate_s=time.perf_counter() - t0)
        s.say(f"generated {n:,} finished trials (journal + checkpoint files) in {s.figures['generate_s']:.1f} s")
        wall, rss, _ = run_cli(["report", str(root), "--top", "20"])
        s.figures["report_top20_no_snapshot"] = {"seconds": wall, "peak_rss_mib": rss}
        s.say(f"hpsearch report --top 20, journal only (no snapshot yet): {wall:.2f} s, peak {rss:.0f} MiB")
        proc = subprocess.run([sys.executable, "-c", SUMMARY, str(root)], capture_output=True, text=True, check=True)
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        s.figures["stage_summary"] = summary
        s.say(
            "master stage summary: "
            + ", ".join(f"{k} {v:.2f}" for k, v in summary.items() if k.endswith("_s"))
            + f"; peak {summary['maxrss_mib']:.0f} MiB"
        )
        # the stage ends as in master.finish_stage: stage_done, then the snapshot readers start from
        # (in a child: a parent holding the fold would inflate its children's ru_maxrss, copied at fork)
        subprocess.run([sys.executable, "-c", STAGE_DONE, str(root)], check=True)
        for label, args in (
            ("report_top20", ["report", str(root), "--top", "20"]),
            ("report_full_table", ["report", str(root)]),
            ("report_csv", ["report", str(root), "--format", "csv"]),
        ):
            wall, rss, out = run_cli(args)
            s.figures[label] = {"seconds": wall, "peak_rss_mib": rss, "output_lines": out.count("\n")}
            s.say(
                f"hpsearch {' '.join(args[:1] + args[2:])}: {wall:.2f} s, peak {rss:.0f} MiB "
                f"({out.count(chr(10)):,} lines, from the snapshot)"
            )
        worst = max(s.figures[k]["seconds"] for k in ("report_top20", "report_full_table", "report_csv"))
        mem = max(s.figures[k]["peak_rss_mib"] for k in ("report_top20", "report_full_table", "report_csv"))
        s.goal(f"report_seconds_{n}", worst, "< 2 s", worst < 2.0)
        s.goal(f"report_peak_mib_{n}", mem, "< 1024 MiB", mem < 1024)
        s.goal(f"stage_summary_seconds_{n}", summary["total_s"], "< 2 s", summary["total_s"] < 2.0)
    return s
