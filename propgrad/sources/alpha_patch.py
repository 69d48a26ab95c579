"""Alpha-blend a segmented patch into the image, swept over alpha from 0 to 1.

The paper's colourful-patch intervention on skin lesions (Penzel & Denzler, Sec. 4.2): a segmented
patch is blended in as ``out = (1 - a * m) * image + a * m * patch`` for alpha ``a`` in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from propgrad.core.colour import hsv_to_rgb
from propgrad.core.images import as_mask, load_rgba, resize
from propgrad.core.validation import check_int, check_sequence_size
from propgrad.errors import InvalidParameterError, ParameterTypeError
from propgrad.hookspecs import hookimpl
from propgrad.plugins.parameters import Parameters, parameter, steps_parameter
from propgrad.sources.base import InterventionSequence, InterventionSource

STICKER_SIZE = 64
"""Pixel size of the procedural patch when ``scale=None``."""
STICKER_MEMO = 16
"""Procedural stickers a source keeps, one per (side, seed) (:meth:`AlphaPatchSource._sticker`)."""


def hue_to_rgb(hue: torch.Tensor, saturation: float = 0.9, value: float = 0.95) -> torch.Tensor:
    """Saturated sticker colours (..., 3) for hues in [0, 1)."""
    return hsv_to_rgb(hue, saturation, value)


def sticker_patch(size: int, generator: torch.Generator) -> torch.Tensor:
    """A colourful sticker-like RGBA patch (4, size, size): coloured disks and rings on a soft disk.

    Args:
        size: Side length in pixels.
        generator: CPU generator that drives every random choice.

    Returns:
        Float32 tensor (4, size, size) in [0, 1]; channel 3 is the soft-edged mask.
    """
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    edge = max(3.0 / size, 0.02)
    mask = ((0.95 - torch.sqrt(yy**2 + xx**2)) / (2 * edge)).clamp(0, 1)
    rand = lambda *shape: torch.rand(shape, generator=generator)  # noqa: E731
    colour = hue_to_rgb(rand(1))[0][:, None, None].expand(3, size, size).clone()
    n_shapes = int(torch.randint(3, 6, (1,), generator=generator))
    for _ in range(n_shapes):
        angle, dist, radius, hue, ring = rand(5).tolist()
        cy, cx = 0.55 * dist * math.sin(2 * math.pi * angle), 0.55 * dist * math.cos(2 * math.pi * angle)
        radius = 0.15 + 0.3 * radius
        d = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        inside = (0.35 * radius - (d - radius).abs()) if ring < 0.4 else (radius - d)
        cover = (inside / edge).clamp(0, 1)
        rgb = hue_to_rgb(torch.tensor([hue]))[0][:, None, None]
        colour = colour * (1 - cover) + rgb * cover
    return torch.cat([colour, mask[None]]).clamp(0, 1)


def resize_rgba(patch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an RGBA patch with premultiplied alpha, so transparent colour does not bleed in."""
    alpha = patch[3:]
    premultiplied = resize(torch.cat([patch[:3] * alpha, alpha]), size)
    new_alpha = premultiplied[3:]
    rgb = torch.where(new_alpha > 1e-6, premultiplied[:3] / new_alpha.clamp(min=1e-6), premultiplied[:3])
    return torch.cat([rgb.clamp(0, 1), new_alpha.clamp(0, 1)])


