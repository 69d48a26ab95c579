"""``propgrad.testing`` rejects broken plugin classes with an ``AssertionError`` naming the class.

Each broken class below breaks one part of the source or baseline contract; the helpers must
report it as an ``AssertionError`` whose message names the class and says what was wrong, never
let the plugin's own ``ValueError``/``RuntimeError`` (or an invalid ``InterventionSequence``)
escape unexplained, and never accept it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from propgrad.baselines.base import AttributionBaseline
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.testing import check_baseline, check_source, sample_image, tiny_classifier


class GoodSource(InterventionSource):
    name = "good_source"
    description = "Fade to black"
    property_name = "darkness"
    unit = "fraction"

    def __init__(self, steps: int = 4) -> None:
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        self.steps = steps

    def values(self, image: torch.Tensor) -> torch.Tensor:
        return torch.linspace(0, 1, self.steps, dtype=image.dtype, device=image.device)

    def generate(self, image, *, seed=0, show_progress=False):
        values = self.values(image)
        return InterventionSequence(torch.stack([image * (1 - v) for v in values]), values, "darkness", "fraction")


class DecreasingValues(GoodSource):
    def generate(self, image, *, seed=0, show_progress=False):
        values = self.values(image).flip(0)
        return InterventionSequence(torch.stack([image * v for v in values]), values, "darkness", "fraction")


class OutOfRange(GoodSource):
    def generate(self, image, *, seed=0, show_progress=False):
        values = self.values(image)
        return InterventionSequence(torch.stack([image * (1 + v) for v in values]), values, "darkness", "fraction")


class WrongShape(GoodSource):
    def generate(self, image, *, seed=0, show_progress=False):
        values = self.values(image)
        return InterventionSequence(torch.stack([image[:1] * v for v in values]), values, "darkness", "fraction")


class Crashing(GoodSource):
    def generate(self, image, *, seed=0, show_progress=False):
        raise RuntimeError("CUDA out of memory (pretend)")


class ReturnsTensor(GoodSource):
    def generate(self, image, *, seed=0, show_progress=False):
        return super().generate(image).images


class WrongUnit(GoodSource):
    def generate(self, image, *, seed=0, show_progress=False):
        seq = super().generate(image)
        return InterventionSequence(seq.images, seq.values, "darkness", "percent")


class ShrinksImage(GoodSource):
    def generate(self, image, *, seed=0, show_progress=False):
        return super().generate(image[:, :8, :8])


@pytest.mark.parametrize(
    ("broken", "params", "match"),
    [
        (DecreasingValues, {}, r"DecreasingValues\.generate raised \w+Error: InterventionSequence\.values"),
        (OutOfRange, {}, r"OutOfRange\.generate raised SourceError: source .*OutOfRange\) produced pixels outside"),
        (WrongShape, {}, r"WrongShape\.generate raised \w+Error: InterventionSequence\.images must have shape"),
        (Crashing, {}, r"Crashing\.generate raised RuntimeError: CUDA out of memory"),
        (GoodSource, {"steps": 1}, r"GoodSource\(\*\*\{'steps': 1\}\) raised ValueError: steps must be at least 2"),
        (ReturnsTensor, {}, r"ReturnsTensor\.generate raised SourceError: .* returned Tensor, not an Intervention"),
        (WrongUnit, {}, r"WrongUnit\.generate property/unit"),
        (ShrinksImage, {}, r"ShrinksImage\.generate changed the image size"),
    ],
)
def test_check_source_rejects_broken_sources_naming_the_class(broken, params, match):
    with pytest.raises(AssertionError, match=match) as info:
        check_source(broken, **params)
    assert type(info.value) is AssertionError


def test_check_source_keeps_the_plugins_error_as_the_cause():
    with pytest.raises(AssertionError) as info:
        check_source(DecreasingValues)
    assert isinstance(info.value.__cause__, ValueError)  # pytest shows where the plugin went wrong


def test_check_source_first_is_original_with_a_resized_sequence_is_an_assertion():
    with pytest.raises(AssertionError, match=r"ShrinksImage\.generate first step differs"):
        check_source(ShrinksImage, same_size=False, first_is_original=True)


def test_check_source_accepts_the_good_source():
    assert len(check_source(GoodSource, sample_image(), first_is_original=True, steps=5)) == 5


class GoodBaseline(AttributionBaseline):
    name = "good_baseline"
    description = "Input times gradient"

    def attribute(self, model, images, target):
        images = images.detach().clone().requires_grad_(True)
        picked = model(images).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(picked, images)
        return (grad * images).detach()


class LeavesGrad(GoodBaseline):
    def attribute(self, model, images, target):
        images = images.detach().clone().requires_grad_(True)
        model(images).gather(1, target.view(-1, 1)).sum().backward()  # fills .grad of every parameter
        return (images.grad * images).detach()


class FreezesModel(GoodBaseline):
    def attribute(self, model, images, target):
        for p in model.parameters():
            p.requires_grad_(False)
        return images.mean(dim=1)


class EditsWeights(GoodBaseline):
    def attribute(self, model, images, target):
        with torch.no_grad():
            next(model.parameters()).mul_(0.5)
        return super().attribute(model, images, target)


class TrainsSubmodule(GoodBaseline):
    def attribute(self, model, images, target):
        model[0].train()  # the root stays in eval mode; a submodule does not
        return super().attribute(model, images, target)


class LeavesHook(GoodBaseline):
    def attribute(self, model, images, target):
        model[1].register_forward_hook(lambda module, args, out: None)
        return super().attribute(model, images, target)


class DisablesGrad(GoodBaseline):
    def attribute(self, model, images, target):
        maps = super().attribute(model, images, target)
        torch.set_grad_enabled(False)
        return maps


class RaisesInAttribute(GoodBaseline):
    def attribute(self, model, images, target):
        raise IndexError("target 0 out of range")


@pytest.mark.parametrize(
    ("broken", "match"),
    [
        (LeavesGrad, r"LeavesGrad\.attribute changed the model: \.grad left set.*: 0\.weight"),
        (FreezesModel, r"FreezesModel\.attribute changed the model: requires_grad changed: 0\.weight"),
        (EditsWeights, r"EditsWeights\.attribute changed the model: parameter/buffer values.*: 0\.weight"),
        (TrainsSubmodule, r"TrainsSubmodule\.attribute changed the model: train/eval mode changed.*: 0$"),
        (LeavesHook, r"LeavesHook\.attribute changed the model: hooks left registered.*: 1$"),
        (DisablesGrad, r"DisablesGrad\.attribute left gradient tracking off"),
        (RaisesInAttribute, r"RaisesInAttribute\.attribute raised IndexError: target 0 out of range"),
    ],
)
def test_check_baseline_rejects_broken_baselines_naming_the_class(broken, match):
    grad_mode = torch.is_grad_enabled()
    try:
        with pytest.raises(AssertionError, match=match):
            check_baseline(broken, tiny_classifier())
    finally:
        torch.set_grad_enabled(grad_mode)


def test_check_baseline_accepts_the_good_baseline_and_a_model_with_existing_grads():
    model = tiny_classifier()
    for p in model.parameters():
        p.grad = torch.ones_like(p)  # the user's own grads: the baseline must leave them as they were
    assert check_baseline(GoodBaseline, model).shape == (2, 3, 16, 16)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())


def test_check_baseline_names_the_changed_grads_of_a_model_that_had_some():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    model[1].weight.grad = torch.zeros_like(model[1].weight)
    with pytest.raises(AssertionError, match=r"\.grad left set or changed.*: 1\.weight, 1\.bias"):
        check_baseline(LeavesGrad, model)
