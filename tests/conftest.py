"""Hypothesis profiles: explore at random on a developer's machine, replay a fixed set in CI.

`HYPOTHESIS_PROFILE=ci` (set by .ci/run) derandomizes every property test, so CI runs the same
examples on every clean clone and a red run is reproducible; a developer's run keeps drawing new
examples, which is how the failing bounds in tests/test_range_moves.py were found. Hypothesis'
documented use of `derandomize` (https://hypothesis.readthedocs.io/en/latest/settings.html).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
