"""Procedural skin-lesion scenes for the ``patch`` suite (paper Sec. 4.2, Appx. C).

Class 0 "nevus": a round lesion with a regular border in a uniform brown. Class 1 "melanoma": an
irregular border and several colours (brown blotched with near-black, blue-grey or red). Both
lie on a textured skin-tone background. Colourful sticker-like patches
(:func:`propgrad.sources.alpha_patch.sticker_patch`) are blended in with the alpha-patch formula,
their centre chosen by :func:`propgrad.sources.alpha_patch.choose_position` away from the
lesion, exactly as the ``patch`` intervention places its held-out patches.
"""

from __future__ import annotations

import torch

from propgrad.core.colour import hsv_to_rgb
from propgrad.core.progress import progress
from propgrad.errors import InvalidParameterError
from propgrad.sources.alpha_patch import blend_sequence, choose_position, sticker_patch
from propgrad.suites.shapes import dilate, radial_blob, smooth_noise, texture, uniform

SECOND_COLOURS = torch.tensor([[0.08, 0.06, 0.06], [0.35, 0.42, 0.55], [0.62, 0.22, 0.2]])
"""Colours blotched into melanomas: near-black, blue-grey, red."""


def lesion_masks(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Lesion masks (B, H, W): near-round for nevi (class 0), irregular for melanomas (class 1)."""
    n = labels.shape[0]
    cy = size / 2 + uniform(n, -0.08, 0.08, generator) * size
    cx = size / 2 + uniform(n, -0.08, 0.08, generator) * size
    radius = uniform(n, 0.17, 0.25, generator) * size
    roughness = torch.where(labels == 1, uniform(n, 0.35, 0.6, generator), uniform(n, 0.0, 0.1, generator))
    return radial_blob(size, (cy, cx), radius, roughness, generator)


def lesion_colours(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Lesion colour maps (B, 3, H, W): uniform brown (nevus) or brown blotched (melanoma)."""
    n = labels.shape[0]
    brown = hsv_to_rgb(
        uniform(n, 0.05, 0.09, generator), uniform(n, 0.5, 0.8, generator), uniform(n, 0.3, 0.55, generator)
    )
    second = SECOND_COLOURS[torch.randint(len(SECOND_COLOURS), (n,), generator=generator)]
    blotch = torch.sigmoid(4 * smooth_noise(n, size, 4, generator))
    blotch = blotch * (labels == 1).float()[:, None, None, None]
    colour = brown[:, :, None, None] * (1 - blotch) + second[:, :, None, None] * blotch
    return (colour * texture(n, size, generator, smooth=0.08, grain=0.06)).clamp(0, 1)


def skin(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Skin-tone backgrounds (B, 3, H, W) with smooth texture."""
    colour = hsv_to_rgb(
        uniform(n, 0.04, 0.1, generator), uniform(n, 0.2, 0.5, generator), uniform(n, 0.6, 0.95, generator)
    )
    return (colour[:, :, None, None] * texture(n, size, generator, smooth=0.08, grain=0.04)).clamp(0, 1)


def patch_bank(count: int, side: int, first_seed: int) -> torch.Tensor:
    """``count`` RGBA sticker patches (count, 4, side, side), patch ``i`` drawn from seed ``first_seed + i``.

    Training and held-out banks use disjoint seed ranges, so held-out patches are never seen.
    """
    if count < 1 or side < 1:
        raise InvalidParameterError(f"count and side must be positive, got count={count}, side={side}")
    return torch.stack([sticker_patch(side, torch.Generator().manual_seed(first_seed + i)) for i in range(count)])


def keep_out_zone(lesion: torch.Tensor, side: int) -> torch.Tensor:
    """Pixels (H, W) where a ``side`` x ``side`` patch's centre would make it touch the lesion."""
    return dilate(lesion, side // 2 + 1)


def place_patch(
    image: torch.Tensor, lesion: torch.Tensor, patch: torch.Tensor, generator: torch.Generator, alpha: float = 1.0
) -> torch.Tensor:
    """``image`` (3, H, W) with the RGBA ``patch`` blended in at ``alpha``, away from the lesion."""
    side = patch.shape[1]
    top, left = choose_position(
        image.shape[1], image.shape[2], (side, patch.shape[2]), keep_out_zone(lesion, side), generator
    )
    canvas = torch.zeros(4, *image.shape[1:])
    canvas[:, top : top + side, left : left + patch.shape[2]] = patch
    return blend_sequence(image, canvas[:3], canvas[3], torch.tensor([float(alpha)]))[0]


def draw_lesions(
    labels: torch.Tensor,
    with_patch: torch.Tensor,
    bank: torch.Tensor,
    size: int,
    generator: torch.Generator,
    *,
    alpha: torch.Tensor | None = None,
    show_progress: bool = False,
    desc: str = "drawing lesions",
) -> dict[str, torch.Tensor]:
    """Lesion scenes; images where ``with_patch`` is True get a random patch of ``bank``, blended
    in at ``alpha`` (B,) (None: fully opaque, as in training).

    Returns:
        ``images`` (B, 3, H, W), ``masks`` (B, H, W) bool lesion masks, ``labels``.
    """
    n = labels.shape[0]
    masks = lesion_masks(labels, size, generator)
    images = torch.where(masks[:, None], lesion_colours(labels, size, generator), skin(n, size, generator))
    choice = torch.randint(bank.shape[0], (n,), generator=generator)
    for i in progress(torch.nonzero(with_patch)[:, 0].tolist(), desc, enabled=show_progress, leave=False):
        images[i] = place_patch(
            images[i], masks[i], bank[choice[i]], generator, 1.0 if alpha is None else float(alpha[i])
        )
    return {"images": images, "masks": masks, "labels": labels}
