"""The built-in ``fur`` and ``patch`` suites: data, interventions, bias links, caching, accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from propgrad.suites import cached as cached_module
from propgrad.suites.fur import WRONG_COLOUR_BAND, FurSuite
from propgrad.suites.fur_scenes import (
    FUR_SPLITS,
    OUTLINE_COLOUR,
    DarkeningDraw,
    SceneStyle,
    draw_scenes,
    follows_link,
    fur_levels,
    fur_target,
    outline,
)
from propgrad.suites.patch import PatchSuite
from propgrad.suites.patch_scenes import keep_out_zone
from propgrad.suites.training import group_accuracy, predict
from tests.trained_suites import PROBE_IMAGES, TrainedFur


@pytest.fixture(scope="module")
def fur(tmp_path_factory: pytest.TempPathFactory) -> FurSuite:
    return FurSuite(quick=True, seed=0, cache_dir=tmp_path_factory.mktemp("fur_cache"))


@pytest.fixture(scope="module")
def patch(tmp_path_factory: pytest.TempPathFactory) -> PatchSuite:
    return PatchSuite(quick=True, seed=0, cache_dir=tmp_path_factory.mktemp("patch_cache"))


def test_both_suites_are_registered() -> None:
    from propgrad.plugins import get_suite, list_suites

    assert {"fur", "patch"} <= set(list_suites())
    assert get_suite("fur") is FurSuite and get_suite("patch") is PatchSuite
    assert FurSuite.interventions == ("fur", "background", "background_equal_size") and PatchSuite.interventions == (
        "patch",
    )


def test_fur_scenes_shapes_ranges_balance_and_determinism(fur: FurSuite, tmp_path: Path) -> None:
    scenes = fur.split_scenes("unbiased", 20, "unit", 1.0)
    x = scenes["images"]
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert scenes["masks"].shape == (40, 32, 32) and scenes["masks"].dtype == torch.bool
    assert torch.bincount(scenes["labels"]).tolist() == [20, 20]
    again = FurSuite(quick=True, seed=0, cache_dir=tmp_path).split_scenes("unbiased", 20, "unit", 1.0)
    assert torch.equal(again["images"], x)
    other = FurSuite(quick=True, seed=1, cache_dir=tmp_path).split_scenes("unbiased", 20, "unit", 1.0)
    assert not torch.equal(other["images"], x)
    images, labels = fur.test_set()
    assert torch.bincount(labels).min() >= fur.images_per_class()


@pytest.mark.parametrize("split", ["dark_is_cat", "dark_is_dog"])
def test_fur_link_rate_matches_the_setting(split: str) -> None:
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 2, (20000,), generator=gen)
    levels = fur_levels(labels, split, 0.92, gen)
    assert abs(float(follows_link(labels, levels, split).float().mean()) - 0.92) < 0.01
    unbiased = fur_levels(labels, "unbiased", 0.92, gen)
    dark_cats = float((unbiased[labels == 0] < 0.5).float().mean())
    dark_dogs = float((unbiased[labels == 1] < 0.5).float().mean())
    assert abs(dark_cats - 0.5) < 0.02 and abs(dark_dogs - 0.5) < 0.02
    with pytest.raises(ValueError, match="split"):
        fur_levels(labels, "dark_is_cow", 0.9, gen)


def test_training_data_cover_every_intervention_step(fur: FurSuite) -> None:
    s = fur.settings()
    scenes = fur.split_scenes("dark_is_cat", 500, "coverage", s["link"])
    levels = scenes["levels"]
    rate = float(follows_link(scenes["labels"], levels, "dark_is_cat").float().mean())
    assert abs(rate - s["link"]) < 0.03, "the training split's link rate must match the setting"
    # Continuous levels across [0, 1]: every one of the fur intervention's 21 levels has neighbours.
    hist = torch.histc(levels, bins=20, min=0.0, max=1.0)
    assert bool((hist > 0).all()) and float(levels.min()) < 0.02 and float(levels.max()) > 0.98
    assert set(fur_target(torch.tensor([0.1, 0.7])).tolist()) == {0.0, 1.0}
    darkening = scenes["darkening"]
    assert float(darkening.min()) < 0.9 * s["max_darkening"] and float(darkening.max()) == 0.0
    assert 0.4 < float((darkening < 0).float().mean()) < 0.6


def test_fur_intervention_changes_only_the_object(fur: FurSuite) -> None:
    data = fur.test_data()
    for index in range(4):
        seq = fur.intervene("fur", index)
        mask = data["masks"][index]
        assert len(seq) == 21 and seq.values[0] == 0 and seq.values[-1] == 1
        assert torch.equal(seq.images[0], data["images"][index])
        changed = (seq.images != data["images"][index][None]).any(dim=(0, 1))
        assert bool(changed[mask].any()) and not bool(changed[~mask].any())
        brightness = seq.images[:, :, mask].mean(dim=(1, 2))
        start = float(data["levels"][index])
        assert (brightness[-1] > brightness[0]) == (start < 0.5)


def test_outline_is_a_ring_just_outside_the_mask() -> None:
    mask = torch.zeros(2, 9, 9, dtype=torch.bool)
    mask[0, 3:6, 3:6] = True
    mask[1, 0:2, 0:2] = True
    ring = outline(mask, 1)
    assert not bool((ring & mask).any())
    assert int(ring[0].sum()) == 5 * 5 - 3 * 3 and bool(ring[0, 2, 2]) and not bool(ring[0, 1, 1])
    assert int(ring[1].sum()) == 9 - 4  # clipped at the image border
    assert torch.equal(outline(mask[0], 2), outline(mask, 2)[0])
    assert int(outline(mask[0], 2).sum()) == 7 * 7 - 3 * 3
    assert not bool(outline(mask, 0).any())
    with pytest.raises(ValueError, match="width"):
        outline(mask, -1)


def test_scenes_draw_the_outline_in_its_colour(fur: FurSuite) -> None:
    data = fur.test_data()
    ring = outline(data["masks"][0], fur.settings()["outline_width"])
    assert bool(ring.any())
    pixels = data["images"][0][:, ring]
    assert torch.allclose(pixels, torch.tensor(OUTLINE_COLOUR)[:, None].expand_as(pixels))


def test_background_intervention_changes_only_outside_the_object(fur: FurSuite) -> None:
    data = fur.test_data()
    seq = fur.intervene("background", 1)
    mask = data["masks"][1]
    changed = (seq.images != data["images"][1][None]).any(dim=(0, 1))
    assert bool(changed[~mask].any()) and not bool(changed[mask].any())
    assert not bool(changed[outline(mask, fur.settings()["outline_width"])].any()), "the outline is protected too"
    assert float(seq.images[-1].mean()) < float(seq.images[0].mean())
    with pytest.raises(ValueError, match="intervention"):
        fur.intervene("colour", 0)
    with pytest.raises(ValueError, match="index"):
        fur.intervene("fur", 10_000)


def test_patch_intervention_changes_only_the_placed_patch(patch: PatchSuite) -> None:
    data = patch.test_data()
    assert bool((data["labels"] == 1).all())
    for index in range(3):
        seq = patch.intervene("patch", index)
        top, left = seq.metadata["position"]
        h, w = seq.metadata["patch_size"]
        box = torch.zeros(data["masks"][index].shape, dtype=torch.bool)
        box[top : top + h, left : left + w] = True
        changed = (seq.images != data["images"][index][None]).any(dim=(0, 1))
        assert bool(changed.any()) and not bool(changed[~box].any())
        assert not bool((box & data["masks"][index]).any()), "the patch must stay away from the lesion"


def test_held_out_patches_differ_from_training_patches(patch: PatchSuite) -> None:
    train, held_out = patch.bank(held_out=False), patch.bank(held_out=True)
    distances = torch.cdist(held_out.flatten(1), train.flatten(1))
    assert float(distances.min()) > 0.1  # no held-out patch repeats a training patch
    zone = keep_out_zone(torch.zeros(10, 10, dtype=torch.bool).index_fill_(0, torch.tensor([5]), True), 3)
    assert bool(zone[3:8].all()) and not bool(zone[0].any())


def test_patch_training_split_links_patches_to_nevi(patch: PatchSuite) -> None:
    labels = torch.tensor([0, 1] * 2000)
    patched = patch.biased_patches(labels, "unit")
    assert not bool(patched[labels == 1].any())
    assert abs(float(patched[labels == 0].float().mean()) - 0.5) < 0.03


# ---- training (slow): the session's one trained quick fur suite (tests/conftest.py) -------------


@pytest.fixture
def trained_fur(quick_fur: TrainedFur, monkeypatch: pytest.MonkeyPatch) -> tuple[FurSuite, TrainedFur]:
    """The quick fur suite of seed 0 read from the session's cache, which the default cache now is."""
    monkeypatch.setenv("PROPGRAD_CACHE_DIR", str(quick_fur.cache))
    return FurSuite(quick=True, seed=0), quick_fur


