"""propgrad.core.collector: objects alive before a block left out of the collector's passes, and given back."""

from __future__ import annotations

import gc
import weakref

import pytest

from propgrad.core.collector import collector_paused, long_lived_frozen


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def unfrozen():
    """A collector with nothing frozen, as a Python session has it (restored after the test)."""
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    yield
    if frozen:
        gc.freeze()


def test_objects_alive_before_are_frozen_for_the_block_and_given_back(unfrozen: None) -> None:
    alive_before = _cycle()  # garbage already (nothing refers to it) but not collected yet
    with long_lived_frozen():
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert alive_before() is not None  # frozen: full passes leave it alone
        made_inside = _cycle()
        gc.collect()
        assert made_inside() is None  # what the block makes is collected as usual
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive_before() is None  # given back, and collected


def test_a_process_that_froze_before_keeps_its_objects_frozen(unfrozen: None) -> None:
    gc.freeze()  # as propgrad's command line does for its imports
    count = gc.get_freeze_count()
    with long_lived_frozen():
        with long_lived_frozen():  # nested: the inner block gives nothing back
            pass
        assert gc.get_freeze_count() >= count
    assert gc.get_freeze_count() >= count


def test_a_paused_collector_runs_no_pass_inside_the_block_and_frees_its_cycles_at_the_end() -> None:
    passes: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with collector_paused():
            made_inside = [_cycle() for _ in range(5000)]  # many allocations: passes were due
            assert passes == [] and not gc.isenabled()
            assert all(ref() is not None for ref in made_inside)
        assert gc.isenabled()
        assert passes == [0]  # one pass, of the youngest generation
        assert all(ref() is None for ref in made_inside)
    finally:
        gc.callbacks.remove(count)


def test_a_collector_that_was_off_stays_off_and_nested_blocks_turn_it_on_once() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
