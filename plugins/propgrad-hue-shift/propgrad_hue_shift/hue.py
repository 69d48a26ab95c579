"""Hue rotation in HSV space, as pure torch functions on any device.

Rotating the hue in HSV keeps every pixel's saturation and value (brightness of the strongest
channel), stays inside the RGB gamut without clipping, and leaves grey pixels unchanged — unlike
a rotation in YIQ space, which leaves the gamut and must clip.
"""

from __future__ import annotations

import torch

from propgrad.core import colour


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """Convert RGB in [0, 1] to HSV with hue, saturation and value in [0, 1).

    Args:
        rgb: Float tensor (..., 3, H, W).

    Returns:
        Tensor of the same shape holding (hue, saturation, value); hue 0 is red, 1/3 green,
        2/3 blue. Grey pixels get hue 0 and saturation 0.
    """
    r, g, b = rgb.unbind(dim=-3)
    maxc, argmax = rgb.max(dim=-3)
    minc = rgb.min(dim=-3).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue_r = torch.remainder((g - b) / safe, 6.0)
    hue_g = (b - r) / safe + 2.0
    hue_b = (r - g) / safe + 4.0
    hue = torch.where(argmax == 0, hue_r, torch.where(argmax == 1, hue_g, hue_b)) / 6.0
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([torch.remainder(hue, 1.0), sat, maxc], dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Convert HSV (hue in turns, any real value; saturation and value in [0, 1]) to RGB.

    Uses the continuous form ``c_n = v - v s max(0, min(k, 4 - k, 1))`` with
    ``k = (n + 6 h) mod 6`` for n = 5, 3, 1 (red, green, blue).

    Args:
        hsv: Float tensor (..., 3, H, W).

    Returns:
        RGB tensor of the same shape in [0, 1].
    """
    hue, sat, val = hsv.unbind(dim=-3)
    return colour.hsv_to_rgb(torch.remainder(hue, 1.0), sat, val).movedim(-1, -3).clamp(0.0, 1.0)


def rotate_hue(rgb: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images by ``degrees`` (360 is a full turn, back to the input).

    Args:
        rgb: Float tensor (..., 3, H, W) in [0, 1].
        degrees: Rotation angle; a tensor of shape S broadcasts against ``rgb.shape[:-3]``
            (one (3, H, W) image and S = (N,) angles give N rotated images).

    Returns:
        The rotated images (broadcast batch shape, 3, H, W), dtype and device of ``rgb``.
    """
    hsv = rgb_to_hsv(rgb)
    turns = torch.as_tensor(degrees, dtype=rgb.dtype, device=rgb.device) / 360.0
    turns = turns.reshape(turns.shape + (1, 1))
    hue, sat, val = torch.broadcast_tensors(hsv[..., 0, :, :] + turns, hsv[..., 1, :, :], hsv[..., 2, :, :])
    return hsv_to_rgb(torch.stack([hue, sat, val], dim=-3))