@pytest.mark.slow
def test_cache_is_reused_without_training(trained_fur, monkeypatch: pytest.MonkeyPatch) -> None:
    suite, trained = trained_fur
    assert suite.cache_path.parent.parent.parent == trained.cache
    assert set(trained.training_seconds) == set(FUR_SPLITS)  # the session's cache started cold

    def no_training(*args, **kwargs):
        raise AssertionError("a second construction must not train")

    monkeypatch.setattr(cached_module, "train_classifier", no_training)
    again = FurSuite(quick=True, seed=0)
    models = again.models()
    assert again.training_seconds == {}
    x = suite.test_set()[0][:PROBE_IMAGES]
    assert set(models) == set(trained.outputs)
    for name, model in models.items():
        assert torch.allclose(model(x), trained.outputs[name], atol=1e-5)  # as trained, before saving
    state = torch.load(suite.cache_path / "model_unbiased.pt", weights_only=True)
    assert "head.weight" in state
    assert again.accuracy_table() == suite.accuracy_table()


@pytest.mark.slow
def test_accuracy_band_of_the_fur_models(trained_fur) -> None:
    suite, _ = trained_fur
    table = suite.accuracy_table()
    assert set(table) == set(FUR_SPLITS) and all(set(row) == set(FUR_SPLITS) for row in table.values())
    assert min(table["unbiased"].values()) >= 0.88
    low, high = WRONG_COLOUR_BAND
    assert low <= table["dark_is_cat"]["dark_is_dog"] <= high
    assert low <= table["dark_is_dog"]["dark_is_cat"] <= high
    assert table["dark_is_cat"]["dark_is_cat"] >= 0.9 and table["dark_is_dog"]["dark_is_dog"] >= 0.9


