"""The floor plan of docs/ARCHITECTURE.md, checked: search/ is pure, layers import downwards only.

`make lint` runs import-linter over the whole import graph (layers, no cycles, no file-system
modules in search/); these tests check what an import graph cannot see (calls that touch the
disk) and keep the check alive in `make test` with the standard library's `ast` alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hpsearch

PKG = Path(hpsearch.__file__).parent
# top to bottom; a module may import its own layer and those below (run and recipe, report and
# trainables are independent siblings; errors and gcpause are the floor)
LAYERS = [{"cli"}, {"run", "recipe"}, {"report", "trainables"}, {"store"}, {"search"}, {"errors", "gcpause"}]
DISK_CALLS = {
    "open",
    "read_text",
    "read_bytes",
    "write_text",
    "write_bytes",
    "exists",
    "is_file",
    "is_dir",
    "stat",
    "mkdir",
    "unlink",
    "iterdir",
    "glob",
    "rglob",
    "touch",
    "scandir",
    "listdir",
    "remove",
}


def modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "bundled" not in p.parts)


def layer_of(name: str) -> int | None:
    """Index in LAYERS of a module `hpsearch.X...` (None for the package itself and __main__)."""
    parts = name.split(".")
    if parts[0] != "hpsearch" or len(parts) < 2:
        return None
    return next((i for i, names in enumerate(LAYERS) if parts[1] in names), None)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"relative import at line {node.lineno}: the code imports absolutely"
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_imports_a_higher_layer(path):
    mine = layer_of(module_name(path))
    if mine is None:
        return
    for line, name in imported(ast.parse(path.read_text())):
        theirs = layer_of(name)
        if theirs is None:
            continue
        assert theirs >= mine, f"{path.relative_to(PKG)}:{line} imports {name}, a higher layer"
        same = LAYERS[mine]
        if theirs == mine and len(same) > 1:
            assert name.split(".")[1] == module_name(path).split(".")[1], (
                f"{path.relative_to(PKG)}:{line} imports {name}, an independent sibling layer"
            )


@pytest.mark.parametrize("path", sorted((PKG / "search").glob("*.py")), ids=lambda p: p.name)
def test_search_touches_no_file(path):
    """search/ decides from values: no open(), no Path I/O, no os.* file calls."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            assert name not in DISK_CALLS, f"search/{path.name}:{node.lineno} calls {name}()"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The two checks above fail on a module that breaks them (so they are not vacuous)."""
    upward = ast.parse("from hpsearch.run.master import start\n")
    assert any(layer_of(n) == 1 for _, n in imported(upward))
    assert layer_of("hpsearch.search.space") > layer_of("hpsearch.run.master")
    disk = ast.parse("def f(p):\n    return p.read_text()\n")
    calls = [n.func.attr for n in ast.walk(disk) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert set(calls) & DISK_CALLS


def test_public_names_stay_at_the_top():
    assert hpsearch.Trial.__module__ == "hpsearch.trainables.trial"
    assert issubclass(hpsearch.StopTrial, Exception)
    assert {"Trial", "StopTrial", "HpsearchError", "ConfigError"} <= set(hpsearch.__all__)
