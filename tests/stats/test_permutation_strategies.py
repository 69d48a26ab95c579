"""The permutation test's strategies agree: kernels, layouts, blocks and threads never change a result.

Also the stated rule that picks them, the sequential (Besag-Clifford) option and the compiled
drawing of the permutations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from propgrad.stats import backends, null_statistics, strategy
from propgrad.stats import permutations as permutation_module
from propgrad.stats.backends import COMPILED
from propgrad.stats.permutation import clear_cache, permutation_test
from propgrad.stats.permutations import permutation_indices, seeded_permutations
from propgrad.stats.strategy import COLUMNS_PER_BLOCK, OUTPUT_BLOCK_BYTES, plan_fused_test, plan_gradient_test


def _grid(rng: np.random.Generator, n: int, kind: str) -> torch.Tensor | None:
    if kind == "unit":
        return None
    if kind == "uniform":
        return torch.arange(n, dtype=torch.float64) * 0.5
    return torch.tensor(np.cumsum(rng.uniform(0.2, 2.0, n)))


def _run(monkeypatch, how: str, y: torch.Tensor, x: torch.Tensor | None, **kwargs):
    """One strategy: the compiled kernel by rows or by columns, on one or two workers, or torch's."""
    with monkeypatch.context() as m:
        m.setattr(null_statistics, "VECTOR_MIN_COLUMNS", 10**9 if how == "columns" else 1)
        m.setattr(COMPILED, "enabled", how != "torch")
        m.setattr(strategy, "WORK_PER_WORKER", 1 if how == "two-workers" else 2**24)
        m.setattr(strategy, "OUTPUT_BLOCK_BYTES", 64 if how == "two-workers" else OUTPUT_BLOCK_BYTES)
        return permutation_test(y, x, n_permutations=400, seed=5, **kwargs)


