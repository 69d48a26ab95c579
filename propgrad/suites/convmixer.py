"""A small ConvMixer (Trockman & Kolter, "Patches are all you need?") in plain torch.

The built-in suites train one per training split on the CPU. Differences from the original:
``nn.ReLU`` instead of GELU (guided backpropagation and DeepLIFT need ReLU modules), a separate
``nn.ReLU`` instance at every use (Captum hooks modules, so none may be shared), and input
normalisation inside the model, so it eats [0, 1] images like every propgrad source produces.
"""

from __future__ import annotations

import torch
from torch import nn

from propgrad.core.validation import check_int
from propgrad.errors import InvalidParameterError


class Residual(nn.Module):
    """``x + fn(x)``."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class ConvMixer(nn.Module):
    """ConvMixer classifier mapping [0, 1] images (B, 3, H, W) to logits (B, num_classes).

    Args:
        dim: Width of the latent representation (channels).
        depth: Number of mixer blocks.
        kernel_size: Width of the depthwise convolution kernels (odd).
        patch_size: Side of the square patches of the embedding.
        num_classes: Number of output logits.

    Raises:
        ValueError: If a size is not a positive integer or ``kernel_size`` is even.
    """

    def __init__(
        self, *, dim: int = 48, depth: int = 4, kernel_size: int = 5, patch_size: int = 4, num_classes: int = 2
    ) -> None:
        super().__init__()
        for name, value in [
            ("dim", dim),
            ("depth", depth),
            ("kernel_size", kernel_size),
            ("patch_size", patch_size),
            ("num_classes", num_classes),
        ]:
            check_int(value, f"ConvMixer {name}")
        if kernel_size % 2 == 0:
            raise InvalidParameterError(f"ConvMixer kernel_size must be odd (same padding), got {kernel_size}")
        # [0, 1] -> [-1, 1], as in the paper's preprocessing (Appx. B.2).
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.5))
        self.embed = nn.Sequential(
            nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size), nn.ReLU(), nn.BatchNorm2d(dim)
        )
        self.blocks = nn.Sequential(
            *[
                nn.Sequential(
                    Residual(
                        nn.Sequential(
                            nn.Conv2d(dim, dim, kernel_size, groups=dim, padding=kernel_size // 2),
                            nn.ReLU(),
                            nn.BatchNorm2d(dim),
                        )
                    ),
                    nn.Conv2d(dim, dim, kernel_size=1),
                    nn.ReLU(),
                    nn.BatchNorm2d(dim),
                )
                for _ in range(depth)
            ]
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for [0, 1] images (B, 3, H, W)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise InvalidParameterError(f"ConvMixer expects images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = (images - self.mean) / self.std
        x = self.blocks(self.embed(x))
        return self.head(self.pool(x).flatten(1))
