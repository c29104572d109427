"""Atomic whole-file writes: complete or absent, readable as the umask says, no temp files left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpsearch.errors import StoreError
from hpsearch.store.atomic import atomic_write_bytes, temp_beside


def test_write_replaces_whole_and_follows_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "stage-1.json"
    old = os.umask(0o027)
    try:
        atomic_write_bytes(target, b"first")
        atomic_write_bytes(target, memoryview(b"second"))
    finally:
        os.umask(old)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o640  # 0o666 narrowed by the umask, as any user file
    assert [p.name for p in tmp_path.iterdir()] == ["stage-1.json"]  # no temporary file left


def test_temp_names_are_unique_and_never_reuse_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "x.pt"
    made = []
    for _ in range(50):
        fd, name = temp_beside(target)
        os.close(fd)
        made.append(name)
    assert len(set(made)) == 50 and all(Path(n).parent == tmp_path and Path(n).name.startswith(".x.pt.") for n in made)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]
    with pytest.raises(StoreError, match="cannot write"):
        atomic_write_bytes(tmp_path / "missing-dir" / "f.json", b"x")
