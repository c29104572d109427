"""Search decisions, pure: what to sample, how to rank, which ranges come next. No disk.

Owns the distributions and the unit-cube sampling (`space`), the `parameters:` block
(`paramspec`), the validated sweep config (`config`, with `builtins` and `launcher_options`),
and ranking, border flags, narrowing and stage planning (`stages`). Functions here take values
and return values: they never open, stat or write a file (the store layer reads the sweep file and
passes in what it found), so every decision can be tested and replayed in memory. May import only
`hpsearch.errors` and `hpsearch.gcpause`.
"""
