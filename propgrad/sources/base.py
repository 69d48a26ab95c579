"""The contract every intervention source fulfils.

A source turns one [0, 1] RGB image tensor of shape (3, H, W) into an ordered sequence of images
in which only one property changes, gradually. Sources are classes registered through the
``register_sources`` hook; their metadata are class attributes and their parameters are
constructor keyword arguments, so ``propgrad explain --param key=value`` can set them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch


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
        from propgrad.core.validation import check_images, check_values

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
                raise TypeError(
                    f"InterventionSequence.region must be a bool tensor {size} (e.g. mask >= 0.5) or None, got {got}"
                )
            if tuple(self.region.shape) != size:
                raise ValueError(
                    f"InterventionSequence.region must have the images' size {size}, got {tuple(self.region.shape)}"
                )
            if self.region.device != self.images.device:
                raise ValueError(
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
        diffs = (self.images - self.images[:1]).abs().flatten(start_dim=1).mean(dim=1)
        return float(diffs.max())


class InterventionSource(ABC):
    """Base class of intervention sources.

    Subclasses set the class attributes and implement :meth:`generate`. Constructor keyword
    arguments are the source's parameters; invalid ones raise ``ValueError`` naming the parameter
    and what was expected.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    property_name: ClassVar[str] = ""
    unit: ClassVar[str] = "step"

    @abstractmethod
    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        """Produce the ordered intervention sequence for one image.

        Args:
            image: Float tensor (3, H, W) in [0, 1].
            seed: Seed for every random choice, so the same seed gives the same sequence.
            show_progress: Show a progress bar if generation is slow.

        Returns:
            The sequence, on the same device as ``image``.
        """
