"""The ``hue_shift`` intervention source: rotate an image's hue from 0 to ``max_degrees``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from propgrad.core.validation import check_sequence_size
from propgrad.errors import InvalidParameterError
from propgrad.plugins.parameters import Parameters, parameter, steps_parameter
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad_hue_shift.hue import rotate_hue


@dataclass(frozen=True)
class HueShiftParams(Parameters):
    """The parameters of :class:`HueShiftSource`, read by its constructor, the CLI and ``propgrad plugins``."""

    lenient = True  # numbers may be given as text ("180") and whole floats as steps (16.0), as before

    max_degrees: float = parameter(360.0, "largest rotation in degrees (360: a full, periodic turn)", bounds="(0, 360]")
    steps: int = steps_parameter(16, "number of images in the sequence")
    mask: torch.Tensor | None = parameter(None, "(H, W) float mask in [0, 1]: only there does the hue change")


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
    Params = HueShiftParams

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
            raise InvalidParameterError(
                f"mask must have shape {tuple(image.shape[-2:])} (the image's H, W) or (1, H, W), "
                f"got {tuple(self.mask.shape)}"
            )
        mask = mask.to(image.dtype)
        if not bool(torch.isfinite(mask).all()) or float(mask.min()) < 0 or float(mask.max()) > 1:
            raise InvalidParameterError("mask must hold finite values in [0, 1]")
        return mask

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """Produce the hue-rotation sequence for one image (checked by ``generate``).

        Args:
            image: Float tensor (3, H, W) in [0, 1].
            seed: Unused (the intervention is deterministic); recorded in the metadata.
            show_progress: Accepted for the source interface; the steps are computed in one call.

        Returns:
            The sequence on ``image``'s device; ``values`` are the angles in degrees.
        """
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
