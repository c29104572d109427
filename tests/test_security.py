"""Nothing from the shared directory is unpickled or run through a shell; names stay inside the directory."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ROOT, noop_sweep, plan, write_sweep

from hpsearch.errors import ConfigError, StoreError
from hpsearch.store import sweepfile
from hpsearch.store.sweepdir import Layout, Store
from hpsearch.trainables.trial import Trial

PACKAGE = ROOT / "hpsearch"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> str:
    f = call.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_shell_no_pickle_safe_yaml(path: Path) -> None:
    text = path.read_text()
    tree = ast.parse(text)
    if path.name == "cifar.py":
        # the one reader of a pickled format (the user's own CIFAR files, never the sweep directory):
        # only through a restricted Unpickler whose find_class allows a fixed list
        assert "def find_class" in text and not re.search(r"pickle\.loads?\(", text)
    else:
        assert not re.search(r"^\s*(import|from)\s+(pickle|cPickle|dill|shelve|marshal)\b", text, re.M)
    for call in _calls(tree):
        name = _name(call)
        kw = {k.arg: k.value for k in call.keywords}
        where = f"{path.name}:{call.lineno} {name}"
        assert name not in (
            "os.system",
            "os.popen",
            "eval",
            "exec",
            "subprocess.getoutput",
            "subprocess.getstatusoutput",
            "os.execl",
            "os.execlp",
        ), where
        if "shell" in kw:
            assert isinstance(kw["shell"], ast.Constant) and kw["shell"].value is False, where
        if name.endswith("yaml.load"):
            # only with the sweep file's loader, a SafeLoader subclass (checked below)
            loader = kw.get("Loader")
            assert isinstance(loader, ast.Name) and loader.id == "SweepLoader", f"{where}: use yaml.safe_load"
        if name in ("yaml.unsafe_load", "yaml.full_load"):
            raise AssertionError(f"{where}: use yaml.safe_load")
        if name == "torch.load":
            wo = kw.get("weights_only")
            assert isinstance(wo, ast.Constant) and wo.value is True, f"{where}: needs weights_only=True"
        if name.endswith("np.load") or name == "numpy.load":
            ap = kw.get("allow_pickle")
            assert ap is None or (isinstance(ap, ast.Constant) and ap.value is False), where


def test_the_scan_sees_the_loaders() -> None:
    names = {_name(c) for p in SOURCES for c in _calls(ast.parse(p.read_text()))}
    assert {"torch.load", "yaml.load"} <= names  # the checks above are not vacuous


def test_the_sweep_loader_is_a_safe_loader() -> None:
    assert issubclass(sweepfile.SweepLoader, yaml.SafeLoader)


class Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_a_malicious_checkpoint_is_never_unpickled(tmp_path: Path) -> None:
    store = plan(write_sweep(tmp_path, noop_sweep(trials=1, epochs=3)), tmp_path / "d")
    rec = store.claim("w1")[0]
    store.trial_files_ready(rec)
    t = Trial(store, rec, params=rec.params, metric="val_acc", goal="maximize")
    t.report(1, state={"w": torch.zeros(2)}, val_acc=0.1)
    name = store.metrics(rec.trial)[0]["checkpoint"]
    marker = tmp_path / "pwned"
    torch.save({"trial": rec.trial, "epoch": 1, "state": Payload(marker)}, store.layout.checkpoint(name))
    assert store.load_checkpoint(name) is None
    store.requeue_lost({rec.trial: "test"}, retries=3)
    rec2 = store.claim("w2")[0]
    t2 = Trial(store, rec2, params=rec2.params, metric="val_acc", goal="maximize")
    assert t2.start_epoch == 0 and not marker.exists()


def test_yaml_tags_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    f = write_sweep(tmp_path, noop_sweep() + f"description: !!python/object/apply:pathlib.Path.touch ['{marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        sweepfile.load(f)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../x", "..", "a/b", "/etc", "x/../../y", ".hidden", "a\\b", ""])
def test_sweep_names_cannot_escape(name: str, tmp_path: Path) -> None:
    f = write_sweep(tmp_path, noop_sweep().replace("name: faults", f"name: {name!r}"))
    with pytest.raises(ConfigError, match="name:"):
        sweepfile.load(f)


@pytest.mark.parametrize("trial", ["../x", "s1-t0001/../../x", "/etc/passwd", "s1-t0001\n"])
def test_trial_ids_cannot_escape(trial: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid trial id"):
        Layout(tmp_path).trial_dir(trial)


def test_journal_events_cannot_plant_paths(tmp_path: Path) -> None:
    """A planted trial id in the journal (shared directory) cannot make a worker write outside."""
    store = plan(write_sweep(tmp_path, noop_sweep(trials=1, epochs=1)), tmp_path / "d")
    store.journal.append(
        [
            {
                "ev": "stage",
                "stage": 9,
                "space": {},
                "trials": [{"trial": "../../evil", "config": "c", "params": {}, "seed": 0, "epochs": 1}],
            }
        ]
    )
    st = Store(tmp_path / "d").refresh()
    bad = st.trials["../../evil"]
    with pytest.raises(StoreError):
        store.trial_files_ready(bad)
    assert not (tmp_path / "evil").exists()
