"""Registration through the entry point, and the whole explanation flow on a small model."""

from __future__ import annotations

import importlib.metadata

import torch

import propgrad
from propgrad.explain.result import Explanation
from propgrad.stats.permutation import permutation_test
from propgrad_instruct_pix2pix import InstructPix2PixSource


def test_entry_point_registers_the_source():
    points = [ep for ep in importlib.metadata.entry_points(group="propgrad") if ep.name == "instruct_pix2pix"]
    assert len(points) == 1, "pip install -e plugins/propgrad-instruct-pix2pix first"
    registered: list[type] = []
    points[0].load().register_sources(registered.append)
    assert registered == [InstructPix2PixSource]
    assert InstructPix2PixSource.name == "instruct_pix2pix"
    assert InstructPix2PixSource.property_name == "text guidance scale"
    assert InstructPix2PixSource.unit and InstructPix2PixSource.description


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
