"""Fixtures: a tiny random-weight InstructPix2Pix pipeline saved to disk once per session."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from propgrad_diffusion_edit.testing import TINY_IMAGE_SIZE, build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny pipeline with the EulerAncestral scheduler (noise injected every step)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-instruct-pix2pix"))


@pytest.fixture()
def image() -> torch.Tensor:
    """A smooth 32x32 RGB test image in [0, 1]."""
    n = TINY_IMAGE_SIZE
    y, x = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="ij")
    return torch.stack([x, y, 0.5 + 0.4 * torch.sin(2 * math.pi * (x + y))]).clamp(0, 1)


@pytest.fixture()
def make_source(tiny_model: Path, tmp_path: Path):
    """Factory of sources on the tiny model with a per-test cache folder and fast defaults."""
    from propgrad_diffusion_edit import InstructPix2PixSource

    def make(**overrides):
        kwargs = dict(
            instruction="change the fur color to black",
            text_guidance_scales=[1.05, 3.0, 5.0, 7.5, 10.0],
            num_inference_steps=4,
            model=tiny_model,
            cache_dir=tmp_path / "cache",
        )
        kwargs.update(overrides)
        return InstructPix2PixSource(**kwargs)

    return make


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny FLUX.1 Kontext pipeline (guidance embedding, T5 SentencePiece tokenizer trained offline)."""
    from propgrad_diffusion_edit.testing import build_tiny_flux_kontext_pipeline

    return build_tiny_flux_kontext_pipeline(tmp_path_factory.mktemp("tiny-flux-kontext"))


@pytest.fixture(scope="session")
def tiny_ledits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny Stable Diffusion pipeline saved as LEdits++."""
    from propgrad_diffusion_edit.testing import build_tiny_ledits_pipeline

    return build_tiny_ledits_pipeline(tmp_path_factory.mktemp("tiny-ledits"))


@pytest.fixture()
def image64(image: torch.Tensor) -> torch.Tensor:
    """The test image at 64x64 (LEdits++ reads its masks at 1/32 of the size)."""
    return torch.nn.functional.interpolate(image[None], size=(64, 64), mode="bilinear")[0].clamp(0, 1)
