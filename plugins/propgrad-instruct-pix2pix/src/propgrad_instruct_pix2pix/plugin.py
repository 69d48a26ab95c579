"""The plugin's hook implementations (the ``propgrad`` entry point names this module)."""

from __future__ import annotations

from typing import Callable

from propgrad import hookimpl


@hookimpl
def register_sources(register: Callable[[type], None]) -> None:
    """Register the ``instruct_pix2pix`` source."""
    from propgrad_instruct_pix2pix.source import InstructPix2PixSource

    register(InstructPix2PixSource)
