"""Procedural drawing for the built-in suites: batched masks, textures and colours.

Every function draws a whole batch at once from per-image parameter tensors of shape (B,) and
takes its randomness from an explicit ``torch.Generator``, so the same seed draws the same
images. Masks are boolean (B, H, W); colours are float in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from propgrad.errors import InvalidParameterError


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` samples from U[low, high)."""
    return low + (high - low) * torch.rand(n, generator=generator)


def object_frame(
    size: int, center_y: torch.Tensor, center_x: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (u right, v down) in each object's own rotated, scaled frame.

    Args:
        size: Image side in pixels.
        center_y, center_x: Object centres in pixels, (B,).
        scale: Pixels per object unit, (B,).
        angle: Rotation in radians, (B,).

    Returns:
        ``u, v`` of shape (B, size, size).
    """
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = coords[None, :, None], coords[None, None, :]
    dy, dx = yy - center_y[:, None, None], xx - center_x[:, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    s = scale[:, None, None]
    return (dx * cos + dy * sin) / s, (-dx * sin + dy * cos) / s


def ellipse(u: torch.Tensor, v: torch.Tensor, cu, cv, ru, rv) -> torch.Tensor:
    """Inside of axis-aligned ellipses; centres and radii are floats or (B,) tensors."""

    def b(x):
        return x[:, None, None] if isinstance(x, torch.Tensor) else x

    return ((u - b(cu)) / b(ru)) ** 2 + ((v - b(cv)) / b(rv)) ** 2 <= 1.0


def triangle(u: torch.Tensor, v: torch.Tensor, corners: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Inside of triangles given three (u, v) corners, each coordinate a (B,) tensor."""

    def edge(p, q):
        (pu, pv), (qu, qv) = p, q
        return (qu - pu)[:, None, None] * (v - pv[:, None, None]) - (qv - pv)[:, None, None] * (u - pu[:, None, None])

    e = [edge(corners[0], corners[1]), edge(corners[1], corners[2]), edge(corners[2], corners[0])]
    return ((e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0)) | ((e[0] <= 0) & (e[1] <= 0) & (e[2] <= 0))


def animal_masks(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Silhouettes of class 0 ("cat": pointed upright ears) and class 1 ("dog": hanging ears).

    Both share a body and a head; only the ears differ, so the classes are told apart by
    shape. Position, size, rotation and proportions are jittered per image.

    Args:
        labels: Class per image, (B,) of 0/1.
        size: Image side in pixels.
        generator: Source of randomness.

    Returns:
        Boolean masks (B, size, size).
    """
    n = labels.shape[0]
    scale = uniform(n, 0.27, 0.36, generator) * size
    cy = size / 2 + uniform(n, -0.1, 0.1, generator) * size
    cx = size / 2 + uniform(n, -0.1, 0.1, generator) * size
    angle = uniform(n, -0.45, 0.45, generator)
    u, v = object_frame(size, cy, cx, scale, angle)
    body = ellipse(u, v, 0.0, 0.45, uniform(n, 0.55, 0.7, generator), uniform(n, 0.38, 0.48, generator))
    head_r = uniform(n, 0.3, 0.36, generator)
    head = ellipse(u, v, 0.0, -0.3, head_r, head_r)
    ear_len = uniform(n, 0.38, 0.5, generator)
    ear_w = uniform(n, 0.14, 0.2, generator)
    zero = torch.zeros(n)
    cat_ears = torch.zeros_like(body)
    dog_ears = torch.zeros_like(body)
    for side in (-1.0, 1.0):
        base = side * 0.2 * torch.ones(n)
        cat_ears |= triangle(
            u, v, [(base - ear_w, zero - 0.45), (base + ear_w, zero - 0.45), (base * 1.3, -0.45 - ear_len - 0.1)]
        )
        dog_ears |= ellipse(u, v, side * (head_r + 0.02), -0.25 + 0.1 * ear_len, ear_w * 0.85, ear_len * 0.75)
    is_cat = (labels == 0)[:, None, None]
    return body | head | torch.where(is_cat, cat_ears, dog_ears)


def dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Masks (B, H, W) or (H, W), bool, grown by ``radius`` pixels (chessboard distance)."""
    if radius < 0:
        raise InvalidParameterError(f"radius must be >= 0, got {radius}")
    batched = masks[None] if masks.dim() == 2 else masks
    grown = F.max_pool2d(batched[:, None].float(), 2 * radius + 1, stride=1, padding=radius)[:, 0] > 0
    return grown[0] if masks.dim() == 2 else grown


def smooth_noise(n: int, size: int, cells: int, generator: torch.Generator, channels: int = 1) -> torch.Tensor:
    """Smooth noise in about [-1, 1]: a random ``cells`` x ``cells`` grid upsampled bicubically."""
    grid = torch.rand(n, channels, cells, cells, generator=generator) * 2 - 1
    return F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False).clamp(-1.5, 1.5)


def texture(n: int, size: int, generator: torch.Generator, *, smooth: float, grain: float) -> torch.Tensor:
    """Multiplicative texture (B, 1, H, W) around 1: smooth blotches plus per-pixel grain."""
    blotches = smooth_noise(n, size, max(2, size // 6), generator)
    pixels = torch.rand(n, 1, size, size, generator=generator) * 2 - 1
    return 1 + smooth * blotches + grain * pixels


# Fur colours at level 0 (darkest) and level 1 (lightest): neutral browns, no hue of their own.
FUR_DARK = (0.06, 0.05, 0.04)
FUR_LIGHT = (0.95, 0.9, 0.82)


def fur_colour(level: torch.Tensor) -> torch.Tensor:
    """Fur colour (B, 3) for fur levels in [0, 1] (0 darkest, 1 lightest), linear in the level."""
    dark, light = torch.tensor(FUR_DARK), torch.tensor(FUR_LIGHT)
    return dark + level[:, None] * (light - dark)


def paint(colour: torch.Tensor, tex: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W): a flat colour (B, 3) times a texture (B, 1, H, W), clamped to [0, 1]."""
    return (colour[:, :, None, None] * tex).clamp(0, 1)


def radial_blob(
    size: int,
    center: tuple[torch.Tensor, torch.Tensor],
    radius: torch.Tensor,
    roughness: torch.Tensor,
    generator: torch.Generator,
    harmonics: int = 6,
) -> torch.Tensor:
    """Blobs whose border radius varies with angle: r(phi) = radius * (1 + sum of random harmonics).

    Args:
        size: Image side in pixels.
        center: Centres (y, x) in pixels, each (B,).
        radius: Mean radius in pixels, (B,).
        roughness: Amplitude of the border harmonics relative to the radius, (B,); 0 is a disk.
        generator: Source of randomness (phases and weights of the harmonics).
        harmonics: Number of harmonics (orders 2 .. harmonics + 1).

    Returns:
        Boolean masks (B, size, size).
    """
    n = radius.shape[0]
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dy = coords[None, :, None] - center[0][:, None, None]
    dx = coords[None, None, :] - center[1][:, None, None]
    phi = torch.atan2(dy, dx)
    orders = torch.arange(2, harmonics + 2, dtype=torch.float32)
    weights = torch.rand(n, harmonics, generator=generator) / orders**0.5
    weights = weights / weights.sum(1, keepdim=True)
    phases = torch.rand(n, harmonics, generator=generator) * 2 * math.pi
    wobble = (
        weights[:, :, None, None] * torch.cos(orders[None, :, None, None] * phi[:, None] + phases[:, :, None, None])
    ).sum(1)
    r = radius[:, None, None] * (1 + roughness[:, None, None] * wobble)
    return dx**2 + dy**2 <= r**2
