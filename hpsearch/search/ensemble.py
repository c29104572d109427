"""Which checkpoints form an ensemble, pure: the best configurations in ranking order, one member each."""

from __future__ import annotations

from collections.abc import Callable


def top_configs(
    ranked: list[tuple[str, str, str | None]], k: int, available: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """Up to k members (trial, checkpoint name) from (trial, config, checkpoint) rows in ranking order.

    One member per configuration (its best-ranked repeat whose checkpoint is available): repeats of
    one configuration are near-copies and would crowd out independent models, which is what an
    ensemble needs ("train multiple independent models", the notes)."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for trial, config, ckpt in ranked:
        if len(out) >= k:
            break
        if config in seen or ckpt is None or not available(ckpt):
            continue
        seen.add(config)
        out.append((trial, ckpt))
    return out
