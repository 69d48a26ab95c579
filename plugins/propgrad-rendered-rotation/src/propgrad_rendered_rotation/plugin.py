"""The plugin's hook implementations (the ``propgrad`` entry point names this module)."""

from __future__ import annotations

from typing import Callable

from propgrad import hookimpl


@hookimpl
def register_sources(register: Callable[[type], None]) -> None:
    """Register the ``rendered_rotation`` source (pyrender and trimesh are imported when it renders)."""
    from propgrad_rendered_rotation.source import RenderedRotationSource

    register(RenderedRotationSource)


@hookimpl
def register_suites(register: Callable[[type], None]) -> None:
    """Register the ``orientation`` benchmark suite (it renders only when its data are first needed)."""
    from propgrad_rendered_rotation.orientation_suite import OrientationSuite

    register(OrientationSuite)
