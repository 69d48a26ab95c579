"""propgrad.core.collector: objects alive before a block left out of the collector's passes, and given back."""

from __future__ import annotations

import gc
import weakref

import pytest

from propgrad.core.collector import long_lived_frozen


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
