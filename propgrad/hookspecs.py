"""Hook specifications: what a propgrad plugin may implement.

Every hook receives a ``register`` callback and calls it once per class it contributes. The
classes carry their metadata (``name``, ``description`` ...) as class attributes, so listing
them never instantiates anything heavy.
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "propgrad"
ENTRY_POINT_GROUP = PROJECT_NAME

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_sources(register: Callable[[type], None]) -> None:
    """Register intervention sources: subclasses of ``propgrad.sources.InterventionSource``."""


@hookspec
def register_baselines(register: Callable[[type], None]) -> None:
    """Register attribution baselines: subclasses of ``propgrad.baselines.AttributionBaseline``."""


@hookspec
def register_suites(register: Callable[[type], None]) -> None:
    """Register benchmark suites: subclasses of ``propgrad.suites.BenchmarkSuite``."""