class BiasedFurSuite(FurSuite):
    """The fur suite with only its two biased models, for checking the link on several seeds."""

    training_splits = ("dark_is_cat", "dark_is_dog")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_wrong_colour_accuracy_lands_in_the_band_on_every_selection_seed(seed: int, tmp_path: Path) -> None:
    """The quick link was chosen so that the band holds on seeds 0-4, not on seed 0 alone (at the
    previous link, 0.98, seed 2's dark_is_dog model scored 90.2% and fell outside)."""
    table = BiasedFurSuite(quick=True, seed=seed, cache_dir=tmp_path).accuracy_table()
    low, high = WRONG_COLOUR_BAND
    assert low <= table["dark_is_cat"]["dark_is_dog"] <= high
    assert low <= table["dark_is_dog"]["dark_is_cat"] <= high


def test_group_accuracy_counts_per_group() -> None:
    class FirstPixel(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            v = x[:, 0, 0, 0]
            return torch.stack([-v, v], dim=1)  # class 1 iff the first pixel is positive

    images = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0])[:, None, None, None].expand(-1, 3, 2, 2).clone()
    labels = torch.tensor([1, 1, 0, 1, 0])
    groups = torch.tensor([0, 0, 1, 1, 1])
    predictions = predict(FirstPixel(), images)
    assert group_accuracy(predictions, labels, groups, 3) == [0.5, pytest.approx(2 / 3), None]
    with pytest.raises(ValueError, match="groups"):
        group_accuracy(predictions, labels, groups, 1)


