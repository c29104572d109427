"""hpsearch benchmarks: `python -m bench [overhead|reading|population|quality] [--quick]` (see README "Performance")."""
