"""Reading a sweep file: YAML text from disk, validated into a `Sweep` by `search.config.parse`.

The file is read with PyYAML's safe loader plus YAML 1.2's float rule: `1e-4`, `3E-5` and `1e+3`
(exponent, no dot) are floats, as W&B users expect, where YAML 1.1 reads them as strings. A
quoted `"1e-4"` stays a string. The rule applies to the whole file (parameters, constants,
trainable settings), so no reader downstream has to repair strings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from hpsearch.errors import ConfigError
from hpsearch.search import config
from hpsearch.search.config import Sweep


class SweepLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (no tags that build Python objects) with YAML 1.2's float resolution.

    YAML 1.2 core schema, float: `[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    (yaml.org/spec/1.2.2, 10.3.2). YAML 1.1's rule already covers every form with a dot; this
    adds the forms without one. Plain integers still resolve as ints (the int rule runs first).
    """


# YAML 1.1 floats need a dot: these are the 1.2 forms it misses (an exponent, no dot)
_FLOAT_12 = re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$")
SweepLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789"))


def read_yaml(text: str) -> Any:
    """Parse YAML text the way every sweep file is read (see `SweepLoader`)."""
    return yaml.load(text, Loader=SweepLoader)  # noqa: S506 (SweepLoader is a SafeLoader)


def load(
    path: str | Path, source_dir: str | None = None, default_name: str | None = None
) -> tuple[Sweep, dict[str, Any]]:
    """Read and validate a sweep file. Returns the Sweep and the raw mapping (kept verbatim).
    A file without `name:` is named `default_name`, else after the file (its stem)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(["no such file (sweep files usually live in sweeps/)"], str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"cannot read it: {e}"], str(path)) from None
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([f"not valid YAML: {where}{problem}"], str(path)) from None
    raw = raw if raw is not None else {}
    source_dir = source_dir or str(path.resolve().parent)
    return parse(raw, source_dir=source_dir, default_name=default_name or path.stem, source=str(path)), raw


def parse(raw: Any, source_dir: str = ".", default_name: str = "sweep", source: str = "sweep file") -> Sweep:
    """`search.config.parse`, with the data files the sweep names checked on disk (ConfigError)."""
    return config.parse(raw, source_dir, default_name, source, path_exists=os.path.exists)
