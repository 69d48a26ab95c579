"""propgrad-instruct-pix2pix: InstructPix2Pix edits swept over the text guidance scale.

Registers the ``instruct_pix2pix`` intervention source with propgrad (entry point group
``propgrad``). Importing this package does not import diffusers; the pipeline is loaded on
the first sweep that is not already cached.
"""

from __future__ import annotations

from propgrad_instruct_pix2pix.filmstrip import save_filmstrip
from propgrad_instruct_pix2pix.model_loading import DEFAULT_MODEL, clear_pipeline_cache, pipeline_cache_info
from propgrad_instruct_pix2pix.source import InstructPix2PixSource

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "InstructPix2PixSource",
    "clear_pipeline_cache",
    "pipeline_cache_info",
    "save_filmstrip",
]
