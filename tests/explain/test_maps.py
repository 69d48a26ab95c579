"""propgrad.baseline_maps: every baseline's maps before and after, as Captum-visualisable arrays."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

import propgrad
from propgrad.baselines.base import AttributionBaseline
from propgrad.baselines.captum_methods import IntegratedGradientsBaseline, OcclusionBaseline
from propgrad.example_model import colour_balance_net
from propgrad.plugins import get_source

matplotlib.use("Agg")


@pytest.fixture
def sequence() -> propgrad.InterventionSequence:
    image = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(3))
    return get_source("alpha_patch")(steps=5).generate(image, seed=1)


def test_maps_match_calling_the_baseline_directly(sequence: propgrad.InterventionSequence) -> None:
    model = colour_balance_net()
    baselines = {"ig": IntegratedGradientsBaseline(n_steps=8), "occ": OcclusionBaseline()}
    result = propgrad.baseline_maps(model, sequence, target=1, baselines=baselines, steps=(0, 2, -1))
    assert result.steps == (0, 2, 4)
    assert result.values == tuple(float(sequence.values[i]) for i in (0, 2, 4))
    for name, baseline in baselines.items():
        direct = baseline.attribute(model, sequence.images[[0, 2, 4]], torch.tensor([1, 1, 1]))
        expected = direct.permute(0, 2, 3, 1).numpy()  # channel-last, Captum's visualisation layout
        assert result.maps[name].shape == (3, 24, 24, 3)
        np.testing.assert_allclose(result.maps[name], expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(result.map(name, -1), expected[2])
        assert result.scale(name) == pytest.approx(float(np.abs(expected).max()))
    np.testing.assert_array_equal(result.image(0), sequence.images[0].permute(1, 2, 0).numpy())


def test_visualize_image_attr_accepts_every_registered_baselines_maps(sequence: propgrad.InterventionSequence) -> None:
    from captum.attr import visualization

    result = propgrad.baseline_maps(colour_balance_net(), sequence)
    assert sorted(result.maps) == sorted(propgrad.list_baselines()) and result.failures == {}
    assert result.target == int(colour_balance_net()(sequence.images[:1]).argmax())
    # Captum refuses a map whose channel sum is all zero (Guided Grad-CAM's red and blue cancel on this model)
    drawable = [name for name, maps in result.maps.items() if np.abs(maps.sum(axis=-1)).max(axis=(1, 2)).min() > 0]
    assert len(drawable) >= 4
    for name in drawable:
        for step in result.steps:
            figure, _ = visualization.visualize_image_attr(
                result.map(name, step), result.image(step), method="blended_heat_map", sign="all", use_pyplot=False
            )
            assert figure is not None


def test_an_image_with_a_source_is_intervened_on_first() -> None:
    image = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    model = colour_balance_net()
    result = propgrad.baseline_maps(model, image, 0, ["occlusion"], source="alpha_patch", seed=4)
    sequence = get_source("alpha_patch")().generate(image, seed=4)
    expected = OcclusionBaseline().attribute(model, sequence.images[[0, -1]], torch.tensor([0, 0]))
    np.testing.assert_allclose(result.maps["occlusion"], expected.permute(0, 2, 3, 1).numpy(), rtol=1e-6)


class _Broken(AttributionBaseline):
    name = "broken"

    def attribute(self, model, images, target):  # type: ignore[no-untyped-def]
        raise RuntimeError("plugin bug")


def test_a_failing_baseline_is_recorded_not_raised(sequence: propgrad.InterventionSequence) -> None:
    with pytest.warns(RuntimeWarning, match="broken"):
        result = propgrad.baseline_maps(colour_balance_net(), sequence, 0, [_Broken(), "occlusion"])
    assert list(result.maps) == ["occlusion"] and "plugin bug" in result.failures["broken"]
    with pytest.raises(KeyError, match="plugin bug"):
        result.map("broken", 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"steps": (0, 9)}, ValueError, "steps must index"),
        ({"steps": (4, -1)}, ValueError, "one step twice"),
        ({"steps": 0}, TypeError, "sequence of step indices"),
        ({"baselines": ["no_such_baseline"]}, Exception, "no_such_baseline"),
        ({"target": -1}, ValueError, "target"),
    ],
)
def test_bad_arguments_are_named(sequence, kwargs, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        propgrad.baseline_maps(colour_balance_net(), sequence, **{"target": 0, **kwargs})


def test_an_image_without_a_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source="):
        propgrad.baseline_maps(colour_balance_net(), torch.rand(3, 8, 8), 0)
