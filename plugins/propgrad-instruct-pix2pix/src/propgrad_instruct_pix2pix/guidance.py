"""The text guidance scales a sweep edits at: the paper's by default, or a list of one's own."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from propgrad.core.validation import MAX_STEPS
from propgrad.errors import InvalidParameterError
from propgrad.plugins.parameters import as_numbers

PAPER_TEXT_START, PAPER_TEXT_STOP, PAPER_NUM_TEXT_SCALES = 1.05, 14.7, 92  # step 0.15, Appx. B.3


def as_scale_list(value: Any, name: str) -> list[float]:
    """At least two positive guidance scales, strictly increasing (a list, array, tensor or comma-separated text)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.flatten() if isinstance(value, torch.Tensor) else value.ravel()
    scales = as_numbers(value, name, expected="a list of guidance scales", bounds="(0, inf)")
    if not 2 <= len(scales) <= MAX_STEPS:
        raise InvalidParameterError(
            f"{name} must hold at least 2 and at most {MAX_STEPS} guidance scales "
            f"(propgrad.core.validation.MAX_STEPS), got {len(scales)}"
        )
    for i in range(1, len(scales)):
        if scales[i] <= scales[i - 1]:
            raise InvalidParameterError(
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
            raise InvalidParameterError(f"pass either text_guidance_scales or {', '.join(given)}, not both")
        return as_scale_list(explicit, "text_guidance_scales")
    lo = PAPER_TEXT_START if start is None else start
    hi = PAPER_TEXT_STOP if stop is None else stop
    n = PAPER_NUM_TEXT_SCALES if num is None else num
    if hi <= lo:
        raise InvalidParameterError(f"text_guidance_stop ({hi:g}) must exceed text_guidance_start ({lo:g})")
    return [round(v, 10) for v in torch.linspace(lo, hi, n, dtype=torch.float64).tolist()]
