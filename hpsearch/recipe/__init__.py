"""The recipe's steps around a sweep: sanity checks before it (`check`), the next sweep and the best
configurations after it (`next`, `best`), ensembles of its checkpoints (`ensemble`).

Above report/ (the sweep read as data) and trainables/ (models and data), below cli.py; a sibling
of run/, which never needs it (docs/ARCHITECTURE.md)."""
