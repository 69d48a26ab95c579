"""The ``hue_shift`` intervention source: rotate an image's hue from 0 to ``max_degrees``."""

from __future__ import annotations

import torch

from propgrad.core.validation import (
    ParameterTypeError,
    check_images,
    check_number,
    check_seed,
    check_sequence_size,
    check_steps,
)
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad_hue_shift.hue import rotate_hue


class HueShiftSource(InterventionSource):
    """Rotate the hue of the image (or of the masked object) by 0 .. ``max_degrees`` degrees.

    Works in HSV space, so saturation and brightness stay as they are and grey pixels do not
    change. With ``max_degrees=360`` the sweep is a full turn: the values are 0, 360/N, ...,
    360 - 360/N (360 itself would repeat the original image) and the sequence is periodic.
    Numbers may be given as text (``"180"``), as typed on a command line.

    Args:
        max_degrees: Largest rotation, in (0, 360].
        steps: Number of images in the sequence, 2 to :data:`propgrad.core.validation.MAX_STEPS`.
        mask: Optional (H, W) or (1, H, W) float tensor in [0, 1] (or bool); only where it is
            1 does the hue change, soft values blend. None changes the whole image.
    """

    name = "hue_shift"
    description = "Rotate the image's hue (HSV) in equal steps, optionally only inside a mask"
    property_name = "hue rotation"
    unit = "degree"

    def __init__(self, max_degrees: float = 360.0, steps: int = 16, mask: torch.Tensor | None = None) -> None:
        self.max_degrees = check_number(
            max_degrees, "max_degrees", minimum=0.0, maximum=360.0, min_inclusive=False, strings=True
        )
        if isinstance(steps, float) and steps.is_integer():  # 16.0 is 16 steps
            steps = int(steps)
        self.steps = check_steps(steps, strings=True)
        if mask is not None and not isinstance(mask, torch.Tensor):
            raise ParameterTypeError(f"mask must be a torch.Tensor of shape (H, W) or None, got {type(mask).__name__}")
        self.mask = mask

    @property
    def periodic(self) -> bool:
        """True when the sweep covers a full turn."""
        return self.max_degrees == 360.0

    def values(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """The rotation angles in degrees, strictly increasing, one per step."""
        if self.periodic:
            return torch.arange(self.steps, dtype=dtype, device=device) * (360.0 / self.steps)
        return torch.linspace(0.0, self.max_degrees, self.steps, dtype=dtype, device=device)

    def _mask_for(self, image: torch.Tensor) -> torch.Tensor | None:
        if self.mask is None:
            return None
        mask = self.mask.to(device=image.device)
        if mask.dim() == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if tuple(mask.shape) != tuple(image.shape[-2:]):
            raise ValueError(
                f"mask must have shape {tuple(image.shape[-2:])} (the image's H, W) or (1, H, W), "
                f"got {tuple(self.mask.shape)}"
            )
        mask = mask.to(image.dtype)
        if not bool(torch.isfinite(mask).all()) or float(mask.min()) < 0 or float(mask.max()) > 1:
            raise ValueError("mask must hold finite values in [0, 1]")
        return mask

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        """Produce the hue-rotation sequence for one image.

        Args:
            image: Float tensor (3, H, W) in [0, 1].
            seed: Unused (the intervention is deterministic); recorded in the metadata.
            show_progress: Accepted for the source interface; the steps are computed in one call.

        Returns:
            The sequence on ``image``'s device; ``values`` are the angles in degrees.
        """
        check_images(image, "image", batched=False)
        seed = check_seed(seed)
        check_sequence_size(self.steps, image)
        mask = self._mask_for(image)
        values = self.values(image.dtype, image.device)
        rotated = rotate_hue(image, values)  # every step in one vectorised call
        frames = rotated if mask is None else mask * rotated + (1 - mask) * image
        metadata = {
            "max_degrees": self.max_degrees,
            "steps": self.steps,
            "masked_fraction": 1.0 if mask is None else float(mask.mean()),
            "seed": seed,
        }
        return InterventionSequence(
            images=frames.clamp(0.0, 1.0),
            values=values,
            property_name=self.property_name,
            unit=self.unit,
            periodic=self.periodic,
            metadata=metadata,
        )
