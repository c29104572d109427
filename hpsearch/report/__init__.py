"""Reading a sweep as data, and showing it: ranked tables, plots, the HTML page, status, watch.

One reading API: `frames` (ranked runs as a DataFrame, stage files, checkpoint names) and
`sweepdata` (the sweep read once, `SweepData`: what `hpsearch.open` returns to notebooks, and
what report, plots, HTML, diagnostics and the exporters read). On top of it: `tables` (text,
CSV, JSON), `plots`, `html`, `diagnostics` (advice from the curves), `importance` (PED-ANOVA
via Optuna), `tensorboard` and `mlflowexport` (the bridges), `picture`, `status` and `watch`
(the live view of running trials), `repeats` (configurations run several times). Reads, never
writes the journal. May import `store`, `search`, `errors` and `gcpause`; never
`trainables`, `run` or `cli`.
"""
