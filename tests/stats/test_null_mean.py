"""The exact mean of the gradient statistic's shuffled null (propgrad.stats.null_mean) and its effect size.

Three independent checks: every permutation enumerated for tiny N (numpy's gradient as the
statistic), every ordered triple enumerated for the three-point term, and the mean of a large
shuffled null drawn by the project's own permutation test (within 5 of its standard errors).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from propgrad.errors import InvalidParameterError
from propgrad.stats.gradient import property_gradient
from propgrad.stats.null_mean import (
    gradient_effect_size,
    gradient_null_mean,
    mean_abs_combination,
    mean_abs_difference,
)
from propgrad.stats.permutation import permutation_test_with
from propgrad.stats.settings import test_settings


def _numpy_gradient_statistic(y: np.ndarray, x: np.ndarray, periodic: bool, period: float | None, edge: int):
    """E|dF/dx| per column with numpy alone: np.gradient, or for a turn np.gradient of the outputs
    padded with their wrapped-around neighbours (its interior rows are the periodic central differences)."""
    if not periodic:
        return np.abs(np.gradient(y, x, axis=0, edge_order=edge)).mean(0)
    n = len(x)
    period = (x[-1] - x[0]) * n / (n - 1) if period is None else period
    xp = np.concatenate([[x[-1] - period], x, [x[0] + period]])
    yp = np.concatenate([y[-1:], y, y[:1]])
    return np.abs(np.gradient(yp, xp, axis=0)[1:-1]).mean(0)


GRIDS = [  # (name, values or None, periodic, period, edge_order)
    ("unit steps, first-order ends", None, False, None, 1),
    ("unit steps, second-order ends", None, False, None, 2),
    ("uneven values, first-order ends", "uneven", False, None, 1),
    ("uneven values, second-order ends", "uneven", False, None, 2),
    ("turn, unit steps", None, True, None, 1),
    ("turn, uneven values", "uneven", True, None, 1),
    ("turn, uneven values, explicit period", "uneven", True, 9.5, 1),
]


def _grid(kind: str | None, n: int, rng: np.random.Generator) -> np.ndarray | None:
    return None if kind is None else np.cumsum(rng.uniform(0.4, 2.0, n))


@pytest.mark.parametrize("n", [4, 5])
@pytest.mark.parametrize(("name", "kind", "periodic", "period", "edge"), GRIDS, ids=[g[0] for g in GRIDS])
def test_exact_null_mean_is_the_mean_over_every_permutation(n, name, kind, periodic, period, edge) -> None:
    rng = np.random.default_rng(n * 100 + len(name))
    values = _grid(kind, n, rng)
    x = np.arange(n, dtype=np.float64) if values is None else values
    y = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n).astype(float), 3.0 * rng.uniform(size=n)])
    brute = np.mean(
        [_numpy_gradient_statistic(y[list(p)], x, periodic, period, edge) for p in itertools.permutations(range(n))],
        axis=0,
    )
    exact = gradient_null_mean(y, values, periodic=periodic, period=period, edge_order=edge).numpy()
    np.testing.assert_allclose(exact, brute, rtol=1e-12, atol=1e-15)


def test_two_and_three_steps_are_exact_too() -> None:
    y2 = np.array([[0.3, -1.0], [0.8, 2.0]])
    np.testing.assert_allclose(gradient_null_mean(y2, [0.0, 0.5]).numpy(), np.abs(y2[1] - y2[0]) / 0.5, rtol=1e-15)
    y3 = np.array([0.1, 0.7, 0.2])
    brute = np.mean([np.abs(np.gradient(y3[list(p)], edge_order=2)).mean() for p in itertools.permutations(range(3))])
    assert float(gradient_null_mean(y3, edge_order=2)) == pytest.approx(brute, rel=1e-12)


@pytest.mark.parametrize(
    "weights", [(-1.5, 2.0, -0.5), (0.5, -2.0, 1.5), (-0.3, 1.1, -0.8), (0.7, 0.0, -0.7), (1.0, 0.0, -0.4)]
)
def test_three_point_term_is_the_mean_over_every_ordered_triple(weights) -> None:
    rng = np.random.default_rng(7)
    a = np.concatenate([rng.normal(size=30), np.full(6, 0.25), rng.integers(-2, 3, 4).astype(float)])
    triples = np.array(list(itertools.permutations(range(a.size), 3)))
    brute = np.abs(a[triples] @ np.asarray(weights)).mean()
    assert mean_abs_combination(a, weights) == pytest.approx(brute, rel=1e-12)


def test_pair_term_is_the_mean_pairwise_absolute_difference() -> None:
    rng = np.random.default_rng(3)
    y = np.column_stack([rng.normal(size=50), np.round(rng.normal(size=50), 1), np.full(50, 2.5)])
    pairs = np.array(list(itertools.permutations(range(50), 2)))
    brute = np.abs(y[pairs[:, 0]] - y[pairs[:, 1]]).mean(0)
    np.testing.assert_allclose(mean_abs_difference(y), brute, rtol=1e-12, atol=1e-15)


LARGE_NULL = [  # (name, n, values kind, periodic, edge_order)
    ("unit steps, first-order ends", 31, None, False, 1),
    ("unit steps, second-order ends", 31, None, False, 2),
    ("uneven values, second-order ends", 25, "uneven", False, 2),
    ("turn, unit steps", 24, None, True, 1),
    ("turn, uneven values", 24, "uneven", True, 1),
]


@pytest.mark.parametrize(("name", "n", "kind", "periodic", "edge"), LARGE_NULL, ids=[c[0] for c in LARGE_NULL])
def test_exact_null_mean_is_the_mean_of_a_large_shuffled_null(name, n, kind, periodic, edge) -> None:
    rng = np.random.default_rng(n + edge)
    values = _grid(kind, n, rng)
    ramp = np.linspace(0, 1, n)
    y = np.column_stack([ramp + 0.1 * rng.normal(size=n), np.round(rng.normal(size=n)), np.exp(rng.normal(size=n))])
    k = 40_000
    settings = test_settings(n_permutations=k, seed=11)
    result = permutation_test_with(y, values, settings, periodic=periodic, edge_order=edge)
    null = result.null_distribution.numpy()
    standard_error = null.std(0, ddof=1) / math.sqrt(k)
    exact = gradient_null_mean(y, values, periodic=periodic, edge_order=edge).numpy()
    assert np.all(np.abs(null.mean(0) - exact) <= 5 * standard_error), (null.mean(0), exact, standard_error)


def test_effect_size_is_the_observed_statistic_over_the_exact_null_mean() -> None:
    n = 31
    ramp = torch.arange(n, dtype=torch.float64)  # slope 1 per step; mean pairwise difference (N + 1) / 3
    # null mean: (2 ends * 1 + (N - 2) * 1/2) * (N + 1) / 3 / N, so the effect size is 6N / ((N + 1)(N + 2))
    assert float(gradient_effect_size(ramp)) == pytest.approx(6 * n / ((n + 1) * (n + 2)), rel=1e-13)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(np.column_stack([rng.normal(size=n), np.full(n, 0.4)]))
    values = np.cumsum(rng.uniform(0.5, 1.5, n))
    effect = gradient_effect_size(y, values, edge_order=2)
    expected = property_gradient(y, values, edge_order=2) / gradient_null_mean(y, values, edge_order=2)
    assert effect.shape == (2,) and effect.dtype == torch.float64
    assert float(effect[0]) == pytest.approx(float(expected[0]), rel=1e-15)
    assert math.isnan(float(effect[1]))  # a constant column: 0 / 0


def test_shapes_and_dtypes_follow_property_gradient() -> None:
    y32 = torch.rand(12, 3, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    mean = gradient_null_mean(y32)
    assert mean.shape == (3,) and mean.dtype == torch.float32
    assert gradient_null_mean(y32[:, 0]).shape == ()
    assert float(gradient_null_mean(np.full(6, 2.0))) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"edge_order": 3}, "edge_order must be 1 or 2"),
        ({"values": [0.0, 1.0, 2.0]}, "values has 3 entries but outputs has 5 steps"),
        ({"values": [0.0, 2.0, 1.0, 3.0, 4.0]}, "increasing"),
        ({"periodic": True, "period": 2.0}, "period must exceed the span"),
    ],
)
def test_bad_grids_are_refused_by_name(kwargs, match) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        gradient_null_mean(np.arange(5.0), **kwargs)
