"""Input checks shared by the scorer, the sources and the API.

Each check raises ``ValueError`` (or ``TypeError`` for a wrong type) naming the argument, what
was expected and what was received, so that bad input never fails deep inside torch.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import torch


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Check an integer parameter (bools are refused) of at least ``minimum``; returns it as int."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_images(images: Any, name: str, *, batched: bool) -> torch.Tensor:
    """Check a float RGB image tensor in [0, 1]: (3, H, W), or (N, 3, H, W) when ``batched``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(images)}")
    want = "(N, 3, H, W)" if batched else "(3, H, W)"
    if images.dim() != (4 if batched else 3) or images.shape[-3] != 3:
        raise ValueError(f"{name} must have shape {want} (RGB), got {_describe(images)}")
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor in [0, 1], got {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )
    if images.numel() == 0:
        raise ValueError(f"{name} is empty: {_describe(images)}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(
            f"{name} must hold values in [0, 1], got range [{lo:.3g}, {hi:.3g}]; "
            "pass unnormalised images and do normalisation in `preprocess`"
        )
    return images


def check_values(values: Any, n: int, name: str) -> torch.Tensor:
    """Check property values: a finite 1-D float tensor of length ``n``, strictly increasing."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(values)}")
    if values.dim() != 1 or values.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), one value per step, got {_describe(values)}")
    if not values.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {values.dtype}")
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    steps = values[1:] - values[:-1]
    if (steps <= 0).any():
        i = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(
            f"{name} must be strictly increasing (no repeated values), but step {i + 1} "
            f"({float(values[i + 1]):.6g}) does not exceed step {i} ({float(values[i]):.6g})"
        )
    return values
