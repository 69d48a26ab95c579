"""PropertyGradient.attribute_realisations: a source with randomness scored per seed and summarised."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import scipy.stats
import torch

from propgrad import PropertyGradient
from propgrad.errors import InvalidParameterError
from propgrad.explain.realisations import Realisations
from propgrad.explain.result import Explanation
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.stats.settings import test_settings

matplotlib.use("Agg")


class RandomPatch(InterventionSource):
    """Brighten a 4x4 patch at a seeded random position by 0.05 per step over 9 steps."""

    name = "random_patch"
    property_name = "brightness"

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        g = torch.Generator().manual_seed(seed)
        y, x = (int(v) for v in torch.randint(0, 13, (2,), generator=g))
        steps = []
        for s in range(9):
            img = image.clone()
            img[:, y : y + 4, x : x + 4] += 0.05 * s
            steps.append(img.clamp(0, 1))
        return InterventionSequence(torch.stack(steps), torch.arange(9.0), "brightness", "step", metadata={"y": y})


def model(x: torch.Tensor) -> torch.Tensor:
    """Reads the top half's brightness strongly, the bottom half's weakly."""
    f = 5 * x[:, :, :8].mean((1, 2, 3)) + 0.5 * x[:, :, 8:].mean((1, 2, 3))
    return torch.stack([f, -f], dim=1)


IMAGE = torch.full((3, 16, 16), 0.3)
PG = PropertyGradient(model, output_transform="none")
SETTINGS = {"target": 0, "n_permutations": 199, "alpha": 0.05, "seed": 10}
TEST = test_settings(n_permutations=199, alpha=0.05, seed=10)


def realise(inputs: torch.Tensor, realisations: object, target: int | None = 0, **kwargs: object):
    """``PG.attribute_realisations`` with the test settings of :data:`SETTINGS`."""
    return PG.attribute_realisations(inputs, RandomPatch(), realisations, target, settings=TEST, **kwargs)


def test_each_realisation_is_the_explanation_of_its_seed_and_the_summary_matches_scipy() -> None:
    result = realise(IMAGE, 6)
    assert isinstance(result, Realisations) and result.seeds == tuple(range(10, 16))
    for seed, e in zip(result.seeds, result.explanations):
        alone = PG.attribute(IMAGE, RandomPatch(), **{**SETTINGS, "seed": seed})
        assert torch.equal(e.score, alone.score) and torch.equal(e.p_value, alone.p_value)
    scores = np.array([float(e.score) for e in result.explanations])
    assert len(set(scores.round(12))) > 1  # the draws differ
    assert float(result.mean_score) == pytest.approx(scores.mean(), rel=1e-12)
    ci = scipy.stats.bootstrap(
        (scores,), np.mean, confidence_level=0.95, n_resamples=9999, method="percentile", rng=np.random.default_rng(10)
    ).confidence_interval
    low, high = result.ci
    assert (float(low), float(high)) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert low <= result.mean_score <= high
    flags = [bool(e.significant) for e in result.explanations]
    assert float(result.fraction_significant) == pytest.approx(sum(flags) / 6)


def test_a_list_of_seeds_and_a_batch() -> None:
    batch = torch.stack([IMAGE, IMAGE * 0.5])
    results = realise(batch, [3, 7])
    assert isinstance(results, list) and len(results) == 2
    assert all(r.seeds == (3, 7) and len(r) == 2 for r in results)
    alone = PG.attribute(IMAGE * 0.5, RandomPatch(), **{**SETTINGS, "seed": 7})
    assert torch.equal(results[1].explanations[1].score, alone.score)


def test_one_realisation_has_no_interval_and_attribute_returns_an_explanation() -> None:
    one = realise(IMAGE, 1)
    assert math.isnan(float(one.ci[0])) and math.isnan(float(one.ci[1]))
    assert float(one.mean_score) == float(one.explanations[0].score)
    assert isinstance(PG.attribute(IMAGE, RandomPatch(), **SETTINGS), Explanation)


def test_every_column_the_placebo_share_the_record_and_the_plot() -> None:
    placebos = test_settings(n_permutations=199, alpha=0.05, seed=10, n_placebos=29)
    result = PG.attribute_realisations(IMAGE, RandomPatch(), 3, None, settings=placebos)
    assert result.mean_score.shape == (2,) and result.placebo is not None
    expected = np.mean([e.placebo.significant.numpy() for e in result.explanations], axis=0)
    np.testing.assert_allclose(result.placebo.fraction_significant.numpy(), expected)
    record = result.to_dict()
    assert record["seeds"] == [10, 11, 12] and len(record["realisations"]) == 3
    assert record["scores"]["confidence_level"] == 0.95
    assert "3 realisations" in result.summary() and "CI [" in result.summary()
    ax = result.plot_behaviour()
    assert len(ax.get_lines()) == 3


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "realisations"),
        ([1, 1], ValueError, "seed twice"),
        ([], ValueError, "at least one seed"),
        ("3", TypeError, "realisations must be a number R or a list of seeds"),
        (None, TypeError, "realisations must be a number R or a list of seeds"),
        ([1.5], (TypeError, ValueError), "seed"),
        (True, (TypeError, ValueError), "realisations"),
    ],
)
def test_bad_realisations_are_refused(value: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        realise(IMAGE, value)


def test_a_bad_confidence_level_is_refused_before_any_sequence_is_built() -> None:
    with pytest.raises(ValueError, match="confidence_level"):
        realise(IMAGE, 2, confidence_level=1.0)


def test_the_test_settings_go_in_settings() -> None:
    with pytest.raises(InvalidParameterError, match=r"no longer takes n_permutations=: use settings=.*test_settings"):
        PG.attribute_realisations(IMAGE, RandomPatch(), realisations=2, n_permutations=99)
    with pytest.raises(InvalidParameterError, match=r"attribute_realisations\(\) no longer takes seed="):
        PG.attribute_realisations(IMAGE, RandomPatch(), 2, seed=3)
