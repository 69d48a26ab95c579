"""The exact mean of the shuffled null (propgrad.stats.null_mean) and the effect size against it.

Three independent checks, for the gradient statistic and for the whole-vector statistics: every
permutation enumerated for tiny N (numpy's gradient as the statistic), every ordered pair or
triple enumerated for the two- and three-point terms, and the mean of a large shuffled null drawn
by the project's own permutation test (within 5 of its standard errors).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import propgrad.stats.null_mean as null_mean_module
from propgrad.errors import InvalidParameterError
from propgrad.stats.gradient import property_gradient
from propgrad.stats.null_mean import (
    effect_size,
    exact_null_mean,
    gradient_effect_size,
    gradient_null_mean,
    mean_abs_combination,
    mean_abs_difference,
    mean_norm_combination,
    mean_pairwise_distance,
)
from propgrad.stats.permutation import permutation_test_with
from propgrad.stats.settings import test_settings


def _numpy_derivative(y: np.ndarray, x: np.ndarray, periodic: bool, period: float | None, edge: int):
    """dF/dx (N, C) with numpy alone: np.gradient, or for a turn np.gradient of the outputs padded
    with their wrapped-around neighbours (its interior rows are the periodic central differences)."""
    if not periodic:
        return np.gradient(y, x, axis=0, edge_order=edge)
    n = len(x)
    period = (x[-1] - x[0]) * n / (n - 1) if period is None else period
    xp = np.concatenate([[x[-1] - period], x, [x[0] + period]])
    yp = np.concatenate([y[-1:], y, y[:1]])
    return np.gradient(yp, xp, axis=0)[1:-1]


def _numpy_statistic(statistic: str, y: np.ndarray, x: np.ndarray, periodic: bool, period: float | None, edge: int):
    """The statistic with numpy alone: E|dF/dx| per column, or the mean over steps of the L1 / L2
    norm of the derivative of the output vector (shape (1,))."""
    derivative = _numpy_derivative(y, x, periodic, period, edge)
    if statistic == "gradient":
        return np.abs(derivative).mean(0)
    order = {"vector_l1": 1, "vector_l2": 2}[statistic]
    return np.linalg.norm(derivative, ord=order, axis=1).mean(keepdims=True)


def _numpy_gradient_statistic(y: np.ndarray, x: np.ndarray, periodic: bool, period: float | None, edge: int):
    """E|dF/dx| per column with numpy alone."""
    return _numpy_statistic("gradient", y, x, periodic, period, edge)


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


@pytest.mark.parametrize("statistic", ["vector_l1", "vector_l2"])
@pytest.mark.parametrize("n", [4, 5])
@pytest.mark.parametrize(("name", "kind", "periodic", "period", "edge"), GRIDS, ids=[g[0] for g in GRIDS])
def test_vector_null_mean_is_the_mean_over_every_permutation(statistic, n, name, kind, periodic, period, edge) -> None:
    rng = np.random.default_rng(n * 100 + len(name))
    values = _grid(kind, n, rng)
    x = np.arange(n, dtype=np.float64) if values is None else values
    y = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n).astype(float), 3.0 * rng.uniform(size=n) + 5])
    brute = np.mean(
        [_numpy_statistic(statistic, y[list(p)], x, periodic, period, edge) for p in itertools.permutations(range(n))],
        axis=0,
    )
    exact = exact_null_mean(y, values, statistic=statistic, periodic=periodic, period=period, edge_order=edge)
    assert exact.shape == (1,) and exact.dtype == torch.float64
    np.testing.assert_allclose(exact.numpy(), brute, rtol=1e-12)


def test_vector_l1_null_mean_is_the_sum_of_the_column_null_means() -> None:
    rng = np.random.default_rng(12)
    y, values = rng.normal(size=(15, 6)), np.cumsum(rng.uniform(0.5, 1.5, 15))
    columns = gradient_null_mean(y, values, edge_order=2)
    whole = exact_null_mean(y, values, statistic="vector_l1", edge_order=2)
    assert float(whole[0]) == pytest.approx(float(columns.sum()), rel=1e-14)


@pytest.mark.parametrize("weights", [(-1.5, 2.0, -0.5), (0.5, -2.0, 1.5), (-0.3, 1.1, -0.8), (0.7, 0.0, -0.7)])
def test_three_point_norm_term_is_the_mean_over_every_ordered_triple(weights) -> None:
    """Rows far from the origin and four equal rows (triples of them have norm exactly 0) keep full precision."""
    rng = np.random.default_rng(9)
    a = np.concatenate([rng.normal(size=(14, 5)), np.tile(rng.normal(size=(1, 5)), (4, 1)) + 100]) + 1e4
    triples = np.array(list(itertools.permutations(range(a.shape[0]), 3)))
    brute = np.linalg.norm(np.einsum("k,tkc->tc", np.asarray(weights), a[triples] - 1e4), axis=1).mean()
    assert mean_norm_combination(a, weights) == pytest.approx(brute, rel=1e-12)
    with pytest.raises(InvalidParameterError, match="weights must sum to 0"):
        mean_norm_combination(a, (1.0, 0.0, -0.4))


def test_pair_norm_term_is_the_mean_distance_between_rows() -> None:
    rng = np.random.default_rng(4)
    a = np.concatenate([rng.normal(size=(30, 7)), np.full((5, 7), 0.3)])
    pairs = np.array(list(itertools.permutations(range(a.shape[0]), 2)))
    brute = np.linalg.norm(a[pairs[:, 0]] - a[pairs[:, 1]], axis=1).mean()
    assert mean_pairwise_distance(a) == pytest.approx(brute, rel=1e-13)


LARGE_VECTOR_NULL = [  # (name, n, values kind, periodic, edge_order): uniform, non-uniform and periodic grids
    ("unit steps, first-order ends", 31, None, False, 1),
    ("uneven values, second-order ends", 25, "uneven", False, 2),
    ("turn, unit steps", 24, None, True, 1),
    ("turn, uneven values", 24, "uneven", True, 1),
]


@pytest.mark.parametrize("statistic", ["vector_l1", "vector_l2"])
@pytest.mark.parametrize(
    ("name", "n", "kind", "periodic", "edge"), LARGE_VECTOR_NULL, ids=[c[0] for c in LARGE_VECTOR_NULL]
)
def test_vector_null_mean_is_the_mean_of_a_large_shuffled_null(statistic, name, n, kind, periodic, edge) -> None:
    """200,000 shuffles: the null's mean lies within 5 standard errors of the exact mean (and the
    standard error is small enough that a wrong term would show: below 0.1% of the mean)."""
    rng = np.random.default_rng(n + edge + periodic)
    values = _grid(kind, n, rng)
    ramp = np.linspace(0, 1, n)[:, None]
    y = np.column_stack([ramp + 0.1 * rng.normal(size=(n, 2)), np.round(rng.normal(size=(n, 2))), rng.uniform(size=n)])
    k = 200_000
    settings = test_settings(n_permutations=k, seed=17, statistic=statistic)
    null = permutation_test_with(y, values, settings, periodic=periodic, edge_order=edge).null_distribution[:, 0]
    standard_error = float(null.std()) / math.sqrt(k)
    exact = float(exact_null_mean(y, values, statistic=statistic, periodic=periodic, edge_order=edge)[0])
    assert standard_error < 1e-3 * exact
    assert abs(float(null.mean()) - exact) <= 5 * standard_error, (float(null.mean()), exact, standard_error)


@pytest.mark.parametrize("statistic", ["gradient", "vector_l1", "vector_l2"])
def test_effect_size_of_a_straight_ramp(statistic) -> None:
    """Steps along one direction s, y_i = i s: every statistic is 6N / ((N + 1)(N + 2)) times its null mean."""
    n = 31
    direction = torch.tensor([0.5, -2.0, 0.0, 1.25], dtype=torch.float64)
    ramp = torch.arange(n, dtype=torch.float64)[:, None] * direction
    effect = effect_size(ramp, statistic=statistic)
    expected = 6 * n / ((n + 1) * (n + 2))
    if statistic == "gradient":
        assert effect.shape == (4,) and math.isnan(float(effect[2]))  # the constant column: 0 / 0
        np.testing.assert_allclose(effect[[0, 1, 3]].numpy(), expected, rtol=1e-13)
    else:
        assert effect.shape == (1,) and float(effect[0]) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize(("kind", "periodic", "edge"), [(None, False, 1), ("uneven", False, 2), ("uneven", True, 1)])
def test_effect_size_is_the_observed_statistic_over_the_exact_null_mean_for_every_statistic(
    kind, periodic, edge
) -> None:
    rng = np.random.default_rng(21)
    n = 19
    values = _grid(kind, n, rng)
    y = rng.normal(size=(n, 3)) + np.linspace(0, 2, n)[:, None]
    x = np.arange(n, dtype=np.float64) if values is None else values
    kwargs = {"periodic": periodic, "edge_order": edge}
    for outputs in (y, y.astype(np.float32)):
        np.testing.assert_array_equal(
            effect_size(outputs, values, **kwargs).numpy(), gradient_effect_size(outputs, values, **kwargs).numpy()
        )
    np.testing.assert_array_equal(
        exact_null_mean(y, values, **kwargs).numpy(), gradient_null_mean(y, values, **kwargs).numpy()
    )
    for statistic in ("vector_l1", "vector_l2"):
        observed = _numpy_statistic(statistic, y, x, periodic, None, edge)
        expected = observed / exact_null_mean(y, values, statistic=statistic, **kwargs).numpy()
        np.testing.assert_allclose(effect_size(y, values, statistic=statistic, **kwargs).numpy(), expected, rtol=1e-12)


def test_effect_size_is_nan_where_no_exact_mean_is_derived_or_nothing_moves(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=(12, 3))

    def spread(permuted: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return permuted.amax(1) - permuted.amin(1)

    for statistic in ("pearson", spread):
        assert effect_size(y, statistic=statistic).isnan().all() and effect_size(y, statistic=statistic).shape == (3,)
        assert exact_null_mean(y[:, 0], statistic=statistic).isnan() and exact_null_mean(y[:, 0]).shape == ()
    flat = np.full((12, 3), 0.25)
    for statistic in ("vector_l1", "vector_l2"):
        assert effect_size(flat, statistic=statistic).isnan().all()
        assert effect_size(y[:, 1], statistic=statistic).shape == ()  # 1-D outputs: a scalar, like the statistic
        assert float(effect_size(y[:, 1], statistic=statistic)) == pytest.approx(
            float(gradient_effect_size(y[:, 1])), rel=1e-13
        )  # one column: the gradient statistic
    uneven = np.cumsum(rng.uniform(0.5, 1.5, 12))
    for statistic in ("gradient", "vector_l1", "vector_l2"):
        assert effect_size(y, uneven, statistic=statistic).isfinite().all()
    monkeypatch.setattr(null_mean_module, "L2_TRIPLE_LIMIT", 12 * 11 * 10)  # fewer triples than 10 distinct rows need
    monkeypatch.setattr(null_mean_module, "PAIR_SEARCH_LIMIT", 12 * 11 * 3)  # fewer pairs than 10 rows x 3 columns
    for statistic in ("gradient", "vector_l1", "vector_l2"):
        assert effect_size(y, uneven, statistic=statistic).isnan().all()
        assert exact_null_mean(y, uneven, statistic=statistic).isnan().all()
        assert effect_size(y, statistic=statistic).isfinite().all()  # unit steps: two-point rows only, no limit
    assert gradient_effect_size(y, uneven).isfinite().all()  # the gradient's own functions have no limit
    with pytest.raises(InvalidParameterError, match="statistic must be one of"):
        effect_size(y, statistic="vector_l3")