CASES = [
    (n, c, kind, periodic)
    for n, c in [(5, 1), (21, 3), (40, 17)]
    for kind in ("unit", "nonuniform")
    for periodic in (False, True)
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,kind,periodic", CASES)
def test_every_cpu_strategy_gives_bit_identical_statistics_and_p_values(
    monkeypatch, n, c, kind, periodic, dtype
) -> None:
    # float64 outputs make any change of the arithmetic's order visible in the last bit
    rng = np.random.default_rng(n * 7 + c)
    y = torch.tensor(rng.normal(size=(n, c)), dtype=dtype)
    y[:, 0] += torch.linspace(0, 2, n, dtype=dtype)
    x = _grid(rng, n, kind)
    results = {how: _run(monkeypatch, how, y, x, periodic=periodic) for how in ("rows", "columns", "two-workers")}
    base = results["rows"]
    for how, res in results.items():
        assert torch.equal(res.statistic, base.statistic), how
        assert torch.equal(res.p_value, base.p_value), how
        if c <= 16:
            assert torch.equal(res.null_distribution, base.null_distribution), how
    # torch's kernels (other devices) sum in another order: float64 rounding apart, same p-values here
    torch_res = _run(monkeypatch, "torch", y, x, periodic=periodic)
    torch.testing.assert_close(
        torch_res.statistic, base.statistic, rtol=1e-12 if dtype == torch.float64 else 1e-6, atol=0
    )
    assert torch.equal(torch_res.p_value, base.p_value)


def test_p_values_do_not_depend_on_the_blocking(backend_settings) -> None:
    # the guard: changing the block size used to move p-values by 1/(K+1) on some columns
    rng = np.random.default_rng(11)
    y = torch.tensor(rng.normal(size=(60, 300)), dtype=torch.float32)
    whole = permutation_test(y, n_permutations=2000, seed=1)
    for kwargs in ({"memory_budget": 2000 * 8 * 3}, {"chunk_size": 7}, {"memory_budget": 10**9, "chunk_size": 2000}):
        backend_settings(**kwargs)
        other = permutation_test(y, n_permutations=2000, seed=1)
        assert torch.equal(other.statistic, whole.statistic), kwargs
        assert torch.equal(other.p_value, whole.p_value), kwargs


@pytest.mark.parametrize("kind", ["unit", "nonuniform"])
@pytest.mark.parametrize("periodic", [False, True])
def test_float32_statistics_match_a_float64_reference_to_1e_6(kind: str, periodic: bool) -> None:
    from propgrad.stats.gradient import property_gradient

    rng = np.random.default_rng(3)
    n = 360
    y = torch.tensor(rng.normal(size=(n, 12)), dtype=torch.float32) + 100  # an offset: float32 sums would drift
    x = _grid(rng, n, kind)
    res = permutation_test(y, x, n_permutations=50, seed=2, periodic=periodic)
    perms = seeded_permutations(n, 50, 2).long()
    y64 = y.double()
    expected = torch.stack([property_gradient(y64[p], x, periodic=periodic) for p in perms])
    torch.testing.assert_close(res.null_distribution.double(), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(res.statistic.double(), property_gradient(y64, x, periodic=periodic), rtol=1e-6, atol=0)


def test_the_rule_picks_layout_blocks_and_workers_from_n_c_k_and_threads() -> None:
    few = plan_gradient_test(360, 3, 10_000, 4, threads=2, memory_budget=128 * 2**20)
    assert few.layout == "columns" and few.columns_per_block == 3
    many = plan_gradient_test(360, 10_000, 10_000, 4, threads=2, memory_budget=128 * 2**20)
    assert many.layout == "rows"
    # the memory budget binds: 128 MiB / (2 workers x K x 8 bytes) = 838 columns, so 12 blocks (even
    # for two workers) of 10,000 / 12 -> 834 columns
    assert many.columns_per_block == 834
    even = plan_gradient_test(360, 1000, 10_000, 4, threads=2, memory_budget=128 * 2**20)
    assert even.columns_per_block == 500  # two equal blocks for two workers, not 838 + 162
    roomy = plan_gradient_test(360, 8192, 1000, 4, threads=2, memory_budget=128 * 2**20)
    assert roomy.columns_per_block == COLUMNS_PER_BLOCK  # 1024 columns: long rows to gather
    long = plan_gradient_test(5000, 10_000, 1000, 4, threads=2, memory_budget=128 * 2**20)
    assert long.columns_per_block == OUTPUT_BLOCK_BYTES // (5000 * 4)  # a block's outputs within 4 MiB
    assert many.workers == 2  # capped by the caller's threads
    assert plan_gradient_test(360, 10_000, 10_000, 4, threads=1, memory_budget=128 * 2**20).workers == 1
    assert plan_gradient_test(100, 1, 10_000, 4, threads=8, memory_budget=128 * 2**20).workers == 1  # small work
    # the null statistics of the blocks in flight stay within the memory budget
    tight = plan_gradient_test(100, 10_000, 10_000, 4, threads=2, memory_budget=2 * 10_000 * 8 * 20)
    assert tight.columns_per_block == 20
    assert plan_gradient_test(100, 10_000, 10**6, 4, threads=1, memory_budget=1).columns_per_block == 1


def test_the_fused_rule_gives_a_worker_per_million_values_and_small_tasks() -> None:
    assert plan_fused_test(21, 1, 10_000, threads=2) == strategy.Plan("fused", 1, 10_000, 1)  # 210,000 values
    both = plan_fused_test(360, 1, 10_000, threads=2)  # 3.6 million values: two workers, tasks of 1,250 shuffles
    assert both == strategy.Plan("fused", 1, 1250, 2)
    assert plan_fused_test(360, 1, 10_000, threads=1).workers == 1


def test_fused_null_does_not_depend_on_workers_or_tasks(monkeypatch, backend_settings) -> None:
    y = torch.randn(360, 2, generator=torch.Generator().manual_seed(3))
    one = permutation_test(y, n_permutations=10_000, seed=2)  # two workers where two threads are available
    monkeypatch.setattr(backends, "threads_available", lambda: 1)
    alone = permutation_test(y, n_permutations=10_000, seed=2)
    backend_settings(chunk_size=7)
    small = permutation_test(y, n_permutations=10_000, seed=2)
    for other in (alone, small):
        assert torch.equal(one.null_distribution, other.null_distribution) and torch.equal(one.p_value, other.p_value)


def test_the_test_never_changes_the_users_thread_setting(monkeypatch) -> None:
    monkeypatch.setattr(strategy, "WORK_PER_WORKER", 1)
    before = torch.get_num_threads()
    permutation_test(torch.randn(50, 40), n_permutations=300)
    assert torch.get_num_threads() == before


def test_a_failing_task_is_raised_and_stops_the_others() -> None:
    seen = []

    def task(i: int) -> None:
        seen.append(i)
        if i == 3:
            raise RuntimeError("task 3 broke")

    with pytest.raises(RuntimeError, match="task 3 broke"):
        strategy.run_tasks(task, range(1000), workers=2)
    assert len(seen) < 1000


def test_compiled_drawing_gives_the_numpy_drawings_permutations(monkeypatch) -> None:
    for n in (3, 21, 360, 1000):
        compiled = permutation_indices(n, 700, torch.Generator().manual_seed(n))
        with monkeypatch.context() as m:
            m.setattr(permutation_module, "compiled_kernels", lambda: None)
            plain = permutation_indices(n, 700, torch.Generator().manual_seed(n))
        assert torch.equal(compiled, plain), n


def test_sequential_test_keeps_type_one_error_at_alpha() -> None:
    noise = torch.randn(30, 300, generator=torch.Generator().manual_seed(42))
    res = permutation_test(noise, n_permutations=2000, alpha=0.05, seed=3, sequential=10)
    rate = float(res.significant.double().mean())
    assert 0.015 <= rate <= 0.09, rate  # 5 % +- 3 binomial standard deviations of 300 tests
    assert float(res.n_drawn.double().mean()) < 200  # most null columns stop soon after the pilot


def test_sequential_p_values_are_limit_over_drawn_or_the_fixed_tests() -> None:
    y = torch.randn(40, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y[:, 0] += torch.linspace(0, 6, 40, dtype=torch.float64)  # a clear effect: never stops
    clear_cache()
    seq = permutation_test(y, n_permutations=3000, seed=4, sequential=10)
    fixed = permutation_test(y, n_permutations=3000, seed=4)
    stopped = seq.n_drawn < 3000
    assert bool(stopped[1:].all()) and not bool(stopped[0])
    torch.testing.assert_close(seq.p_value[stopped], 10 / seq.n_drawn[stopped].double())
    assert seq.p_value[0] == fixed.p_value[0] == 1 / 3001
    torch.testing.assert_close(seq.statistic, fixed.statistic, rtol=0, atol=0)
    # recomputed from the fixed test's null (the same shuffles, in order): centre = mean of the first 256,
    # L = the number of shuffles drawn when the 10th as extreme as the observed one came
    null, obs = fixed.null_distribution, fixed.statistic
    centre = null[:256].mean(0)
    tol = (
        1000 * torch.finfo(torch.float64).eps * torch.maximum(obs.abs(), centre.abs()).maximum(null[:256].abs().amax(0))
    )
    extreme = (null - centre).abs() >= ((obs - centre).abs() - tol)
    for j in torch.nonzero(stopped).flatten().tolist():
        assert int(seq.n_drawn[j]) == int(torch.nonzero(extreme[:, j])[9]) + 1
    with pytest.raises(ValueError, match="sequential"):
        permutation_test(y, n_permutations=100, sequential=0)
    with pytest.raises(TypeError, match="sequential"):
        permutation_test(y, n_permutations=100, sequential=2.5)


def test_sequential_runs_with_the_torch_kernels_too(monkeypatch) -> None:
    y = torch.randn(25, 4, generator=torch.Generator().manual_seed(2))
    compiled = permutation_test(y, n_permutations=1000, seed=1, sequential=5)
    monkeypatch.setattr(COMPILED, "enabled", False)
    plain = permutation_test(y, n_permutations=1000, seed=1, sequential=5)
    assert torch.equal(compiled.n_drawn, plain.n_drawn)
    torch.testing.assert_close(compiled.p_value, plain.p_value)


def test_the_api_passes_the_sequential_option_to_the_test() -> None:
    import propgrad
    from propgrad.core.images import example_image
    from propgrad.example_model import colour_balance_net
    from propgrad.stats.settings import test_settings

    def noise_like(x: torch.Tensor) -> torch.Tensor:  # outputs that jump about with any pixel change
        total = x.sum((1, 2, 3)) * 1e4
        return torch.stack([torch.sin(total), torch.cos(total)], 1)

    image = example_image("chelsea", size=32)
    for model in (colour_balance_net(), noise_like):
        explainer = propgrad.PropertyGradient(model)
        sequential = test_settings(sequential=10)
        seq = explainer.attribute(image, source="alpha_patch", target=None, n_permutations=2000, settings=sequential)
        fixed = explainer.attribute(image, source="alpha_patch", target=None, n_permutations=2000)
        assert seq.test.n_drawn is not None and fixed.test.n_drawn is None
        stopped = seq.test.n_drawn < 2000
        torch.testing.assert_close(seq.p_value[stopped], 10 / seq.test.n_drawn[stopped].to(seq.p_value.dtype))
        torch.testing.assert_close(seq.p_value[~stopped], fixed.p_value[~stopped])
        torch.testing.assert_close(seq.score, fixed.score)
        assert bool(stopped.all()) == (model is noise_like)  # the noise stops early, the real effect never
    with pytest.raises(ValueError, match="sequential"):
        explainer.attribute(image, source="alpha_patch", settings=test_settings(sequential=0))
