"""PropertyGradient.attribute(..., n_placebos=M): the placebo-controlled test beside the paper's."""

from __future__ import annotations

import pytest
import torch

from propgrad import PropertyGradient
from propgrad.explain.scoring import placebo_seed
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.sources.placebo_sequences import placebo_sequences
from propgrad.stats.corrections import InfeasibleCorrectionWarning
from propgrad.stats.permutation import permutation_test
from propgrad.stats.placebo_test import placebo_p_value
from propgrad.stats.settings import test_settings

SIZE = 16
WATCHED = (slice(0, 4), slice(0, 4))  # the model reads this region strongly
IGNORED = (slice(10, 14), slice(10, 14))  # and this one a thousand times less


class Brighten(InterventionSource):
    """Brighten one 4x4 region by 0.05 per step over 11 steps."""

    name = "brighten"
    property_name = "brightness"
    unit = "step"

    def __init__(self, region: tuple[slice, slice] = WATCHED, periodic: bool = False) -> None:
        self.region = region
        self.periodic = periodic

    def generate(self, image: torch.Tensor, *, seed: int = 0, show_progress: bool = False) -> InterventionSequence:
        steps = []
        for s in range(11):
            x = image.clone()
            x[:, self.region[0], self.region[1]] += 0.05 * s
            steps.append(x.clamp(0, 1))
        return InterventionSequence(
            torch.stack(steps), torch.arange(11.0), "brightness", "step", periodic=self.periodic
        )


def model(x: torch.Tensor) -> torch.Tensor:
    """Two outputs: a strong reading of WATCHED plus a weak one of IGNORED, and its negative."""
    f = 10 * x[:, :, WATCHED[0], WATCHED[1]].mean((1, 2, 3)) + 0.01 * x[:, :, IGNORED[0], IGNORED[1]].mean((1, 2, 3))
    return torch.stack([f, -f], dim=1)


IMAGE = torch.full((3, SIZE, SIZE), 0.3)
SETTINGS = {"target": 0, "n_permutations": 999, "alpha": 0.05, "n_placebos": 49}


def explain(region: tuple[slice, slice] = WATCHED, **kwargs):
    settings = {**SETTINGS, **kwargs}
    return PropertyGradient(model, output_transform="none").attribute(IMAGE, Brighten(region), **settings)


def test_a_large_effect_is_significant_under_both_tests() -> None:
    e = explain(WATCHED)
    assert bool(e.significant) and bool(e.placebo.significant)
    assert float(e.placebo.p_value) == pytest.approx(1 / 50)  # no placebo moves the model as much
    assert float(e.score) > 10 * float(e.placebo.placebo_scores.max())


def test_a_tiny_smooth_effect_is_significant_only_under_the_permutation_test() -> None:
    e = explain(IGNORED)
    assert bool(e.significant)  # a deterministic monotone change: the paper's test calls it significant
    assert not bool(e.placebo.significant)  # but an arbitrary change of the same size moves the model more
    assert float(e.placebo.p_value) > 0.5


