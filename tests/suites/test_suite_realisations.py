"""Held-out realisations, score-only interventions and the fur suite's equal-size background.

Only test data are drawn here (no model is trained): every sequence below comes from the images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from propgrad.sources.base import InterventionSequence
from propgrad.sources.gaussian_vignette import GaussianVignetteSource
from propgrad.suites.base import BenchmarkSuite
from propgrad.suites.fur import HELD_OUT_CENTRE_RANGE, FurSuite
from propgrad.suites.fur_scenes import (
    MATCH_REL_TOL,
    VignetteChange,
    fur_sequence,
    matched_vignette_strength,
    outline,
    redrawn_fur_texture,
    vignette_pixel_change,
)
from propgrad.suites.patch import PatchSuite
from propgrad.suites.patch_scenes import keep_out_zone
from propgrad.suites.shapes import fur_colour, paint


def no_models(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("held-out realisations and the equal-size strength must not need a model")


def model_free(suite_class: type, cache_dir: Path) -> Any:
    """A quick seed-0 suite whose models and training data raise when asked for."""
    suite = suite_class(quick=True, seed=0, cache_dir=cache_dir)
    suite.models = no_models
    suite.training_data = no_models
    return suite


@pytest.fixture(scope="module")
def fur(tmp_path_factory: pytest.TempPathFactory) -> FurSuite:
    return model_free(FurSuite, tmp_path_factory.mktemp("fur_cache"))


@pytest.fixture(scope="module")
def patch(tmp_path_factory: pytest.TempPathFactory) -> PatchSuite:
    return model_free(PatchSuite, tmp_path_factory.mktemp("patch_cache"))


class MinimalSuite(BenchmarkSuite):
    """A suite implementing only the abstract methods."""

    name = "minimal"
    interventions = ("nothing",)

    def settings(self) -> dict[str, Any]:
        return {}

    def models(self) -> dict[str, Any]:
        return {}

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(1, 3, 4, 4), torch.zeros(1, dtype=torch.long)

    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        return InterventionSequence(torch.zeros(2, 3, 4, 4), torch.tensor([0.0, 1.0]), "nothing", "step")

    def accuracy_table(self) -> dict[str, dict[str, float]]:
        return {}


def test_default_suite_draws_no_realisation_beyond_intervene() -> None:
    suite = MinimalSuite()
    assert torch.equal(suite.realisation("nothing", 0, 0).images, suite.intervene("nothing", 0).images)
    assert suite.realisation("nothing", 0, 1) is None


def test_default_suite_has_no_held_out_realisation_and_no_score_only_intervention() -> None:
    suite = MinimalSuite()
    assert suite.held_out_realisation("nothing", 0) is None
    assert MinimalSuite.score_only_interventions == () and BenchmarkSuite.score_only_interventions == ()
    assert PatchSuite.score_only_interventions == ()


def test_fur_suite_adds_the_equal_size_intervention_as_score_only() -> None:
    from propgrad.suites.fur_validity import EQUAL_SIZE_INTERVENTION

    assert FurSuite.interventions == ("fur", "background", EQUAL_SIZE_INTERVENTION)
    assert FurSuite.score_only_interventions == (EQUAL_SIZE_INTERVENTION,)
    assert set(FurSuite.score_only_interventions) <= set(FurSuite.interventions)


def test_the_new_interventions_leave_the_model_cache_key_as_it_was(tmp_path: Path) -> None:
    # The key of the cached data and models before held-out realisations and the equal-size
    # intervention existed: adding them must not retrain (or redraw) anything. A deliberate
    # change of the settings or of CODE_VERSION updates this value.
    assert FurSuite(quick=True, seed=0, cache_dir=tmp_path).cache_key == "5cb3973a3dc7b9888b9d658b"


CASES = [("fur", "fur"), ("fur", "background"), ("fur", "background_equal_size"), ("patch", "patch")]


@pytest.mark.parametrize(("suite_name", "intervention"), CASES)
def test_held_out_realisation_keeps_the_path_and_varies_the_rest(
    suite_name: str, intervention: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    suite = request.getfixturevalue(suite_name)
    images = suite.test_set()[0]
    for index in range(3):
        seq = suite.intervene(intervention, index)
        held = suite.held_out_realisation(intervention, index)
        assert isinstance(held, InterventionSequence)
        assert torch.equal(held.images[0], images[index]), "step 0 is the original test image exactly"
        assert torch.equal(seq.images[0], images[index])
        assert len(held) == len(seq) and torch.equal(held.values, seq.values)
        assert (held.property_name, held.unit, held.periodic) == (seq.property_name, seq.unit, seq.periodic)
        assert not torch.equal(held.images[-1], seq.images[-1]), "another draw, not the same sequence"
        again = suite.held_out_realisation(intervention, index)
        assert torch.equal(again.images, held.images) and again.metadata == held.metadata
        assert torch.equal(suite.intervene(intervention, index).images, seq.images), "intervene is untouched"
    fresh = type(suite)(quick=True, seed=0, cache_dir=tmp_path)
    assert torch.equal(
        fresh.held_out_realisation(intervention, 1).images, suite.held_out_realisation(intervention, 1).images
    )
    other_seed = type(suite)(quick=True, seed=1, cache_dir=tmp_path)
    other = other_seed.held_out_realisation(intervention, 1)
    assert not torch.equal(other.images[-1], other_seed.intervene(intervention, 1).images[-1])
    with pytest.raises(ValueError, match="intervention"):
        suite.held_out_realisation("colour", 0)
    with pytest.raises(ValueError, match="index"):
        suite.held_out_realisation(intervention, 10_000)


def test_fur_sequence_dissolves_the_new_texture_in_pixel_by_pixel() -> None:
    # Known by arithmetic: old texture 1, new texture 0.5, thresholds 0, 1/16, ..., 15/16.
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[0, 0] = False
    old, new = torch.ones(1, 4, 4), torch.full((1, 4, 4), 0.5)
    dissolve = (torch.arange(16).float() / 16).reshape(4, 4)
    image = torch.where(mask[None], paint(fur_colour(torch.tensor([0.2])), old[None])[0], torch.zeros(3, 4, 4))
    images, fractions = fur_sequence(image, mask, old, 0.2, 1.0, 5, texture_to=new, dissolve=dissolve)
    plain, plain_fractions = fur_sequence(image, mask, old, 0.2, 1.0, 5)
    assert torch.equal(fractions, plain_fractions) and torch.equal(images[0], image) and torch.equal(plain[0], image)
    for k, f in enumerate(fractions.tolist()):
        colour = fur_colour(torch.tensor([0.2 + f * 0.8]))[0][:, None, None]
        factor = torch.where(dissolve < f, 0.5, 1.0)
        expected = torch.where(mask[None], colour * factor[None], image)
        assert torch.allclose(images[k], expected, atol=1e-6), f"step {k}"
        assert torch.allclose(plain[k], torch.where(mask[None], colour.expand(3, 4, 4), image), atol=1e-6)
        assert int(((dissolve < f) & mask).sum()) == int(((images[k] != plain[k]).any(dim=0)).sum())
    assert torch.equal(images[-1][:, ~mask], image[:, ~mask]), "outside the mask nothing changes"


def test_fur_sequence_rejects_half_a_texture_swap() -> None:
    mask, tex = torch.ones(4, 4, dtype=torch.bool), torch.ones(1, 4, 4)
    image = torch.full((3, 4, 4), 0.5)
    with pytest.raises(ValueError, match="both or neither"):
        fur_sequence(image, mask, tex, 0.2, 1.0, 5, texture_to=tex)
    with pytest.raises(ValueError, match="dissolve"):
        fur_sequence(image, mask, tex, 0.2, 1.0, 5, texture_to=tex, dissolve=torch.ones(4, 4))
    with pytest.raises(ValueError, match="texture_to"):
        fur_sequence(image, mask, tex, 0.2, 1.0, 5, texture_to=torch.ones(1, 3, 3), dissolve=torch.zeros(4, 4))


def test_fur_realisation_keeps_the_fur_level_of_every_step(fur: FurSuite) -> None:
    data = fur.test_data()
    size = fur.settings()["image_size"]
    for index in range(3):
        seq, held = fur.intervene("fur", index), fur.held_out_realisation("fur", index)
        mask, old = data["masks"][index], data["texture"][index]
        new, dissolve = redrawn_fur_texture(size, fur.generator(f"held_out/fur/{index}"))
        assert not torch.equal(new, old)
        outside = ~mask
        assert torch.equal(held.images[:, :, outside], seq.images[:, :, outside]), "only the fur changes"
        for k, f in enumerate(seq.values.tolist()):
            used = torch.where(dissolve < f, new[0], old[0])
            colour = fur_colour(
                torch.tensor(
                    [seq.metadata["start_level"] + f * (seq.metadata["target_level"] - seq.metadata["start_level"])]
                )
            )[0]
            # Unclamped fur pixels: colour = pixel / texture, the same level as intervene's.
            for images, tex in ((held.images[k], used), (seq.images[k], old[0])):
                ok = mask & (images < 1).all(dim=0)
                assert int(ok.sum()) > 10
                ratio = images[:, ok] / tex[ok]
                assert torch.allclose(ratio, colour[:, None].expand_as(ratio), atol=1e-5), f"image {index}, step {k}"
        assert bool((held.images[-1][:, mask] != seq.images[-1][:, mask]).any())


def test_background_realisations_move_the_centre_and_keep_the_object(fur: FurSuite) -> None:
    data = fur.test_data()
    low, high = HELD_OUT_CENTRE_RANGE
    centres = set()
    for intervention in ("background", "background_equal_size"):
        for index in range(4):
            seq, held = fur.intervene(intervention, index), fur.held_out_realisation(intervention, index)
            y, x = held.metadata["center"]
            assert low <= y <= high and low <= x <= high and (y, x) != (0.5, 0.5)
            assert seq.metadata["center"] == [0.5, 0.5]
            assert held.metadata["strengths"] == seq.metadata["strengths"]
            mask = data["masks"][index]
            protected = mask | outline(mask, fur.settings()["outline_width"])
            assert torch.equal(held.images[:, :, protected], seq.images[:, :, protected])
            assert bool((held.images[-1][:, ~protected] != seq.images[-1][:, ~protected]).any())
            centres.add((y, x))
    assert len(centres) == 4, "one centre per image, the same for both background interventions"


def test_equal_size_pixel_change_matches_the_fur_intervention(fur: FurSuite) -> None:
    matched = 0
    for index in range(8):
        fur_change = fur.intervene("fur", index).pixel_change()
        seq = fur.intervene("background_equal_size", index)
        meta = seq.metadata
        assert meta["target_pixel_change"] == pytest.approx(fur_change, rel=1e-9)
        assert -1.0 <= meta["max_strength"] < 0 and meta["strengths"][-1] == pytest.approx(meta["max_strength"])
        if meta["capped"]:
            assert meta["max_strength"] == -1.0 and seq.pixel_change() < fur_change
        else:
            matched += 1
            assert seq.pixel_change() == pytest.approx(fur_change, rel=MATCH_REL_TOL)
        held = fur.held_out_realisation("background_equal_size", index)
        assert held.metadata["max_strength"] == meta["max_strength"] and torch.equal(held.values, seq.values)
    assert matched >= 6
    assert not torch.equal(fur.intervene("background_equal_size", 0).values, fur.intervene("background", 0).values), (
        "the strength is set per image, not the background intervention's"
    )


@pytest.mark.parametrize("size", [16, 64, 200])
def test_the_vignette_change_is_the_sources_sequences_pixel_change_bit_for_bit(size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    image = torch.rand(3, size, size, generator=gen) ** 3  # dark and bright pixels: some clamp when brightened
    protect = torch.rand(size, size, generator=gen) > 0.7
    change = VignetteChange(image, protect, sigma=0.3, center=(0.4, 0.6))
    for strength in (-1.0, -0.7313, -0.01, 0.45, 1.3):
        for steps in (2, 7, 31):
            source = GaussianVignetteSource(
                max_strength=strength, sigma=0.3, steps=steps, center=(0.4, 0.6), mask=protect
            )
            assert change(strength) == source.generate(image).pixel_change(), (strength, steps)


def test_matched_strength_agrees_with_the_linear_answer_and_caps() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 16, 16, generator=gen) * 0.8 + 0.1
    protect = torch.zeros(16, 16, dtype=torch.bool)
    protect[5:11, 5:11] = True
    full = vignette_pixel_change(image, protect, -1.0, sigma=0.35)
    # Darkening never clamps, so the change is |strength| times the change at -1.
    strength, capped = matched_vignette_strength(image, protect, 0.3 * full, sigma=0.35)
    assert not capped and strength == pytest.approx(-0.3, rel=2 * MATCH_REL_TOL)
    assert vignette_pixel_change(image, protect, strength, sigma=0.35) == pytest.approx(0.3 * full, rel=MATCH_REL_TOL)
    assert matched_vignette_strength(image, protect, 2 * full, sigma=0.35) == (-1.0, True)
    everything = torch.ones(16, 16, dtype=torch.bool)
    assert matched_vignette_strength(image, everything, 0.01, sigma=0.35) == (-1.0, True)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="target_change"):
            matched_vignette_strength(image, protect, bad, sigma=0.35)


def test_equal_size_records_the_cap(fur: FurSuite, monkeypatch: pytest.MonkeyPatch) -> None:
    image = fur.test_set()[0][0]
    huge = InterventionSequence(
        torch.stack([image, 1 - image]), torch.tensor([0.0, 1.0]), "fur change", "fraction"
    )  # pixel change ~0.5: more than any masked vignette moves a scene
    monkeypatch.setattr(fur, "_fur", lambda index, **kwargs: huge)
    seq = fur.intervene("background_equal_size", 0)
    assert seq.metadata["capped"] is True and seq.metadata["max_strength"] == -1.0
    assert seq.metadata["target_pixel_change"] == pytest.approx(huge.pixel_change())
    assert seq.metadata["strengths"][-1] == -1.0 and seq.pixel_change() < huge.pixel_change()


def test_patch_realisation_uses_another_sticker_away_from_the_lesion(patch: PatchSuite) -> None:
    data = patch.test_data()
    n, side = patch.bank(held_out=True).shape[0], patch.patch_side()
    offsets, moved = set(), 0
    for index in range(int(data["labels"].shape[0])):
        sticker = patch.held_out_sticker(index)
        assert 0 <= sticker < n and sticker != index % n
        offsets.add((sticker - index) % n)
    for index in range(6):
        seq, held = patch.intervene("patch", index), patch.held_out_realisation("patch", index)
        assert seq.metadata["held_out_patch"] == index % n
        assert held.metadata["held_out_patch"] == patch.held_out_sticker(index) != seq.metadata["held_out_patch"]
        top, left = held.metadata["position"]
        assert not bool(keep_out_zone(data["masks"][index], side)[top + side // 2, left + side // 2])
        moved += held.metadata["position"] != seq.metadata["position"]
    assert len(offsets) > n // 2, "the sticker is drawn, not a fixed offset from intervene's"
    assert moved >= 5


@pytest.mark.parametrize("suite_name, intervention", [("fur", "fur"), ("fur", "background"), ("patch", "patch")])
def test_numbered_realisations_are_further_draws_none_of_them_the_held_out_one(
    suite_name: str, intervention: str, request: pytest.FixtureRequest
) -> None:
    suite = request.getfixturevalue(suite_name)
    index = 3
    first = suite.realisation(intervention, index, 0)
    assert torch.equal(first.images, suite.intervene(intervention, index).images)
    held_out = suite.held_out_realisation(intervention, index)
    draws = [suite.realisation(intervention, index, n) for n in (1, 2)]
    for draw in draws:
        assert torch.equal(draw.images[0], first.images[0]) and torch.equal(draw.values, first.values)
        assert not torch.equal(draw.images[-1], first.images[-1])
        assert not torch.equal(draw.images[-1], held_out.images[-1])
    assert not torch.equal(draws[0].images[-1], draws[1].images[-1])
    assert torch.equal(suite.realisation(intervention, index, 1).images, draws[0].images)  # deterministic
    with pytest.raises(ValueError, match="number"):
        suite.realisation(intervention, index, -1)
