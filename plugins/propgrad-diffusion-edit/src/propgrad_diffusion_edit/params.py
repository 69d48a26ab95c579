"""The editing sources' parameters, declared once: types, defaults, bounds and help.

propgrad reads each declaration for the constructor's checks, ``propgrad explain --param key=value``
and ``propgrad plugins``. Every family declares its own dataclass, so each source lists exactly the
parameters its editor uses; the fields they share are declared by the functions below, in one
place. The parsers read what a type cannot say: a list of guidance scales (``"1.05, 2, 3.5"``), an
image size (``64`` or ``"64x48"``), a model folder, a device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from propgrad.core.validation import MAX_STEPS
from propgrad.errors import InvalidParameterError, ParameterTypeError
from propgrad.plugins.parameters import Parameters, as_size, parameter
from propgrad_diffusion_edit.guidance import PIX2PIX_SWEEP, SweepNames, as_scale_list, sweep_scales
from propgrad_diffusion_edit.model_loading import DEFAULT_MODEL, check_model

_GENERIC = ("guidance_scales", "guidance_start", "guidance_stop", "num_scales")
LEDITS_SWEEP = SweepNames(*_GENERIC, 0.0, 10.0, 21, "[0, inf)")  # 0: no edit guidance
FLUX_KONTEXT_SWEEP = SweepNames(*_GENERIC, 1.0, 6.0, 21)
QWEN_EDIT_SWEEP = SweepNames(*_GENERIC, 1.0, 8.0, 15, "[1, inf)")  # 1: the conditional prediction alone


def _instruction(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ParameterTypeError(f"{name} must be a string (may be empty), got {type(value).__name__} {value!r}")
    return value


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


def _size_parser(multiple: int):
    def parse(value: Any, name: str) -> int | tuple[int, int] | None:
        return as_size(value, name, multiple=multiple)

    return parse


def _scales_parser(bounds: str):
    def parse(value: Any, name: str) -> list[float] | None:
        return None if value is None else as_scale_list(value, name, bounds)

    return parse


# the fields every family declares, each written once ----------------------------------------------


def instruction_field(help: str) -> Any:  # noqa: A002 - as in parameter()
    """The required edit text."""
    return parameter(help=help, parse=_instruction)


def scales_fields(names: SweepNames, what: str) -> tuple[Any, Any, Any, Any]:
    """The four sweep fields: an explicit list, or start/stop/num (None: the family's defaults)."""
    return (
        parameter(
            None,
            f"explicit, strictly increasing {what}s (instead of start/stop/num)",
            parse=_scales_parser(names.bounds),
        ),
        parameter(None, f"first {what} (None: {names.default_start:g})", bounds=names.bounds),
        parameter(None, f"last {what} (None: {names.default_stop:g})", bounds=names.bounds),
        parameter(None, f"number of evenly spaced scales (None: {names.default_num})", bounds=f"[2, {MAX_STEPS}]"),
    )


def steps_field(default: int) -> Any:
    """Denoising steps per edit."""
    return parameter(default, "denoising steps per edit", bounds="[1, inf)")


def batch_size_field() -> Any:
    """Most scales denoised in one batch."""
    return parameter(8, "most scales denoised in one batch", bounds="[1, inf)")


def memory_field() -> Any:
    """A memory budget lowering the batch size."""
    return parameter(None, "memory budget that lowers the batch size (a rough estimate)", bounds="(0, inf)")


def image_size_field(multiple: int) -> Any:
    """The working size: None, a short side, or (height, width), multiples of ``multiple``."""
    return parameter(
        None,
        f"None: the input's size; an int for the short side, or (height, width); multiples of {multiple}",
        parse=_size_parser(multiple),
    )


def model_field(default: str, what: str) -> Any:
    """A hub id or local folder."""
    return parameter(default, f"Hugging Face hub id or local folder of the {what} pipeline", parse=_model)


def device_field() -> Any:
    """Where the editor runs."""
    return parameter(None, "where the editor runs; None: the image's device", parse=_device)


def cache_dir_field() -> Any:
    """The folder of cached sweeps."""
    return parameter(None, "folder of cached sweeps; None: propgrad's cache folder", parse=_folder)


def use_cache_field() -> Any:
    """Whether the on-disk cache is read and written."""
    return parameter(True, "read and write the on-disk cache of sweeps")


class EditParams(Parameters):
    """Shared behaviour of the families' declarations: the sweep check (``sweep`` names the fields)."""

    lenient = True  # numbers, flags and lists may be given as text, as in a config file
    sweep: ClassVar[SweepNames]  # each family's declaration sets it

    def scales(self) -> list[float]:
        """The swept scales (explicit, or start/stop/num with the family's defaults)."""
        names = type(self).sweep
        return sweep_scales(
            names,
            getattr(self, names.explicit),
            getattr(self, names.start),
            getattr(self, names.stop),
            getattr(self, names.num),
        )

    def check(self) -> None:
        """Explicit scales or start/stop/num, not both; stop above start."""
        self.scales()


_TEXT_FIELDS = scales_fields(PIX2PIX_SWEEP, "text guidance scale")
_LEDITS_FIELDS = scales_fields(LEDITS_SWEEP, "edit guidance scale")
_FLUX_FIELDS = scales_fields(FLUX_KONTEXT_SWEEP, "guidance scale")
_QWEN_FIELDS = scales_fields(QWEN_EDIT_SWEEP, "true CFG scale")


@dataclass(frozen=True)
class InstructPix2PixParams(EditParams):
    """The parameters of :class:`~propgrad_diffusion_edit.InstructPix2PixSource` (see its docstring)."""

    sweep = PIX2PIX_SWEEP

    instruction: str = instruction_field("the edit instruction, e.g. 'change the fur color to black'")
    text_guidance_scales: list[float] | None = _TEXT_FIELDS[0]
    text_guidance_start: float | None = _TEXT_FIELDS[1]
    text_guidance_stop: float | None = _TEXT_FIELDS[2]
    num_text_scales: int | None = _TEXT_FIELDS[3]
    image_guidance_scale: float = parameter(
        1.5, "fixed image guidance scale (the paper: 2.0 to 2.9)", bounds="(0, inf)"
    )
    num_inference_steps: int = steps_field(20)
    batch_size: int = batch_size_field()
    max_batch_memory_mb: float | None = memory_field()
    image_size: tuple[int, int] | None = image_size_field(8)
    model: str = model_field(DEFAULT_MODEL, "InstructPix2Pix")
    device: str | None = device_field()
    cache_dir: Path | None = cache_dir_field()
    use_cache: bool = use_cache_field()


@dataclass(frozen=True)
class LEditsPPParams(EditParams):
    """The parameters of :class:`~propgrad_diffusion_edit.LEditsPPSource` (see its docstring)."""

    sweep = LEDITS_SWEEP

    instruction: str = instruction_field("the editing concept, e.g. 'black fur' (LEdits++'s editing_prompt)")
    guidance_scales: list[float] | None = _LEDITS_FIELDS[0]
    guidance_start: float | None = _LEDITS_FIELDS[1]
    guidance_stop: float | None = _LEDITS_FIELDS[2]
    num_scales: int | None = _LEDITS_FIELDS[3]
    reverse_editing_direction: bool = parameter(False, "remove the concept instead of adding it")
    edit_threshold: float = parameter(0.9, "quantile of the edit mask (LEdits++'s masking threshold)", bounds="[0, 1)")
    edit_warmup_steps: int = parameter(0, "denoising steps before the edit guidance starts", bounds="[0, inf)")
    source_prompt: str = parameter("", "a caption of the input guiding the inversion ('': none)", parse=_text)
    source_guidance_scale: float = parameter(3.5, "guidance of the inversion by source_prompt", bounds="[0, inf)")
    skip: float = parameter(
        0.15, "fraction of the inversion's first steps skipped (keeps more of the input)", bounds="[0, 1)"
    )
    num_inference_steps: int = steps_field(50)
    image_size: tuple[int, int] | None = image_size_field(32)
    model: str = model_field("stable-diffusion-v1-5/stable-diffusion-v1-5", "Stable Diffusion")
    device: str | None = device_field()
    cache_dir: Path | None = cache_dir_field()
    use_cache: bool = use_cache_field()


@dataclass(frozen=True)
class FluxKontextParams(EditParams):
    """The parameters of :class:`~propgrad_diffusion_edit.FluxKontextSource` (see its docstring)."""

    sweep = FLUX_KONTEXT_SWEEP

    instruction: str = instruction_field("the edit instruction, e.g. 'make the fur black'")
    guidance_scales: list[float] | None = _FLUX_FIELDS[0]
    guidance_start: float | None = _FLUX_FIELDS[1]
    guidance_stop: float | None = _FLUX_FIELDS[2]
    num_scales: int | None = _FLUX_FIELDS[3]
    max_sequence_length: int = parameter(
        512, "T5 tokens of the instruction (the pipeline's default)", bounds="[1, 512]"
    )
    num_inference_steps: int = steps_field(28)
    batch_size: int = batch_size_field()
    max_batch_memory_mb: float | None = memory_field()
    image_size: tuple[int, int] | None = image_size_field(16)
    model: str = model_field("black-forest-labs/FLUX.1-Kontext-dev", "FLUX.1 Kontext")
    device: str | None = device_field()
    cache_dir: Path | None = cache_dir_field()
    use_cache: bool = use_cache_field()


@dataclass(frozen=True)
class QwenImageEditParams(EditParams):
    """The parameters of :class:`~propgrad_diffusion_edit.QwenImageEditSource` (see its docstring)."""

    sweep = QWEN_EDIT_SWEEP

    instruction: str = instruction_field("the edit instruction, e.g. 'make the fur black'")
    guidance_scales: list[float] | None = _QWEN_FIELDS[0]
    guidance_start: float | None = _QWEN_FIELDS[1]
    guidance_stop: float | None = _QWEN_FIELDS[2]
    num_scales: int | None = _QWEN_FIELDS[3]
    negative_prompt: str = parameter(
        " ", "the prompt true CFG pushes away from (the pipeline's example: ' ')", parse=_text
    )
    condition_area: int = parameter(
        1024 * 1024, "pixels of the conditioning image (the pipeline's 1 MP; aspect kept)", bounds="[256, inf)"
    )
    num_inference_steps: int = steps_field(50)
    batch_size: int = batch_size_field()
    max_batch_memory_mb: float | None = memory_field()
    image_size: tuple[int, int] | None = image_size_field(16)
    model: str = model_field("Qwen/Qwen-Image-Edit", "Qwen-Image-Edit")
    device: str | None = device_field()
    cache_dir: Path | None = cache_dir_field()
    use_cache: bool = use_cache_field()
