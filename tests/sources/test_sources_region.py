"""InterventionSequence.region: the pixels a source changes, checked against the images it produces."""

from __future__ import annotations

import pytest
import torch

from propgrad.plugins import get_source
from propgrad.sources.base import InterventionSequence


def _changed(sequence: InterventionSequence) -> torch.Tensor:
    """Pixels whose final step differs from the original (any channel), a model-free reference."""
    return (sequence.images[-1] - sequence.images[0]).abs().amax(dim=0) > 1e-6


def test_alpha_patch_region_is_exactly_the_pixels_it_changes() -> None:
    image = torch.full((3, 32, 32), 0.5)
    sequence = get_source("alpha_patch")(steps=3).generate(image, seed=2)
    assert sequence.region is not None and sequence.region.dtype == torch.bool
    top, left = sequence.metadata["position"]
    height, width = sequence.metadata["patch_size"]
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[top : top + height, left : left + width] = False
    assert not sequence.region[outside].any()  # nothing outside the patch's box
    # where the sticker differs from the grey image, region and change agree
    changed = _changed(sequence)
    assert bool((changed & ~sequence.region).sum() == 0) and changed.sum() > 0.8 * sequence.region.sum()


def test_gaussian_vignette_region_is_the_background_without_the_protected_object() -> None:
    image = torch.full((3, 32, 32), 0.6)
    plain = get_source("gaussian_vignette")().generate(image)
    assert plain.region is not None and not plain.region[14:18, 14:18].any() and plain.region[0, 0]
    darkening = (plain.images[0] - plain.images[-1]).amax(dim=0)
    assert darkening[plain.region].min() >= 0.5 * darkening.max() - 1e-6  # the region holds the strong half
    protect = torch.zeros(32, 32, dtype=torch.bool)
    protect[:, :8] = True
    masked = get_source("gaussian_vignette")(mask=protect).generate(image)
    assert masked.region is not None and not masked.region[:, :8].any()
    assert torch.equal(masked.region[:, 8:], plain.region[:, 8:])


def test_a_bad_region_is_named() -> None:
    images, values = torch.rand(2, 3, 8, 8), torch.tensor([0.0, 1.0])
    with pytest.raises(TypeError, match="region must be a bool tensor"):
        InterventionSequence(images, values, "alpha", "fraction", region=torch.ones(8, 8))
    with pytest.raises(ValueError, match=r"region must have the images' size \(8, 8\)"):
        InterventionSequence(images, values, "alpha", "fraction", region=torch.ones(4, 4, dtype=torch.bool))
