"""Procedural "cats vs dogs" scenes for the ``fur`` suite: shape decides the class, fur is a nuisance.

A scene is an animal silhouette (:func:`propgrad.suites.shapes.animal_masks`: class 0 "cat" has
pointed ears, class 1 "dog" hanging ears) filled with textured fur of a continuous level in
[0, 1] (0 darkest), drawn with a thin near-black outline, on a random coloured, textured
background that may be darkened towards the edges by a Gaussian vignette (the same vignette the
``background`` intervention applies, object and outline protected). The outline keeps the shape,
which decides the class, equally visible at every fur level: without it, fur of about the
background's brightness hides the silhouette, and the class cue depends on the fur level. Scenes
are kept in parts (background, mask, fur texture, level), so the fur level can be changed exactly
and only inside the object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from propgrad.core.colour import hsv_to_rgb
from propgrad.core.images import as_mask
from propgrad.core.progress import progress
from propgrad.errors import InvalidParameterError
from propgrad.sources.base import largest_pixel_change
from propgrad.sources.gaussian_vignette import apply_vignette, gaussian_map, vignette_factor
from propgrad.suites.shapes import animal_masks, dilate, fur_colour, paint, texture, uniform

FUR_SPLITS = ("unbiased", "dark_is_cat", "dark_is_dog")
DARK_CUT = 0.5
"""Fur levels below the cut count as dark, the others as light."""

DARK_CLASS = {"dark_is_cat": 0, "dark_is_dog": 1}

OUTLINE_COLOUR = (0.02, 0.02, 0.02)
"""Colour of the silhouette's outline: darker than the darkest fur and every background."""


FUR_TEXTURE = {"smooth": 0.15, "grain": 0.15}
"""How fur textures are drawn (:func:`propgrad.suites.shapes.texture`'s arguments): the scenes'
and the fur intervention's held-out realisation's."""

MATCH_REL_TOL = 1e-4
"""Relative tolerance of :func:`matched_vignette_strength` on the matched pixel change."""


def _check_split(split: str) -> None:
    if split not in FUR_SPLITS:
        raise InvalidParameterError(f"split must be one of {list(FUR_SPLITS)}, got {split!r}")


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
        raise InvalidParameterError(f"link must be a probability in [0, 1], got {link!r}")
    u = torch.rand(labels.shape[0], generator=generator)
    if split == "unbiased":
        return u
    follows = torch.rand(labels.shape[0], generator=generator) < link
    dark = (labels == DARK_CLASS[split]) == follows
    return torch.where(dark, u * DARK_CUT, DARK_CUT + u * (1 - DARK_CUT))


def follows_link(labels: torch.Tensor, levels: torch.Tensor, split: str) -> torch.Tensor:
    """Whether each image follows the colour rule of a biased split (bool, (B,))."""
    if split not in DARK_CLASS:
        raise InvalidParameterError(f"split must be one of {list(DARK_CLASS)}, got {split!r}")
    return (levels < DARK_CUT) == (labels == DARK_CLASS[split])


def fur_target(levels: torch.Tensor) -> torch.Tensor:
    """Where the fur intervention ends: the opposite extreme (dark fur -> 1, light fur -> 0)."""
    return torch.where(levels < DARK_CUT, torch.ones_like(levels), torch.zeros_like(levels))


def outline(masks: torch.Tensor, width: int) -> torch.Tensor:
    """The ring of pixels within ``width`` pixels (chessboard distance) outside each mask.

    Args:
        masks: Object masks (B, H, W) or (H, W), bool.
        width: Ring width in pixels (0: no outline).

    Returns:
        Boolean rings of the same shape, disjoint from ``masks``.
    """
    if width < 0:
        raise InvalidParameterError(f"width must be >= 0, got {width}")
    return dilate(masks, width) & ~masks


