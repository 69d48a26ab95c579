"""Captum conventions of PropertyGradient.attribute: internal_batch_size, return_convergence_delta."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from propgrad import PropertyGradient
from propgrad.example_model import colour_balance_net


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _calls(model: torch.nn.Module) -> list[int]:
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    return sizes


def test_internal_batch_size_is_batch_size(images: torch.Tensor) -> None:
    kwargs = {"source": "alpha_patch", "target": 0, "n_permutations": 99, "source_params": {"steps": 5}}
    model = colour_balance_net()
    sizes = _calls(model)
    captum = PropertyGradient(model).attribute(images, internal_batch_size=4, **kwargs)
    assert max(sizes) == 4
    plain = PropertyGradient(colour_balance_net()).attribute(images, batch_size=4, **kwargs)
    assert [float(e.score) for e in captum] == [float(e.score) for e in plain]
    with pytest.raises(ValueError, match="batch_size=8 and internal_batch_size=4 disagree"):
        PropertyGradient(model).attribute(images, batch_size=8, internal_batch_size=4, **kwargs)
    with pytest.raises(ValueError, match="internal_batch_size"):
        PropertyGradient(model).attribute(images, internal_batch_size=0, **kwargs)


def test_convergence_delta_is_the_margin_over_the_null_quantile(images: torch.Tensor) -> None:
    pg = PropertyGradient(colour_balance_net())
    explanations, delta = pg.attribute(
        images, "alpha_patch", target=1, n_permutations=199, alpha=0.05, return_convergence_delta=True
    )
    assert delta.shape == (2,)
    for explanation, margin in zip(explanations, delta):
        null = explanation.test.null_distribution.numpy()
        expected = float(explanation.test.statistic) - np.quantile(null, 0.95)  # numpy's linear rule = torch's
        assert float(margin) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert (float(margin) > 0) == (float(explanation.test.statistic) > np.quantile(null, 0.95))
    single, one = pg.attribute(images[0], "alpha_patch", target=1, n_permutations=199, return_convergence_delta=True)
    assert one.shape == (1,) and float(single.score) == float(explanations[0].score)
    with pytest.raises(ValueError, match="realisations"):
        pg.attribute(images, "alpha_patch", target=1, realisations=2, return_convergence_delta=True)
