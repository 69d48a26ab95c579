"""A small, fixed-weight classifier for examples and the quick-start.

``ColourBalanceNet`` needs no training and no download: it classifies an image as "warm" or
"cool" from its mean red–blue balance and saturation, computed by a 1×1 convolution with fixed
weights, global average pooling and a linear layer. It is a real ``nn.Module`` (Captum's methods
run on it) whose behaviour a person can predict, which makes it a good subject for explanations:
a colourful patch or a hue change moves its output, a darker background barely does.
"""

from __future__ import annotations

import torch
from torch import nn

CLASS_NAMES = ("warm", "cool")


class ColourBalanceNet(nn.Module):
    """Warm-versus-cool classifier with fixed weights; maps [0, 1] images (B, 3, H, W) to logits (B, 2).

    Args:
        sharpness: Scale of the logits; larger makes the decision crisper.
    """

    def __init__(self, sharpness: float = 12.0) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            # channel 0: warmth (red minus blue), channel 1: coolness (blue minus red)
            self.features.weight.copy_(torch.tensor([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]]).view(2, 3, 1, 1))
            self.head.weight.copy_(sharpness * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
            self.head.bias.copy_(torch.tensor([-0.5, 0.5]))
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, 2) for ``CLASS_NAMES``."""
        return self.head(self.pool(self.relu(self.features(images))).flatten(1))


def colour_balance_net() -> ColourBalanceNet:
    """Factory used by ``propgrad explain --model propgrad.example_model:colour_balance_net``."""
    return ColourBalanceNet().eval()
