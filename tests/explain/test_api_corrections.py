"""PropertyGradient.attribute(..., correction=...): multiple testing over an explanation's columns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from propgrad import PropertyGradient
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.stats.corrections import InfeasibleCorrectionWarning, adjust_p_values


class Ramp(InterventionSource):
    """Brighten the whole image by 0.04 per step over 9 steps, with seeded pixel noise on top."""

    name = "ramp"
    property_name = "brightness"

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        g = torch.Generator().manual_seed(seed)
        steps = [(image + 0.04 * s + 0.2 * torch.rand(image.shape, generator=g)).clamp(0, 1) for s in range(9)]
        return InterventionSequence(torch.stack(steps), torch.arange(9.0), "brightness", "step")


_NOISE = torch.randn(8, 3 * 16 * 16, generator=torch.Generator().manual_seed(0))
#: 8 outputs: zero-mean pixel mixtures (they see the noise) plus a growing share of the mean brightness (the ramp)
WEIGHTS = _NOISE - _NOISE.mean(1, keepdim=True) + torch.linspace(0, 0.3, 8)[:, None]


def model(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1) @ WEIGHTS.T


IMAGE = torch.full((3, 16, 16), 0.4)


def explain(**kwargs):
    settings = {"n_permutations": 199, "alpha": 0.05, "seed": 0, "n_placebos": 0, **kwargs}
    return PropertyGradient(model, output_transform="none").attribute(IMAGE, Ramp(), **settings)


def holm_reference(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, as a plain loop."""
    n = len(p)
    order = sorted(range(n), key=lambda i: p[i])
    out, running = [0.0] * n, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (n - rank) * p[i]))
        out[i] = running
    return out


def test_holm_adjusted_p_values_equal_the_reference_and_drive_significance() -> None:
    plain, e = explain(), explain(correction="holm")
    assert torch.equal(e.p_value, plain.p_value)  # the raw p-values stay as they were
    assert len(set(e.p_value.tolist())) > 2  # a family with different p-values
    torch.testing.assert_close(e.p_value_adjusted, adjust_p_values(plain.p_value, "holm"))
    np.testing.assert_allclose(e.p_value_adjusted.numpy(), holm_reference(plain.p_value.tolist()), rtol=1e-12)
    assert torch.equal(e.significant, e.p_value_adjusted < 0.05)
    assert e.test.significant is e.significant  # one truth for significance
    record = e.to_dict()
    assert record["correction"] == "holm" and record["p_value_adjusted"] == e.p_value_adjusted.tolist()
    assert "holm:" in e.summary()


def test_bh_adjusted_p_values_equal_scipy() -> None:
    e = explain(correction="bh")
    expected = scipy.stats.false_discovery_control(e.p_value.numpy(), method="bh")
    np.testing.assert_allclose(e.p_value_adjusted.numpy(), expected, rtol=1e-12)
    assert torch.equal(e.significant, e.p_value_adjusted < 0.05)


def test_the_placebo_test_is_corrected_over_the_same_columns() -> None:
    e = explain(correction="holm", n_placebos=49, alpha=0.2)
    torch.testing.assert_close(e.placebo.p_value_adjusted, adjust_p_values(e.placebo.p_value, "holm"))
    assert torch.equal(e.placebo.significant, e.placebo.p_value_adjusted < 0.2)
    assert e.to_dict()["placebo"]["correction"] == "holm"


def test_one_target_is_a_family_of_one() -> None:
    e = explain(correction="holm", target=3)
    assert torch.equal(e.p_value_adjusted, e.p_value)


def test_too_few_permutations_for_the_correction_warn_with_the_k_needed() -> None:
    # Holm over 8 tests at alpha 0.05: 8 / (K + 1) < 0.05 needs K >= 160
    with pytest.warns(InfeasibleCorrectionWarning, match=r"K >= 160") as caught:
        e = explain(correction="holm", n_permutations=99)
    assert caught[0].filename == __file__  # points at the user's call
    assert not bool(e.significant.any())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain(correction="holm", n_permutations=199)
        explain(n_permutations=99)  # no correction: nothing to warn about


def test_an_unknown_correction_is_refused() -> None:
    with pytest.raises(ValueError, match="correction must be one of"):
        explain(correction="bonferroni")