def draw_parts(
    labels: torch.Tensor,
    size: int,
    generator: torch.Generator,
    *,
    darkening: torch.Tensor,
    sigma: float,
    value_range: tuple[float, float] = (0.35, 0.95),
) -> dict[str, torch.Tensor]:
    """Masks, darkened backgrounds and fur textures of one batch of scenes.

    Args:
        labels: Classes (B,) of 0 ("cat") / 1 ("dog").
        size: Image side in pixels.
        generator: Source of randomness.
        darkening: Vignette strength per image (B,), in [-1, 0]; 0 leaves the background as is.
        sigma: Width of the vignette's Gaussian (fraction of the image side).
        value_range: Range of the background colour's HSV value (brightness) before darkening.

    Returns:
        ``masks`` (B, H, W) bool, ``background`` (B, 3, H, W), ``texture`` (B, 1, H, W).
    """
    n = labels.shape[0]
    masks = animal_masks(labels, size, generator)
    colour = hsv_to_rgb(
        torch.rand(n, generator=generator), uniform(n, 0.4, 0.85, generator), uniform(n, *value_range, generator)
    )
    background = paint(colour, texture(n, size, generator, smooth=0.3, grain=0.08))
    # The object's pixels are overwritten by fur later, so scaling the whole background equals
    # apply_vignette with the object protected.
    factors = vignette_factor(gaussian_map(size, size, sigma), darkening.float())
    background = (background * factors[:, None]).clamp(0, 1)
    fur_tex = texture(n, size, generator, smooth=FUR_TEXTURE["smooth"], grain=FUR_TEXTURE["grain"])
    return {"masks": masks, "background": background, "texture": fur_tex}


def compose(
    background: torch.Tensor,
    masks: torch.Tensor,
    fur_texture: torch.Tensor,
    levels: torch.Tensor,
    outline_width: int = 0,
) -> torch.Tensor:
    """Scenes (B, 3, H, W): textured fur of the given levels inside the masks, an outline
    ``outline_width`` pixels wide around them, background elsewhere."""
    fur = paint(fur_colour(levels), fur_texture)
    ring = outline(masks, outline_width)[:, None]
    scene = torch.where(ring, torch.tensor(OUTLINE_COLOUR)[None, :, None, None], background)
    return torch.where(masks[:, None], fur, scene)


@dataclass(frozen=True)
class SceneStyle:
    """How every scene of a batch looks, apart from its random draws.

    Attributes:
        size: Image side in pixels.
        sigma: Width of the background vignette's Gaussian (fraction of the image side).
        outline_width: Width of the silhouette's outline in pixels (:func:`compose`).
        value_range: Range of the background colour's HSV value before darkening (:func:`draw_parts`).
    """

    size: int
    sigma: float
    outline_width: int = 0
    value_range: tuple[float, float] = (0.35, 0.95)


@dataclass(frozen=True)
class DarkeningDraw:
    """How the background vignettes' strengths are drawn: a fraction of the images gets one.

    Attributes:
        max_darkening: The strongest vignette (in [-1, 0]); strengths are uniform in [``max_darkening``, 0].
        darken_fraction: Expected fraction of the images with a vignette; the others get none.
    """

    max_darkening: float
    darken_fraction: float


def draw_scenes(
    labels: torch.Tensor,
    levels: torch.Tensor,
    style: SceneStyle,
    generator: torch.Generator,
    darkening: DarkeningDraw | torch.Tensor,
    *,
    chunk: int = 1024,
    show_progress: bool = False,
    desc: str = "drawing scenes",
) -> dict[str, torch.Tensor]:
    """Whole scenes with their parts, drawn in chunks.

    Args:
        labels: Classes (B,) of 0 ("cat") / 1 ("dog").
        levels: Fur levels (B,) in [0, 1].
        style: Size, vignette width, outline and background brightness of every scene.
        generator: Source of randomness.
        darkening: Every image's vignette strength (B,), or how to draw them (a
            :class:`DarkeningDraw`, drawn from ``generator`` before the scenes).
        chunk: Scenes drawn at a time.
        show_progress: Show a progress bar.
        desc: Label of the progress bar.

    Returns:
        ``images`` (B, 3, H, W), ``masks``, ``texture``, ``levels`` (B,) and ``darkening`` (B,).

    Raises:
        InvalidParameterError: ``darkening`` neither a :class:`DarkeningDraw` nor a (B,) tensor.
    """
    n = labels.shape[0]
    if isinstance(darkening, DarkeningDraw):
        darkened = torch.rand(n, generator=generator) < darkening.darken_fraction
        strengths = torch.where(darkened, torch.rand(n, generator=generator) * darkening.max_darkening, torch.zeros(n))
    elif isinstance(darkening, torch.Tensor) and darkening.shape == (n,):
        strengths = darkening
    else:
        got = f"shape {tuple(darkening.shape)}" if isinstance(darkening, torch.Tensor) else type(darkening).__name__
        raise InvalidParameterError(f"darkening must be a DarkeningDraw or a tensor of shape ({n},), got {got}")
    out: dict[str, list[torch.Tensor]] = {"images": [], "masks": [], "texture": []}
    for start in progress(range(0, n, chunk), desc, enabled=show_progress, leave=False):
        part = draw_parts(
            labels[start : start + chunk],
            style.size,
            generator,
            darkening=strengths[start : start + chunk],
            sigma=style.sigma,
            value_range=style.value_range,
        )
        out["images"].append(
            compose(
                part["background"], part["masks"], part["texture"], levels[start : start + chunk], style.outline_width
            )
        )
        out["masks"].append(part["masks"])
        out["texture"].append(part["texture"])
    result = {k: torch.cat(v) for k, v in out.items()}
    result["levels"] = levels.float()
    result["darkening"] = strengths
    return result


