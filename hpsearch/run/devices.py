"""How a worker names the device it trains on, for heartbeats, the journal and `report`."""

from __future__ import annotations

import os
from collections.abc import Mapping


def device_label(device: str, env: Mapping[str, str] | None = None) -> str:
    """'cpu', 'cuda', or 'cuda:0 (GPU 3)': the physical GPU behind a CUDA device, from CUDA_VISIBLE_DEVICES.

    A launcher gives each worker its GPU through CUDA_VISIBLE_DEVICES, so inside the worker the
    device is always cuda:0; the label says which card that is on the host.
    """
    if not device.startswith("cuda"):
        return device
    env = os.environ if env is None else env
    visible = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    index = device.partition(":")[2]
    i = int(index) if index.isdigit() else 0
    return f"{device} (GPU {visible[i]})" if 0 <= i < len(visible) else device
