"""The contract every intervention source fulfils.

A source turns one [0, 1] RGB image tensor of shape (3, H, W) into an ordered sequence of images
in which only one property changes, gradually. Sources are classes registered through the
``register_sources`` hook; their metadata are class attributes and their parameters are declared
once (a :class:`~propgrad.plugins.parameters.Parameters` dataclass set as ``Params``), so
``propgrad explain --param key=value`` and ``propgrad plugins`` can read them. A source written with
plain constructor keyword arguments keeps working.

:meth:`InterventionSource.generate` is a template method: it checks the image and the seed once,
calls the subclass's :meth:`~InterventionSource._generate`, and checks the produced sequence once,
so that a NaN or an out-of-range pixel a source produces is reported as that source's fault.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from propgrad.errors import InvalidParameterError, ParameterTypeError, PropgradError
from propgrad.plugins.parameters import Configurable

#: True while a source's generate runs: its sequence's pixels are checked once, after it returns.
_PIXELS_CHECKED_BY_SOURCE: ContextVar[bool] = ContextVar("propgrad_pixels_checked_by_source", default=False)


class SourceError(PropgradError, ValueError):
    """An intervention source produced something unusable (NaN pixels, not a sequence); names the source."""


@dataclass(frozen=True)
class InterventionSequence:
    """An ordered sequence of intervened images.

    Attributes:
        images: Float tensor (N, 3, H, W) in [0, 1]; ``images[0]`` is the least intervened step.
        values: Float tensor (N,) of property values, strictly increasing.
        property_name: Human-readable name of the property that changes ("alpha", "angle").
        unit: Unit of ``values`` ("fraction", "degree", "guidance scale").
        periodic: True when the sequence wraps around (a full turn), so that the step after the
            last one is the first one.
        metadata: Free-form, JSON-serialisable details (patch position, seed, file names ...).
        region: Optional bool tensor (H, W), True where the intervention changes the image (the
            patch of ``alpha_patch``, the darkened background of ``gaussian_vignette``), on the
            images' device; None when the source does not say. Quantus's localisation metrics take
            it as ``s_batch`` (:func:`propgrad.explain.quantus.s_batch`).
    """

    images: torch.Tensor
    values: torch.Tensor
    property_name: str
    unit: str
    periodic: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    region: torch.Tensor | None = None

    def __post_init__(self) -> None:
        """Check the sequence's structure; its pixels only when no source will check them.

        The shapes, dtypes, values and region are always checked (cheap: nothing scans the images).
        The pixels (finite, in [0, 1]) are scanned once: a sequence built inside a source's
        :meth:`InterventionSource.generate` is scanned by ``generate`` after the source returns, so
        a fault is reported naming the source; a sequence built by hand (a suite's, a placebo, a
        user's) is scanned here, one pass over the images.
        """
        from propgrad.core.validation import check_images, check_values

        if _PIXELS_CHECKED_BY_SOURCE.get():
            _check_structure(self.images, "InterventionSequence.images")
        else:
            check_images(self.images, "InterventionSequence.images", batched=True)
        check_values(self.values, self.images.shape[0], "InterventionSequence.values")
        if self.region is not None:
            size = tuple(self.images.shape[-2:])
            if not isinstance(self.region, torch.Tensor) or self.region.dtype != torch.bool:
                got = (
                    f"dtype {self.region.dtype}"
                    if isinstance(self.region, torch.Tensor)
                    else type(self.region).__name__
                )
                raise ParameterTypeError(
                    f"InterventionSequence.region must be a bool tensor {size} (e.g. mask >= 0.5) or None, got {got}"
                )
            if tuple(self.region.shape) != size:
                raise InvalidParameterError(
                    f"InterventionSequence.region must have the images' size {size}, got {tuple(self.region.shape)}"
                )
            if self.region.device != self.images.device:
                raise InvalidParameterError(
                    f"InterventionSequence.region is on {self.region.device} but the images on {self.images.device}"
                )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def pixel_change(self) -> float:
        """How far the sequence moves the image, measured without any model.

        Scores of two properties are per step, so comparing them says more when their
        interventions change the image by similar amounts.

        Returns:
            The largest mean absolute per-pixel, per-channel difference between a step and the
            first image (for a sequence that intervenes ever more strongly, the final step's).
        """
        return largest_pixel_change(self.images)


def largest_pixel_change(images: torch.Tensor) -> float:
    """The largest mean absolute per-pixel, per-channel difference between an image of ``images``
    (N, C, H, W) and the first: :meth:`InterventionSequence.pixel_change` of a sequence of them."""
    diffs = (images - images[:1]).abs().flatten(start_dim=1).mean(dim=1)
    return float(diffs.max())


def _check_structure(images: Any, name: str) -> None:
    """The checks of ``check_images(batched=True)`` that do not read the pixels: type, shape, dtype, size."""
    from propgrad.core.validation import check_images

    if (
        not isinstance(images, torch.Tensor)
        or images.dim() != 4
        or images.shape[1] != 3
        or images.numel() == 0
        or not images.is_floating_point()
    ):
        check_images(images, name, batched=True)  # fails with the full check's message


class InterventionSource(Configurable, ABC):
    """Base class of intervention sources.

    Subclasses set the class attributes, declare their parameters as ``Params`` (a frozen
    :class:`~propgrad.plugins.parameters.Parameters` dataclass; the instance holds them as
    ``self.params``) and implement :meth:`_generate`. :meth:`generate` checks the image and the seed
    before, and the produced sequence after (finite pixels in [0, 1]), naming the source when its
    output is at fault. A subclass written against the older contract, with constructor keyword
    arguments and its own ``generate``, keeps working: its ``generate`` is wrapped in the same
    checks. Invalid parameters raise :class:`~propgrad.errors.InvalidParameterError` naming the
    parameter and what was expected.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    property_name: ClassVar[str] = ""
    unit: ClassVar[str] = "step"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a ``generate`` a subclass defines itself (the older contract) in the template's checks."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("generate")
        if own is not None and not getattr(own, "_propgrad_checked", False):
            cls.generate = _checked(own)  # type: ignore[method-assign]
            if getattr(cls._generate, "__isabstractmethod__", False):  # its generate does the work
                cls._generate = own  # type: ignore[method-assign]

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        """Produce the ordered intervention sequence for one image.

        Args:
            image: Float tensor (3, H, W) in [0, 1].
            seed: Seed for every random choice, so the same seed gives the same sequence.
            show_progress: Show a progress bar if generation is slow.

        Returns:
            The sequence, on the same device as ``image``.

        Raises:
            InvalidParameterError: A bad image or seed.
            SourceError: The source returned no sequence, or pixels that are NaN, Inf or outside [0, 1].
        """
        return _run_checked(self, type(self)._generate, image, seed, show_progress)

    def generate_trusted(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """:meth:`generate` for a caller that checked ``image``, ``seed`` and ``show_progress`` at its own door.

        The explainer and the benchmark check their images once, for every source; this runs the
        source's work and checks only what it produced, so an image is not checked twice.

        Args:
            image: Float tensor (3, H, W) in [0, 1], already checked.
            seed: An int in [0, 2**63 - 1], already checked.
            show_progress: A bool, already checked.

        Returns:
            The sequence, its pixels checked.

        Raises:
            SourceError: As :meth:`generate`.
        """
        method = type(self).generate
        own = getattr(method, "__wrapped__", None) if getattr(method, "_propgrad_checked", False) else None
        return _run_work(self, own or type(self)._generate, image, seed, show_progress)

    @abstractmethod
    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """The source's own work: the sequence for an image already checked.

        Args:
            image: Float tensor (3, H, W) in [0, 1], checked.
            seed: The seed, checked (an int in [0, 2**63 - 1]).
            show_progress: Show a progress bar if generation is slow.

        Returns:
            The sequence, on the same device as ``image``; its pixels are checked by :meth:`generate`.
        """


def _checked(own: Callable[..., Any]) -> Callable[..., InterventionSequence]:
    """A subclass's own ``generate`` run inside the template's checks."""

    @functools.wraps(own)
    def generate(self: InterventionSource, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> Any:
        return _run_checked(self, own, image, seed, show_progress)

    generate._propgrad_checked = True  # type: ignore[attr-defined]
    return generate


def _run_checked(
    source: InterventionSource, work: Callable[..., Any], image: Any, seed: Any, show_progress: Any
) -> InterventionSequence:
    """Check the image and seed, run ``work``, check what it produced (the template method's body)."""
    from propgrad.core.validation import check_bool, check_images, check_seed

    image = check_images(image, "image", batched=False)
    seed = check_seed(seed)
    show_progress = check_bool(show_progress, "show_progress")
    return _run_work(source, work, image, seed, show_progress)


def _run_work(
    source: InterventionSource, work: Callable[..., Any], image: torch.Tensor, seed: int, show_progress: bool
) -> InterventionSequence:
    """Run a source's work on a checked image and check the sequence it produced."""
    with _pixels_checked_by_source():
        sequence = work(source, image, seed=seed, show_progress=show_progress)
    return check_produced(source, sequence)


@contextmanager
def _pixels_checked_by_source() -> Iterator[None]:
    token = _PIXELS_CHECKED_BY_SOURCE.set(True)
    try:
        yield
    finally:
        _PIXELS_CHECKED_BY_SOURCE.reset(token)


def check_produced(source: Any, sequence: Any) -> InterventionSequence:
    """``sequence`` if it is an :class:`InterventionSequence` of finite pixels in [0, 1], else a :class:`SourceError`.

    Args:
        source: The source that produced it (named in the message).
        sequence: What its ``generate`` returned.

    Raises:
        SourceError: Naming the source, the step and what is wrong.
    """
    cls = type(source)
    who = f"source {getattr(cls, 'name', '') or cls.__name__!r} ({cls.__module__}.{cls.__qualname__})"
    if not isinstance(sequence, InterventionSequence):
        raise SourceError(f"{who} returned {type(sequence).__name__}, not an InterventionSequence")
    images = sequence.images
    low, high = torch.aminmax(images)  # one pass; NaN propagates and an Inf is out of range
    lo, hi = float(low), float(high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = torch.isfinite(images).flatten(1).all(dim=1)
        if not bool(finite.all()):
            step = int(torch.nonzero(~finite)[0])
            raise SourceError(
                f"{who} produced NaN or Inf pixels at step {step} of {len(sequence)}: a fault of the source "
                "(or of its parameters), not of the model"
            )
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise SourceError(f"{who} produced pixels outside [0, 1] (range [{lo:.3g}, {hi:.3g}]); sources must clamp")
    return sequence