def fur_sequence(
    image: torch.Tensor,
    mask: torch.Tensor,
    fur_texture: torch.Tensor,
    level: float,
    target: float,
    steps: int,
    *,
    texture_to: torch.Tensor | None = None,
    dissolve: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fur intervention: fur level moved linearly from ``level`` to ``target`` in ``steps``.

    Only pixels inside ``mask`` change; the first image equals ``image`` (drawn at ``level``).
    Given ``texture_to`` and ``dissolve``, the fur's texture is also swapped for ``texture_to``
    pixel by pixel: at the step of fraction ``f`` the pixels with ``dissolve < f`` use
    ``texture_to``, the others ``fur_texture``. The fur level of every step is the same as
    without the swap (the texture only modulates the level's colour), the first step is still
    ``image`` exactly (no ``dissolve`` value is below 0), and the last has ``texture_to``
    everywhere (every ``dissolve`` value is below 1).

    Args:
        image: The scene (3, H, W).
        mask: Object mask (H, W), bool.
        fur_texture: The scene's fur texture (1, H, W).
        level: The scene's fur level.
        target: The final fur level.
        steps: Number of images (>= 2).
        texture_to: Optional second fur texture (1, H, W) dissolved in along the sequence.
        dissolve: Per-pixel thresholds (H, W) in [0, 1) of the swap, with ``texture_to``.

    Returns:
        Images (steps, 3, H, W) and the fraction of the change (steps,) from 0 to 1.

    Raises:
        ValueError: ``steps`` below 2, only one of ``texture_to`` and ``dissolve``, or either of
            the wrong shape, or ``dissolve`` outside [0, 1).
    """
    if steps < 2:
        raise InvalidParameterError(f"steps must be >= 2, got {steps}")
    fractions = torch.linspace(0, 1, steps)
    levels = level + fractions * (target - level)
    textures = fur_texture[None].expand(steps, -1, -1, -1)
    if (texture_to is None) != (dissolve is None):
        raise InvalidParameterError("texture_to and dissolve go together: pass both or neither")
    if texture_to is not None and dissolve is not None:
        if texture_to.shape != fur_texture.shape:
            raise InvalidParameterError(
                f"texture_to must have shape {tuple(fur_texture.shape)}, got {tuple(texture_to.shape)}"
            )
        if dissolve.shape != mask.shape:
            raise InvalidParameterError(f"dissolve must have shape {tuple(mask.shape)}, got {tuple(dissolve.shape)}")
        if bool((dissolve < 0).any()) or bool((dissolve >= 1).any()):
            raise InvalidParameterError("dissolve must hold values in [0, 1)")
        swapped = dissolve[None, None] < fractions[:, None, None, None]
        textures = torch.where(swapped, texture_to[None], textures)
    fur = paint(fur_colour(levels), textures)
    return torch.where(mask[None, None], fur, image[None]), fractions


def redrawn_fur_texture(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A fresh fur texture (1, H, W), drawn as :func:`draw_parts` draws a scene's, and the
    per-pixel dissolve thresholds (H, W), uniform in [0, 1), for :func:`fur_sequence`."""
    fur_tex = texture(1, size, generator, smooth=FUR_TEXTURE["smooth"], grain=FUR_TEXTURE["grain"])[0]
    return fur_tex, torch.rand(size, size, generator=generator)


def vignette_pixel_change(
    image: torch.Tensor,
    protect: torch.Tensor,
    strength: float,
    *,
    sigma: float,
    center: tuple[float, float] = (0.5, 0.5),
) -> float:
    """:meth:`~propgrad.sources.base.InterventionSequence.pixel_change` of the masked Gaussian
    vignette sequence of final strength ``strength`` on ``image`` (3, H, W), ``protect`` (H, W) kept,
    whatever its number of steps (:class:`VignetteChange`)."""
    return VignetteChange(image, protect, sigma=sigma, center=center)(strength)


class VignetteChange:
    """The pixel change of the masked Gaussian vignette on one image, as a function of its final strength.

    :class:`~propgrad.sources.gaussian_vignette.GaussianVignetteSource` with ``mask=protect`` makes
    the same images, and the pixel change of its sequence is this value for any number of steps:
    every operation of the vignette is monotonic in the strength (in floating point too), so each
    pixel's change from the first image, and their mean, are largest at the last step. So only the
    first and the last image are made, and the Gaussian and the mask once, for a search that asks
    for many strengths.

    Args:
        image: The scene (3, H, W) in [0, 1].
        protect: Pixels (H, W) the vignette keeps.
        sigma: Width of the vignette's Gaussian (fraction of the image side).
        center: (y, x) of the Gaussian's peak, fractions of the image side.
    """

    def __init__(
        self, image: torch.Tensor, protect: torch.Tensor, *, sigma: float, center: tuple[float, float] = (0.5, 0.5)
    ) -> None:
        height, width = image.shape[1:]
        self.image = image
        self.gaussian = gaussian_map(height, width, sigma, center, device=image.device, dtype=image.dtype)
        self.protect = as_mask(protect, "protect", size=(height, width)).to(device=image.device, dtype=image.dtype)

    def __call__(self, strength: float) -> float:
        """The pixel change of the sequence from strength 0 to ``strength`` (its first and last strengths
        as :class:`~propgrad.sources.gaussian_vignette.GaussianVignetteSource` spaces them)."""
        ends = torch.linspace(0, abs(strength), 2, dtype=self.image.dtype, device=self.image.device)
        images = apply_vignette(
            self.image, vignette_factor(self.gaussian, ends * math.copysign(1.0, strength)), self.protect
        )
        return largest_pixel_change(images)


def matched_vignette_strength(
    image: torch.Tensor,
    protect: torch.Tensor,
    target_change: float,
    *,
    sigma: float,
    center: tuple[float, float] = (0.5, 0.5),
    rel_tol: float = MATCH_REL_TOL,
    max_iterations: int = 100,
) -> tuple[float, bool]:
    """The darkening strength in [-1, 0) whose vignette changes ``image`` by ``target_change``.

    A bisection on the strength: the masked darkening vignette's pixel change
    (:class:`VignetteChange`, measured on the images alone, no model) grows monotonically
    with ``|strength|``, so the bisection stops once the change is within ``rel_tol`` of
    ``target_change`` (relative). When even -1 (the far edges turned black) changes the image
    less, the strength is capped at -1.

    Args:
        image: The scene (3, H, W) in [0, 1].
        protect: Pixels (H, W) the vignette keeps (object and outline).
        target_change: The pixel change to match (> 0), e.g. the fur intervention's.
        sigma: Width of the vignette's Gaussian (fraction of the image side).
        center: (y, x) of the Gaussian's peak, fractions of the image side.
        rel_tol: Relative tolerance on the matched change.
        max_iterations: Bisection steps at most (the interval halves each time).

    Returns:
        ``(strength, capped)``: the strength, and whether it was capped at -1.

    Raises:
        ValueError: ``target_change`` not positive and finite, or ``rel_tol`` not in (0, 1).
    """
    if not math.isfinite(target_change) or target_change <= 0:
        raise InvalidParameterError(f"target_change must be a positive pixel change, got {target_change!r}")
    if not 0 < rel_tol < 1:
        raise InvalidParameterError(f"rel_tol must be in (0, 1), got {rel_tol!r}")

    vignette = VignetteChange(image, protect, sigma=sigma, center=center)

    def change(magnitude: float) -> float:
        return vignette(-magnitude)

    if change(1.0) < target_change * (1 - rel_tol):
        return -1.0, True
    low, high = 0.0, 1.0
    mid = high
    for _ in range(max_iterations):
        mid = (low + high) / 2
        got = change(mid)
        if abs(got - target_change) <= rel_tol * target_change:
            break
        if got < target_change:
            low = mid
        else:
            high = mid
    return -mid, False
