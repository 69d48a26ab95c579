"""propgrad-diffusion-edit: diffusion image editors swept over their guidance, one source per family.

Registers, with propgrad (entry point group ``propgrad``), the intervention sources
``instruct_pix2pix`` (text guidance), ``ledits_pp`` (edit guidance, after one inversion),
``flux_kontext`` (FLUX.1 Kontext's distilled guidance) and ``qwen_image_edit`` (true CFG scale).
Importing this package does not import diffusers; a pipeline is loaded on the first sweep that
is not already cached.
"""

from __future__ import annotations

from propgrad_diffusion_edit.filmstrip import save_filmstrip
from propgrad_diffusion_edit.flux_kontext import FluxKontextSource
from propgrad_diffusion_edit.ledits_pp import LEditsPPSource
from propgrad_diffusion_edit.model_loading import DEFAULT_MODEL, clear_pipeline_cache, pipeline_cache_info
from propgrad_diffusion_edit.qwen_image_edit import QwenImageEditSource
from propgrad_diffusion_edit.source import DiffusionEditSource, InstructPix2PixSource

__version__ = "0.2.0"

#: Every source the plugin registers, one per pipeline family.
SOURCES = (InstructPix2PixSource, LEditsPPSource, FluxKontextSource, QwenImageEditSource)

__all__ = [
    "DEFAULT_MODEL",
    "SOURCES",
    "DiffusionEditSource",
    "FluxKontextSource",
    "InstructPix2PixSource",
    "LEditsPPSource",
    "QwenImageEditSource",
    "clear_pipeline_cache",
    "pipeline_cache_info",
    "save_filmstrip",
]
