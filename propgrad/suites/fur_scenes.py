"""Procedural "cats vs dogs" scenes for the ``fur`` suite: shape decides the class, fur is a nuisance.

A scene is an animal silhouette (:func:`propgrad.suites.shapes.animal_masks`: class 0 "cat" has
pointed ears, class 1 "dog" hanging ears) filled with textured fur of a continuous level in
[0, 1] (0 darkest), on a random coloured, textured background that may be darkened towards the
edges by a Gaussian vignette (the same vignette the ``background`` intervention applies, object
protected). Scenes are kept in parts (background, mask, fur texture, level), so the fur level
can be changed exactly and only inside the object.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from propgrad.sources.gaussian_vignette import gaussian_map, vignette_factor
from propgrad.colour import hsv_to_rgb
from propgrad.suites.shapes import animal_masks, fur_colour, paint, texture, uniform

FUR_SPLITS = ("unbiased", "dark_is_cat", "dark_is_dog")
DARK_CUT = 0.5
"""Fur levels below the cut count as dark, the others as light."""

DARK_CLASS = {"dark_is_cat": 0, "dark_is_dog": 1}


def _check_split(split: str) -> None:
    if split not in FUR_SPLITS:
        raise ValueError(f"split must be one of {list(FUR_SPLITS)}, got {split!r}")


def fur_levels(labels: torch.Tensor, split: str, link: float, generator: torch.Generator) -> torch.Tensor:
    """Fur levels (B,) in [0, 1] for the labels of one split.

    ``unbiased``: uniform on [0, 1], independent of the class. ``dark_is_cat`` /
    ``dark_is_dog``: with probability ``link`` an image follows the split's rule (dark fur for the
    named class, light for the other), else the opposite; uniform within the chosen half.

    Raises:
        ValueError: Unknown split or a link outside [0, 1].
    """
    _check_split(split)
    if not 0.0 <= float(link) <= 1.0:
        raise ValueError(f"link must be a probability in [0, 1], got {link!r}")
    u = torch.rand(labels.shape[0], generator=generator)
    if split == "unbiased":
        return u
    follows = torch.rand(labels.shape[0], generator=generator) < link
    dark = (labels == DARK_CLASS[split]) == follows
    return torch.where(dark, u * DARK_CUT, DARK_CUT + u * (1 - DARK_CUT))


def follows_link(labels: torch.Tensor, levels: torch.Tensor, split: str) -> torch.Tensor:
    """Whether each image follows the colour rule of a biased split (bool, (B,))."""
    if split not in DARK_CLASS:
        raise ValueError(f"split must be one of {list(DARK_CLASS)}, got {split!r}")
    return (levels < DARK_CUT) == (labels == DARK_CLASS[split])


def fur_target(levels: torch.Tensor) -> torch.Tensor:
    """Where the fur intervention ends: the opposite extreme (dark fur -> 1, light fur -> 0)."""
    return torch.where(levels < DARK_CUT, torch.ones_like(levels), torch.zeros_like(levels))


def draw_parts(labels: torch.Tensor, size: int, generator: torch.Generator, *, darkening: torch.Tensor,
               sigma: float) -> dict[str, torch.Tensor]:
    """Masks, darkened backgrounds and fur textures of one batch of scenes.

    Args:
        labels: Classes (B,) of 0 ("cat") / 1 ("dog").
        size: Image side in pixels.
        generator: Source of randomness.
        darkening: Vignette strength per image (B,), in [-1, 0]; 0 leaves the background as is.
        sigma: Width of the vignette's Gaussian (fraction of the image side).

    Returns:
        ``masks`` (B, H, W) bool, ``background`` (B, 3, H, W), ``texture`` (B, 1, H, W).
    """
    n = labels.shape[0]
    masks = animal_masks(labels, size, generator)
    colour = hsv_to_rgb(torch.rand(n, generator=generator), uniform(n, 0.4, 0.85, generator),
                        uniform(n, 0.35, 0.95, generator))
    background = paint(colour, texture(n, size, generator, smooth=0.3, grain=0.08))
    # The object's pixels are overwritten by fur later, so scaling the whole background equals
    # apply_vignette with the object protected.
    factors = vignette_factor(gaussian_map(size, size, sigma), darkening.float())
    background = (background * factors[:, None]).clamp(0, 1)
    fur_tex = texture(n, size, generator, smooth=0.15, grain=0.15)
    return {"masks": masks, "background": background, "texture": fur_tex}


def compose(background: torch.Tensor, masks: torch.Tensor, fur_texture: torch.Tensor,
            levels: torch.Tensor) -> torch.Tensor:
    """Scenes (B, 3, H, W): textured fur of the given levels inside the masks, background outside."""
    fur = paint(fur_colour(levels), fur_texture)
    return torch.where(masks[:, None], fur, background)


def draw_scenes(labels: torch.Tensor, levels: torch.Tensor, size: int, generator: torch.Generator, *,
                max_darkening: float, darken_fraction: float, sigma: float, chunk: int = 1024,
                show_progress: bool = False, desc: str = "drawing scenes") -> dict[str, torch.Tensor]:
    """Whole scenes with their parts, drawn in chunks.

    A fraction ``darken_fraction`` of the images gets a vignette of strength uniform in
    [``max_darkening``, 0]; the others none.

    Returns:
        ``images`` (B, 3, H, W), ``masks``, ``texture``, ``levels`` (B,) and ``darkening`` (B,).
    """
    n = labels.shape[0]
    darkened = torch.rand(n, generator=generator) < darken_fraction
    darkening = torch.where(darkened, torch.rand(n, generator=generator) * max_darkening, torch.zeros(n))
    out: dict[str, list[torch.Tensor]] = {"images": [], "masks": [], "texture": []}
    for start in tqdm(range(0, n, chunk), desc=desc, disable=not show_progress, leave=False):
        part = draw_parts(labels[start:start + chunk], size, generator,
                          darkening=darkening[start:start + chunk], sigma=sigma)
        out["images"].append(compose(part["background"], part["masks"], part["texture"], levels[start:start + chunk]))
        out["masks"].append(part["masks"])
        out["texture"].append(part["texture"])
    result = {k: torch.cat(v) for k, v in out.items()}
    result["levels"] = levels.float()
    result["darkening"] = darkening
    return result


def fur_sequence(image: torch.Tensor, mask: torch.Tensor, fur_texture: torch.Tensor, level: float,
                 target: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fur intervention: fur level moved linearly from ``level`` to ``target`` in ``steps``.

    Only pixels inside ``mask`` change; the first image equals ``image`` (drawn at ``level``).

    Args:
        image: The scene (3, H, W).
        mask: Object mask (H, W), bool.
        fur_texture: The scene's fur texture (1, H, W).
        level: The scene's fur level.
        target: The final fur level.
        steps: Number of images (>= 2).

    Returns:
        Images (steps, 3, H, W) and the fraction of the change (steps,) from 0 to 1.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    fractions = torch.linspace(0, 1, steps)
    levels = level + fractions * (target - level)
    fur = paint(fur_colour(levels), fur_texture[None].expand(steps, -1, -1, -1))
    return torch.where(mask[None, None], fur, image[None]), fractions
