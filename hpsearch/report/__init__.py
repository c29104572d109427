"""Reading a sweep as data, and showing it: ranked tables, plots, the HTML page, status, watch.

One reading API: `frames` (ranked runs as a DataFrame, stage files, checkpoint names) and
`sweepdata` (the sweep read once for plots, HTML and diagnostics). On top of it: `tables` (text,
CSV, JSON), `plots`, `html`, `diagnostics` (advice from the curves), `picture`, `status` and
`watch` (the live view of running trials), `repeats` (configurations run several times). Reads,
never writes the journal. May import `store`, `search`, `errors` and `gcpause`; never
`trainables`, `run` or `cli`.
"""
