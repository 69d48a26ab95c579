"""The guidance scales a sweep edits at: a family's defaults, or a list of one's own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from propgrad.core.validation import MAX_STEPS
from propgrad.errors import InvalidParameterError
from propgrad.plugins.parameters import as_numbers

PAPER_TEXT_START, PAPER_TEXT_STOP, PAPER_NUM_TEXT_SCALES = 1.05, 14.7, 92  # step 0.15, Appx. B.3


@dataclass(frozen=True)
class SweepNames:
    """The parameter names of one family's sweep and its defaults.

    Attributes:
        explicit: Name of the explicit list (``"text_guidance_scales"``).
        start: Name of the first scale.
        stop: Name of the last scale.
        num: Name of the number of scales.
        default_start: Default first scale.
        default_stop: Default last scale.
        default_num: Default number of scales.
        bounds: Interval every scale must lie in (``"(0, inf)"``; ``"[0, inf)"`` where 0 means no edit).
    """

    explicit: str
    start: str
    stop: str
    num: str
    default_start: float
    default_stop: float
    default_num: int
    bounds: str = "(0, inf)"


PIX2PIX_SWEEP = SweepNames(
    "text_guidance_scales",
    "text_guidance_start",
    "text_guidance_stop",
    "num_text_scales",
    PAPER_TEXT_START,
    PAPER_TEXT_STOP,
    PAPER_NUM_TEXT_SCALES,
)


def as_scale_list(value: Any, name: str, bounds: str = "(0, inf)") -> list[float]:
    """At least two guidance scales in ``bounds``, strictly increasing (list, array, tensor or comma-separated text)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.flatten() if isinstance(value, torch.Tensor) else value.ravel()
    scales = as_numbers(value, name, expected="a list of guidance scales", bounds=bounds)
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


def sweep_scales(names: SweepNames, explicit: Any, start: Any, stop: Any, num: Any) -> list[float]:
    """The swept scales: an explicit list, or ``num`` evenly spaced from start to stop (the family's defaults)."""
    if explicit is not None:
        given = [n for n, v in ((names.start, start), (names.stop, stop), (names.num, num)) if v is not None]
        if given:
            raise InvalidParameterError(f"pass either {names.explicit} or {', '.join(given)}, not both")
        return as_scale_list(explicit, names.explicit, names.bounds)
    lo = names.default_start if start is None else start
    hi = names.default_stop if stop is None else stop
    n = names.default_num if num is None else num
    if hi <= lo:
        raise InvalidParameterError(f"{names.stop} ({hi:g}) must exceed {names.start} ({lo:g})")
    return [round(v, 10) for v in torch.linspace(lo, hi, n, dtype=torch.float64).tolist()]


def text_scales(explicit: Any, start: Any, stop: Any, num: Any) -> list[float]:
    """InstructPix2Pix's text guidance scales; the defaults are the paper's sweep, 1.05 to 14.7 in steps of 0.15."""
    return sweep_scales(PIX2PIX_SWEEP, explicit, start, stop, num)
