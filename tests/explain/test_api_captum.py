"""Captum conventions of PropertyGradient: the batch size in the constructor, one return type family,
the convergence delta as a property of the explanation, and a clear word for the keywords that moved."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from propgrad import PropertyGradient
from propgrad.errors import InvalidParameterError
from propgrad.example_model import colour_balance_net
from propgrad.explain.realisations import Realisations
from propgrad.explain.result import Explanation
from propgrad.stats.settings import test_settings


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _calls(model: torch.nn.Module) -> list[int]:
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    return sizes


def test_the_batch_size_belongs_to_the_explainer(images: torch.Tensor) -> None:
    kwargs = {"source": "alpha_patch", "target": 0, "n_permutations": 99, "source_params": {"steps": 5}}
    model = colour_balance_net()
    sizes = _calls(model)
    four = PropertyGradient(model, batch_size=4).attribute(images, **kwargs)
    assert max(sizes) == 4
    default = PropertyGradient(colour_balance_net()).attribute(images, **kwargs)
    assert [float(e.score) for e in four] == [float(e.score) for e in default]
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        PropertyGradient(model, batch_size=0)


def test_attribute_has_at_most_twelve_parameters_and_one_return_type_family() -> None:
    parameters = inspect.signature(PropertyGradient.attribute).parameters
    assert len(parameters) - 1 <= 12  # without self
    returned = inspect.signature(PropertyGradient.attribute).return_annotation
    assert returned == "Explanation | list[Explanation]"


def test_one_image_gives_an_explanation_and_a_batch_a_list(images: torch.Tensor) -> None:
    pg = PropertyGradient(colour_balance_net())
    one = pg.attribute(images[0], "alpha_patch", target=1, n_permutations=99)
    batch = pg.attribute(images, "alpha_patch", target=1, n_permutations=99)
    assert isinstance(one, Explanation)
    assert isinstance(batch, list) and all(isinstance(e, Explanation) for e in batch)
    realised = pg.attribute_realisations(images, "alpha_patch", 2, target=1, settings=test_settings(n_permutations=99))
    assert isinstance(realised, list) and all(isinstance(r, Realisations) for r in realised)


def test_convergence_delta_is_the_margin_over_the_null_quantile(images: torch.Tensor) -> None:
    pg = PropertyGradient(colour_balance_net())
    explanations = pg.attribute(images, "alpha_patch", target=1, n_permutations=199, alpha=0.05)
    delta = torch.stack([e.convergence_delta for e in explanations])  # Captum's per-input delta
    assert delta.shape == (2,)
    for explanation, margin in zip(explanations, delta):
        null = explanation.test.null_distribution.numpy()
        expected = float(explanation.test.statistic) - np.quantile(null, 0.95)  # numpy's linear rule = torch's
        assert float(margin) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert (float(margin) > 0) == (float(explanation.test.statistic) > np.quantile(null, 0.95))
    every = pg.attribute(images[0], "alpha_patch", target=None, n_permutations=199)
    assert every.convergence_delta.shape == every.score.shape == (2,)


@pytest.mark.parametrize(
    ("keyword", "value", "where"),
    [
        ("return_convergence_delta", True, r"explanation\.convergence_delta"),
        ("realisations", 3, r"PropertyGradient\.attribute_realisations"),
        ("confidence_level", 0.9, r"attribute_realisations\(\.\.\., confidence_level"),
        ("batch_size", 8, r"PropertyGradient\(model, batch_size=\.\.\.\)"),
        ("internal_batch_size", 8, r"PropertyGradient\(model, batch_size=\.\.\.\).*internal_batch_size"),
        ("show_progress", True, r"PropertyGradient\(model, show_progress=\.\.\.\)"),
        ("statistic", "pearson", r"settings=propgrad\.stats\.settings\.test_settings\(statistic=\.\.\.\)"),
        ("per", "unit", r"test_settings\(per=\.\.\.\)"),
        ("sequential", 10, r"test_settings\(sequential=\.\.\.\)"),
        ("placebo", "region", r"test_settings\(placebo=\.\.\.\)"),
        ("test", "both", r"n_placebos=M"),
    ],
)
def test_a_keyword_that_moved_says_where_it_went(images: torch.Tensor, keyword: str, value: object, where: str):
    pg = PropertyGradient(colour_balance_net())
    with pytest.raises(InvalidParameterError, match=rf"attribute\(\) no longer takes {keyword}=: use .*{where}"):
        pg.attribute(images[0], "alpha_patch", **{keyword: value})
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):  # an unknown one: Python's word
        pg.attribute(images[0], "alpha_patch", colour="red")
