"""What every test shares: a private propgrad cache, and one trained quick fur suite for the slow tests.

Tests run in parallel (``pytest -n 2``, pytest-xdist, set in ``pyproject.toml``): each worker is a
process of its own, so what the workers share lives in files, guarded by a file lock.

- Every test session points ``PROPGRAD_CACHE_DIR`` at a fresh folder shared by its workers, so no
  test reads or writes the user's cache (a cached model from another version, or a file another
  run is writing) and a run starts from the same cold cache on every machine.
- :func:`quick_fur`: the built-in ``fur`` suite (quick, seed 0) trained once per session in that
  folder (:mod:`tests.trained_suites`). The first worker to ask trains it (about a minute of CPU);
  the others wait on the lock and read what it recorded. Every slow test that needs those models
  shares it instead of training its own.

The fakes the tests share (tiny suites, models, sources and baselines) are in :mod:`tests.fakes`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from propgrad.core.cache import ENV_CACHE_DIR
from tests.trained_suites import TrainedFur, train_quick_fur


def _shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test session that every xdist worker of it sees (the workers' temporary
    folders are siblings under one session folder); created on first use."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def propgrad_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's private ``PROPGRAD_CACHE_DIR`` (shared by its workers; set for every test)."""
    folder = _shared_folder(tmp_path_factory, "propgrad-cache")
    before = os.environ.get(ENV_CACHE_DIR)
    os.environ[ENV_CACHE_DIR] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(ENV_CACHE_DIR, None)
    else:
        os.environ[ENV_CACHE_DIR] = before


@pytest.fixture(scope="session")
def quick_fur(propgrad_cache: Path) -> TrainedFur:
    """The built-in quick ``fur`` suite of seed 0, trained once per session in its cache."""
    with FileLock(str(propgrad_cache / "quick-fur.lock")):
        return train_quick_fur(propgrad_cache)
