"""GPUs without a GPU: which device each local worker gets, and where the device is shown."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, write_sweep

from hpsearch.run.devices import device_label
from hpsearch.run.launchers import LaunchSpec, gpu_count
from hpsearch.run.launchers.local import LocalLauncher
from hpsearch.run.master import Master, StartOptions
from hpsearch.store.sweepfile import load

SWEEP = {
    "name": "dev",
    "trainable": {"builtin": "noop", "target": {"lr": 0.01}},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}},
    "stages": [{"trials": 3, "epochs": 1}],
    "workers": 3,
    "heartbeat": 0.2,
    "stale_after": 3,
}


def test_workers_per_gpu_packs_k_workers_on_each_card():
    launcher = LocalLauncher(LaunchSpec("/tmp/x", 5), gpus=["0", "1"], workers_per_gpu=2)
    assert [launcher._env_for(i)["CUDA_VISIBLE_DEVICES"] for i in range(5)] == ["0", "0", "1", "1", "0"]
    one_each = LocalLauncher(LaunchSpec("/tmp/x", 3), gpus=["4", "6", "7"])
    assert [one_each._env_for(i)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["4", "6", "7"]


def master_for(tmp_path, monkeypatch, visible: str | None, **opts) -> Master:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi either: a machine without GPUs
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    f = write_sweep(tmp_path, SWEEP, "s.yaml")
    sweep, raw = load(f)
    return Master(sweep, raw, f.read_text(), str(tmp_path / "run"), StartOptions(**opts))


def test_one_worker_per_visible_gpu_by_default(tmp_path, monkeypatch):
    launcher = master_for(tmp_path, monkeypatch, "2,3").make_launcher()
    assert isinstance(launcher, LocalLauncher) and launcher.spec.workers == 2
    assert [launcher._env_for(i)["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["2", "3"]
    assert "on GPUs 2,3" in launcher.describe()


def test_workers_per_gpu_option_multiplies_the_workers(tmp_path, monkeypatch):
    launcher = master_for(tmp_path, monkeypatch, "0,1", workers_per_gpu=2).make_launcher()
    assert launcher.spec.workers == 4
    assert [launcher._env_for(i)["CUDA_VISIBLE_DEVICES"] for i in range(4)] == ["0", "0", "1", "1"]


def test_cpu_workers_when_no_gpu(tmp_path, monkeypatch):
    m = master_for(tmp_path, monkeypatch, None)
    assert gpu_count() == 0
    launcher = m.make_launcher()
    assert launcher.spec.workers == 3 and launcher.gpus == [] and "on CPU" in launcher.describe()
    assert "CUDA_VISIBLE_DEVICES" not in launcher._env_for(0)


@pytest.mark.parametrize(
    "device, visible, label",
    [
        ("cpu", "0", "cpu"),
        ("cuda", "3", "cuda (GPU 3)"),
        ("cuda:1", "2,5", "cuda:1 (GPU 5)"),
        ("cuda", "", "cuda"),
        ("cuda:4", "0", "cuda:4"),
        ("mps", "", "mps"),
    ],
)
def test_device_label_names_the_physical_gpu(device, visible, label):
    assert device_label(device, {"CUDA_VISIBLE_DEVICES": visible}) == label


def test_device_shows_in_journal_heartbeat_status_and_report(tmp_path):
    f = write_sweep(tmp_path, {**SWEEP, "workers": 1}, "s.yaml")
    d = tmp_path / "run"
    run_cli("master", "start", str(f), "--dir", str(d), "--device", "cpu", check=True, timeout=180)
    claims = [json.loads(x) for x in (d / "journal.jsonl").read_text().splitlines() if '"ev":"claim"' in x]
    assert len(claims) == 3 and {c["device"] for c in claims} == {"cpu"}
    [hb] = [json.loads(p.read_text()) for p in (d / "workers").glob("*.json")]
    assert hb["device"] == "cpu"
    assert "on cpu" in run_cli("master", "status", str(d), check=True).stdout
    table = run_cli("report", str(d), check=True).stdout.splitlines()
    header = table[2].split()
    rows = table[4:7]
    assert "device" in header and len(rows) == 3
    assert all(row.split()[header.index("device")] == "cpu" for row in rows)
    csv = run_cli("report", str(d), "--format", "csv", check=True).stdout.splitlines()
    assert "device" in csv[0].split(",")
