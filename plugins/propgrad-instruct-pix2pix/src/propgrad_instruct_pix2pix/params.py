"""Checks of the instruct_pix2pix parameters, each raising an error that names the parameter.

Values may arrive as strings from ``propgrad explain --param key=value``, so numbers in strings
and comma-separated lists are accepted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from propgrad.core.validation import MAX_STEPS, ParameterTypeError, check_bool, check_int, check_number

PAPER_TEXT_START, PAPER_TEXT_STOP, PAPER_NUM_TEXT_SCALES = 1.05, 14.7, 92  # step 0.15, Appx. B.3


def as_float(name: str, value: Any, *, positive: bool = True) -> float:
    """A finite float (positive unless told otherwise); numbers in strings are accepted."""
    if positive:
        return check_number(value, name, minimum=0.0, min_inclusive=False, strings=True)
    return check_number(value, name, strings=True)


def as_int(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer of at least ``minimum`` (integral floats and numeric strings accepted)."""
    if isinstance(value, str):  # "20" and "20.0" from a command line or a config file
        value = check_number(value, name, strings=True)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check_int(value, name, minimum=minimum, maximum=maximum)


def as_bool(name: str, value: Any) -> bool:
    """A bool; the strings true/false, yes/no, on/off, 1/0 (any case) are accepted."""
    return check_bool(value, name, strings=True)


def as_scale_list(name: str, value: Any) -> list[float]:
    """At least two positive guidance scales, strictly increasing."""
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",") if v.strip()]
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist()
    if isinstance(value, np.ndarray):
        value = value.ravel().tolist()
    if not isinstance(value, (list, tuple, range)):
        shown = repr(value) if len(repr(value)) <= 80 else type(value).__name__
        raise ParameterTypeError(f"{name} must be a list of guidance scales, got {shown} ({type(value).__name__})")
    if not 2 <= len(value) <= MAX_STEPS:
        raise ValueError(
            f"{name} must hold at least 2 and at most {MAX_STEPS} guidance scales "
            f"(propgrad.core.validation.MAX_STEPS), got {len(value)}"
        )
    scales = [as_float(f"{name}[{i}]", v) for i, v in enumerate(value)]
    for i in range(1, len(scales)):
        if scales[i] <= scales[i - 1]:
            raise ValueError(
                f"{name} must be strictly increasing, but {name}[{i}] = {scales[i]:g} does not exceed "
                f"{name}[{i - 1}] = {scales[i - 1]:g}"
            )
    return scales


def text_scales(explicit: Any, start: Any, stop: Any, num: Any) -> list[float]:
    """The text guidance scales: an explicit list, or ``num`` evenly spaced from start to stop.

    The defaults reproduce the paper's sweep, 1.05 to 14.7 in steps of 0.15 (92 scales).
    """
    if explicit is not None:
        given = [
            n
            for n, v in (("text_guidance_start", start), ("text_guidance_stop", stop), ("num_text_scales", num))
            if v is not None
        ]
        if given:
            raise ValueError(f"pass either text_guidance_scales or {', '.join(given)}, not both")
        return as_scale_list("text_guidance_scales", explicit)
    lo = as_float("text_guidance_start", PAPER_TEXT_START if start is None else start)
    hi = as_float("text_guidance_stop", PAPER_TEXT_STOP if stop is None else stop)
    n = as_int("num_text_scales", PAPER_NUM_TEXT_SCALES if num is None else num, minimum=2, maximum=MAX_STEPS)
    if hi <= lo:
        raise ValueError(f"text_guidance_stop ({hi:g}) must exceed text_guidance_start ({lo:g})")
    return [round(v, 10) for v in torch.linspace(lo, hi, n, dtype=torch.float64).tolist()]


def image_size(value: Any) -> int | tuple[int, int] | None:
    """None (keep the input's size), a short-side length, or (height, width); multiples of 8."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
        value = value[0] if len(value) == 1 else value
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"image_size must be an int or (height, width), got {value!r}")
        size = tuple(as_int("image_size", v, minimum=8) for v in value)
    else:
        size = (as_int("image_size", value, minimum=8),)
    if any(s % 8 for s in size):
        raise ValueError(f"image_size must be a multiple of 8 (the VAE downsamples by 8), got {value!r}")
    return size[0] if len(size) == 1 else (size[0], size[1])


def working_size(requested: int | tuple[int, int] | None, height: int, width: int) -> tuple[int, int]:
    """The (H, W) the editor runs at: multiples of 8, keeping the aspect ratio for a short side."""
    if isinstance(requested, tuple):
        return requested
    if requested is None:
        h, w = height, width
    else:
        scale = requested / min(height, width)
        h, w = height * scale, width * scale
    return max(8, int(round(h / 8)) * 8), max(8, int(round(w / 8)) * 8)
