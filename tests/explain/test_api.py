"""The Captum-style API: PropertyGradient(model).attribute(inputs, source)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from propgrad import PropertyGradient
from propgrad.explain.result import Explanation
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.stats.settings import test_settings


class Darken(InterventionSource):
    """Scales the whole image from 1 down to 0.1: a property a brightness model reacts to."""

    name = "darken_test"
    description = "darken for tests"
    property_name = "darkness"
    unit = "step"

    def __init__(self, steps: int = 15) -> None:
        self.steps = steps

    def generate(self, image, *, seed=0, show_progress=False):
        factors = torch.linspace(1.0, 0.1, self.steps, device=image.device)
        images = image[None] * factors[:, None, None, None]
        return InterventionSequence(images, torch.arange(self.steps, dtype=torch.float32), "darkness", "step")


class BrightnessModel(nn.Module):
    """Logits (bright, dark) from mean brightness; counts forward calls and batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
        self.batches.append(x.shape[0])
        m = x.mean(dim=(1, 2, 3)) + offset
        return torch.stack([20 * (m - 0.45), -20 * (m - 0.45)], dim=1)


def constant_model(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor([2.0, -1.0]).expand(x.shape[0], 2)


@pytest.fixture
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return 0.5 + 0.4 * torch.rand(3, 16, 16, generator=g)


def test_property_that_drives_the_model_is_significant_and_flips(image):
    model = BrightnessModel()
    exp = PropertyGradient(model).attribute(image, Darken(), target=0, n_permutations=500)
    assert isinstance(exp, Explanation)
    assert exp.score.dim() == 0 and float(exp.score) > 0.02
    assert bool(exp.significant) and float(exp.p_value) < 0.01
    assert exp.flips.final_differs and exp.flips.n_flips == 1
    assert exp.outputs.shape == (15, 2)
    assert torch.allclose(exp.outputs.sum(1), torch.ones(15))  # softmax by default


def test_property_the_model_ignores_is_not_significant(image):
    exp = PropertyGradient(constant_model).attribute(image, Darken(), n_permutations=300)
    assert exp.score.shape == (2,)
    assert torch.all(exp.score == 0)
    assert torch.all(exp.p_value == 1.0) and not exp.significant.any()
    assert exp.flips.n_flips == 0 and not exp.flips.flipped_anywhere


def test_batch_of_inputs_gives_one_explanation_each(image):
    batch = torch.stack([image, image * 0.5])
    out = PropertyGradient(BrightnessModel()).attribute(batch, Darken(), target=[0, 1], n_permutations=100)
    assert isinstance(out, list) and len(out) == 2
    assert [e.target for e in out] == [0, 1]


def test_forward_passes_are_batched_and_extra_args_are_passed(image):
    model = BrightnessModel()
    pg = PropertyGradient(model, batch_size=4)
    shifted = pg.attribute(
        image, Darken(steps=10), target=0, additional_forward_args=(10.0,), n_permutations=50, n_placebos=0
    )
    assert model.batches == [4, 4, 3]  # the original image, then the 10 steps
    # a huge offset saturates the model: the darkening no longer changes its output
    assert float(shifted.score) < 1e-6


def test_preprocess_is_applied_before_the_model(image):
    model = BrightnessModel()
    plain = PropertyGradient(model).attribute(image, Darken(), target=0, n_permutations=50)
    inverted = PropertyGradient(model, preprocess=lambda x: 1 - x).attribute(
        image, Darken(), target=0, n_permutations=50
    )
    assert float(plain.outputs[0, 0]) > 0.5 > float(inverted.outputs[0, 0])


def test_output_transform_none_keeps_raw_outputs(image):
    exp = PropertyGradient(BrightnessModel(), output_transform="none").attribute(image, Darken(), n_permutations=50)
    assert float(exp.outputs[0, 0]) > 1.0  # a logit, not a probability


@pytest.mark.parametrize(
    "model, message",
    [
        (lambda x: x.mean(), "must return shape"),
        (lambda x: (x.mean((1, 2, 3)), x), "must return a tensor"),
        (lambda x: torch.full((x.shape[0], 2), float("nan")), "NaN or Inf at step 0"),
        (lambda x: torch.zeros(x.shape[0], 2, 3), "must return shape"),
    ],
)
def test_models_returning_bad_outputs_get_clear_errors(image, model, message):
    with pytest.raises(ValueError, match=message):
        PropertyGradient(model).attribute(image, Darken(), n_permutations=10)


def test_bad_inputs_get_clear_errors(image):
    pg = PropertyGradient(BrightnessModel())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pg.attribute(image * 255, Darken())
    with pytest.raises(ValueError, match="float tensor"):
        pg.attribute((image * 255).to(torch.uint8), Darken())
    with pytest.raises(ValueError, match="shape"):
        pg.attribute(image[:2], Darken())
    with pytest.raises(ValueError, match="target 5 is out of range"):
        pg.attribute(image, Darken(), target=5, n_permutations=10)
    with pytest.raises(ValueError, match="one per input"):
        pg.attribute(torch.stack([image, image]), Darken(), target=[0], n_permutations=10)
    with pytest.raises(TypeError, match="forward_func"):
        PropertyGradient("not a model")
    with pytest.raises(ValueError, match="output_transform"):
        PropertyGradient(BrightnessModel(), output_transform="logsoftmax")


def test_unknown_source_name_suggests_close_names(image):
    with pytest.raises(LookupError, match="alpha_patch"):
        PropertyGradient(BrightnessModel()).attribute(image, "alpha_pach", n_permutations=10)


def test_same_seed_same_explanation(image):
    pg = PropertyGradient(BrightnessModel())
    a = pg.attribute(image, Darken(), target=0, n_permutations=200, seed=3)
    b = pg.attribute(image, Darken(), target=0, n_permutations=200, seed=3)
    assert torch.equal(a.score, b.score) and torch.equal(a.p_value, b.p_value)


def test_explanation_plots_and_saves(image, tmp_path):
    exp = PropertyGradient(BrightnessModel()).attribute(image, Darken(), n_permutations=200)
    paths = exp.save(tmp_path / "out", labels=["bright", "dark"])
    names = sorted(p.name for p in paths)
    assert names == ["explanation.json", "explanation.png", "explanation_filmstrip.png"]
    record = json.loads((tmp_path / "out" / "explanation.json").read_text())
    assert record["labels"] == ["bright", "dark"] and len(record["values"]) == 15
    assert record["flips"]["n_flips"] == 1
    assert all(p.stat().st_size > 1000 for p in paths)
    assert "bright" in exp.summary(["bright", "dark"])


def test_scores_are_per_step_by_default_and_per_unit_on_request(image):
    class Spaced(Darken):
        def generate(self, image, *, seed=0, show_progress=False):
            seq = super().generate(image, seed=seed)
            return InterventionSequence(seq.images, seq.values * 10.0, "darkness", "lux")

    pg = PropertyGradient(BrightnessModel())
    per_step = pg.attribute(image, Spaced(), target=0, n_permutations=50)
    per_unit = pg.attribute(image, Spaced(), target=0, n_permutations=50, settings=test_settings(per="unit"))
    assert per_step.score_unit == "per step" and per_unit.score_unit == "per lux"
    assert torch.allclose(per_step.score, per_unit.score * 10.0)
    with pytest.raises(ValueError, match="per must be"):
        pg.attribute(image, Spaced(), settings=test_settings(per="degree"))
