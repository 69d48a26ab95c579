"""Fixtures: small models whose response to an object's orientation is known."""

from __future__ import annotations

import pytest
import torch


class TopMinusBottom(torch.nn.Module):
    """One output: mean brightness of the top half minus that of the bottom half.

    It depends on orientation (an animal standing on its legs is brighter at the bottom than one
    upside down) and is blind to rotations of a rotationally symmetric object.
    """

    preferred_output_transform = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-2] // 2
        grey = x.mean(dim=1)
        return (grey[:, :half].mean(dim=(1, 2)) - grey[:, -half:].mean(dim=(1, 2)))[:, None]


@pytest.fixture()
def top_minus_bottom() -> TopMinusBottom:
    return TopMinusBottom()


@pytest.fixture()
def blank() -> torch.Tensor:
    """A reference image: only its size (24 x 24) matters to the rendered source."""
    return torch.zeros(3, 24, 24)
