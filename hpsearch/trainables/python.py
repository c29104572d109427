"""A user's `package.module:function`, imported from the sweep file's folder or the working directory."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

from ..errors import ConfigError


def load(spec: str, source_dir: str) -> Callable[..., Any]:
    """Import `module:function`; a missing module or function is a ConfigError naming what to fix."""
    module_name, _, attr = spec.partition(":")
    for p in (source_dir, "."):
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError([f"trainable.python: cannot import {module_name!r} ({e}); the sweep file's "
                           f"folder ({source_dir}) and the working directory are on the path"]) from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError([f"trainable.python: module {module_name!r} has no {attr!r}"])
    if not callable(obj):
        raise ConfigError([f"trainable.python: {spec!r} is not callable"])
    return obj
