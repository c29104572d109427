"""The sweep directory: every file the master, the workers and the reports share.

Owns the path layout and checkpoint names (`sweepdir.Layout`), the `Store` handle, the journal
(`journal`) and its fold (`fold`), the snapshot cache of the fold (`snapshot`), atomic writes
(`atomic`), locks (`flock`), worker liveness from heartbeats (`liveness`), checkpoint retention
(`retention`), lazily opened logs (`lazylog`) and reading the sweep file (`sweepfile`). The file
contract is in docs/ARCHITECTURE.md. May import `hpsearch.search`, `hpsearch.errors` and
`hpsearch.gcpause`; never `trainables`, `run`, `report` or `cli`.
"""
