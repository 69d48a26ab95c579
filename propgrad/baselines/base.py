"""The contract every attribution baseline fulfils.

A baseline computes a local attribution map for a model and an image. For the "predict the flip"
comparison its change score is the mean squared difference between the (unnormalised) map of the
original image and the map of the fully intervened image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from propgrad.errors import InvalidParameterError
from propgrad.plugins.parameters import Configurable


class AttributionBaseline(Configurable, ABC):
    """Base class of attribution baselines.

    Subclasses set the class attributes, declare their settings (sample counts, window sizes ...)
    as ``Params`` (a frozen :class:`~propgrad.plugins.parameters.Parameters` dataclass; the instance
    holds them as ``self.params``) and implement :meth:`attribute`. A baseline written with plain
    constructor keyword arguments keeps working.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @abstractmethod
    def attribute(self, model: nn.Module, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Attribution maps for a batch of images.

        Args:
            model: Module mapping float images (B, 3, H, W) in [0, 1] to logits (B, K).
            images: Float tensor (B, 3, H, W) in [0, 1].
            target: Long tensor (B,) of the class index to explain per image.

        Returns:
            Float tensor of maps, first dimension B, unnormalised, detached, on ``images.device``.
        """


def change_score(map_before: torch.Tensor, map_after: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between two batches of attribution maps, one value per image."""
    if map_before.shape != map_after.shape:
        raise InvalidParameterError(
            f"map_before and map_after must have the same shape, got {tuple(map_before.shape)} "
            f"and {tuple(map_after.shape)}"
        )
    diff = (map_before.float() - map_after.float()).flatten(1)
    return diff.pow(2).mean(dim=1)