@pytest.mark.slow
def test_every_fur_intervention_step_is_in_distribution(trained_fur) -> None:
    """The design rule: the unbiased model is accurate at every fur level and every background
    darkening (the shape stays visible); the biased models lose accuracy where fur goes against
    their rule, most at the extreme of the wrong-colour half, not in between."""
    suite, _ = trained_fur
    checks = suite.level_accuracy()
    assert set(checks) == {"fur level", "background darkening"}
    fur = checks["fur level"]
    assert len(fur["levels"]) == 10 and set(fur["accuracy"]) == set(FUR_SPLITS)
    assert min(fur["accuracy"]["unbiased"]) >= 0.95
    assert min(checks["background darkening"]["accuracy"]["unbiased"]) >= 0.95
    for biased in ("dark_is_cat", "dark_is_dog"):
        assert min(fur["accuracy"][biased]) < min(fur["accuracy"]["unbiased"]) - 0.1
    for entry in checks.values():  # per class: the overall figure is a weighted mean of the two classes
        for model, overall in entry["accuracy"].items():
            cat, dog = entry["class_accuracy"][model]["cat"], entry["class_accuracy"][model]["dog"]
            assert all(min(c, d) - 1e-6 <= o <= max(c, d) + 1e-6 for o, c, d in zip(overall, cat, dog))
    # The biased models fail on the class their colour rule disfavours, at the dark extreme.
    assert fur["class_accuracy"]["dark_is_cat"]["dog"][0] < fur["class_accuracy"]["dark_is_cat"]["cat"][0] - 0.1
    assert fur["class_accuracy"]["dark_is_dog"]["cat"][0] < fur["class_accuracy"]["dark_is_dog"]["dog"][0] - 0.1
    assert suite.level_accuracy() == checks
    assert (suite.cache_path / cached_module.LEVEL_ACCURACY_FILE).exists()
    assert checks["background darkening"]["levels"][0] == "0.00" and all(
        not level.startswith("-") for level in checks["background darkening"]["levels"]
    )  # magnitudes, as the source reports them


def test_patch_opacity_blends_between_no_patch_and_the_opaque_patch() -> None:
    from propgrad.suites.patch_scenes import place_patch

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 24, 24, generator=gen)
    lesion = torch.zeros(24, 24, dtype=torch.bool)
    lesion[10:14, 10:14] = True
    patch = torch.rand(4, 6, 6, generator=gen)
    placed = {a: place_patch(image, lesion, patch, torch.Generator().manual_seed(5), a) for a in (0.0, 0.5, 1.0)}
    assert torch.equal(placed[0.0], image)
    assert not torch.equal(placed[1.0], image)
    assert torch.allclose(placed[0.5], (placed[0.0] + placed[1.0]) / 2, atol=1e-6)


def test_patch_level_data_covers_every_opacity(patch: PatchSuite) -> None:
    data = patch.level_data()["patch opacity"]
    levels, images, labels, groups = data
    assert levels == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert images.shape == (patch.level_check_images, 3, 32, 32) and bool((labels == 1).all())
    assert torch.bincount(groups).tolist() == [patch.level_check_images // 5] * 5
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0


def test_scenes_take_their_darkening_drawn_or_given() -> None:
    labels, levels, style = torch.tensor([0, 1, 0, 1]), torch.full((4,), 0.3), SceneStyle(16, 0.35, outline_width=1)
    none = draw_scenes(labels, levels, style, torch.Generator().manual_seed(0), DarkeningDraw(-0.9, 0.0))
    assert none["images"].shape == (4, 3, 16, 16) and torch.equal(none["darkening"], torch.zeros(4))
    generator = torch.Generator().manual_seed(0)
    torch.rand(4, generator=generator), torch.rand(4, generator=generator)  # a draw's two uniforms come first
    given = torch.zeros(4)
    drawn = draw_scenes(labels, levels, style, generator, given)
    assert drawn["darkening"] is given and torch.equal(drawn["images"], none["images"])
    wrong = r"darkening must be a DarkeningDraw or a tensor of shape \(4,\), got shape \(3,\)"
    with pytest.raises(ValueError, match=wrong):
        draw_scenes(labels, levels, style, torch.Generator(), torch.zeros(3))
