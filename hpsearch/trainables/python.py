"""A user's `package.module:function`, imported from the sweep file's folder or the working directory.

The function is called as `fn(params, trial)` with the trial's parameters (searched and fixed)
and its `hpsearch.Trial` handle; see hpsearch/trainables/trial.py and README "Your own training code".
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from collections.abc import Callable
from typing import Any

from hpsearch.errors import ConfigError


def load(spec: str, source_dir: str) -> Callable[..., Any]:
    """Import `module:function`; every way this can go wrong is a ConfigError naming what to fix."""
    module_name, _, attr = spec.partition(":")
    for p in (source_dir, "."):
        if p not in sys.path:
            sys.path.insert(0, p)
    where = f"the sweep file's folder ({source_dir}) and the working directory are on the path"
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ConfigError([f"trainable.python: no module {module_name!r}; {where}"]) from None
        raise ConfigError([f"trainable.python: importing {module_name!r} failed: {e}"]) from None
    except Exception as e:  # the user's module raised while importing: say where, in one line
        raise ConfigError([f"trainable.python: importing {module_name!r} failed: {_where(e)}"]) from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError([f"trainable.python: module {module_name!r} has no {attr!r}"])
    if not callable(obj):
        raise ConfigError([f"trainable.python: {spec!r} is not callable"])
    try:
        inspect.signature(obj).bind(None, None)
    except TypeError:
        raise ConfigError([f"trainable.python: {spec!r} must accept two arguments, fit(params, trial)"]) from None
    except ValueError:
        pass  # no signature to inspect (a builtin): let the call tell
    return obj


def _where(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({e.filename}, line {e.lineno})"
    frames = traceback.extract_tb(e.__traceback__)
    at = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{at}"
