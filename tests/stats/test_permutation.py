"""Tests of propgrad.stats.permutation: Algorithm 1, vectorised, against a slow reference loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from propgrad.stats import cpu_kernels, null_statistics
from propgrad.stats import permutations as permutation_module
from propgrad.stats.backends import COMPILED
from propgrad.stats.null_statistics import two_sided_p_values
from propgrad.stats.permutation import PermutationResult, clear_cache, permutation_test, permutation_test_with
from propgrad.stats.permutations import (
    _sort_positions,
    permutation_blocks,
    permutation_indices,
    seeded_permutations,
)
from propgrad.stats.settings import test_settings


def _reference(y: np.ndarray, x: np.ndarray | None, k: int, seed: int, edge_order: int = 1):
    """Per-permutation numpy.gradient loop over the same permutations (the paper code's way)."""
    perms = seeded_permutations(y.shape[0], k, seed).numpy()
    grid = np.arange(y.shape[0], dtype=float) if x is None else x

    def stat(z: np.ndarray) -> np.ndarray:
        return np.abs(np.gradient(z, grid, axis=0, edge_order=edge_order)).mean(axis=0)

    observed = stat(y)
    null = np.stack([stat(y[p]) for p in perms])
    mean = null.mean(axis=0)
    b = (np.abs(null - mean) >= np.abs(observed - mean)).sum(axis=0)
    return observed, null, (b + 1) / (k + 1)


@pytest.mark.parametrize("grid", ["unit", "uniform", "nonuniform"])
@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("strategy", ["rows", "columns", "torch"])
def test_vectorised_equals_reference_loop(grid: str, edge_order: int, strategy: str, monkeypatch) -> None:
    # the compiled kernel's two layouts are forced with the column threshold; "torch" runs the torch kernels
    _force_strategy(monkeypatch, strategy)
    rng = np.random.default_rng(7)
    n, c, k = 15, 4, 300
    y = rng.normal(size=(n, c))
    y[:, 1] += np.linspace(0, 10, n)  # one column with a trend so p-values are not all alike
    x = {"unit": None, "uniform": np.linspace(0, 2, n), "nonuniform": np.cumsum(rng.uniform(0.1, 2, n))}[grid]
    settings = test_settings(n_permutations=k, seed=3)
    res = permutation_test_with(
        torch.tensor(y), None if x is None else torch.tensor(x), settings, edge_order=edge_order
    )
    observed, null, p = _reference(y, x, k, seed=3, edge_order=edge_order)
    np.testing.assert_allclose(res.statistic.numpy(), observed, rtol=1e-10)
    np.testing.assert_allclose(res.null_distribution.numpy(), null, rtol=1e-10)
    np.testing.assert_array_equal(res.p_value.numpy(), p)
    assert res.p_value[1] < 0.01 and res.significant[1]


def _force_strategy(monkeypatch, strategy: str) -> None:
    """Make the gradient test use one kernel: the compiled ones by rows or by columns, or torch's."""
    monkeypatch.setattr(null_statistics, "VECTOR_MIN_COLUMNS", 1 if strategy == "rows" else 10**9)
    monkeypatch.setattr(COMPILED, "enabled", strategy != "torch")


def test_float32_statistic_matches_property_gradient() -> None:
    from propgrad.stats.gradient import property_gradient

    y = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
    res = permutation_test(y, n_permutations=50)
    torch.testing.assert_close(res.statistic, property_gradient(y))


def test_permutation_indices_are_seeded_uniform_permutations() -> None:
    a = permutation_indices(10, 2000, torch.Generator().manual_seed(5))
    b = permutation_indices(10, 2000, torch.Generator().manual_seed(5))
    assert a.shape == (2000, 10) and a.dtype == torch.int32
    assert torch.equal(a, b)
    assert torch.equal(a.sort(dim=1).values, torch.arange(10).expand(2000, 10))
    counts = torch.bincount(a[:, 0], minlength=10).double()  # first position ~ uniform
    assert float(counts.min()) > 150 and float(counts.max()) < 250
    assert torch.equal(seeded_permutations(10, 2000, 5, stream=1), a)  # stream 1 is the torch-seeded sort


class _Words:
    """A stand-in bit generator: given 64-bit words first, then a real stream."""

    def __init__(self, first: np.ndarray) -> None:
        self.first, self.rest = first, np.random.SFC64(0)

    def random_raw(self, size: int) -> np.ndarray:
        out, self.first = self.first[:size], self.first[size:]
        return np.concatenate([out, self.rest.random_raw(size - out.size)])


def test_rows_with_tied_keys_are_reported_for_redrawing() -> None:
    # row 0 gets all-equal keys (a tie would favour low positions), row 1 distinct random keys
    words = np.concatenate([np.zeros(5, dtype=np.uint64), np.random.SFC64(1).random_raw(5)])
    out = np.empty((2, 10), dtype=np.int32)
    tied = _sort_positions(_Words(words), out, 4, np.int32)
    assert tied.tolist() == [0]
    assert sorted(out[1].tolist()) == list(range(10))
    # a tie between the last key of row 0 and the first of row 1 is not a tie within a row
    keys = np.arange(20, dtype=np.int64) << 40
    keys[10] = keys[9]
    assert _sort_positions(_Words(keys.view(np.uint64)), np.empty((2, 10), np.int32), 4, np.int64).size == 0


def test_seed_determinism() -> None:
    y = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
    r1 = permutation_test(y, n_permutations=500, seed=11)
    r2 = permutation_test(y, n_permutations=500, seed=11)
    r3 = permutation_test(y, n_permutations=500, seed=12)
    assert torch.equal(r1.p_value, r2.p_value) and torch.equal(r1.null_distribution, r2.null_distribution)
    assert not torch.equal(r1.null_distribution, r3.null_distribution)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("values", [None, "scaled", "nonuniform"])
def test_banded_null_equals_property_gradient_of_each_shuffle(periodic: bool, values: str | None) -> None:
    # covers the end rows computed as |F[u] - F[v]| * w (unit steps, periodic or not) and the general form
    from propgrad.stats.gradient import property_gradient

    rng = np.random.default_rng(3)
    y = torch.tensor(rng.normal(size=(12, 2)))
    x = {
        None: None,
        "scaled": torch.arange(12.0, dtype=torch.float64) * 0.25,
        "nonuniform": torch.tensor(np.cumsum(rng.uniform(0.2, 1.0, 12))),
    }[values]
    res = permutation_test(y, x, n_permutations=60, seed=4, periodic=periodic)
    perms = seeded_permutations(12, 60, 4).long()
    expected = torch.stack([property_gradient(y[p], x, periodic=periodic) for p in perms])
    torch.testing.assert_close(res.null_distribution, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(res.statistic, property_gradient(y, x, periodic=periodic), rtol=1e-12, atol=0)


def test_permutation_blocks_yield_the_rows_of_permutation_indices(monkeypatch) -> None:
    monkeypatch.setattr(permutation_module, "SHUFFLE_BLOCK_BYTES", 8 * 10 * 64)  # 64-row blocks
    whole = permutation_indices(10, 1000, torch.Generator().manual_seed(2)).numpy()
    blocks = [(s, b.copy()) for s, b in permutation_blocks(10, 1000, 2, 1)]
    assert [s for s, _ in blocks] == list(range(0, 1000, 64))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), whole)
    out = np.empty((1000, 10), dtype=np.int32)
    for _s, b in permutation_blocks(10, 1000, 2, 1, out=out):
        assert np.shares_memory(b, out)
    np.testing.assert_array_equal(out, whole)
    # a row reported tied is redrawn before its block is yielded; the other rows stay put
    calls = []

    def tie_row_five(bits, out, shift, dtype):
        tied = sort_positions(bits, out, shift, dtype)
        calls.append(out.shape[0])
        return np.union1d(tied, [5]) if len(calls) == 1 else tied

    sort_positions = permutation_module._sort_positions
    monkeypatch.setattr(permutation_module, "_sort_positions", tie_row_five)
    redrawn = next(permutation_blocks(10, 1000, 2, 1))[1]
    assert calls == [64, 1]
    assert not np.array_equal(redrawn[5], whole[5]) and sorted(redrawn[5].tolist()) == list(range(10))
    np.testing.assert_array_equal(np.delete(redrawn, 5, 0), np.delete(whole[:64], 5, 0))


