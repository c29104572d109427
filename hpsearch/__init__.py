"""hpsearch: staged coarse-to-fine random search for PyTorch, coordinated through a shared directory.

For notebooks: `hpsearch.open(DIR)` reads a sweep directory as data (runs as a pandas DataFrame,
per-trial histories, stages with their ranges and flags, the best configuration); see
`hpsearch.report.sweepdata.SweepData`. It is imported on first use, so `import hpsearch` (which
every worker does) stays free of pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpsearch.errors import ConfigError, HpsearchError, StopTrial
from hpsearch.trainables.trial import Trial

if TYPE_CHECKING:
    from hpsearch.report.sweepdata import SweepData

__version__ = "0.1.0"
__all__ = ["Trial", "StopTrial", "HpsearchError", "ConfigError", "SweepData", "__version__"]


def open(root: str, stage: int | None = None) -> SweepData:  # noqa: A001 (hpsearch.open, like io.open)
    """Read the sweep directory `root` as data (a `SweepData`), e.g. in a notebook::

        sw = hpsearch.open("runs/demo")
        sw.runs.head()            # ranked runs: rank, stage, trial, status, <metric>, parent, p.<param> ...
        sw.history(sw.best["trial"]).plot(x="epoch", y=["train_loss", "val_loss"])
        sw.ranges                 # stage, param, low, high, log, flag ...
        sw.best["params"]         # the best configuration

    `stage`: only that stage's runs and stage file. The sweep may be running: call it again for
    newer data. Raises StoreError when `root` is not a sweep directory.
    """
    from hpsearch.report.sweepdata import load

    return load(str(root), stage=stage)


def __getattr__(name: str) -> Any:
    if name == "SweepData":
        from hpsearch.report.sweepdata import SweepData

        return SweepData
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
