"""Background illumination: scale pixels near the image edges with a Gaussian-shaped factor.

Penzel & Denzler, Appendix B.3: assuming a centred subject, a centred Gaussian kernel
multiplicatively darkens (or brightens) the pixels closer to the image edges. The factor map is
``1 + s * (1 - g(y, x))`` with ``g`` a centred Gaussian of peak 1, and ``s`` the strength.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from propgrad.core.images import as_mask
from propgrad.core.validation import check_images, check_number, check_seed, check_sequence_size, check_steps
from propgrad.hookspecs import hookimpl
from propgrad.sources.base import InterventionSequence, InterventionSource

MAX_BRIGHTENING = 255.0
"""Largest ``max_strength``: the far edges are then scaled by about 255, so even the darkest
non-black 8-bit pixel (1/255) turns white there; stronger brightening changes next to nothing."""

SIGMA_RANGE = (1e-3, 1e3)
"""Allowed ``sigma`` (fractions of the image size): narrower Gaussians are below a pixel wide for
any image under 1000 pixels (and ``sigma**2`` underflows in float32), wider ones are flat."""


def gaussian_map(
    height: int,
    width: int,
    sigma: float,
    center: tuple[float, float] = (0.5, 0.5),
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A Gaussian bump (H, W) with peak 1 at ``center``.

    Coordinates are pixel centres normalised to [0, 1] along each axis, so ``sigma`` and
    ``center`` are fractions of the image height (for y) and width (for x).
    """
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height - center[0]
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width - center[1]
    return torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))


def vignette_factor(gaussian: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """Factor maps ``1 + s (1 - g)``: (N, H, W) for strengths (N,) and a Gaussian (H, W)."""
    return 1 + strengths[:, None, None] * (1 - gaussian)[None]


def apply_vignette(image: torch.Tensor, factors: torch.Tensor, protect: torch.Tensor | None = None) -> torch.Tensor:
    """Scale ``image`` (3, H, W) by each factor map (N, H, W), clamp to [0, 1].

    Where ``protect`` (H, W) is 1 the pixel is kept; soft values blend the two.
    """
    scaled = (image[None] * factors[:, None]).clamp(0, 1)
    if protect is None:
        return scaled
    keep = protect[None, None]
    return keep * image[None] + (1 - keep) * scaled


def background_region(gaussian: torch.Tensor, protect: torch.Tensor | None = None) -> torch.Tensor:
    """The pixels the vignette changes (H, W, bool): the background, where ``1 - g`` is at least half
    its largest value, minus the protected pixels (``protect >= 0.5``)."""
    reach = 1 - gaussian
    region = reach >= 0.5 * reach.max()
    return region if protect is None else region & (protect < 0.5)


class GaussianVignetteSource(InterventionSource):
    """Darken (or brighten) the image edges with a Gaussian vignette of rising strength.

    The property values are the strength's magnitude ``|s|`` (from 0 to ``|max_strength|``), so
    they increase whichever the direction; ``metadata["direction"]`` says "darken" or "brighten"
    and ``metadata["strengths"]`` holds the signed strengths. The seed is not used (the sequence
    is deterministic).

    Args:
        max_strength: Final strength ``s``: in [-1, 0) darkens (-1 turns the far edges black),
            in (0, :data:`MAX_BRIGHTENING`] brightens. Must not be 0.
        sigma: Width of the Gaussian as a fraction of the image height / width, in
            :data:`SIGMA_RANGE`.
        steps: Number of strengths, evenly spaced from 0 (2 to :data:`propgrad.core.validation.MAX_STEPS`).
        center: (y, x) of the Gaussian's peak as fractions in [0, 1]; default the image centre.
        mask: Optional (H, W) or (1, H, W) bool / float mask in [0, 1] (or a path to a mask
            image) of pixels to protect, e.g. the object; only pixels where it is 0 change fully.
    """

    name = "gaussian_vignette"
    description = "Scale background pixels near the edges by a Gaussian vignette (App. B.3)."
    property_name = "vignette strength"
    unit = "strength"

    def __init__(
        self,
        *,
        max_strength: float = -1.0,
        sigma: float = 0.35,
        steps: int = 21,
        center: tuple[float, float] | None = None,
        mask: Any = None,
    ) -> None:
        hint = "a non-zero strength: negative darkens (-1 turns the far edges black), positive brightens"
        self.max_strength = check_number(max_strength, "max_strength", minimum=-1.0, maximum=MAX_BRIGHTENING, hint=hint)
        if self.max_strength == 0:
            raise ValueError(f"max_strength must not be 0 (that changes nothing); pass {hint}")
        self.sigma = check_number(
            sigma, "sigma", minimum=SIGMA_RANGE[0], maximum=SIGMA_RANGE[1], hint="a fraction of the image size"
        )
        self.steps = check_steps(steps)
        if center is None:
            center = (0.5, 0.5)
        if not isinstance(center, (tuple, list)) or len(center) != 2:
            raise ValueError(f"center must be None or (y, x) fractions in [0, 1], got {center!r}")
        self.center = (
            check_number(center[0], "center[0] (y)", minimum=0.0, maximum=1.0),
            check_number(center[1], "center[1] (x)", minimum=0.0, maximum=1.0),
        )
        self.mask = None if mask is None else as_mask(mask, "mask")

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        """Apply the vignette at ``steps`` strengths from 0 to ``max_strength``."""
        check_images(image, "image", batched=False)
        seed = check_seed(seed)
        check_sequence_size(self.steps, image)
        height, width = image.shape[1:]
        protect = None
        if self.mask is not None:
            protect = as_mask(self.mask, "mask", size=(height, width))
            protect = protect.to(device=image.device, dtype=image.dtype)
        magnitudes = torch.linspace(0, abs(self.max_strength), self.steps, dtype=image.dtype, device=image.device)
        strengths = magnitudes * math.copysign(1.0, self.max_strength)
        gaussian = gaussian_map(height, width, self.sigma, self.center, device=image.device, dtype=image.dtype)
        images = apply_vignette(image, vignette_factor(gaussian, strengths), protect)
        return InterventionSequence(
            images=images,
            values=magnitudes,
            property_name=self.property_name,
            unit=self.unit,
            metadata={
                "direction": "darken" if self.max_strength < 0 else "brighten",
                "strengths": strengths.tolist(),
                "sigma": self.sigma,
                "center": list(self.center),
                "masked": self.mask is not None,
                "seed": int(seed),
            },
            region=background_region(gaussian, protect),
        )


@hookimpl
def register_sources(register: Any) -> None:
    """Register :class:`GaussianVignetteSource`."""
    register(GaussianVignetteSource)
