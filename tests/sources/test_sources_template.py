"""The sources' template method: ``generate`` checks the image once and the produced sequence once."""

from __future__ import annotations

import pytest
import torch

import propgrad
from propgrad.core import validation
from propgrad.core.images import save_image
from propgrad.example_model import colour_balance_net
from propgrad.sources.alpha_patch import AlphaPatchSource
from propgrad.sources.base import InterventionSequence, InterventionSource, SourceError
from propgrad.sources.frames import FramesSource


class LeakyDarken(InterventionSource):
    """A modern source with a bug: one pixel of step 2 is NaN."""

    name = "leaky_darken"
    description = "darken, with a bug"
    property_name = "darkness"
    unit = "fraction"

    def _generate(self, image, *, seed, show_progress):
        values = torch.linspace(0, 1, 4, dtype=image.dtype)
        images = torch.stack([image * (1 - v) for v in values])
        images[2, 1, 0, 0] = float("nan")
        return InterventionSequence(images, values, self.property_name, self.unit)


def test_a_nan_a_source_produces_is_the_sources_fault_not_the_models():
    with pytest.raises(
        SourceError, match=r"source 'leaky_darken' \(.*LeakyDarken\) produced NaN or Inf pixels at step 2"
    ):
        propgrad.PropertyGradient(colour_balance_net()).attribute(
            torch.rand(3, 16, 16), source=LeakyDarken(), n_permutations=50
        )


def test_a_sequence_built_by_hand_still_has_its_pixels_checked():
    images = torch.rand(3, 3, 8, 8)
    images[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="InterventionSequence.images contains NaN or Inf"):
        InterventionSequence(images, torch.arange(3.0), "p", "u")


def test_generate_checks_the_images_once(monkeypatch):
    calls = []
    real = validation.check_images

    def counting(images, name, *, batched):
        calls.append(name)
        return real(images, name, batched=batched)

    monkeypatch.setattr(validation, "check_images", counting)
    AlphaPatchSource(steps=5).generate(torch.rand(3, 16, 16))
    assert calls == ["image"]  # the input once; the sequence's pixels by the template, not again by the sequence


def test_a_subclass_overriding_generate_and_calling_super_works():
    class Flipped(AlphaPatchSource):
        name = "flipped_patch"

        def generate(self, image, *, seed=0, show_progress=False):
            sequence = super().generate(image, seed=seed)
            return InterventionSequence(sequence.images.flip(-1), sequence.values, self.property_name, self.unit)

    image = torch.rand(3, 16, 16)
    plain = AlphaPatchSource(steps=3).generate(image, seed=1)
    assert torch.equal(Flipped(steps=3).generate(image, seed=1).images, plain.images.flip(-1))


def test_a_frames_folder_with_one_frame_says_two_are_needed(tmp_path):
    save_image(tmp_path / "only_0.png", torch.full((3, 8, 8), 0.5))
    with pytest.raises(ValueError, match=r"holds one frame \(only_0.png\); a sequence needs at least 2 frames"):
        FramesSource(path=tmp_path)
