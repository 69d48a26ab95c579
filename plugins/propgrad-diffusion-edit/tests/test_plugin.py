"""Registration through the entry point, and the whole explanation flow on a small model."""

from __future__ import annotations

import importlib.metadata

import torch

import propgrad
from propgrad.explain.result import Explanation
from propgrad.stats.permutation import permutation_test
from propgrad_diffusion_edit import FluxKontextSource, InstructPix2PixSource, LEditsPPSource, QwenImageEditSource


def test_entry_point_registers_one_source_per_family():
    points = [ep for ep in importlib.metadata.entry_points(group="propgrad") if ep.name == "diffusion_edit"]
    assert len(points) == 1, "pip install -e plugins/propgrad-diffusion-edit first"
    registered: list[type] = []
    points[0].load().register_sources(registered.append)
    assert registered == [InstructPix2PixSource, LEditsPPSource, FluxKontextSource, QwenImageEditSource]
    assert [s.name for s in registered] == ["instruct_pix2pix", "ledits_pp", "flux_kontext", "qwen_image_edit"]
    assert InstructPix2PixSource.property_name == "text guidance scale"
    assert all(s.unit and s.description for s in registered)


def test_registry_finds_every_source_by_name():
    from propgrad import plugins

    for cls in (InstructPix2PixSource, LEditsPPSource, FluxKontextSource, QwenImageEditSource):
        assert plugins.get_source(cls.name) is cls


def test_old_package_name_is_the_same_modules():
    import propgrad_diffusion_edit.source
    import propgrad_instruct_pix2pix
    import propgrad_instruct_pix2pix.source

    assert propgrad_instruct_pix2pix.source is propgrad_diffusion_edit.source
    assert propgrad_instruct_pix2pix.InstructPix2PixSource is InstructPix2PixSource


class _ColourModel(torch.nn.Module):
    """A small classifier: two logits from the mean colour (red vs blue)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[8.0, 0.0, -8.0], [-8.0, 0.0, 8.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))


def _flow_source(make_source):
    return make_source(
        text_guidance_scales=None, text_guidance_start=1.05, text_guidance_stop=10.05, num_text_scales=16
    )


def test_sequence_outputs_feed_the_permutation_test(make_source, image):
    sequence = _flow_source(make_source).generate(image)
    with torch.no_grad():
        outputs = _ColourModel()(sequence.images).softmax(-1)
    result = permutation_test(outputs, n_permutations=200, seed=0)
    assert result.statistic.shape == result.p_value.shape == (2,)
    assert ((result.p_value > 0) & (result.p_value <= 1)).all()
    # two complementary probabilities change equally fast
    assert torch.allclose(result.statistic[0], result.statistic[1], atol=1e-5)


def test_whole_flow_with_the_property_gradient_api(make_source, image):
    source = _flow_source(make_source)
    explanation = propgrad.PropertyGradient(_ColourModel()).attribute(image, source=source, n_permutations=200)
    assert isinstance(explanation, Explanation)  # one (3, H, W) image gives one Explanation, not a list
    assert explanation.outputs.shape == (16, 2)
    assert explanation.score.shape == explanation.p_value.shape == (2,)  # one score per output column
    assert torch.isfinite(explanation.score).all()
    assert ((explanation.p_value > 0) & (explanation.p_value <= 1)).all()
    assert torch.equal(explanation.sequence.values, source.generate(image).values)
