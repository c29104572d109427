"""gc_paused: the collector is off inside, and back exactly as it was afterwards, even on errors."""

from __future__ import annotations

import gc

import pytest

from hpsearch.gcpause import bulk, gc_paused


def test_paused_inside_and_restored_after_even_on_error():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled_and_bulk_wraps_functions():
    @bulk
    def inside() -> bool:
        return gc.isenabled()

    assert inside() is False and gc.isenabled() and inside.__name__ == "inside"
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had switched it off keeps it off
    finally:
        gc.enable()
