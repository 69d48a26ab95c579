"""One statistic for the whole output vector ("vector_l1", "vector_l2"): value, shuffles, validity, backends.

The reference is numpy alone: np.gradient of every column, then the L1 or L2 norm over the
columns of each step, then the mean over the steps. The compiled CPU kernel is checked against it
and against the torch backend (VectorBackend), shuffle by shuffle.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import propgrad.stats.backends as backends_module
import propgrad.stats.permutation as permutation_module
from propgrad.errors import InvalidParameterError
from propgrad.stats.backends import BACKENDS, COMPILED, TORCH, VECTOR, plan_test
from propgrad.stats.gradient import property_gradient
from propgrad.stats.permutation import clear_cache, permutation_test, permutation_test_with
from propgrad.stats.permutations import DEFAULT_STREAM, seeded_permutations
from propgrad.stats.settings import test_settings
from propgrad.stats.statistic import LABELS, STATISTICS, Grid, as_statistic, observed_statistic
from propgrad.stats.vector_statistic import vector_split

NORMS = {"vector_l1": 1, "vector_l2": 2}


def _reference(y: np.ndarray, x: np.ndarray | None, statistic: str, periodic: bool = False, edge: int = 1) -> float:
    """Mean over steps of the norm of the derivative of the output vector, with numpy alone."""
    n = y.shape[0]
    x = np.arange(n, dtype=np.float64) if x is None else np.asarray(x, dtype=np.float64)
    if periodic:  # the wrapped-around neighbours padded on, default period: span plus one mean step
        period = (x[-1] - x[0]) * n / (n - 1)
        xp = np.concatenate([[x[-1] - period], x, [x[0] + period]])
        derivative = np.gradient(np.concatenate([y[-1:], y, y[:1]]), xp, axis=0)[1:-1]
    else:
        derivative = np.gradient(y, x, axis=0, edge_order=edge)
    return float(np.linalg.norm(derivative, ord=NORMS[statistic], axis=1).mean())


CASES = [  # (name, n, uneven values, periodic, edge_order)
    ("unit steps", 21, False, False, 1),
    ("uneven values", 17, True, False, 1),
    ("second-order ends", 17, True, False, 2),
    ("turn", 24, False, True, 1),
    ("turn, uneven values", 24, True, True, 1),
    ("binary case", 2, False, False, 1),
]


@pytest.mark.parametrize("statistic", list(NORMS))
@pytest.mark.parametrize(("name", "n", "uneven", "periodic", "edge"), CASES, ids=[c[0] for c in CASES])
def test_statistic_equals_the_numpy_reference(statistic, name, n, uneven, periodic, edge) -> None:
    rng = np.random.default_rng(n)
    y = rng.normal(size=(n, 7))
    values = np.cumsum(rng.uniform(0.3, 2.0, n)) if uneven else None
    expected = _reference(y, values, statistic, periodic, edge)
    settings = test_settings(statistic=statistic, n_permutations=50)
    result = permutation_test_with(y, values, settings, periodic=periodic, edge_order=edge)
    assert result.statistic.shape == (1,) and result.p_value.shape == (1,) and result.null_distribution.shape == (50, 1)
    assert float(result.statistic[0]) == pytest.approx(expected, rel=1e-12)
    if edge == 1:
        observed = observed_statistic(y, values, statistic=statistic, periodic=periodic)
        assert observed.shape == (1,) and float(observed[0]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("statistic", list(NORMS))
def test_each_shuffle_permutes_whole_rows(statistic) -> None:
    rng = np.random.default_rng(5)
    n, k, seed = 13, 64, 4
    y = rng.normal(size=(n, 5))
    perms = seeded_permutations(n, k, seed).numpy()  # what every backend draws for (n, k, seed)
    expected = np.array([_reference(y[p], None, statistic) for p in perms])
    clear_cache()
    streamed = permutation_test(y, n_permutations=k, seed=seed, statistic=statistic)  # first use: streamed
    memoised = permutation_test(y, n_permutations=k, seed=seed, statistic=statistic)  # second: the memo's matrix
    np.testing.assert_allclose(streamed.null_distribution[:, 0].numpy(), expected, rtol=1e-12)
    assert torch.equal(streamed.null_distribution, memoised.null_distribution)
    assert torch.equal(streamed.p_value, memoised.p_value)
    identity = np.arange(n, dtype=np.int32)[None]
    stat = as_statistic(statistic)
    grid = Grid(torch.arange(n, dtype=torch.float64))
    kernel = stat.null_kernel(grid, k, 5)
    y_t = torch.from_numpy(y)
    # ties with the identity shuffle are exact, in the arithmetic of either backend
    on_identity = kernel.run(kernel.prepare(y_t), (torch.from_numpy(identity),), 0, 1)[0]
    assert torch.equal(stat.observed(y_t, grid, kernel, compiled=False), on_identity)
    prepared, scale = kernel.cpu_prepare(y_t)
    compiled_identity = kernel.cpu_block(prepared, identity, np.empty((1, 1)))[0] / scale
    assert np.array_equal(stat.observed(y_t, grid, kernel, compiled=True).numpy(), compiled_identity)
    assert float(on_identity[0]) == pytest.approx(_reference(y, None, statistic), rel=1e-13)
    assert float(compiled_identity[0]) == pytest.approx(_reference(y, None, statistic), rel=1e-13)


@pytest.mark.parametrize("statistic", list(NORMS))
def test_p_values_are_calibrated_on_pure_noise(statistic) -> None:
    """200 noise sequences of 5 columns, K = 199: at alpha = 0.05 at most alpha + 2 binomial SDs
    are rejected, and p <= 0.5 for half of them within 3 SDs (a test that never rejects fails)."""
    seeds, alpha = 200, 0.05
    p = np.empty(seeds)
    for seed in range(seeds):
        noise = torch.randn(12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1000 + seed))
        p[seed] = float(permutation_test(noise, n_permutations=199, seed=seed, statistic=statistic).p_value[0])
    rejected = int((p < alpha).sum())
    assert rejected <= seeds * alpha + 2 * math.sqrt(seeds * alpha * (1 - alpha)), rejected
    assert abs((p <= 0.5).mean() - 0.5) <= 3 * math.sqrt(0.25 / seeds), (p <= 0.5).mean()


def test_a_change_spread_thinly_over_many_columns_is_found() -> None:
    """50 columns move along a common direction, most of them too little for their own test at
    alpha = 0.01: one test of the whole vector finds the change without choosing a column."""
    n, c = 21, 50
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(c, dtype=torch.float64, generator=generator)
    noise = 0.3 * torch.randn(n, c, dtype=torch.float64, generator=generator)
    y = torch.linspace(0, 0.6, n, dtype=torch.float64)[:, None] * direction + noise
    per_column = permutation_test(y, n_permutations=999, seed=1)
    assert int(per_column.significant.sum()) < c // 4
    result = permutation_test(y, n_permutations=999, statistic="vector_l2", seed=1)
    assert bool(result.significant[0])  # found at alpha = 0.01
    stream1 = permutation_test(y, n_permutations=999, statistic="vector_l2", seed=1, permutation_stream=1)
    assert float(stream1.p_value[0]) == pytest.approx(1 / 1000)  # the figure of stream 1, reproduced


def test_one_column_gives_the_gradient_statistic_and_one_dimensional_outputs_a_scalar() -> None:
    y = torch.tensor([0.2, 0.5, 0.4, 0.9, 1.3], dtype=torch.float64)
    for statistic in NORMS:
        result = permutation_test(y, n_permutations=30, statistic=statistic)
        assert result.statistic.shape == () and result.p_value.shape == ()
        assert float(result.statistic) == pytest.approx(float(property_gradient(y)), rel=1e-15)


def test_constant_columns() -> None:
    steps = torch.linspace(0, 1, 12, dtype=torch.float64)
    flat = torch.full((12, 4), 0.7, dtype=torch.float64)
    assert float(permutation_test(flat, n_permutations=99, statistic="vector_l1").p_value[0]) == 1.0
    flat[:, 2] = steps  # one column moves: the vector moves, the constant ones do not force p = 1
    result = permutation_test(flat, n_permutations=99, statistic="vector_l1")
    assert result.p_value.shape == (1,) and float(result.p_value[0]) == pytest.approx(1 / 100)


def test_sequential_test_stops_on_noise_and_keeps_a_clear_effect() -> None:
    noise = torch.randn(20, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    stopped = permutation_test(noise, n_permutations=2000, statistic="vector_l2", sequential=10)
    assert int(stopped.n_drawn[0]) < 2000 and float(stopped.p_value[0]) > 0.05
    trend = noise * 0.01 + torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    kept = permutation_test(trend, n_permutations=2000, statistic="vector_l2", sequential=10)
    assert int(kept.n_drawn[0]) == 2000 and float(kept.p_value[0]) == pytest.approx(1 / 2001)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_outputs_far_from_one_keep_a_finite_exact_norm(scale) -> None:
    y = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    small = float(permutation_test(y, n_permutations=5, statistic="vector_l2").statistic[0])
    large = float(permutation_test(y * scale, n_permutations=5, statistic="vector_l2").statistic[0])
    assert math.isfinite(large) and large == pytest.approx(small * scale, rel=1e-13)


def test_the_settings_door_and_the_backends_know_the_vector_statistics() -> None:
    for name, label in (("vector_l1", "E||grad||_1"), ("vector_l2", "E||grad||_2")):
        assert name in STATISTICS and LABELS[name] == label
        assert test_settings(statistic=name).statistic == name
    assert BACKENDS.index(VECTOR) < BACKENDS.index(TORCH)  # TORCH takes any kernel, so VECTOR goes first


KERNEL_CASES = [  # (name, n, uneven values, periodic, edge_order): every kind of stencil row
    ("unit steps", 21, False, False, 1),
    ("second-order ends", 17, False, False, 2),
    ("uneven values", 17, True, False, 1),
    ("uneven values, second-order ends", 16, True, False, 2),
    ("turn, uneven values", 24, True, True, 1),
    ("binary case", 2, False, False, 1),
]


@pytest.mark.parametrize("columns", [1, 3, 4, 7, 64])  # the kernel sums columns four at a time, then the rest
@pytest.mark.parametrize("statistic", list(NORMS))
@pytest.mark.parametrize(("name", "n", "uneven", "periodic", "edge"), KERNEL_CASES, ids=[c[0] for c in KERNEL_CASES])
def test_compiled_kernel_equals_the_torch_backend_and_numpy(
    statistic, name, n, uneven, periodic, edge, columns, backend_settings
) -> None:
    """Shuffle by shuffle: the compiled CPU kernel, the torch backend and numpy's gradient agree."""
    rng = np.random.default_rng(n * 10 + columns)
    y = rng.normal(size=(n, columns)) * rng.uniform(0.1, 10, columns)
    values = np.cumsum(rng.uniform(0.3, 2.0, n)) if uneven else None
    k, seed = 300, 2
    settings = test_settings(statistic=statistic, n_permutations=k, seed=seed)
    y_t = torch.from_numpy(y)
    kernel = as_statistic(statistic).null_kernel(Grid(torch.arange(n, dtype=torch.float64)), k, columns)
    assert plan_test(kernel, y_t, k, (seed, DEFAULT_STREAM), None, BACKENDS).backend is COMPILED
    compiled = permutation_test_with(y, values, settings, periodic=periodic, edge_order=edge)
    backend_settings(compiled=False)
    assert plan_test(kernel, y_t, k, (seed, DEFAULT_STREAM), None, BACKENDS).backend is VECTOR
    torch_path = permutation_test_with(y, values, settings, periodic=periodic, edge_order=edge)
    perms = seeded_permutations(n, k, seed).numpy()
    expected = np.array([_reference(y[p], values, statistic, periodic, edge) for p in perms])
    np.testing.assert_allclose(compiled.null_distribution[:, 0].numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(compiled.null_distribution.numpy(), torch_path.null_distribution.numpy(), rtol=1e-13)
    assert float(compiled.statistic[0]) == pytest.approx(_reference(y, values, statistic, periodic, edge), rel=1e-12)
    assert float(compiled.statistic[0]) == pytest.approx(float(torch_path.statistic[0]), rel=1e-13)
    assert torch.equal(compiled.p_value, torch_path.p_value)


@pytest.mark.parametrize("statistic", list(NORMS))
def test_compiled_null_does_not_depend_on_threads_chunks_or_streaming(statistic, backend_settings, monkeypatch) -> None:
    n, c, k = 40, 52, 20_000  # K x N x C = 4.2e7 shuffled values: two workers when two threads are available
    y = torch.randn(n, c, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    monkeypatch.setattr(backends_module, "threads_available", lambda: 2)
    workers, shuffles = vector_split(n, c, k, 2)
    assert workers == 2 and shuffles < k  # tasks of shuffles, split over two threads
    clear_cache()
    streamed = permutation_test(y, n_permutations=k, statistic=statistic, seed=3)
    memoised = permutation_test(y, n_permutations=k, statistic=statistic, seed=3)
    backend_settings(chunk_size=7)
    chunked = permutation_test(y, n_permutations=k, statistic=statistic, seed=3)
    for other in (memoised, chunked):
        assert torch.equal(streamed.null_distribution, other.null_distribution)
        assert torch.equal(streamed.p_value, other.p_value)


@pytest.mark.parametrize("statistic", list(NORMS))
def test_compiled_sequential_test_agrees_with_the_torch_backend(statistic, backend_settings) -> None:
    noise = torch.randn(20, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    weak = noise + 0.08 * torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    for outputs in (noise, weak):
        compiled = permutation_test(outputs, n_permutations=3000, statistic=statistic, sequential=10, seed=5)
        backend_settings(compiled=False)
        torch_path = permutation_test(outputs, n_permutations=3000, statistic=statistic, sequential=10, seed=5)
        backend_settings(compiled=True)
        assert torch.equal(compiled.n_drawn, torch_path.n_drawn)
        assert torch.equal(compiled.p_value, torch_path.p_value)


def test_the_size_check_counts_one_column_of_null_statistics_for_a_vector_statistic(monkeypatch) -> None:
    """K = 2000 shuffles of 400 columns: a (K, C) null would be 6.4 MB, over a limit set to 1 MB for
    the test, and the gradient's is refused; the whole-vector null is (K, 1), 16 kB, and runs."""
    monkeypatch.setattr(permutation_module, "MAX_TEST_BYTES", 2**20)
    n, c, k = 5, 400, 2000
    y = torch.randn(n, c, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for statistic in NORMS:
        kernel = as_statistic(statistic).null_kernel(Grid(torch.arange(n, dtype=torch.float64)), k, c)
        plan = plan_test(kernel, y, k, (0, DEFAULT_STREAM), None, BACKENDS)
        assert plan.columns == 1 and plan.null_columns == 1 and plan.observed_columns == c
        clear_cache()
        result = permutation_test(y, n_permutations=k, statistic=statistic)
        assert result.null_distribution.shape == (k, 1)
    gradient = as_statistic("gradient").null_kernel(Grid(torch.arange(n, dtype=torch.float64)), k, c)
    assert plan_test(gradient, y, k, (0, DEFAULT_STREAM), None, BACKENDS).null_columns == c
    with pytest.raises(InvalidParameterError, match="MAX_TEST_BYTES"):
        permutation_test(y, n_permutations=k)


def test_observed_statistic_takes_the_edge_order() -> None:
    rng = np.random.default_rng(6)
    y, values = rng.normal(size=(9, 4)), np.cumsum(rng.uniform(0.5, 1.5, 9))
    for statistic in NORMS:
        observed = observed_statistic(y, values, statistic=statistic, edge_order=2)
        assert float(observed[0]) == pytest.approx(_reference(y, values, statistic, edge=2), rel=1e-13)
    with pytest.raises(InvalidParameterError, match="edge_order must be 1 or 2"):
        observed_statistic(y, statistic="vector_l1", edge_order=3)
