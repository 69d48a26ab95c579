"""Background illumination: scale pixels near the image edges with a Gaussian-shaped factor.

Penzel & Denzler, Appendix B.3: assuming a centred subject, a centred Gaussian kernel
multiplicatively darkens (or brightens) the pixels closer to the image edges. The factor map is
``1 + s * (1 - g(y, x))`` with ``g`` a centred Gaussian of peak 1, and ``s`` the strength.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from propgrad.core.images import as_mask
from propgrad.core.validation import Bounds, check_number, check_sequence_size
from propgrad.errors import InvalidParameterError
from propgrad.hookspecs import hookimpl
from propgrad.plugins.parameters import Parameters, parameter, steps_parameter
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


def _center(value: Any, name: str) -> tuple[float, float]:
    """(y, x) fractions in [0, 1]; None is the image centre."""
    if value is None:
        return (0.5, 0.5)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InvalidParameterError(f"{name} must be None or (y, x) fractions in [0, 1], got {value!r}")
    return (
        check_number(value[0], f"{name}[0] (y)", Bounds(0.0, 1.0)),
        check_number(value[1], f"{name}[1] (x)", Bounds(0.0, 1.0)),
    )


def _mask(value: Any, name: str) -> torch.Tensor | None:
    """None, or a float (H, W) mask in [0, 1] from a bool or float tensor or a mask file."""
    return None if value is None else as_mask(value, name)


_STRENGTH_HINT = "a non-zero strength: negative darkens (-1 turns the far edges black), positive brightens"


@dataclass(frozen=True)
class GaussianVignetteParams(Parameters):
    """The parameters of :class:`GaussianVignetteSource` (see its docstring)."""

    max_strength: float = parameter(
        -1.0,
        "final strength: negative darkens (-1 turns the far edges black), positive brightens; not 0",
        bounds=f"[-1, {MAX_BRIGHTENING:g}]",
        hint=_STRENGTH_HINT,
    )
    sigma: float = parameter(
        0.35,
        "width of the Gaussian as a fraction of the image height / width",
        bounds=f"[{SIGMA_RANGE[0]:g}, {SIGMA_RANGE[1]:g}]",
        hint="a fraction of the image size",
    )
    steps: int = steps_parameter(21, "number of strengths, evenly spaced from 0")
    center: tuple[float, float] | None = parameter(
        None, "(y, x) of the Gaussian's peak as fractions in [0, 1]; None: the image centre", parse=_center
    )
    mask: Any = parameter(None, "mask (H, W) or mask file of pixels to protect (e.g. the object)", parse=_mask)

    def check(self) -> None:
        """A strength of 0 changes nothing."""
        if self.max_strength == 0:
            raise InvalidParameterError(f"max_strength must not be 0 (that changes nothing); pass {_STRENGTH_HINT}")


class GaussianVignetteSource(InterventionSource):
    """Darken (or brighten) the image edges with a Gaussian vignette of rising strength.

    The property values are the strength's magnitude ``|s|`` (from 0 to ``|max_strength|``), so
    they increase whichever the direction; ``metadata["direction"]`` says "darken" or "brighten"
    and ``metadata["strengths"]`` holds the signed strengths (for the record: what a report or a
    table shows is the values, with the direction stated once in words, as the explain report's
    filmstrip does: "vignette strength from 0 to 0.9 strength, darkening"). The seed is not used
    (the sequence is deterministic).

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
    Params = GaussianVignetteParams

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """Apply the vignette at ``steps`` strengths from 0 to ``max_strength``."""
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
