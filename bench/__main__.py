"""`python -m bench [SECTION ...] [--quick]`: run benchmark sections, print ratios, write JSON to bench/results/."""

from __future__ import annotations

import argparse
import importlib
import time

from .common import write_results

SECTIONS = ("overhead", "reading", "population", "quality")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument(
        "sections",
        nargs="*",
        choices=[*SECTIONS, []],
        metavar="SECTION",
        help=f"any of {', '.join(SECTIONS)} (default: all)",
    )
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a few minutes)")
    q = ap.add_argument_group("quality")
    q.add_argument("--seeds", type=int, help="seeds per cell of the real tasks (default 10)")
    q.add_argument("--synthetic-seeds", type=int, help="seeds per cell of the synthetic family (default 50)")
    q.add_argument("--tasks", help="comma-separated: synthetic, noisy_digits_mlp, digits_convnet, ...")
    q.add_argument("--budgets", help="comma-separated: small, medium")
    q.add_argument("--cases", help="comma-separated: in_range, best_below, best_above")
    q.add_argument("--methods", help="comma-separated methods besides hpsearch's default (default: all)")
    args = ap.parse_args()
    quality = {
        "seeds": args.seeds,
        "synthetic_seeds": args.synthetic_seeds,
        **{k: getattr(args, k).split(",") if getattr(args, k) else None for k in ("tasks", "budgets", "cases")},
        "only": args.methods.split(",") if args.methods else None,
    }
    chosen = args.sections or list(SECTIONS)
    results = []
    t0 = time.perf_counter()
    for name in chosen:
        start = time.perf_counter()
        extra = quality if name == "quality" else {}
        section = importlib.import_module(f"bench.{name}").run(quick=args.quick, **extra)
        section.figures["section_seconds"] = round(time.perf_counter() - start, 1)
        results.append(section)
    path = write_results(results, args.quick)
    print(f"\nGoals ({time.perf_counter() - t0:.0f} s in all):")
    for s in results:
        for key, g in s.goals.items():
            print(f"  {s.name}.{key}: {g['value']:.3g} (target {g['target']}) {'MET' if g['met'] else 'MISSED'}")
        for what, why in s.skipped.items():
            print(f"  {s.name}.{what}: skipped ({why})")
    print(f"Results written to {path}")


if __name__ == "__main__":
    main()
