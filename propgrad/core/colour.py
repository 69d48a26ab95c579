"""Colour conversions shared by the sources and the procedural suites (pure functions)."""

from __future__ import annotations

import torch


def hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor | float, value: torch.Tensor | float) -> torch.Tensor:
    """RGB colours (..., 3) from hue in [0, 1) and saturation, value in [0, 1].

    ``saturation`` and ``value`` are numbers, or tensors shaped like ``hue``.
    """
    hue = torch.as_tensor(hue)
    if isinstance(saturation, torch.Tensor):
        saturation = saturation[..., None]
    if isinstance(value, torch.Tensor):
        value = value[..., None]
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=hue.dtype, device=hue.device) + hue[..., None] * 6) % 6
    return value - value * saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1)
