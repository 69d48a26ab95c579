"""Permutation significance test of a property's effect (Penzel & Denzler, Algorithm 1).

The order of the outputs is shuffled K times while the property values stay put; the statistic is
recomputed for every shuffle. The test is two-sided around the null mean: with ``m`` the mean of
the K permuted statistics, ``b = #{k : |s_k - m| >= |s_obs - m|}``, ties (within a relative
tolerance of ``1000 * eps`` of the dtype, so float noise is a tie) counted as extreme, and
``p = (b + 1) / (K + 1)`` (the standard Monte-Carlo p-value, never 0; Algorithm 1 writes ``b / K``).
A column whose outputs are all equal carries no information: its p-value is 1. A statistic that is
NaN (Pearson's r of a constant) also gives p = 1; NaN permuted statistics count as extreme.

Vectorised: one (K, N) matrix of permutation indices (:func:`propgrad.stats.permutations.seeded_permutations`, memoised
per (N, K, seed)) serves every output column. The null statistics come from the kernels of
:mod:`propgrad.stats.null_statistics`, run in chunks over permutations and blocks of columns so
temporaries stay near ``memory_budget``; the permutation chunk size never changes a result. The
first call for an (N, K, seed) whose columns fit one block does not build the matrix: it computes
each cache-sized block of permutations as it is drawn (``permutation_blocks``, the same rows), so
it never faults in a fresh (K, N) buffer; a second use memoises the matrix for the calls after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch

from propgrad.stats.coercion import as_outputs, as_values
from propgrad.stats.null_statistics import NullStatistic, StatisticFn, make_null_statistic, two_sided_p_values
from propgrad.stats.permutations import (
    clear_cache,
    first_use,
    memoised,
    permutation_blocks,
    seeded_permutations,
)

__all__ = ["PermutationResult", "clear_cache", "permutation_test", "seeded_permutations"]
KEEP_NULL_MAX_COLUMNS = 16
CHUNK_BYTES = 4 * 2**20  # chunks whose temporaries stay cache-sized (and reuse freed memory) run faster


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    Attributes:
        statistic: Observed statistic, shape () for 1-D outputs, (C,) for (N, C) outputs.
        p_value: Two-sided permutation p-values, same shape.
        significant: Bool tensor, ``p_value < alpha``.
        null_distribution: The K permuted statistics, (K,) or (K, C), kept only when there are at
            most 16 output columns (None otherwise, to bound memory).
        n_permutations: K.
        alpha: Significance level.
        statistic_name: "gradient", "pearson" or the callable's ``__name__``.
    """

    statistic: torch.Tensor
    p_value: torch.Tensor
    significant: torch.Tensor
    null_distribution: torch.Tensor | None = field(repr=False)
    n_permutations: int
    alpha: float
    statistic_name: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the null distribution is left out; it can be large)."""
        return {
            "statistic": self.statistic.tolist(),
            "p_value": self.p_value.tolist(),
            "significant": self.significant.tolist(),
            "n_permutations": self.n_permutations,
            "alpha": self.alpha,
            "statistic_name": self.statistic_name,
        }


def permutation_test(
    outputs: Any,
    values: Any = None,
    *,
    n_permutations: int = 10_000,
    alpha: float = 0.01,
    statistic: Union[str, StatisticFn] = "gradient",
    seed: int = 0,
    device: torch.device | str | None = None,
    periodic: bool = False,
    period: float | None = None,
    edge_order: int = 1,
    chunk_size: int | None = None,
    memory_budget: int = 128 * 2**20,
) -> PermutationResult:
    """Is the change of the outputs along the property systematic? (Algorithm 1, vectorised).

    Args:
        outputs: (N,) or (N, C) outputs for N ordered steps (tensor, numpy array or list; integers
            become float). Computation runs in the outputs' float dtype on their device.
        values: (N,) strictly increasing property values, or None for unit steps.
        n_permutations: K >= 1, the number of shuffles.
        alpha: Significance level in (0, 1).
        statistic: "gradient" (the expected property gradient magnitude, as
            :func:`propgrad.stats.gradient.property_gradient`), "pearson" (|Pearson r| between values and
            outputs; ``periodic``/``period``/``edge_order`` do not apply), or a callable
            ``f(permuted_outputs, values) -> Tensor`` taking (B, N, C) outputs (B shuffles at once;
            columns may arrive in chunks, so treat them independently) and the (N,) values (unit
            steps 0..N-1 when ``values`` is None), returning (B, C), one statistic per shuffle and
            column; the observed statistic comes from the same call with the identity order.
        seed: Seed of the CPU ``torch.Generator`` drawing the permutations (same seed, same
            permutations, same p-values); indices are then moved to ``device``.
        device: Device to compute on (default: that of ``outputs``; CPU for arrays and lists).
        periodic: Wrap-around differences for a full rotation (statistic "gradient").
        period: Period for ``periodic`` (default: span plus one mean step).
        edge_order: 1 (numpy.gradient's default) or 2 (statistic "gradient").
        chunk_size: Permutations per chunk (default: as many as keep one chunk's temporaries
            within 4 MB (cache-sized), or ``memory_budget`` if smaller). Results do not depend on it.
        memory_budget: Rough bound in bytes on the temporaries, including the (K, columns) null
            statistics of one block of columns (columns are processed in blocks to respect it).

    Returns:
        A :class:`PermutationResult`; fields have shape () for 1-D outputs, (C,) otherwise.

    Raises:
        TypeError: unsupported ``outputs``/``values`` types or ``statistic``.
        ValueError: bad ``outputs``/``values`` (see :func:`propgrad.stats.gradient.property_gradient`),
            ``n_permutations`` < 1, ``alpha`` outside (0, 1), unknown statistic name, a callable
            returning the wrong shape.
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be an integer >= 1, got {n_permutations!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or an integer >= 1, got {chunk_size!r}")
    y, one_d = as_outputs(outputs, device=device)
    n, c = y.shape
    if n < 2:
        raise ValueError(f"outputs must have at least 2 steps (2 = the binary case), got {n}")
    x = as_values(values, n, dtype=torch.float64, device=y.device)
    k = int(n_permutations)
    name, kernel = make_null_statistic(statistic, x, k, c, periodic=periodic, period=period, edge_order=edge_order)
    itemsize = y.element_size()
    cols = max(1, min(c, kernel.columns_per_block(c, itemsize), memory_budget // (2 * k * itemsize)))
    stream = cols >= c and first_use(n, k, int(seed))
    if not stream:
        perms = seeded_permutations(n, k, int(seed)).to(y.device)
        signature = kernel.signature
        key = None if signature is None else (type(kernel).__name__, signature, n, k, int(seed), str(y.device), y.dtype)
        bound = memoised(key, lambda: kernel.bind(perms, y.dtype))
    bound_identity = kernel.bind(torch.arange(n, device=y.device)[None], y.dtype)
    stats, pvals, nulls = [], [], []
    for c0 in range(0, c, cols):
        yc = y[:, c0 : c0 + cols].contiguous()
        prepared = kernel.prepare(yc)
        per_permutation = max(1, kernel.bytes_per_permutation(yc.shape[1], itemsize))
        b = chunk_size or max(1, min(memory_budget, CHUNK_BYTES) // per_permutation)
        observed = kernel.run(prepared, bound_identity, 0, 1)[0]
        null = torch.empty(k, yc.shape[1], dtype=y.dtype, device=y.device)
        if stream:
            _run_streamed(kernel, prepared, null, n, int(seed), b)
        else:
            for s in range(0, k, b):
                null[s : s + b] = kernel.run(prepared, bound, s, min(s + b, k))
        p = two_sided_p_values(observed, null)
        constant = (yc == yc[:1]).all(0)
        stats.append(observed)
        pvals.append(torch.where(constant, torch.ones_like(p), p))
        nulls.append(null if c <= KEEP_NULL_MAX_COLUMNS else None)
    statistic_t, p_value = torch.cat(stats), torch.cat(pvals)
    null_t = torch.cat(nulls, 1) if c <= KEEP_NULL_MAX_COLUMNS else None
    if one_d:
        statistic_t, p_value = statistic_t[0], p_value[0]
        null_t = null_t[:, 0] if null_t is not None else None
    return PermutationResult(
        statistic=statistic_t,
        p_value=p_value,
        significant=p_value < alpha,
        null_distribution=null_t,
        n_permutations=k,
        alpha=float(alpha),
        statistic_name=name,
    )


def _run_streamed(kernel: NullStatistic, prepared: Any, null: torch.Tensor, n: int, seed: int, chunk: int) -> None:
    """Fill ``null`` (K, C) with the kernel's statistics while drawing the seeded permutations by block."""
    k = null.shape[0]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for s, block in permutation_blocks(n, k, generator):
        bound = kernel.bind(torch.from_numpy(block).to(null.device), null.dtype)
        rows = block.shape[0]
        for j in range(0, rows, chunk):
            null[s + j : s + min(j + chunk, rows)] = kernel.run(prepared, bound, j, min(j + chunk, rows))
