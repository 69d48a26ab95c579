"""The placebo-controlled test (propgrad.stats.placebo_test): p-value arithmetic, ties, vectorisation, the
effect-size floor, calibration under the null, and its contrast with the permutation test."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from propgrad.sources.base import InterventionSequence
from propgrad.sources.gaussian_vignette import GaussianVignetteSource
from propgrad.sources.placebo_sequences import placebo_images
from propgrad.stats.decision import significant_with_min_effect
from propgrad.stats.gradient import property_gradient
from propgrad.stats.permutation import permutation_test
from propgrad.stats.placebo_test import PlaceboResult, placebo_p_value, placebo_test

H = W = 16


def test_p_value_arithmetic() -> None:
    # b = 2 placebos (6, 7) at least the observed 5: p = 3 / 6
    assert float(placebo_p_value(5.0, [1.0, 2.0, 3.0, 6.0, 7.0])) == pytest.approx(0.5)
    # none at least: the smallest p, 1 / (M + 1)
    assert float(placebo_p_value(10.0, torch.arange(9.0))) == pytest.approx(0.1)
    # all at least: p = 1
    assert float(placebo_p_value(-1.0, torch.arange(9.0))) == pytest.approx(1.0)
    # one-sided: placebos far below the observed do not count, however extreme
    assert float(placebo_p_value(0.0, [-100.0, -50.0, 1.0])) == pytest.approx(2 / 4)


def test_ties_count_against_significance() -> None:
    assert float(placebo_p_value(5.0, [5.0, 1.0, 1.0])) == pytest.approx(2 / 4)
    assert float(placebo_p_value(5.0, [5.0, 5.0, 5.0])) == pytest.approx(1.0)
    # float noise is a tie: 0.1 + 0.2 != 0.3, in float64 and float32
    assert float(placebo_p_value(torch.tensor(0.1 + 0.2, dtype=torch.float64), torch.tensor([0.3, 0.0]))) == 2 / 3
    obs32 = torch.tensor(1.0, dtype=torch.float32)
    noisy = torch.tensor([1.0 - 50 * torch.finfo(torch.float32).eps, 0.0])
    assert float(placebo_p_value(obs32, noisy)) == pytest.approx(2 / 3)
    # ... but a real difference is not
    assert float(placebo_p_value(1.0, torch.tensor([1.0 - 1e-6, 0.0], dtype=torch.float64))) == pytest.approx(1 / 3)


def test_vectorised_over_columns_equals_per_column() -> None:
    g = torch.Generator().manual_seed(0)
    placebos = torch.rand(39, 7, generator=g, dtype=torch.float64)
    observed = torch.rand(7, generator=g, dtype=torch.float64)
    observed[0] = placebos[3, 0]  # an exact tie
    observed[1] = 2.0  # larger than all
    p = placebo_p_value(observed, placebos)
    assert p.shape == (7,) and p.dtype == torch.float64
    for c in range(7):
        b = sum(float(placebos[m, c]) >= float(observed[c]) for m in range(39))
        assert float(p[c]) == pytest.approx((b + 1) / 40)
        assert float(placebo_p_value(observed[c], placebos[:, c])) == float(p[c])
    assert float(p[1]) == pytest.approx(1 / 40)
    # numpy input, mixed dtypes: float64 wins, on the observed's device
    p_np = placebo_p_value(observed.numpy(), placebos.float().numpy())
    assert p_np.dtype == torch.float64 and p_np.shape == (7,)
    # the tie tolerance is per column: a column of huge scores does not widen the ties of a small one
    mixed = torch.tensor([[1e6, 1.0 - 1e-9], [0.0, 0.0]], dtype=torch.float64)
    assert placebo_p_value(torch.tensor([2e6, 1.0], dtype=torch.float64), mixed).tolist() == pytest.approx(
        [1 / 3, 1 / 3]
    )


def test_nan_and_infinities() -> None:
    assert float(placebo_p_value(float("nan"), [0.0, 1.0])) == 1.0
    # NaN placebos count against significance
    assert float(placebo_p_value(5.0, [float("nan"), 1.0, 1.0])) == pytest.approx(2 / 4)
    assert float(placebo_p_value(float("inf"), [1.0, float("inf")])) == pytest.approx(2 / 3)
    assert float(placebo_p_value(float("inf"), [1.0, 2.0])) == pytest.approx(1 / 3)
    assert float(placebo_p_value(float("-inf"), [1.0, 2.0])) == 1.0


def test_shape_and_type_errors() -> None:
    with pytest.raises(ValueError, match=r"placebo_scores must have shape \(M, 3\)"):
        placebo_p_value(torch.zeros(3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"placebo_scores must have shape \(M,\)"):
        placebo_p_value(0.0, torch.zeros(5, 1))
    with pytest.raises(ValueError, match="observed must have shape"):
        placebo_p_value(torch.zeros(2, 2), torch.zeros(5, 2, 2))
    with pytest.raises(ValueError, match="at least one placebo"):
        placebo_p_value(0.0, torch.zeros(0))
    with pytest.raises(TypeError, match="observed must be"):
        placebo_p_value("big", [1.0])
    with pytest.raises(TypeError, match="real numbers"):
        placebo_p_value(torch.tensor(1j), [1.0])


def test_significant_with_min_effect() -> None:
    p = torch.tensor([0.01, 0.01, 0.2, 0.01])
    score = torch.tensor([0.5, 0.05, 0.5, float("nan")])
    got = significant_with_min_effect(p, score, 0.05, 0.1)
    assert got.tolist() == [True, False, False, False]
    assert significant_with_min_effect(p, score, 0.05).tolist() == [True, True, False, False]
    assert significant_with_min_effect(0.05, 1.0, 0.05, 0.0).item() is False  # p < alpha, strictly
    assert significant_with_min_effect(0.01, 0.1, 0.05, 0.1).item() is True  # score >= min_effect
    assert significant_with_min_effect(p, torch.tensor(0.5), 0.05, 0.1).shape == (4,)  # broadcasts
    with pytest.raises(ValueError, match="alpha"):
        significant_with_min_effect(p, score, 1.5, 0.1)
    with pytest.raises(ValueError, match="min_effect"):
        significant_with_min_effect(p, score, 0.05, float("nan"))
    with pytest.raises(ValueError, match="broadcastable"):
        significant_with_min_effect(p, torch.zeros(3), 0.05)


def test_placebo_test_result() -> None:
    placebos = torch.tensor([[1.0, 0.1], [2.0, 0.2], [3.0, 0.3], [4.0, 0.4]] * 5)  # M = 20
    result = placebo_test(torch.tensor([5.0, 0.25]), placebos, alpha=0.05, min_effect=0.0)
    assert isinstance(result, PlaceboResult)
    assert result.p_value.tolist() == pytest.approx([1 / 21, 11 / 21])
    assert result.significant.tolist() == [True, False]
    assert result.n_placebos == 20 and result.alpha == 0.05 and result.min_effect == 0.0
    assert torch.equal(result.placebo_scores, placebos)
    floored = placebo_test(torch.tensor([5.0, 0.25]), placebos, alpha=0.05, min_effect=10.0)
    assert floored.significant.tolist() == [False, False]
    d = json.loads(json.dumps(result.to_dict()))
    assert d["p_value"] == pytest.approx([1 / 21, 11 / 21]) and d["significant"] == [True, False]
    assert d["placebo_mean"] == pytest.approx([2.5, 0.25]) and d["n_placebos"] == 20 and d["min_effect"] == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.alpha = 0.1  # type: ignore[misc]
    scalar = placebo_test(3.0, [1.0, 2.0, 4.0], alpha=0.5)
    assert scalar.statistic.shape == () and float(scalar.p_value) == pytest.approx(0.5)
    assert scalar.significant.item() is False


# --- calibration and the contrast with the permutation test -------------------------------------------------


def _smooth_image(generator: torch.Generator, size: int = H) -> torch.Tensor:
    coarse = torch.rand(1, 3, 4, 4, generator=generator)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)[0]
    return (0.8 * smooth + 0.2 * torch.rand(3, size, size, generator=generator)).clamp(0, 1)


@pytest.mark.slow  # waits on subprocesses and timeouts: in the full suite, not the quick loop
def test_calibrated_when_the_intervention_is_itself_a_placebo() -> None:
    """Under the null (the real intervention is drawn as the placebos are), P(p < 0.05) = 4/100 for M = 99...

    ... here M = 49: p < 0.05 iff b <= 1, so the exact rate is 2/50 = 4 %. The model is a fixed
    smooth nonlinear functional of the image; each draw has its own image, template intervention
    (a blend towards a random image), "real" sequence (a placebo of the template) and placebos of it.
    """
    n_draws, m, steps = 300, 49, 5
    g = torch.Generator().manual_seed(123)
    weights = F.interpolate(torch.randn(1, 3, 4, 4, generator=g), size=(H, W), mode="bilinear", align_corners=True)[0]
    weights = weights / weights.abs().sum()

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(20 * ((x - 0.5) * weights).sum((-3, -2, -1)))

    values = torch.linspace(0, 1, steps)
    blend = values[:, None, None, None]
    p_values = []
    for r in range(n_draws):
        gr = torch.Generator().manual_seed(r)
        image = _smooth_image(gr)
        target = torch.rand(3, H, W, generator=gr)
        template = InterventionSequence(
            images=image * (1 - 0.3 * blend) + 0.3 * blend * target, values=values, property_name="t", unit="u"
        )
        real = InterventionSequence(
            images=placebo_images(template, 1, seed=10_000 + r)[0], values=values, property_name="t", unit="u"
        )
        placebos = placebo_images(real, m, seed=r)
        observed = property_gradient(model(real.images), values)
        scores = property_gradient(model(placebos.flatten(0, 1)).view(m, steps).T, values)
        p_values.append(float(placebo_p_value(observed, scores)))
    p = np.array(p_values)
    rate = float(np.mean(p < 0.05))
    assert 0.02 <= rate <= 0.08, f"rejection rate {rate:.3f} at alpha = 0.05 over {n_draws} null draws"
    # the whole distribution is close to uniform on {1/50, ..., 1}, not only its tail
    assert 0.4 <= float(np.mean(p <= 0.5)) <= 0.6
    assert 0.12 <= float(np.mean(p <= 0.2)) <= 0.28


def _region_brightness(x: torch.Tensor) -> torch.Tensor:
    """A model that sees only the brightness of the central 4x4 region."""
    return x[..., :, 6:10, 6:10].mean((-3, -2, -1))


def _both_tests(real: InterventionSequence, m: int = 99) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    steps = len(real)
    placebos = placebo_images(real, m, seed=1)
    outputs = _region_brightness(real.images)
    observed = property_gradient(outputs, real.values)
    scores = property_gradient(_region_brightness(placebos.flatten(0, 1)).view(m, steps).T, real.values)
    placebo_p = float(placebo_p_value(observed, scores))
    permutation_p = float(permutation_test(outputs, real.values, n_permutations=999, alpha=0.05, seed=0).p_value)
    return placebo_p, permutation_p, observed, scores


def test_large_effect_is_significant_under_both_tests() -> None:
    """A patch blended into the region the model looks at: far more effect than changing the image as much elsewhere."""
    image = _smooth_image(torch.Generator().manual_seed(0))
    mask = torch.zeros(H, W)
    mask[6:10, 6:10] = 1
    alphas = torch.linspace(0, 1, 10)
    a = alphas[:, None, None, None]
    real = InterventionSequence(
        images=image * (1 - a * mask) + a * mask * torch.tensor([1.0, 0.0, 0.0])[:, None, None],
        values=alphas,
        property_name="alpha",
        unit="fraction",
    )
    placebo_p, permutation_p, observed, scores = _both_tests(real)
    assert placebo_p == pytest.approx(1 / 100) and placebo_p < 0.05
    assert permutation_p < 0.05
    assert float(observed) > 3 * float(scores.max())


def test_tiny_smooth_effect_is_significant_only_under_the_permutation_test() -> None:
    """A vignette darkens the edges; the centre the model looks at barely changes, yet smoothly."""
    image = _smooth_image(torch.Generator().manual_seed(0))
    real = GaussianVignetteSource(max_strength=-1.0, sigma=0.35, steps=10).generate(image)
    placebo_p, permutation_p, observed, scores = _both_tests(real)
    assert float(observed) > 0  # the effect exists ...
    assert permutation_p < 0.05  # ... and the shuffle test calls it significant,
    assert placebo_p > 0.5  # but changing the image as much in random directions moves the output more
    assert float(observed) < float(scores.median())


def _besag_clifford(observed: float, scores: list[float], m: int, h: int) -> tuple[float, int]:
    """Reference: walk the placebos in order; the h-th reaching the observed at L: h / L, else (b + 1) / (M + 1)."""
    reached = 0
    for count, score in enumerate(scores[:m], start=1):
        reached += score >= observed
        if reached == h:
            return h / count, count
    return (reached + 1) / (m + 1), m


@pytest.mark.parametrize("h", [1, 2, 5])
def test_sequential_p_values_follow_besag_clifford_column_by_column(h: int) -> None:
    gen = torch.Generator().manual_seed(h)
    m, c = 40, 30
    scores = torch.rand(m, c, generator=gen, dtype=torch.float64)
    observed = torch.rand(c, generator=gen, dtype=torch.float64) ** 0.2  # a spread from "stops at once" to "never"
    result = placebo_test(observed, scores, alpha=0.05, stop=h)
    for j in range(c):
        p, used = _besag_clifford(float(observed[j]), scores[:, j].tolist(), m, h)
        assert float(result.p_value[j]) == pytest.approx(p) and int(result.n_used[j]) == used
    assert result.stop == h and result.n_drawn == m


def test_rows_up_to_the_last_stop_are_enough_and_fewer_are_refused() -> None:
    observed = torch.tensor([0.5, 0.9], dtype=torch.float64)
    scores = torch.tensor([[0.1, 0.95], [0.6, 0.1], [0.2, 0.2]], dtype=torch.float64)  # stops at 2 and 1
    result = placebo_test(observed, scores[:2], alpha=0.01, stop=1, n_placebos=100)
    assert result.p_value.tolist() == [0.5, 1.0] and result.n_used.tolist() == [2, 1]
    with pytest.raises(ValueError, match="has not reached its stop"):
        placebo_test(observed, scores[:1], alpha=0.01, stop=1, n_placebos=100)
    with pytest.raises(ValueError, match="more than n_placebos"):
        placebo_test(observed, scores, alpha=0.01, stop=1, n_placebos=2)


@pytest.mark.parametrize(("alpha", "m"), [(0.01, 100), (0.05, 100), (0.05, 39), (0.2, 19), (0.1, 1000)])
def test_the_automatic_stop_gives_the_fixed_tests_verdicts(alpha: float, m: int) -> None:
    from propgrad.stats.placebo_test import auto_stop

    gen = torch.Generator().manual_seed(m)
    c = 400
    scores = torch.randn(m, c, generator=gen, dtype=torch.float64)
    # observed statistics between two placebos of any rank b (b of the M at least it), most with few above them
    ordered = torch.sort(scores, dim=0, descending=True).values
    padded = torch.cat([ordered[:1] + 1, ordered, ordered[-1:] - 1])  # (M + 2, C): above the top, below the bottom
    b = (torch.rand(c, generator=gen, dtype=torch.float64) ** 3 * (m + 1)).long().clamp(max=m)
    columns = torch.arange(c)
    observed = (padded[b, columns] + padded[b + 1, columns]) / 2
    h = auto_stop(alpha, m)
    sequential = placebo_test(observed, scores, alpha=alpha, stop=h)
    fixed = placebo_test(observed, scores, alpha=alpha)
    assert torch.equal(sequential.significant, fixed.significant)
    assert 0 < int(fixed.significant.sum()) < c  # both verdicts occur
    assert bool((sequential.n_used < m).any())  # and the sequential test saved placebos
    if h > 1:  # one stop fewer can change a verdict: the automatic stop is the smallest that cannot
        assert not torch.equal(placebo_test(observed, scores, alpha=alpha, stop=h - 1).significant, fixed.significant)
