"""The plugin's hook implementations (the ``propgrad`` entry point names this module)."""

from __future__ import annotations

from typing import Callable

from propgrad import hookimpl


@hookimpl
def register_sources(register: Callable[[type], None]) -> None:
    """Register one source per editor family.

    The sources: ``instruct_pix2pix``, ``ledits_pp``, ``flux_kontext`` and ``qwen_image_edit``.
    """
    from propgrad_diffusion_edit import SOURCES

    for source in SOURCES:
        register(source)
