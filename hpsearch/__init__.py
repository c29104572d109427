"""hpsearch: staged coarse-to-fine random search for PyTorch, coordinated through a shared directory."""

from __future__ import annotations

from hpsearch.errors import ConfigError, HpsearchError, StopTrial
from hpsearch.trainables.trial import Trial

__version__ = "0.1.0"
__all__ = ["Trial", "StopTrial", "HpsearchError", "ConfigError", "__version__"]
