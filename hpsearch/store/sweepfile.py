"""Reading a sweep file: YAML text from disk, validated into a `Sweep` by `search.config.parse`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hpsearch.errors import ConfigError
from hpsearch.search import config
from hpsearch.search.config import Sweep


def load(path: str | Path, source_dir: str | None = None) -> tuple[Sweep, dict[str, Any]]:
    """Read and validate a sweep file. Returns the Sweep and the raw mapping (kept verbatim)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(["no such file (sweep files usually live in sweeps/)"], str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"cannot read it: {e}"], str(path)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([f"not valid YAML: {where}{problem}"], str(path)) from None
    raw = raw if raw is not None else {}
    source_dir = source_dir or str(path.resolve().parent)
    return parse(raw, source_dir=source_dir, default_name=path.stem, source=str(path)), raw


def parse(raw: Any, source_dir: str = ".", default_name: str = "sweep", source: str = "sweep file") -> Sweep:
    """`search.config.parse`, with the data files the sweep names checked on disk (ConfigError)."""
    return config.parse(raw, source_dir, default_name, source, path_exists=os.path.exists)
