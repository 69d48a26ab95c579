"""Placebo sequences: change the image as much as a real intervention does, but not along its property.

The placebo-controlled test (:mod:`propgrad.stats.placebo_test`) compares a model's reaction to a real
intervention with its reactions to M placebo interventions. A placebo starts from the same first
image, has the same number of steps and the same property values, and changes the image by the
same **amount** at every step, but in a random direction unrelated to the property.

Amount of change. The change of step i is the mean absolute per-pixel, per-channel difference
between consecutive images, ``mean |I_i - I_(i-1)|`` (:func:`step_changes`; the same measure as
:meth:`propgrad.sources.base.InterventionSequence.pixel_change`, per step instead of from the
first image). The mean absolute difference (L1) is used rather than the L2 norm because a local
intervention (a patch covering 5 % of the image) and a global one (a faint brightness shift) of
the same L1 change move the same total "ink", whereas L2 favours the concentrated one: a patch that
changes 5 % of the pixels by 0.2 and a global shift of 0.01 have equal L1 change but the patch has
~4.5 times the RMS change. L1 is also what an 8-bit image's levels count.

Variants:

- ``"smooth_direction"``: placebo m draws a smooth random field ``D_m`` (3, H, W): standard normal
  noise on a coarse ``grid`` x ``grid`` lattice per channel, upsampled bilinearly to (H, W) and
  scaled to ``mean |D_m| = 1`` (:func:`smooth_direction`). Its steps are ``R(I_0 + s_i D_m)``
  with ``s_0 = 0 < s_1 < ... < s_(N-1)``.
- ``"region"``: the same, with ``D_m`` set to zero outside a randomly placed copy of the real
  intervention's changed-pixel region: the pixels whose value differs from the first image by more
  than ``mask_threshold`` at some step, shifted cyclically (``torch.roll``) by a random offset,
  so the region keeps its shape and exact area. It asks whether the property matters more than
  changing the same amount of pixels somewhere else.

Clipping. ``I_0 + s D`` leaves [0, 1] where a pixel meets a bound; ``R`` reflects it back (a
triangle wave, ``R(x) = x`` on [0, 1], ``R(1 + e) = 1 - e``, ``R(-e) = e``): where the pixel would
leave, the direction's sign flips, so the pixel keeps moving at the same speed instead of sticking.
A reflected step changes a pixel by at most the unclipped step (``R`` is 1-Lipschitz), so each
``s_i`` is found by a bracketed root search (false position with bisection) on
``mean |R(I_0 + s_i D) - X_(i-1)| = d_i``, the real step's change, starting from the unclipped
solution ``s_(i-1) + d_i``. The match is computed on the returned images (in their dtype) and
holds within ``rtol * d_i + eps`` (``rtol = 1e-4`` by default, eps of the image dtype); a step the
placebo cannot match (a real step changing the image by more than any reflected direction can, e.g.
a cut to a different image) raises ``ValueError``.

Seeding: a CPU ``torch.Generator`` seeded with ``seed`` draws the placebos one after another (the
field, then for "region" the offset), so the same seed gives the same placebos on every device,
and placebo m does not depend on how many are drawn, nor on how many at a time: a
:class:`PlaceboPool` draws them on demand, in chunks (the sequential placebo test stops drawing
once an image's verdict is known), and gives the same images as drawing all M at once. Work runs
on the image's device: the pixels in the sequence's dtype (float32 for half precision, whose
candidates are rounded before they are measured), the step sizes in float64 (float32 on MPS, which
has no float64); the images come back in the sequence's dtype. On the CPU, float32 and float64
images are drawn by a compiled kernel (:mod:`propgrad.sources.placebo_kernel`, about five times
faster): the same search and the same candidate pixels, with each candidate's change summed in
float64, so its placebos agree with the torch path's within the tolerance, not bit for bit.

Periodic sequences (a full rotation, whose last step wraps to the first) are refused: a placebo
along one direction cannot return to its start with every step's change matched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from propgrad.core.validation import Bounds, check_choice, check_int, check_number, check_seed, check_sequence_size
from propgrad.errors import InvalidParameterError
from propgrad.sources.base import InterventionSequence
from propgrad.stats.settings import PLACEBO_VARIANTS

__all__ = [
    "VARIANTS",
    "PlaceboDraw",
    "PlaceboPool",
    "StepsBuffer",
    "changed_region",
    "draw_along",
    "draw_placebo_images",
    "draw_placebos",
    "placebo_draw",
    "placebo_images",
    "placebo_sequences",
    "reflect_unit",
    "smooth_direction",
    "step_changes",
]

VARIANTS = PLACEBO_VARIANTS
"""The placebo constructions of :func:`placebo_images`."""

Variant = Literal["smooth_direction", "region"]

#: The step search's limits (both paths): a bracket widens up to 2**60 times the unclipped step; false position
#: stops after 100 iterations.
MAX_DOUBLINGS = 60
MAX_ITERATIONS = 100


def _work_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (not MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _pixel_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype placebo pixels are computed in: the images' own for float32 and float64, float32
    for half precision (whose candidates are then rounded to it before they are measured)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def reflect_unit(x: torch.Tensor) -> torch.Tensor:
    """Fold values into [0, 1] by reflection at the bounds (a triangle wave of period 2; identity on [0, 1])."""
    y = torch.remainder(x, 2.0)
    return torch.where(y <= 1, y, 2 - y)


def step_changes(images: torch.Tensor) -> torch.Tensor:
    """The change of every step: ``mean |I_i - I_(i-1)|`` over channels and pixels, for i = 1 .. N-1.

    Args:
        images: Float tensor (N, 3, H, W) (an :class:`InterventionSequence`'s ``images``), N >= 1.

    Returns:
        Tensor (N - 1,), in float64 (float32 on MPS), on the images' device.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        got = f"shape {tuple(images.shape)}, dtype {images.dtype}" if isinstance(images, torch.Tensor) else type(images)
        raise InvalidParameterError(f"images must be a float tensor (N, 3, H, W), got {got}")
    work = images.to(_work_dtype(images.device))
    return (work[1:] - work[:-1]).abs().flatten(start_dim=1).mean(dim=1)


def smooth_direction(
    height: int, width: int, generator: torch.Generator, *, grid: int = 4, channels: int = 3, count: int | None = None
) -> torch.Tensor:
    """Smooth random fields on the CPU, float64, each scaled to ``mean |D| = 1``.

    Standard normal values on a ``min(grid, H)`` x ``min(grid, W)`` lattice per channel (drawn from
    ``generator``, one field after another), upsampled bilinearly (corners aligned). ``grid = 1``
    gives a constant colour shift per channel; larger grids give finer, blotchier directions.

    Args:
        height: H.
        width: W.
        generator: CPU generator the lattice values are drawn from.
        grid: Coarse lattice size.
        channels: Channels per field.
        count: None for one field (channels, H, W); else that many fields (count, channels, H, W),
            field j equal to the j-th single field drawn from the same generator state.
    """
    height = check_int(height, "height")
    width = check_int(width, "width")
    grid = check_int(grid, "grid", hint="the coarse lattice size of the random direction (4: a few blobs)")
    m = 1 if count is None else check_int(count, "count")
    gh, gw = min(grid, height), min(grid, width)
    coarse = torch.stack([torch.randn(channels, gh, gw, generator=generator, dtype=torch.float64) for _ in range(m)])
    fields = _upsample(coarse, height, width)
    return fields[0] if count is None else fields


def _upsample(coarse: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Lattice values (M, channels, gh, gw) upsampled bilinearly to (M, channels, H, W), each scaled to mean |D| = 1."""
    m, channels, gh, gw = coarse.shape
    if (gh, gw) == (1, 1):
        fields = coarse.expand(m, channels, height, width).contiguous()
    else:
        fields = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=True)
    scale = fields.abs().flatten(start_dim=1).mean(dim=1)[:, None, None, None]
    # (probability zero) a field of no change becomes a constant one
    return torch.where(scale > 0, fields / scale.clamp_min(torch.finfo(fields.dtype).tiny), 1.0)


def changed_region(images: torch.Tensor, threshold: float = 1e-3) -> torch.Tensor:
    """Bool mask (H, W) of the pixels whose value (any channel) differs from the first image's by more than
    ``threshold`` at some step (``images``: (N, 3, H, W))."""
    threshold = check_number(threshold, "mask_threshold", Bounds(minimum=0.0), hint="a pixel difference in [0, 1]")
    return ((images - images[:1]).abs() > threshold).any(dim=0).any(dim=0)


def _check_sequence(sequence: Any) -> InterventionSequence:
    if not isinstance(sequence, InterventionSequence):
        raise InvalidParameterError(f"sequence must be an InterventionSequence, got {type(sequence).__name__}")
    if sequence.periodic:
        raise InvalidParameterError(
            f"sequence is periodic ({sequence.property_name!r} wraps around from the last step to the first): "
            "placebo sequences of periodic interventions are not supported, since a placebo along one direction "
            "cannot return to its start with every step's change matched"
        )
    return sequence


@dataclass(frozen=True)
class _Directions:
    """What every step of a chunk of placebos shares: the first image (3, H, W) and the directions
    (M, 3, H, W) in the pixel dtype (:func:`_pixel_dtype` of ``dtype``), the images' ``dtype`` and
    the tolerance ``rtol``."""

    start: torch.Tensor
    directions: torch.Tensor
    dtype: torch.dtype
    rtol: float


def _match_step(
    along: _Directions, prev: torch.Tensor, s_prev: torch.Tensor, slope: torch.Tensor, target: float, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (M, 3, H, W), s (M,))`` with ``mean |image_m - prev_m| = target`` within tolerance.

    ``prev`` (M, 3, H, W) is in the pixel dtype; candidates are rounded to ``along.dtype`` before
    they are measured, so the match holds on the images as returned. ``s_prev`` (M,) and
    the search run in the work dtype (float64, float32 on MPS). The first candidate is
    ``s_prev + slope * target``, ``slope`` (M,) the previous step's ``ds / change`` (1 unclipped;
    reflection makes it larger), so a step whose reflections barely change is matched at once.
    """
    start, directions, dtype, rtol = along.start, along.directions, along.dtype, along.rtol
    pixel = start.dtype
    tol = rtol * target + torch.finfo(dtype).eps

    def images_at(t: torch.Tensor) -> torch.Tensor:
        images = reflect_unit(torch.addcmul(start, t.to(pixel)[:, None, None, None], directions))
        return images if dtype == pixel else images.to(dtype).to(pixel)

    def change(images: torch.Tensor) -> torch.Tensor:
        return (images - prev).abs_().flatten(start_dim=1).mean(dim=1).to(s_prev.dtype)

    # unclipped, a step of target moves the mean pixel by target (mean |D| = 1); reflection only shortens, so
    # the previous step's slope is a better first guess; a guess past the target brackets it at once
    lo = s_prev.clone()
    g_lo = torch.full_like(s_prev, -target)
    hi = s_prev + slope * target
    images = images_at(hi)
    g_hi = change(images) - target
    done = g_hi.abs() <= tol
    result, s_out = images.clone(), hi.clone()
    # widen until the change reaches the target (bracket [lo, hi] with g_lo < 0 <= g_hi): scale the step by
    # target / change (a little more, so that a concave change overshoots), by at least 1.001 * 1.2**j (so a
    # plateau is crossed) and at most 2 at a time
    for j in range(MAX_DOUBLINGS):
        short = ~done & (g_hi < 0)
        if not bool(short.any()):
            break
        reached = g_hi + target
        factor = torch.where(reached > 0, target / reached.clamp_min(1e-300) * (1 + 10 * rtol), 2.0)
        factor = factor.clamp(min(2.0, 1.001 * 1.2**j), 2.0)
        lo = torch.where(short, hi, lo)
        g_lo = torch.where(short, g_hi, g_lo)
        hi = torch.where(short, s_prev + factor * (hi - s_prev), hi)
        images = images_at(hi)
        g_hi = torch.where(short, change(images) - target, g_hi)
        hit = short & (g_hi.abs() <= tol)
        result[hit], s_out[hit] = images[hit], hi[hit]
        done |= hit
    else:
        short = ~done & (g_hi < 0)
        if bool(short.any()):
            raise InvalidParameterError(_unreachable(step, target))
    # false position, every third iteration a bisection, on the brackets not yet matched
    for iteration in range(MAX_ITERATIONS):
        active = ~done
        if not bool(active.any()):
            break
        if iteration % 3 == 2:
            t = (lo + hi) / 2
        else:
            t = hi - g_hi * (hi - lo) / (g_hi - g_lo)
            outside = ~((t > lo) & (t < hi))
            t = torch.where(outside, (lo + hi) / 2, t)
        images = images_at(t)
        g = change(images) - target
        hit = active & (g.abs() <= tol)
        result[hit], s_out[hit] = images[hit], t[hit]
        done |= hit
        below = active & ~hit & (g < 0)
        above = active & ~hit & (g > 0)
        lo, g_lo = torch.where(below, t, lo), torch.where(below, g, g_lo)
        hi, g_hi = torch.where(above, t, hi), torch.where(above, g, g_hi)
    if not bool(done.all()):
        raise InvalidParameterError(_not_converged(step, target, float(tol), int(torch.nonzero(~done)[0])))
    return result, s_out


@dataclass(frozen=True)
class PlaceboDraw:
    """How M placebo sequences are drawn, checked once (by :func:`placebo_draw`) and then trusted.

    Attributes:
        n_placebos: M, the number of placebos (>= 1).
        seed: Seed of the CPU generator drawing the directions.
        variant: ``"smooth_direction"`` or ``"region"`` (:data:`VARIANTS`).
        grid: Coarse lattice size of the random directions.
        rtol: Relative tolerance of every step's change, in (0, 0.01].
        mask_threshold: For ``"region"``: the pixel difference above which a pixel counts as changed.
    """

    n_placebos: int
    seed: int = 0
    variant: Variant = "smooth_direction"
    grid: int = 4
    rtol: float = 1e-4
    mask_threshold: float = 1e-3


def placebo_draw(
    n_placebos: int,
    *,
    seed: int = 0,
    variant: Variant = "smooth_direction",
    grid: int = 4,
    rtol: float = 1e-4,
    mask_threshold: float = 1e-3,
) -> PlaceboDraw:
    """The door of :class:`PlaceboDraw`: check every setting once (see :func:`placebo_images` for their meaning).

    Raises:
        ParameterTypeError, ValueError: bad ``n_placebos``, ``seed``, ``variant``, ``grid``, ``rtol``
            or ``mask_threshold``.
    """
    return PlaceboDraw(
        n_placebos=check_int(n_placebos, "n_placebos", hint="the number of placebo sequences M"),
        seed=check_seed(seed),
        variant=check_choice(variant, "variant", VARIANTS),
        grid=check_int(grid, "grid", hint="the coarse lattice size of the random directions (4: a few blobs)"),
        rtol=check_number(rtol, "rtol", Bounds(0.0, 0.01, min_inclusive=False), hint="a relative tolerance"),
        mask_threshold=check_number(
            mask_threshold, "mask_threshold", Bounds(minimum=0.0), hint="a pixel difference in [0, 1]"
        ),
    )


def placebo_images(
    sequence: InterventionSequence,
    n_placebos: int,
    *,
    seed: int = 0,
    variant: Variant = "smooth_direction",
    grid: int = 4,
    rtol: float = 1e-4,
    mask_threshold: float = 1e-3,
) -> torch.Tensor:
    """M placebo sequences of a real intervention, as one tensor (M, N, 3, H, W).

    Every placebo starts at ``sequence.images[0]`` and changes the image by the real sequence's
    per-step amount (:func:`step_changes`) along a random smooth direction (see the module
    docstring for the construction, the clipping and the tolerance).

    Args:
        sequence: The real intervention (not periodic).
        n_placebos: M, the number of placebos (the placebo test's p-value is at least 1 / (M + 1),
            so M >= 20 resolves alpha = 0.05 and M >= 100 resolves 0.01).
        seed: Seed of the CPU generator drawing the directions (same seed, same placebos).
        variant: ``"smooth_direction"`` (the whole image) or ``"region"`` (only a randomly
            shifted copy of the real intervention's changed-pixel region).
        grid: Coarse lattice size of the random directions (1: one colour shift per channel).
        rtol: Relative tolerance of every step's change, in (0, 0.01].
        mask_threshold: For ``"region"``: the pixel difference above which a pixel counts as changed.

    Returns:
        Float tensor (M, N, 3, H, W) in [0, 1], the sequence's dtype, on its device; ``[:, 0]``
        equals ``sequence.images[0]``.

    Raises:
        TypeError: ``sequence`` not an InterventionSequence.
        ParameterTypeError, ValueError: bad ``n_placebos``, ``seed``, ``variant``, ``grid``,
            ``rtol`` or ``mask_threshold``; a periodic sequence; too large a result
            (:func:`propgrad.core.validation.check_sequence_size`); a real step that cannot be matched.
    """
    sequence = _check_sequence(sequence)
    draw = placebo_draw(n_placebos, seed=seed, variant=variant, grid=grid, rtol=rtol, mask_threshold=mask_threshold)
    return draw_placebo_images(sequence, draw)


def draw_placebo_images(sequence: InterventionSequence, draw: PlaceboDraw) -> torch.Tensor:
    """:func:`placebo_images` with the settings checked at their door (:func:`placebo_draw`).

    The sequence is data and is checked here: a periodic one, too large a result or a real step
    that cannot be matched raise ``ValueError``.
    """
    return PlaceboPool(sequence, draw).images(0, draw.n_placebos)


class PlaceboPool:
    """The placebos of one real sequence, drawn on demand in order and kept.

    ``images(start, stop)`` gives placebos ``start .. stop - 1``, drawing those not drawn yet; they
    are the placebos :func:`placebo_images` draws with the same settings, whatever the chunks
    (placebo m's direction comes from the m-th draw of the seeded generator, and each placebo's
    steps are matched on its own). The benchmark shares one pool between the models that score the
    same image; the sequential placebo test draws only as many as an image needs.

    Args:
        sequence: The real intervention (not periodic).
        draw: The placebos' settings, checked (:func:`placebo_draw`); ``draw.n_placebos`` is the
            most that can be drawn.
        keep: Keep the drawn placebos for later requests (a pool shared by several models). False
            for a pool read once, in order (one ``attribute`` call): each request must start where
            the last one stopped, and the pool holds nothing of what it handed out (at 128 px, 100
            placebos of 31 steps are 590 MB an image).

    Raises:
        ValueError: a periodic sequence, or too large a result.
    """

    def __init__(self, sequence: InterventionSequence, draw: PlaceboDraw, *, keep: bool = True) -> None:
        self.sequence = _check_sequence(sequence)
        self.draw = draw
        self.keep = keep
        real = sequence.images
        check_sequence_size(draw.n_placebos * real.shape[0], real[0], name="n_placebos x steps")
        self._targets = step_changes(real).tolist()
        self._region: torch.Tensor | None = None
        if draw.variant == "region":
            region = changed_region(real, draw.mask_threshold)
            self._region = region.cpu() if bool(region.any()) else None  # nothing changes: no region
        self._generator = torch.Generator(device="cpu").manual_seed(draw.seed)
        self._chunks: list[tuple[int, torch.Tensor]] = []  # (index of its first placebo, their steps), in order
        self._drawn = 0

    @property
    def n_drawn(self) -> int:
        """Placebos drawn so far."""
        return self._drawn

    def images(self, start: int, stop: int) -> torch.Tensor:
        """Placebos ``start .. stop - 1`` as one tensor (stop - start, N, 3, H, W), in the sequence's
        dtype on its device (``0 <= start < stop <= n_placebos``, trusted)."""
        return with_first(self.sequence.images[0], self.steps(start, stop))

    def steps(self, start: int, stop: int, *, into: StepsBuffer | None = None) -> torch.Tensor:
        """The steps after the first of placebos ``start .. stop - 1`` (stop - start, N - 1, 3, H, W): their
        first image is the real sequence's. A view of the drawn placebos when they were drawn together
        (as the placebo test asks for them, round by round), so the model reads them without a copy.

        ``into`` (a pool that keeps nothing): draw into that buffer, whose memory the caller reuses
        from one request to the next, so the result is valid until the buffer's next use."""
        if not self.keep:
            if start != self._drawn:  # internal: the placebo test reads a pool round after round
                raise RuntimeError(f"a pool that keeps nothing is read in order: from {start}, drawn {self._drawn}")
            self._drawn = stop
            real = self.sequence.images
            out = None if into is None else into.take((stop - start, real.shape[0] - 1, *real.shape[1:]), real)
            return self._draw_steps(self._directions(stop - start), out)
        if stop > self._drawn:
            self._chunks.append((self._drawn, self._draw_steps(self._directions(stop - self._drawn))))
            self._drawn = stop
        pieces = [
            chunk[max(start - first, 0) : stop - first]
            for first, chunk in self._chunks
            if first < stop and first + chunk.shape[0] > start
        ]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def _directions(self, count: int) -> torch.Tensor:
        """The next ``count`` directions (count, 3, H, W) from the generator, in the pixel dtype on the device."""
        real = self.sequence.images
        _, _, height, width = real.shape
        grid, gen = self.draw.grid, self._generator
        gh, gw = min(grid, height), min(grid, width)
        if self._region is None:
            coarse = torch.stack([torch.randn(3, gh, gw, generator=gen, dtype=torch.float64) for _ in range(count)])
            directions = _upsample(coarse, height, width)
        else:
            fields = []
            for _ in range(count):  # the field, then its offset, placebo after placebo
                field = _upsample(torch.randn(1, 3, gh, gw, generator=gen, dtype=torch.float64), height, width)[0]
                dy = int(torch.randint(height, (1,), generator=gen))
                dx = int(torch.randint(width, (1,), generator=gen))
                field = field * torch.roll(self._region, shifts=(dy, dx), dims=(0, 1))
                fields.append(field / field.abs().mean())
            directions = torch.stack(fields)
        return directions.to(device=real.device, dtype=_pixel_dtype(real.dtype))

    def _draw_steps(self, directions: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The steps after the first (M, N - 1, 3, H, W) of the placebos along ``directions``, each change matched."""
        return draw_steps(self.sequence.images, directions, self._targets, self.draw.rtol, out)


class StepsBuffer:
    """Memory one placebo round after another is drawn into (:meth:`PlaceboPool.steps` with ``into``).

    A round of large images is hundreds of MB (80 placebos of 30 steps at 128 px: 472 MB). Drawn
    into fresh memory, the operating system faults in every page as the kernel first writes it,
    which took longer than drawing (4.1 against 1.8 ms a placebo at 128 px); drawn into this
    buffer, the pages are faulted in once per call. It grows to the largest round it is asked for.
    """

    def __init__(self) -> None:
        self._flat: torch.Tensor | None = None

    def take(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A tensor of ``shape`` in ``like``'s dtype and on its device, on the buffer's memory (its old values)."""
        numel = math.prod(shape)
        old = self._flat
        if old is None or old.dtype != like.dtype or old.device != like.device or old.numel() < numel:
            self._flat = old = None  # the old memory goes before the new is taken
            self._flat = torch.empty(numel, dtype=like.dtype, device=like.device)
        return self._flat[:numel].view(shape)


def draw_along(real: torch.Tensor, directions: torch.Tensor, targets: list[float], rtol: float) -> torch.Tensor:
    """Placebo sequences (M, N, 3, H, W) of ``real`` (N, 3, H, W) along ``directions`` (M, 3, H, W, in the pixel
    dtype), step i changing the image by ``targets[i - 1]`` within ``rtol``: :func:`draw_steps` after the real
    sequence's first image."""
    return with_first(real[0], draw_steps(real, directions, targets, rtol))


def draw_steps(
    real: torch.Tensor, directions: torch.Tensor, targets: list[float], rtol: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The steps after the first (M, N - 1, 3, H, W) of the placebos :func:`draw_along` draws: on the CPU for
    float32 and float64 images by the compiled kernel (:func:`draw_compiled`), elsewhere step by step in
    torch (:func:`draw_torch`); into ``out`` (contiguous, of that shape, ``real``'s dtype and device) if given."""
    if real.device.type == "cpu" and real.dtype in (torch.float32, torch.float64):
        return draw_compiled(real, directions, targets, rtol, out)
    return draw_torch(real, directions, targets, rtol, out)


def with_first(first: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Placebo sequences (M, N, 3, H, W): ``first`` (3, H, W), then each placebo's ``steps`` (M, N - 1, 3, H, W)."""
    return torch.cat([first.expand(steps.shape[0], 1, *first.shape), steps], dim=1)


def draw_torch(
    real: torch.Tensor, directions: torch.Tensor, targets: list[float], rtol: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`draw_steps` in torch on the images' device, all placebos of a step at once (:func:`_match_step`)."""
    n, _, height, width = real.shape
    m = directions.shape[0]
    if out is None:
        out = torch.empty(m, n - 1, 3, height, width, dtype=real.dtype, device=real.device)
    start = real[0].to(_pixel_dtype(real.dtype))
    along = _Directions(start, directions, real.dtype, rtol)
    prev = start.expand(m, -1, -1, -1)
    s = torch.zeros(m, dtype=_work_dtype(real.device), device=real.device)
    slope = torch.ones_like(s)
    for i in range(1, n):
        target = targets[i - 1]
        if target == 0:
            out[:, i - 1] = prev
            continue
        images, s_next = _match_step(along, prev, s, slope, target, i)
        slope, s = ((s_next - s) / target).clamp_min(1.0), s_next
        out[:, i - 1] = images
        prev = images
    return out


def draw_compiled(
    real: torch.Tensor, directions: torch.Tensor, targets: list[float], rtol: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`draw_steps` for float32 or float64 images on the CPU, placebo by placebo in one compiled loop
    (:func:`propgrad.sources.placebo_kernel.match_steps`: the search of :func:`_match_step`, the change of a
    candidate accumulated in float64, so the images agree with :func:`draw_torch`'s within the tolerance).

    The placebos are independent of each other, so they are split over the calling thread's torch
    threads (:func:`propgrad.stats.strategy.run_tasks`; the kernel releases the GIL) without
    changing an image."""
    from propgrad.sources import placebo_kernel
    from propgrad.stats.strategy import run_tasks, threads_available

    n, _, height, width = real.shape
    m = directions.shape[0]
    if out is None:
        out = torch.empty(m, n - 1, 3, height, width, dtype=real.dtype)
    status = torch.empty(m, 2, dtype=torch.int64)
    start = real[0].contiguous().flatten().numpy()
    along = directions.contiguous().flatten(start_dim=1).numpy()
    goals = torch.tensor(targets, dtype=torch.float64).numpy()
    images, codes, eps = out.flatten(start_dim=2).numpy(), status.numpy(), torch.finfo(real.dtype).eps
    workers = max(1, min(threads_available(), m))
    parts = [slice(m * w // workers, m * (w + 1) // workers) for w in range(workers)]

    def task(part: slice) -> None:
        placebo_kernel.match_steps(start, along[part], goals, rtol, eps, images[part], codes[part])

    run_tasks(task, parts, workers)
    failed = torch.nonzero(status[:, 0]).flatten()
    if len(failed):
        placebo = int(failed[0])
        code, step = (int(v) for v in status[placebo])
        target = targets[step - 1]
        if code == placebo_kernel.UNREACHABLE:
            raise InvalidParameterError(_unreachable(step, target))
        raise InvalidParameterError(_not_converged(step, target, rtol * target + torch.finfo(real.dtype).eps, placebo))
    return out


def _unreachable(step: int, target: float) -> str:
    return (
        f"step {step} of the sequence changes the image by {target:.4g} (mean |pixel difference| from step "
        f"{step - 1}), more than a placebo direction can change it; placebos need gradual interventions"
    )


def _not_converged(step: int, target: float, tol: float, placebo: int) -> str:
    return (
        f"could not match step {step}'s change of {target:.4g} (mean |pixel difference|) within {tol:.3g} "
        f"for placebo {placebo} after {MAX_ITERATIONS} iterations"
    )


def placebo_sequences(
    sequence: InterventionSequence,
    n_placebos: int,
    *,
    seed: int = 0,
    variant: Variant = "smooth_direction",
    grid: int = 4,
    rtol: float = 1e-4,
    mask_threshold: float = 1e-3,
) -> list[InterventionSequence]:
    """M placebo sequences of a real intervention, as :class:`InterventionSequence` objects.

    The same placebos as :func:`placebo_images` (same arguments), each with the real sequence's
    values (a copy), property name and unit, ``periodic=False``, and metadata ``{"placebo":
    variant, "placebo_index": m, "seed": seed, "grid": grid, "n_placebos": M}``.
    """
    sequence = _check_sequence(sequence)
    draw = placebo_draw(n_placebos, seed=seed, variant=variant, grid=grid, rtol=rtol, mask_threshold=mask_threshold)
    return draw_placebos(sequence, draw)


def draw_placebos(sequence: InterventionSequence, draw: PlaceboDraw) -> list[InterventionSequence]:
    """:func:`placebo_sequences` with the settings checked at their door (:func:`placebo_draw`)."""
    images = draw_placebo_images(sequence, draw)
    m = len(images)
    return [
        InterventionSequence(
            images=images[j],
            values=sequence.values.clone(),
            property_name=sequence.property_name,
            unit=sequence.unit,
            periodic=False,
            metadata={
                "placebo": draw.variant,
                "placebo_index": j,
                "seed": draw.seed,
                "grid": draw.grid,
                "n_placebos": m,
            },
        )
        for j in range(m)
    ]