def blend_sequence(image: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """``(1 - a m) image + a m patch`` clamped to [0, 1] for every alpha: (N, 3, H, W) from (3,H,W), (3,H,W), (H,W).

    Only the bounding box of the mask's non-zero pixels changes with alpha: there the blend is
    computed per step; every pixel outside it is the same expression with the weight ``+0`` (so a
    patch's NaN still shows), computed once and copied into each step. That is bit for bit the
    expression over the whole image wherever ``a m`` is ``+0`` outside the box, as it is for
    non-negative alphas and a mask of ``+0`` there (a canvas of zeros around a patch); for a patch
    covering a sixteenth of the image it writes each step's pixels once instead of in six passes.
    """
    nonzero = mask != 0  # NaN counts as non-zero: it stays inside the box
    rows = torch.nonzero(nonzero.any(dim=1))[:, 0]
    cols = torch.nonzero(nonzero.any(dim=0))[:, 0]
    zero = torch.zeros_like(mask, dtype=torch.promote_types(alphas.dtype, mask.dtype))  # a m's dtype, +0
    images = ((1 - zero) * image + zero * patch).clamp(0, 1)[None].repeat(alphas.shape[0], 1, 1, 1)
    if rows.numel():
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        weight = alphas[:, None, None, None] * mask[box][None, None]
        inside = (1 - weight) * image[:, box[0], box[1]][None] + weight * patch[:, box[0], box[1]][None]
        images[:, :, box[0], box[1]] = inside.clamp(0, 1)
    return images


def choose_position(
    height: int, width: int, patch_hw: tuple[int, int], avoid: torch.Tensor | None, generator: torch.Generator
) -> tuple[int, int]:
    """Uniformly random (top, left) for a patch inside the image whose centre avoids ``avoid``."""
    ph, pw = patch_hw
    n_top, n_left = height - ph + 1, width - pw + 1
    if avoid is None:
        flat = int(torch.randint(n_top * n_left, (1,), generator=generator))
    else:
        centres_y = torch.arange(n_top) + ph // 2
        centres_x = torch.arange(n_left) + pw // 2
        allowed = ~avoid.cpu()[centres_y][:, centres_x]
        options = torch.nonzero(allowed.flatten())[:, 0]
        if options.numel() == 0:
            raise InvalidParameterError(
                f"avoid covers every possible centre of a {ph}x{pw} patch in a "
                f"{height}x{width} image; shrink `avoid` or `scale`"
            )
        flat = int(options[torch.randint(options.numel(), (1,), generator=generator)])
    return flat // n_left, flat % n_left


def _check_patch(patch: Any, mask: Any) -> tuple[torch.Tensor | None, str]:
    """Normalise the ``patch``/``mask`` parameters to an RGBA float tensor (4, h, w) (or None)."""
    if patch is None:
        if mask is not None:
            raise InvalidParameterError("mask is only used together with an RGB `patch` tensor; got mask but no patch")
        return None, "procedural"
    if isinstance(patch, (str, Path)):
        if mask is not None:
            raise InvalidParameterError("mask cannot be combined with a patch file; use a PNG with alpha")
        return load_rgba(patch), str(patch)
    if not isinstance(patch, torch.Tensor):
        raise ParameterTypeError(
            f"patch must be None, a path or a tensor (4, h, w) / (3, h, w), got {type(patch).__name__}"
        )
    if patch.dim() != 3 or patch.shape[0] not in (3, 4) or patch.numel() == 0:
        raise InvalidParameterError(
            f"patch must have shape (4, h, w) RGBA or (3, h, w) RGB with a mask, got {tuple(patch.shape)}"
        )
    if not patch.is_floating_point():
        raise InvalidParameterError(f"patch must be a float tensor in [0, 1], got {patch.dtype}")
    if not torch.isfinite(patch).all() or patch.min() < 0 or patch.max() > 1:
        raise InvalidParameterError(
            f"patch must hold values in [0, 1], got range [{float(patch.min()):.3g}, {float(patch.max()):.3g}]"
        )
    patch = patch.detach().float().cpu()
    if patch.shape[0] == 4:
        if mask is not None:
            raise InvalidParameterError("mask must not be given for an RGBA patch (its alpha is the mask)")
        return patch, "tensor"
    if mask is None:
        raise InvalidParameterError("an RGB patch (3, h, w) needs a `mask` (h, w); or pass an RGBA patch")
    mask = as_mask(mask, "mask", size=tuple(patch.shape[1:])).detach().float().cpu()
    return torch.cat([patch, mask[None]]), "tensor"


def _position(value: Any, name: str) -> tuple[int, int] | None:
    """None, or (top, left) as non-negative integers."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InvalidParameterError(f"{name} must be None or (top, left) non-negative integer pixels, got {value!r}")
    return check_int(value[0], f"{name}[0] (top)", minimum=0), check_int(value[1], f"{name}[1] (left)", minimum=0)


def _avoid(value: Any, name: str) -> torch.Tensor | None:
    """None, or a bool (H, W) mask: a bool or float tensor (True where >= 0.5) or a mask file."""
    return None if value is None else as_mask(value, name) >= 0.5


@dataclass(frozen=True)
class AlphaPatchParams(Parameters):
    """The parameters of :class:`AlphaPatchSource` (see its docstring)."""

    patch: Any = parameter(
        None, "RGBA tensor (4, h, w), RGB (3, h, w) with `mask`, or an image file; None: a sticker drawn from the seed"
    )
    mask: Any = parameter(None, "segmentation (h, w) of an RGB `patch`, bool or float in [0, 1]")
    steps: int = steps_parameter(21, "number of alpha values, evenly spaced from 0 to 1")
    position: tuple[int, int] | None = parameter(
        None, "(top, left) of the patch in pixels; None: a random position from the seed", parse=_position
    )
    scale: float | None = parameter(
        0.25,
        "the patch's longer side as a fraction of the image's shorter side; None: the patch's own size",
        bounds="(0, 1]",
        hint="a fraction of the image's shorter side, or None for the patch's own size",
    )
    avoid: Any = parameter(
        None, "mask (H, W) or mask file of pixels the random patch centre avoids (e.g. the lesion)", parse=_avoid
    )

    def check(self) -> None:
        """``avoid`` only applies to random positions."""
        if self.position is not None and self.avoid is not None:
            raise InvalidParameterError("avoid only applies to random positions; pass position or avoid, not both")


class AlphaPatchSource(InterventionSource):
    """Blend a (colourful) patch into the image with alpha rising from 0 to 1.

    Args:
        patch: RGBA tensor (4, h, w) in [0, 1]; or RGB (3, h, w) with ``mask``; or a path to an
            image file (its alpha channel is the mask). None draws a procedural colourful sticker
            from the seed.
        mask: Segmentation (h, w) or (1, h, w), bool or float in [0, 1], for an RGB ``patch``.
        steps: Number of alpha values, evenly spaced from 0 to 1 (2 to
            :data:`propgrad.core.validation.MAX_STEPS`).
        position: (top, left) of the patch in pixels; None picks a random position from the seed.
        scale: The patch's longer side as a fraction (0, 1] of the image's shorter side; None keeps
            the patch's own pixel size.
        avoid: Optional (H, W) mask (bool, float >= 0.5, or a path) of pixels where the patch's
            centre may not go when the position is random (e.g. the lesion).
    """

    name = "alpha_patch"
    description = "Alpha-blend a segmented colourful patch into the image (alpha 0 -> 1)."
    property_name = "alpha"
    unit = "fraction"
    Params = AlphaPatchParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.rgba, self.patch_source = _check_patch(self.params.patch, self.params.mask)
        self._stickers: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _patch_for(self, height: int, width: int, generator: torch.Generator, seed: int | None = None) -> torch.Tensor:
        """The RGBA patch for an image of ``height`` x ``width``: the given one resized, or a sticker drawn
        from ``generator`` (freshly seeded with ``seed`` when it is given, which lets the sticker be memoised)."""
        if self.rgba is None:
            side = STICKER_SIZE if self.scale is None else max(1, round(self.scale * min(height, width)))
            return sticker_patch(side, generator) if seed is None else self._sticker(side, seed, generator)
        if self.scale is None:
            return self.rgba
        longest = max(1, round(self.scale * min(height, width)))
        h, w = self.rgba.shape[1:]
        size = (max(1, round(h * longest / max(h, w))), max(1, round(w * longest / max(h, w))))
        return resize_rgba(self.rgba, size)

    def _sticker(self, side: int, seed: int, generator: torch.Generator) -> torch.Tensor:
        """:func:`sticker_patch` of ``side`` from ``generator``, freshly seeded with ``seed``, memoised.

        The sticker and the generator's state after drawing it are functions of ``(side, seed)``, and
        every image of a batch is explained with the same seed: the first draw is kept (the last
        :data:`STICKER_MEMO` of them), and a later one returns it and leaves the generator where the
        draw would have, so the position drawn next is the same. The patch is only ever read.
        """
        key = (side, seed)
        kept = self._stickers.get(key)
        if kept is None:
            patch = sticker_patch(side, generator)
            if len(self._stickers) >= STICKER_MEMO:
                self._stickers.pop(next(iter(self._stickers)))
            self._stickers[key] = (patch, generator.get_state())
            return patch
        patch, state = kept
        generator.set_state(state)
        return patch

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """Blend the patch in at ``steps`` alphas from 0 to 1; see the class docstring."""
        check_sequence_size(self.steps, image)
        height, width = image.shape[1:]
        generator = torch.Generator().manual_seed(int(seed))
        patch = self._patch_for(height, width, generator, int(seed))
        ph, pw = patch.shape[1:]
        if ph > height or pw > width:
            raise InvalidParameterError(
                f"patch ({ph}x{pw}) is larger than the image ({height}x{width}); pass a scale in (0, 1]"
            )
        if self.avoid is not None and tuple(self.avoid.shape) != (height, width):
            raise InvalidParameterError(
                f"avoid must match the image size ({height}, {width}), got {tuple(self.avoid.shape)}"
            )
        if self.position is None:
            top, left = choose_position(height, width, (ph, pw), self.avoid, generator)
        else:
            top, left = self.position
            if top + ph > height or left + pw > width:
                raise InvalidParameterError(
                    f"position ({top}, {left}) puts the {ph}x{pw} patch outside the "
                    f"{height}x{width} image; top must be <= {height - ph} and "
                    f"left <= {width - pw}"
                )
        canvas = torch.zeros(4, height, width, dtype=image.dtype, device=image.device)
        canvas[:, top : top + ph, left : left + pw] = patch.to(device=image.device, dtype=image.dtype)
        alphas = torch.linspace(0, 1, self.steps, dtype=image.dtype, device=image.device)
        images = blend_sequence(image, canvas[:3], canvas[3], alphas)
        return InterventionSequence(
            images=images,
            values=alphas,
            property_name=self.property_name,
            unit=self.unit,
            metadata={
                "position": [top, left],
                "scale": self.scale,
                "patch_size": [ph, pw],
                "patch": self.patch_source,
                "seed": int(seed),
            },
            region=canvas[3] > 0,
        )


@hookimpl
def register_sources(register: Any) -> None:
    """Register :class:`AlphaPatchSource`."""
    register(AlphaPatchSource)
