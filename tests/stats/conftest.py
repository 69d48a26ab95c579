"""Fixtures of the statistics tests: the permutation test's backends, set for one test."""

from __future__ import annotations

from typing import Callable

import pytest

from propgrad.stats.backends import COMPILED, TORCH


@pytest.fixture
def backend_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the default backends' attributes for the test (undone afterwards).

    ``backend_settings(compiled=False)`` forces the torch backend; ``chunk_size`` and
    ``memory_budget`` set both backends' memory settings (None leaves them).
    """

    def apply(*, compiled: bool = True, chunk_size: int | None = None, memory_budget: int | None = None) -> None:
        monkeypatch.setattr(COMPILED, "enabled", compiled)
        for backend in (COMPILED, TORCH):
            monkeypatch.setattr(backend, "chunk_size", chunk_size)
            if memory_budget is not None:
                monkeypatch.setattr(backend, "memory_budget", memory_budget)

    return apply
