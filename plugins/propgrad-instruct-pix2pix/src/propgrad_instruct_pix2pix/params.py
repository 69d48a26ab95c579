"""The instruct_pix2pix parameters, declared once: types, defaults, bounds and help.

propgrad reads the declaration for the constructor's checks, ``propgrad explain --param key=value``
and ``propgrad plugins``. The parsers below read what a type cannot say: a list of guidance scales
(``"1.05, 2, 3.5"``), an image size (``64`` or ``"64x48"``), a model folder, a device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from propgrad.core.validation import MAX_STEPS
from propgrad.errors import InvalidParameterError, ParameterTypeError
from propgrad.plugins.parameters import Parameters, as_size, parameter
from propgrad_instruct_pix2pix.guidance import (
    PAPER_NUM_TEXT_SCALES,
    PAPER_TEXT_START,
    PAPER_TEXT_STOP,
    as_scale_list,
    text_scales,
)
from propgrad_instruct_pix2pix.model_loading import DEFAULT_MODEL, check_model


def _image_size(value: Any, name: str) -> int | tuple[int, int] | None:
    return as_size(value, name, multiple=8)


def _instruction(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _scales_or_none(value: Any, name: str) -> list[float] | None:
    return None if value is None else as_scale_list(value, name)


def _model(value: Any, name: str) -> str:
    return check_model(value)


def _device(value: Any, name: str) -> torch.device | None:
    try:
        return None if value is None else torch.device(value)
    except (RuntimeError, TypeError) as err:
        raise InvalidParameterError(f"{name} must be a torch device such as 'cpu' or 'cuda:0', got {value!r}") from err


def _folder(value: Any, name: str) -> Path | None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ParameterTypeError(
            f"{name} must be a folder path (str or Path) or None, got {type(value).__name__} {value!r}"
        )
    return None if value is None else Path(value).expanduser()


@dataclass(frozen=True)
class InstructPix2PixParams(Parameters):
    """The parameters of :class:`~propgrad_instruct_pix2pix.InstructPix2PixSource` (see its docstring)."""

    lenient = True  # numbers, flags and lists may be given as text, as in a config file

    instruction: str = parameter(help="the edit instruction, e.g. 'change the fur color to black'", parse=_instruction)
    text_guidance_scales: list[float] | None = parameter(
        None, "explicit, strictly increasing text guidance scales (instead of start/stop/num)", parse=_scales_or_none
    )
    text_guidance_start: float | None = parameter(
        None, f"first text guidance scale (None: {PAPER_TEXT_START})", bounds="(0, inf)"
    )
    text_guidance_stop: float | None = parameter(
        None, f"last text guidance scale (None: {PAPER_TEXT_STOP})", bounds="(0, inf)"
    )
    num_text_scales: int | None = parameter(
        None, f"number of evenly spaced scales (None: {PAPER_NUM_TEXT_SCALES})", bounds=f"[2, {MAX_STEPS}]"
    )
    image_guidance_scale: float = parameter(
        1.5, "fixed image guidance scale (the paper: 2.0 to 2.9)", bounds="(0, inf)"
    )
    num_inference_steps: int = parameter(20, "denoising steps per edit", bounds="[1, inf)")
    batch_size: int = parameter(8, "most scales denoised in one batch", bounds="[1, inf)")
    max_batch_memory_mb: float | None = parameter(
        None, "memory budget that lowers the batch size (a rough estimate)", bounds="(0, inf)"
    )
    image_size: tuple[int, int] | None = parameter(
        None,
        "None: the input's size; an int for the short side, or (height, width); multiples of 8",
        parse=_image_size,
    )
    model: str = parameter(DEFAULT_MODEL, "Hugging Face hub id or local folder of the pipeline", parse=_model)
    device: str | None = parameter(None, "where the editor runs; None: the image's device", parse=_device)
    cache_dir: Path | None = parameter(None, "folder of cached sweeps; None: propgrad's cache folder", parse=_folder)
    use_cache: bool = parameter(True, "read and write the on-disk cache of sweeps")

    def check(self) -> None:
        """Explicit scales or start/stop/num, not both; stop above start."""
        text_scales(self.text_guidance_scales, self.text_guidance_start, self.text_guidance_stop, self.num_text_scales)