def test_the_placebos_are_the_seeded_matched_sequences_scored_with_the_same_statistic() -> None:
    e = explain(WATCHED, seed=3)
    placebos = placebo_sequences(e.sequence, 49, seed=placebo_seed(3, 0))
    expected = torch.stack(
        [permutation_test(model(p.images)[:, 0].double(), n_permutations=1).statistic for p in placebos]
    )
    torch.testing.assert_close(e.placebo.placebo_scores, expected, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(e.placebo.p_value, placebo_p_value(e.score, e.placebo.placebo_scores))
    assert e.placebo.statistic == e.score and e.placebo.n_placebos == 49


def test_same_seed_same_placebos_other_seed_other_placebos() -> None:
    a, b, c = explain(IGNORED, seed=1), explain(IGNORED, seed=1), explain(IGNORED, seed=2)
    assert torch.equal(a.placebo.placebo_scores, b.placebo.placebo_scores)
    assert not torch.equal(a.placebo.placebo_scores, c.placebo.placebo_scores)


def test_images_of_a_batch_get_their_own_placebos() -> None:
    batch = torch.stack([IMAGE, IMAGE])
    first, second = PropertyGradient(model, output_transform="none").attribute(batch, Brighten(IGNORED), **SETTINGS)
    assert not torch.equal(first.placebo.placebo_scores, second.placebo.placebo_scores)
    single = explain(IGNORED)
    torch.testing.assert_close(first.placebo.placebo_scores, single.placebo.placebo_scores)


def test_min_effect_makes_a_significant_small_score_not_significant_in_both_tests() -> None:
    plain = explain(WATCHED)
    floor = float(plain.score) * 1.01
    e = explain(WATCHED, min_effect=floor)
    assert torch.equal(e.p_value, plain.p_value) and torch.equal(e.placebo.p_value, plain.placebo.p_value)
    assert not bool(e.significant) and not bool(e.placebo.significant)
    assert bool(explain(WATCHED, min_effect=float(plain.score) * 0.99).significant)
    assert e.to_dict()["min_effect"] == floor and e.to_dict()["placebo"]["min_effect"] == floor


def test_the_default_runs_the_size_aware_test_sequentially_with_the_fixed_tests_verdicts() -> None:
    pg = PropertyGradient(model, output_transform="none")
    for region in (WATCHED, IGNORED):
        e = pg.attribute(IMAGE, Brighten(region), target=0, n_permutations=999, alpha=0.05)
        fixed = pg.attribute(
            IMAGE, Brighten(region), target=0, settings=test_settings(n_permutations=999, alpha=0.05, placebo_stop=None)
        )
        assert e.placebo.n_placebos == 100 and e.placebo.stop == 5  # ceil(alpha * M): the fixed test's verdicts
        assert fixed.placebo.stop is None and fixed.placebo.n_drawn == 100
        assert torch.equal(e.verdict, fixed.verdict) and torch.equal(e.verdict, e.placebo.significant)
        assert torch.equal(e.p_value, fixed.p_value)  # the placebo test leaves the paper's alone
    assert bool(e.verdict) is False and e.placebo.n_drawn < 100  # IGNORED stops early: cheaper, same verdict
    assert int(e.placebo.n_used) < 100 and float(e.placebo.p_value) == pytest.approx(5 / int(e.placebo.n_used))


def test_n_placebos_0_runs_the_permutation_test_alone() -> None:
    pg = PropertyGradient(model, output_transform="none")
    e = pg.attribute(IMAGE, Brighten(IGNORED), target=0, n_permutations=999, alpha=0.05, n_placebos=0)
    assert e.placebo is None and e.verdict is None and e.p_value_adjusted is None and e.correction is None
    assert torch.equal(e.significant, e.p_value < 0.05)
    assert torch.equal(explain(IGNORED).p_value, e.p_value)
    assert e.to_dict()["placebo"] is None and e.to_dict()["verdict"] is None
    assert "size not tested: placebo test not run" in e.reading


def test_reported_in_to_dict_and_summary() -> None:
    e = explain(WATCHED)
    record = e.to_dict()["placebo"]
    assert record["n_placebos"] == 49 and record["p_value"] == pytest.approx(0.02)
    text = e.summary()
    assert "placebo test (size-aware; larger than a change of the same size?): p = 0.02 over 49 of 49 placebo" in text
    assert "permutation test (the paper's; an ordered response, however small): p = 0.001" in text
    assert "reading: larger than an arbitrary change of the same size: 5 output units, no decision flip" in text
    assert e.to_dict()["reading"] == e.reading and e.to_dict()["verdict"] is True


def test_bad_settings_are_refused_before_the_model_runs() -> None:
    with pytest.raises(ValueError, match=r'test="both" runs the placebo test .* M > 0 placebos now say so'):
        explain(test="both")
    with pytest.raises((TypeError, ValueError), match="n_placebos must be an integer"):
        explain(n_placebos=-1)
    with pytest.raises((TypeError, ValueError), match="placebo must be one of 'smooth_direction', 'region'"):
        explain(settings=test_settings(placebo="noise"))
    with pytest.raises((TypeError, ValueError), match="min_effect"):
        explain(min_effect=float("nan"))


def test_a_periodic_sequence_has_no_placebos_and_says_so() -> None:
    e = PropertyGradient(model, output_transform="none").attribute(IMAGE, Brighten(periodic=True), **SETTINGS)
    assert e.placebo is None and e.verdict is None
    assert "size not tested: a periodic sequence has no placebos" in e.reading


def test_too_few_placebos_for_alpha_warn() -> None:
    with pytest.warns(InfeasibleCorrectionWarning, match="M >= 20"):
        explain(WATCHED, n_placebos=9)


def test_placebos_are_scored_with_a_whole_vector_statistic_one_value_each() -> None:
    """A vector norm mixes the output columns, so placebos are not scored side by side as columns."""
    import warnings

    from propgrad.core.images import example_image
    from propgrad.example_model import colour_balance_net
    from propgrad.explain.explainer import PropertyGradient
    from propgrad.stats.settings import test_settings

    image = example_image("chelsea", size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explanation = PropertyGradient(colour_balance_net()).attribute(
            image,
            "alpha_patch",
            target=None,
            n_permutations=99,
            n_placebos=5,
            settings=test_settings(statistic="vector_l2"),
        )
    assert explanation.placebo is not None
    assert explanation.test.statistic.shape == (1,)
    assert explanation.placebo.placebo_scores.shape == (5, 1)  # one vector statistic per placebo
    assert explanation.placebo.p_value.shape == (1,)
