"""Tests of permutation stream 2 (propgrad.stats.fisher_yates): against a pure-Python reference of its
definition, numpy's vectorised twin, uniformity, blocking, and the fused kernel against the gather kernel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from propgrad.errors import InvalidParameterError
from propgrad.stats import cpu_kernels
from propgrad.stats import permutations as permutation_module
from propgrad.stats.null_statistics import gradient_null
from propgrad.stats.permutation import clear_cache, permutation_test
from propgrad.stats.permutations import (
    fisher_yates_numpy,
    permutation_blocks,
    seeded_permutations,
    stream_key,
)
from propgrad.stats.settings import test_settings

MASK = 2**64 - 1
GAMMA = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _reference_row(seed: int, row: int, n: int) -> tuple[list[int], int]:
    """Shuffle ``row`` of stream 2 by its definition in Python integers, and the draws it rejected."""
    key = _mix((seed + GAMMA) & MASK)
    p, rejected = list(range(n)), 0
    for i in range(n - 1, 0, -1):
        s, counter = i + 1, row * n + i
        product, attempt = (_mix((key + counter * GAMMA) & MASK) >> 32) * s, 1
        while product % 2**32 < 2**32 % s:  # Lemire: a product with a low half below 2**32 mod s is rejected
            rejected += 1
            product = (_mix((_mix((key + attempt) & MASK) + counter * GAMMA) & MASK) >> 32) * s
            attempt += 1
        j = product >> 32
        p[i], p[j] = p[j], p[i]
    return p, rejected


@pytest.mark.parametrize("n", [1, 2, 3, 13, 360])
def test_the_compiled_and_numpy_streams_follow_the_definition(n: int) -> None:
    seed, row0, k = 7, 3, 40
    expected = np.array([_reference_row(seed, r, n)[0] for r in range(row0, row0 + k)], dtype=np.int32)
    compiled = np.empty((k, n), dtype=np.int32)
    cpu_kernels.fisher_yates_rows(np.uint64(stream_key(seed)), row0, compiled)
    np.testing.assert_array_equal(compiled, expected)
    np.testing.assert_array_equal(fisher_yates_numpy(stream_key(seed), row0, k, n), expected)


def test_rejected_draws_are_drawn_again_alike() -> None:
    # 2**32 mod s is rejected with probability about s / 2**32: rows of 200,000 steps reject about 4 draws each
    n, seed = 200_000, 11
    rows = [_reference_row(seed, r, n) for r in range(2)]
    assert sum(rejected for _, rejected in rows) > 0  # the rejection step really ran
    compiled = np.empty((2, n), dtype=np.int32)
    cpu_kernels.fisher_yates_rows(np.uint64(stream_key(seed)), 0, compiled)
    expected = np.array([p for p, _ in rows], dtype=np.int32)
    np.testing.assert_array_equal(compiled, expected)
    np.testing.assert_array_equal(fisher_yates_numpy(stream_key(seed), 0, 2, n), expected)


def test_stream_two_is_uniform_over_all_permutations() -> None:
    """24,000 shuffles of 4 steps: each of the 24 orders about 1,000 times (chi-squared test), and
    the position of each step uniform; a biased shuffle (Sattolo's cycles, j < i) fails both."""
    perms = seeded_permutations(4, 24_000, 3).numpy()
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[tuple(p)] for p in perms.tolist()], minlength=24)
    assert stats.chisquare(counts).pvalue > 1e-3
    for step in range(4):
        assert stats.chisquare(np.bincount(perms[:, step], minlength=4)).pvalue > 1e-3


def test_blocks_threads_and_fallback_draw_the_same_rows(monkeypatch) -> None:
    monkeypatch.setattr(permutation_module, "SHUFFLE_BLOCK_BYTES", 4 * 10 * 64)  # 64-row blocks
    whole = seeded_permutations(10, 1000, 2).numpy()
    blocks = [(s, b.copy()) for s, b in permutation_blocks(10, 1000, 2)]
    assert [s for s, _ in blocks] == list(range(0, 1000, 64))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), whole)
    part = np.empty((5, 10), dtype=np.int32)  # any shuffle on its own
    cpu_kernels.fisher_yates_rows(np.uint64(stream_key(2)), 700, part)
    np.testing.assert_array_equal(part, whole[700:705])
    monkeypatch.setattr(permutation_module, "compiled_kernels", lambda: None)
    np.testing.assert_array_equal(seeded_permutations(10, 1000, 2).numpy(), whole)
    assert not np.array_equal(seeded_permutations(10, 1000, 2, stream=1).numpy(), whole)


@pytest.mark.parametrize("columns", [1, 3])
@pytest.mark.parametrize("grid", ["unit", "uneven, second-order ends", "turn"])
def test_the_fused_kernel_equals_the_gather_kernel_bit_for_bit(columns: int, grid: str) -> None:
    n, k, seed = 31, 503, 5  # 125 groups of four shuffles and three alone
    rng = np.random.default_rng(columns)
    x = (
        torch.tensor(np.cumsum(rng.uniform(0.2, 2, n)))
        if grid.startswith("uneven")
        else torch.arange(n, dtype=torch.float64)
    )
    kernel = gradient_null(x, periodic=grid == "turn", period=None, edge_order=2 if "second" in grid else 1)
    if "second" in grid:
        assert not kernel.rows[-1].all()  # three-point rows are reached
    yt = rng.normal(size=(columns, n)).astype(np.float32)
    fused = kernel.cpu_stream_block(yt, stream_key(seed), 0, np.empty((k, columns)))
    gathered = cpu_kernels.null_by_columns(
        yt, seeded_permutations(n, k, seed).numpy(), kernel.rows, np.empty((k, columns))
    )
    np.testing.assert_array_equal(fused, gathered)
    reference = np.array(
        [
            np.abs(
                np.gradient(yt.T.astype(np.float64)[p], x.numpy(), axis=0, edge_order=2 if "second" in grid else 1)
            ).mean(0)
            for p in seeded_permutations(n, k, seed).numpy()
        ]
    )
    if grid != "turn":
        np.testing.assert_allclose(fused, reference, rtol=1e-12)


def test_every_backend_gives_stream_two_the_same_p_values(backend_settings) -> None:
    y = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y[:, 0] += 0.05 * torch.arange(40)
    clear_cache()
    fused = permutation_test(y, n_permutations=999, seed=4)
    backend_settings(compiled=False)
    torch_path = permutation_test(y, n_permutations=999, seed=4)
    assert torch.equal(fused.p_value, torch_path.p_value)
    torch.testing.assert_close(fused.null_distribution, torch_path.null_distribution, rtol=1e-13, atol=0)
    other = permutation_test(y, n_permutations=999, seed=4, permutation_stream=1)
    assert not torch.equal(other.null_distribution, torch_path.null_distribution)


def test_the_stream_is_a_checked_setting() -> None:
    assert test_settings().permutation_stream == 2
    assert test_settings(permutation_stream=1).permutation_stream == 1
    with pytest.raises(InvalidParameterError, match="permutation_stream must be one of 1, 2, got 3"):
        test_settings(permutation_stream=3)
    with pytest.raises(InvalidParameterError, match="permutation_stream"):
        permutation_test(torch.randn(5), permutation_stream="2")


def test_a_seed_key_is_splitmix64s_first_output() -> None:
    # SplitMix64 seeded with 0 starts 0xE220A8397B1DCDAF (Vigna's reference implementation)
    assert stream_key(0) == 0xE220A8397B1DCDAF