@pytest.mark.parametrize("statistic", ["gradient", "gradient-stream1", "torch", "pearson", "callable"])
def test_first_streamed_call_equals_memoised_calls(statistic: str, monkeypatch, backend_settings) -> None:
    # a first call for (N, K, seed, stream) computes while drawing; later calls use the memoised matrix,
    # except the compiled gradient of a few columns in stream 2, which draws every shuffle in its kernel
    monkeypatch.setattr(permutation_module, "SHUFFLE_BLOCK_BYTES", 8 * 20 * 50)  # 50-row blocks
    if statistic == "torch":
        _force_strategy(monkeypatch, "torch")

    def spread(permuted: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return (permuted[:, 1:] - permuted[:, :-1]).abs().amax(1)

    name = statistic.split("-")[0].replace("torch", "gradient")
    kwargs: dict = {"statistic": spread if statistic == "callable" else name}
    if statistic.endswith("stream1"):
        kwargs["permutation_stream"] = 1
    y = torch.randn(20, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    clear_cache()
    compiled = statistic != "torch"
    backend_settings(compiled=compiled, chunk_size=7)
    first = permutation_test(y, n_permutations=333, seed=8, **kwargs)
    assert not len(COMPILED.memo)  # nothing memoised by a first call
    backend_settings(compiled=compiled, chunk_size=100)
    second = permutation_test(y, n_permutations=333, seed=8, **kwargs)
    assert bool(len(COMPILED.memo)) != (statistic == "gradient")  # the second use memoises the permutations
    backend_settings(compiled=compiled)
    third = permutation_test(y, n_permutations=333, seed=8, **kwargs)
    for other in (second, third):
        assert torch.equal(first.null_distribution, other.null_distribution)
        assert torch.equal(first.p_value, other.p_value) and torch.equal(first.statistic, other.statistic)
    perms = seeded_permutations(20, 333, 8, kwargs.get("permutation_stream", 2))
    expected = kwargs["statistic"](y[perms.long()], torch.arange(20.0)) if statistic == "callable" else None
    if expected is not None:
        assert torch.equal(first.null_distribution, expected)


@pytest.mark.parametrize("statistic", ["gradient", "pearson"])
@pytest.mark.parametrize("values", [None, "nonuniform"])
def test_chunking_gives_identical_results(statistic: str, values: str | None, backend_settings) -> None:
    rng = np.random.default_rng(4)
    y = torch.tensor(rng.normal(size=(25, 40)), dtype=torch.float32)
    x = None if values is None else torch.tensor(np.cumsum(rng.uniform(0.2, 1.0, 25)))

    def run(outputs: torch.Tensor, **memory: int) -> PermutationResult:
        backend_settings(**memory)
        return permutation_test(outputs, x, n_permutations=400, statistic=statistic)

    whole = run(y, chunk_size=400)
    chunked = run(y, chunk_size=7)
    assert torch.equal(whole.statistic, chunked.statistic) and torch.equal(whole.p_value, chunked.p_value)
    few = run(y[:, :5], chunk_size=400)
    few_chunked = run(y[:, :5], chunk_size=7)
    assert torch.equal(few.null_distribution, few_chunked.null_distribution)
    # a tiny memory budget also splits the columns into blocks; kernels may then vectorise the
    # last bit differently, so statistics agree to float32 rounding and p-values exactly
    blocks = run(y, memory_budget=20_000)
    torch.testing.assert_close(blocks.statistic, whole.statistic, rtol=1e-6, atol=1e-7)
    assert torch.equal(blocks.p_value, whole.p_value)


def _significant(outputs: torch.Tensor, **kwargs) -> PermutationResult:
    return permutation_test(outputs, n_permutations=2000, alpha=0.01, **kwargs)


def test_smooth_step_and_periodic_responses_are_significant() -> None:
    t = torch.linspace(-1, 1, 30)
    assert _significant(t).significant
    assert _significant(torch.sigmoid(8 * t)).significant
    assert _significant((t > 0.1).float()).significant
    angles = torch.arange(24) * (2 * math.pi / 24)
    periodic = _significant(torch.sin(angles), values=angles, periodic=True, period=2 * math.pi)
    assert periodic.significant and periodic.p_value < 0.01
    # a cosine over a full turn has no linear trend: Pearson's test does not see it, ours does
    assert _significant(torch.cos(angles), values=angles, periodic=True).significant
    assert not _significant(torch.cos(angles), values=angles, statistic="pearson").significant


def test_noise_is_not_significant_and_constant_has_p_one() -> None:
    noise = torch.randn(30, generator=torch.Generator().manual_seed(0))
    assert not _significant(noise).significant
    for statistic in ("gradient", "pearson"):
        for values in (None, torch.tensor(np.cumsum(np.linspace(0.1, 1, 30)))):
            res = permutation_test(torch.full((30, 2), 0.1), values, n_permutations=300, statistic=statistic)
            assert torch.equal(res.p_value, torch.ones(2, dtype=res.p_value.dtype))
            assert not res.significant.any()


def test_rejection_rate_on_iid_noise_is_near_alpha() -> None:
    noise = torch.randn(40, 300, generator=torch.Generator().manual_seed(123))
    res = permutation_test(noise, n_permutations=1000, alpha=0.05, seed=9)
    rate = float(res.significant.double().mean())
    assert 0.02 <= rate <= 0.09, rate
    assert res.null_distribution is None  # more than 16 columns: not kept


def test_pearson_statistic_and_callable_statistic() -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(size=(20, 3))
    y[:, 0] += np.linspace(0, 4, 20)
    x = np.cumsum(rng.uniform(0.5, 1.5, 20))
    res = permutation_test(torch.tensor(y), torch.tensor(x), n_permutations=500, statistic="pearson")
    expected = [abs(np.corrcoef(x, y[:, j])[0, 1]) for j in range(3)]
    np.testing.assert_allclose(res.statistic.numpy(), expected, rtol=1e-10)
    assert res.significant[0] and res.statistic_name == "pearson"

    def mean_abs_gradient(permuted: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        g = np.gradient(permuted.numpy(), values.numpy(), axis=1)
        return torch.from_numpy(np.abs(g).mean(axis=1))

    custom = permutation_test(torch.tensor(y), torch.tensor(x), n_permutations=500, statistic=mean_abs_gradient)
    builtin = permutation_test(torch.tensor(y), torch.tensor(x), n_permutations=500)
    assert custom.statistic_name == "mean_abs_gradient"
    torch.testing.assert_close(custom.null_distribution, builtin.null_distribution)
    assert torch.equal(custom.p_value, builtin.p_value)


def test_callable_with_wrong_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"statistic 'bad' must return a tensor of shape \(B, C\)"):

        def bad(permuted: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
            return permuted.sum(1).sum(1)

        permutation_test(torch.randn(10, 2), n_permutations=20, statistic=bad)


def test_result_shapes_and_json() -> None:
    one = permutation_test(torch.randn(12), n_permutations=50)
    assert one.statistic.shape == () and one.p_value.shape == () and one.significant.dtype == torch.bool
    assert one.null_distribution.shape == (50,)
    many = permutation_test(np.random.default_rng(0).normal(size=(12, 16)), n_permutations=50)
    assert many.statistic.shape == (16,) and many.null_distribution.shape == (50, 16)
    record = json.loads(json.dumps(many.to_dict()))
    assert record["n_permutations"] == 50 and len(record["p_value"]) == 16
    assert record["statistic_name"] == "gradient" and record["alpha"] == 0.01


def test_binary_case_is_never_significant() -> None:
    res = permutation_test(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), n_permutations=100)
    torch.testing.assert_close(res.statistic, torch.tensor([0.7, 0.7]))
    assert torch.equal(res.p_value, torch.ones(2))  # both orders give the same |difference|


def test_two_sided_p_values_counts_ties_and_nan() -> None:
    null = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, float("nan")], [4.0, 0.0]], dtype=torch.float64)
    p = two_sided_p_values(torch.tensor([2.5 + 1.5, float("nan")], dtype=torch.float64), null)
    # column 0: mean 2.5, |obs - m| = 1.5, extreme: 1 and 4 -> b = 2, p = 3/5
    torch.testing.assert_close(p, torch.tensor([0.6, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("columns", [1, 9])
def test_the_observed_gradient_is_the_same_with_and_without_the_compiled_kernels(dtype, columns, monkeypatch) -> None:
    from propgrad.stats import statistic as statistic_module
    from propgrad.stats import vector_statistic
    from propgrad.stats.null_statistics import gradient_null

    rng = np.random.default_rng(columns)
    y = torch.tensor(rng.normal(size=(23, columns)) * 10.0 ** rng.integers(-3, 3, columns), dtype=dtype)
    x = torch.tensor(np.cumsum(rng.uniform(0.1, 2.0, 23)))
    kernel = gradient_null(x, periodic=False, period=None, edge_order=2)  # three-point rows too
    compiled = statistic_module._gradient_in_order(y, kernel)
    monkeypatch.setattr(vector_statistic, "compiled_kernels", lambda: None)
    plain = statistic_module._gradient_in_order(y, kernel)  # numpy's sums, row by row
    np.testing.assert_array_equal(compiled, plain)
    reference = np.abs(np.gradient(y.double().numpy(), x.numpy(), axis=0, edge_order=2)).mean(0)
    np.testing.assert_allclose(plain, reference, rtol=1e-12)


@pytest.mark.parametrize("compiled", [False, True])
def test_an_infinite_null_statistic_counts_as_extreme_once(compiled: bool) -> None:
    # 10 shuffles, 3 of them +-inf: mean 2.5 of the finite ones (1 2 3 4 | 1 2 3 4 ...), |obs - m| = 1.5
    finite = [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0]
    null = torch.tensor([[v] for v in [*finite, float("inf"), float("-inf"), float("inf")]], dtype=torch.float64)
    observed = torch.tensor([4.0], dtype=torch.float64)
    mean = sum(finite) / len(finite)
    b = sum(abs(v - mean) >= abs(4.0 - mean) - 1e-9 for v in finite) + 3
    if compiled:
        p = cpu_kernels.two_sided_p_values(observed.numpy(), null.numpy(), 1000 * 2.0**-52, np.empty(1))[0]
    else:
        p = float(two_sided_p_values(observed, null)[0])
    assert p == pytest.approx((b + 1) / 11) and p <= 1  # each infinity was counted twice, p = 1.27


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_permutations": 0}, ValueError, r"n_permutations must be an integer in \[1, 10000000\], got 0"),
        ({"n_permutations": 2.5}, ValueError, "n_permutations must be an integer"),
        ({"alpha": 0.0}, ValueError, r"alpha must be a number in \(0, 1\), got 0.0"),
        ({"alpha": 1.5}, ValueError, "alpha must be a number in"),
        (
            {"statistic": "spearman"},
            ValueError,
            r"statistic must be one of 'gradient', 'pearson', .* or a callable .*, got 'spearman'",
        ),
        ({"statistic": 3}, TypeError, "statistic must be a name"),
        ({"chunk_size": 7}, TypeError, "unexpected keyword argument 'chunk_size'"),  # a backend's setting now
        ({"outputs": torch.tensor([0.0, float("nan"), 1.0])}, ValueError, "outputs contains NaN"),
        ({"outputs": torch.zeros(1)}, ValueError, "at least 2 steps"),
        ({"values": torch.arange(4.0)}, ValueError, "values has 4 entries but outputs has 5"),
        ({"values": torch.tensor([0.0, 1.0, 0.5, 2.0, 3.0])}, ValueError, "values must be strictly increasing"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs: dict, error: type, match: str) -> None:
    outputs = kwargs.pop("outputs", torch.randn(5))
    with pytest.raises(error, match=match):
        permutation_test(outputs, n_permutations=kwargs.pop("n_permutations", 10), **kwargs)


def test_the_gradient_null_of_a_grid_is_built_once_and_its_tests_unchanged() -> None:
    x = torch.tensor([0.0, 0.5, 1.5, 3.0, 3.5, 5.0, 6.0], dtype=torch.float64)
    first = null_statistics.gradient_null(x, periodic=False, period=None, edge_order=1)
    assert null_statistics.gradient_null(x.clone(), periodic=False, period=None, edge_order=1) is first
    for other in (
        null_statistics.gradient_null(x, periodic=True, period=None, edge_order=1),
        null_statistics.gradient_null(x, periodic=False, period=None, edge_order=2),
        null_statistics.gradient_null(x * 2, periodic=False, period=None, edge_order=1),
    ):
        assert other is not first
    # a test on a remembered grid is the test on a freshly built one
    y = torch.tensor(np.random.default_rng(3).normal(size=(7, 3)))
    before = permutation_test(y, x, n_permutations=999, seed=4)
    null_statistics._GRADIENT_NULLS.clear()
    fresh = permutation_test(y, x, n_permutations=999, seed=4)
    assert torch.equal(before.p_value, fresh.p_value) and torch.equal(before.statistic, fresh.statistic)
