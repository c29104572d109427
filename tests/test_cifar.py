"""CIFAR-10 from a local folder, both formats, on small files written here in the real layouts."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

from hpsearch.errors import HpsearchError
from hpsearch.store import sweepfile
from hpsearch.trainables import data
from hpsearch.trainables.cifar import load_cifar10, read_py_batch


def _s(b: bytes) -> bytes:
    """A Python 2 `str` (SHORT_BINSTRING / BINSTRING), as in the real batches."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b


def _i(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def py2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """The bytes Python 2 + numpy 1.x wrote for cifar-10-batches-py/data_batch_N (protocol 2)."""
    n = len(images)
    dtype = (
        b"cnumpy\ndtype\n"
        + _s(b"u1")
        + _i(0)
        + _i(1)
        + b"\x87R"
        + b"("
        + _i(3)
        + _s(b"|")
        + b"NNN"
        + _i(-1)
        + _i(-1)
        + _i(0)
        + b"tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + _i(0)
        + b"\x85"
        + _s(b"b")
        + b"\x87R"
        + b"("
        + _i(1)
        + _i(n)
        + _i(3072)
        + b"\x86"
        + dtype
        + b"\x89"
        + _s(images.astype(np.uint8).tobytes())
        + b"tb"
    )
    return (
        b"\x80\x02}q\x01("
        + _s(b"data")
        + array
        + _s(b"labels")
        + b"]("
        + b"".join(_i(v) for v in labels)
        + b"e"
        + _s(b"batch_label")
        + _s(b"training batch 1 of 5")
        + _s(b"filenames")
        + b"]("
        + b"".join(_s(b"img_%d.png" % k) for k in range(n))
        + b"e"
        + b"u."
    )


def _images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, size=n)]


def make_py(folder: Path, batches: int = 2, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True)
    X, y = [], []
    for b in range(1, batches + 1):
        imgs, labels = _images(n, b)
        (folder / f"data_batch_{b}").write_bytes(py2_batch(imgs, labels))
        X.append(imgs)
        y += labels
    (folder / "test_batch").write_bytes(py2_batch(*_images(10, 99)))
    return np.concatenate(X), np.array(y)


def make_bin(folder: Path, batches: int = 2, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True)
    X, y = [], []
    for b in range(1, batches + 1):
        imgs, labels = _images(n, b)
        rec = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], imgs], axis=1)
        (folder / f"data_batch_{b}.bin").write_bytes(rec.tobytes())
        X.append(imgs)
        y += labels
    return np.concatenate(X), np.array(y)


def test_py_batch_reads_exactly(tmp_path: Path) -> None:
    imgs, labels = _images(300, 0)  # > 255 images: the two-byte int opcode as in the real files
    (tmp_path / "b").write_bytes(py2_batch(imgs, labels))
    X, y = read_py_batch(tmp_path / "b")
    assert X.dtype == np.uint8 and np.array_equal(X, imgs) and y.tolist() == labels


@pytest.mark.parametrize("make, sub", [(make_py, "cifar-10-batches-py"), (make_bin, "cifar-10-batches-bin")])
def test_both_formats_give_the_same_dataset(tmp_path: Path, make, sub: str) -> None:
    X, y = make(tmp_path / sub)
    for where in (tmp_path / sub, tmp_path):  # the folder itself, or its parent
        ds = load_cifar10(str(where))
        n_val = len(X) // 50
        assert ds.X_train.shape == (len(X) - n_val, 3072) and ds.X_val.shape == (n_val, 3072)
        assert ds.y_val.tolist() == y[-n_val:].tolist()
        expect = X[:-n_val].astype(np.float32) / 255
        assert np.allclose(ds.X_train, expect - expect.mean(0), atol=1e-5)


def test_refuses_anything_but_the_arrays_it_needs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = b"\x80\x02cos\nsystem\n" + _s(f"touch {marker}".encode()) + b"\x85R."
    (tmp_path / "data_batch_1").write_bytes(evil)
    with pytest.raises(HpsearchError, match="refusing global os.system"):
        load_cifar10(str(tmp_path))
    assert not marker.exists()
    sneaky = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1], b"x": np.load}, protocol=2)
    (tmp_path / "data_batch_1").write_bytes(sneaky)
    with pytest.raises(HpsearchError, match="refusing global"):
        load_cifar10(str(tmp_path))


def test_missing_folder_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(HpsearchError, match="data_batch_1"):
        load_cifar10(str(tmp_path))


def test_the_cifar_sweep_file_reads_data_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    make_py(tmp_path / "data" / "cifar-10-batches-py")
    sweep, _ = sweepfile.load(ROOT / "sweeps" / "cifar10-twolayer.yaml")
    assert set(sweep.space) == {"hidden", "lr", "reg"}
    assert sweep.space["lr"].log and sweep.space["reg"].log and sweep.space["hidden"].integer
    assert (sweep.space["hidden"].low, sweep.space["hidden"].high) == (50, 500)
    data.load.cache_clear()
    ds = data.load(sweep.trainable["dataset"], sweep.source_dir)
    assert ds.n_features == 3072
    data.load.cache_clear()
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(Exception, match="not found"):
        sweepfile.load(ROOT / "sweeps" / "cifar10-twolayer.yaml")
