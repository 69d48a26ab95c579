"""Permutation significance test of a property's effect (Penzel & Denzler, Algorithm 1).

The order of the outputs is shuffled K times while the property values stay put; the statistic is
recomputed for every shuffle. The test is two-sided around the null mean: with ``m`` the mean of
the K permuted statistics, ``b = #{k : |s_k - m| >= |s_obs - m|}``, ties (within a relative
tolerance of ``1000 * eps`` of the dtype, so float noise is a tie) counted as extreme, and
``p = (b + 1) / (K + 1)`` (the standard Monte-Carlo p-value, never 0; Algorithm 1 writes ``b / K``).
A column whose outputs are all equal carries no information: its p-value is 1. A statistic that is
NaN (Pearson's r of a constant) also gives p = 1; NaN permuted statistics count as extreme.

Vectorised: one (K, N) matrix of permutation indices (:func:`propgrad.stats.permutations.seeded_permutations`,
memoised per (N, K, seed)) serves every output column; a first call for an (N, K, seed) streams
its permutations block by block instead (``permutation_blocks``, the same rows), and a second use
memoises the matrix. The gradient statistic runs on the CPU in compiled kernels
(:mod:`propgrad.stats.cpu_kernels`), split over worker threads by the rule of
:mod:`propgrad.stats.strategy`; other statistics and devices use the torch kernels of
:mod:`propgrad.stats.null_statistics`. No split of the work changes a result. With
``sequential=h`` columns stop early (Besag & Clifford, :func:`_sequential`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch

from propgrad.core.validation import check_alpha, check_device, check_int, check_seed
from propgrad.stats.coercion import as_outputs, as_values
from propgrad.stats.gradient import stencil_dtype
from propgrad.stats.kernels import compiled_kernels
from propgrad.stats.null_statistics import (
    GradientNull,
    NullStatistic,
    StatisticFn,
    check_statistic,
    make_null_statistic,
    two_sided_p_values,
)
from propgrad.stats.permutations import (
    clear_cache,
    first_use,
    memoised,
    permutation_blocks,
    seeded_permutations,
)
from propgrad.stats.strategy import plan_gradient_test, run_tasks, threads_available

__all__ = ["PermutationResult", "check_test_settings", "clear_cache", "permutation_test", "seeded_permutations"]
KEEP_NULL_MAX_COLUMNS = 16
MAX_PERMUTATIONS = 10**7
"""Most permutations of one test: a thousand times the paper's 10,000."""
MAX_TEST_BYTES = 4 * 2**30
"""Largest memory of one test's permutation indices and null statistics, in bytes (4 GiB; raise it
on a machine with more memory)."""
SLOW_TEST_WORK = 10**12
"""Shuffled values (permutations x steps x columns) above which a test warns that it may take minutes
(about 3 minutes on two cores with the compiled kernels; 3.6e10, a turn of 360 steps against 10,000
CLIP columns, took 6 s)."""
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
        n_drawn: With ``sequential``, the shuffles drawn per column (same shape as ``p_value``;
            K for a column that never reached the limit); None for the fixed-K test.
    """

    statistic: torch.Tensor
    p_value: torch.Tensor
    significant: torch.Tensor
    null_distribution: torch.Tensor | None = field(repr=False)
    n_permutations: int
    alpha: float
    statistic_name: str
    n_drawn: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the null distribution is left out; it can be large)."""
        return {
            "statistic": self.statistic.tolist(),
            "p_value": self.p_value.tolist(),
            "significant": self.significant.tolist(),
            "n_permutations": self.n_permutations,
            "alpha": self.alpha,
            "statistic_name": self.statistic_name,
            **({} if self.n_drawn is None else {"n_drawn": self.n_drawn.tolist()}),
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
    sequential: int | None = None,
) -> PermutationResult:
    """Is the change of the outputs along the property systematic? (Algorithm 1, vectorised).

    Args:
        outputs: (N,) or (N, C) outputs for N ordered steps (tensor, numpy array or list; integers
            become float). Computation runs in the outputs' float dtype on their device, except that
            the gradient statistic of outputs whose differences would overflow that dtype (float32
            outputs of +-3e38, values 1e-300 apart) is computed, and returned, in float64.
        values: (N,) strictly increasing property values, or None for unit steps.
        n_permutations: K, the number of shuffles, from 1 to :data:`MAX_PERMUTATIONS`; a test
            whose indices and null statistics would exceed :data:`MAX_TEST_BYTES` is refused, one
            of more than :data:`SLOW_TEST_WORK` shuffled values warns that it may take minutes.
        alpha: Significance level in (0, 1) (Python or numpy number).
        statistic: "gradient" (the expected property gradient magnitude, as
            :func:`propgrad.stats.gradient.property_gradient`), "pearson" (|Pearson r| between values and
            outputs; ``periodic``/``period``/``edge_order`` do not apply), or a callable
            ``f(permuted_outputs, values) -> Tensor`` taking (B, N, C) outputs (B shuffles at once;
            columns may arrive in chunks, so treat them independently) and the (N,) values (unit
            steps 0..N-1 when ``values`` is None), returning (B, C), one statistic per shuffle and
            column; the observed statistic comes from the same call with the identity order.
        seed: Seed of the CPU ``torch.Generator`` drawing the permutations (same seed, same
            permutations, same p-values), an integer in [0, 2**63 - 1]; indices are then moved to
            ``device``.
        device: Device to compute on (default: that of ``outputs``; CPU for arrays and lists); it
            must exist here (:func:`propgrad.core.validation.check_device`).
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
        TypeError: unsupported ``outputs``/``values`` types or ``statistic``; a non-integer
            ``n_permutations``, ``seed``, ``chunk_size`` or ``memory_budget``; a non-number ``alpha``.
        ValueError: bad ``outputs``/``values`` (see :func:`propgrad.stats.gradient.property_gradient`),
            ``n_permutations`` outside [1, :data:`MAX_PERMUTATIONS`] or too large for memory, ``alpha``
            outside (0, 1), a negative or too large ``seed``, ``chunk_size`` or ``memory_budget`` < 1,
            an unknown statistic name or device, a callable returning the wrong shape.
    """
    k, alpha, seed = check_test_settings(n_permutations, alpha, statistic, seed)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", hint="permutations per chunk, or None")
    memory_budget = check_int(memory_budget, "memory_budget", hint="a rough bound in bytes on the temporaries")
    if sequential is not None:
        sequential = check_int(
            sequential,
            "sequential",
            hint="the number of null statistics as extreme as the observed one after "
            "which a column stops drawing (Besag & Clifford; 10 is usual), or None for the fixed-K test",
        )
    y, one_d = as_outputs(outputs, device=None if device is None else check_device(device))
    n, c = y.shape
    if n < 2:
        raise ValueError(f"outputs must have at least 2 steps (2 = the binary case), got {n}")
    x = as_values(values, n, dtype=torch.float64, device=y.device)
    name, kernel = make_null_statistic(statistic, x, k, c, periodic=periodic, period=period, edge_order=edge_order)
    if isinstance(kernel, GradientNull):  # differences of +-3e38 in float32: score in float64
        y = y.to(stencil_dtype(y, kernel.weights, max(n, k)))
    compiled = isinstance(kernel, GradientNull) and y.device.type == "cpu" and compiled_kernels_available()
    cols = c if compiled else max(1, min(c, kernel.columns_per_block(c, 8), memory_budget // (2 * k * 8)))
    stream = sequential is None and cols >= c and first_use(n, k, seed)
    _check_size(kernel, n, k, c, cols, y.element_size(), stream)
    if compiled:
        observed, null, p_value, drawn = _gradient_on_cpu(
            kernel, y, k, seed, stream, chunk_size, memory_budget, sequential
        )
    else:
        observed, null, p_value, drawn = _with_torch(kernel, y, k, seed, stream, chunk_size, memory_budget, sequential)
    constant = (y == y[:1]).all(0)
    p_value = torch.where(constant, torch.ones_like(p_value), p_value)
    statistic_t = observed.to(y.dtype)
    null_t = null.to(y.dtype) if null is not None else None
    if one_d:
        statistic_t, p_value = statistic_t[0], p_value[0]
        null_t = null_t[:, 0] if null_t is not None else None
        drawn = drawn[0] if drawn is not None else None
    return PermutationResult(
        statistic=statistic_t,
        p_value=p_value,
        significant=p_value < alpha,
        null_distribution=null_t,
        n_permutations=k,
        alpha=alpha,
        statistic_name=name,
        n_drawn=drawn,
    )


def check_test_settings(n_permutations: Any, alpha: Any, statistic: Any, seed: Any) -> tuple[int, float, int]:
    """Check the permutation test's settings before any work; ``(n_permutations, alpha, seed)`` as int, float, int.

    The scorer and the API call it before running a model, so a bad setting fails at once.

    Raises:
        TypeError, ValueError: ``n_permutations`` not an integer in [1, :data:`MAX_PERMUTATIONS`],
            ``alpha`` not a number in (0, 1) (numpy scalars are numbers), an unknown statistic
            name or a non-callable, ``seed`` not an integer in [0, 2**63 - 1] (1.5, None, text).
    """
    k = check_int(
        n_permutations,
        "n_permutations",
        maximum=MAX_PERMUTATIONS,
        hint=f"p-values resolve 1 / (n_permutations + 1), and {MAX_PERMUTATIONS:.0e} permutations resolve "
        "far below any significance level (the paper uses 10,000)",
    )
    check_statistic(statistic)
    return k, check_alpha(alpha), check_seed(seed)


def _check_size(kernel: NullStatistic, n: int, k: int, c: int, cols: int, itemsize: int, stream: bool) -> None:
    """Refuse a test whose permutation indices and null statistics would exceed :data:`MAX_TEST_BYTES`;
    warn when it would take minutes."""
    indices = 0 if stream else k * n * 4  # the (K, N) int32 permutations
    kept = k * c * itemsize if c <= KEEP_NULL_MAX_COLUMNS else 0
    nulls = k * min(cols, c) * 8 + kept  # float64 null statistics of one block, and the kept ones
    total = indices + nulls
    if total > MAX_TEST_BYTES:
        raise ValueError(
            f"n_permutations={k} for {n} steps and {c} output columns would need about {total / 2**30:.3g} GiB "
            f"(permutation indices {indices / 2**30:.3g} GiB, null statistics {nulls / 2**30:.3g} GiB), more than "
            f"{MAX_TEST_BYTES / 2**30:.3g} GiB (propgrad.stats.permutation.MAX_TEST_BYTES); use fewer "
            "permutations, or score one target column instead of every column"
        )
    work = k * n * c
    if work > SLOW_TEST_WORK:
        warnings.warn(
            f"the permutation test shuffles {n} steps of {c} output columns {k} times ({work:.2g} values): "
            "this may take minutes; fewer permutations or a target column would be faster",
            UserWarning,
            stacklevel=3,
        )


def compiled_kernels_available() -> bool:
    """True when the compiled CPU kernels import (:func:`propgrad.stats.kernels.compiled_kernels`)."""
    if _COMPILED is not None:  # tests force one path
        return _COMPILED
    return compiled_kernels() is not None


_COMPILED: bool | None = None
Paths = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]


def _gradient_on_cpu(
    kernel: GradientNull,
    y: torch.Tensor,
    k: int,
    seed: int,
    stream: bool,
    chunk_size: int | None,
    memory_budget: int,
    sequential: int | None,
) -> Paths:
    """``(observed, kept null, p-values, drawn)`` of the gradient test with the compiled CPU kernels.

    The work is split by :func:`propgrad.stats.strategy.plan_gradient_test`; see that module for
    the rule and :mod:`propgrad.stats.cpu_kernels` for why the split never changes a result.
    """
    from propgrad.stats import cpu_kernels

    n, c = y.shape
    y_np = y.detach().contiguous().numpy()
    plan = plan_gradient_test(n, c, k, y.element_size(), threads_available(), memory_budget)
    shuffles = chunk_size or plan.shuffles_per_task
    rel_tol = 1000 * torch.finfo(y.dtype).eps
    observed = kernel.cpu_block(y_np, np.arange(n, dtype=np.int32)[None], np.empty((1, c)))[0]

    if sequential is not None:
        perms = seeded_permutations(n, k, seed).numpy()

        def null_block(columns: np.ndarray | slice, s: int, e: int) -> np.ndarray:
            block = np.ascontiguousarray(y_np[:, columns])
            return kernel.cpu_block(block, perms[s:e], np.empty((e - s, block.shape[1])))

        return _sequential(null_block, observed, k, sequential, rel_tol, plan.shuffles_per_task, y.dtype)
    keep = c <= KEEP_NULL_MAX_COLUMNS
    p_value = np.empty(c)
    kept = np.empty((k, c)) if keep else None
    blocks = [slice(c0, min(c0 + plan.columns_per_block, c)) for c0 in range(0, c, plan.columns_per_block)]

    def finish(columns: slice, null: np.ndarray) -> None:
        cpu_kernels.two_sided_p_values(observed[columns], null, rel_tol, p_value[columns])
        if kept is not None:
            kept[:, columns] = null

    if len(blocks) > 1 and len(blocks) >= plan.workers:  # whole column blocks per task
        perms = seeded_permutations(n, k, seed).numpy()

        def column_task(columns: slice) -> None:
            block = np.ascontiguousarray(y_np[:, columns])
            null = np.empty((k, block.shape[1]))
            for s in range(0, k, shuffles):
                kernel.cpu_block(block, perms[s : s + shuffles], null[s : s + shuffles])
            finish(columns, null)

        run_tasks(column_task, blocks, plan.workers)
    else:  # one (or a few) column blocks: tasks of shuffles
        for columns in blocks:
            block = np.ascontiguousarray(y_np[:, columns])
            null = np.empty((k, block.shape[1]))
            if stream:
                generator = torch.Generator(device="cpu").manual_seed(seed)
                tasks: Any = ((s, rows.copy()) for s, rows in permutation_blocks(n, k, generator))
            else:
                perms = seeded_permutations(n, k, seed).numpy()
                tasks = ((s, perms[s : s + shuffles]) for s in range(0, k, shuffles))

            def shuffle_task(task: tuple[int, np.ndarray], block: np.ndarray = block, null: np.ndarray = null) -> None:
                s, rows = task
                kernel.cpu_block(block, rows, null[s : s + rows.shape[0]])

            run_tasks(shuffle_task, tasks, plan.workers)
            finish(columns, null)
    as_tensor = torch.from_numpy
    return as_tensor(observed), None if kept is None else as_tensor(kept), as_tensor(p_value).to(y.dtype), None


def _with_torch(
    kernel: NullStatistic,
    y: torch.Tensor,
    k: int,
    seed: int,
    stream: bool,
    chunk_size: int | None,
    memory_budget: int,
    sequential: int | None,
) -> Paths:
    """``(observed, kept null, p-values, drawn)`` with the torch kernels (any statistic, any device)."""
    n, c = y.shape
    gradient = isinstance(kernel, GradientNull)
    null_dtype = torch.float64 if gradient else y.dtype
    itemsize = torch.finfo(null_dtype).bits // 8
    cols = max(1, min(c, kernel.columns_per_block(c, itemsize), memory_budget // (2 * k * itemsize)))
    bound_identity = kernel.bind(torch.arange(n, device=y.device)[None], y.dtype)
    if sequential is not None:
        perms = seeded_permutations(n, k, seed).to(y.device)
        bound = kernel.bind(perms, y.dtype)
        observed = kernel.run(kernel.prepare(y), bound_identity, 0, 1)[0].to(null_dtype)

        def null_block(columns: np.ndarray | slice, s: int, e: int) -> np.ndarray:
            if isinstance(columns, np.ndarray):
                columns = torch.from_numpy(columns).to(y.device)
            return kernel.run(kernel.prepare(y[:, columns]), bound, s, e).to(torch.float64).cpu().numpy()

        rel_tol = 1000 * torch.finfo(y.dtype).eps
        obs, _, p, drawn = _sequential(
            null_block, observed.cpu().numpy(), k, sequential, rel_tol, chunk_size or 256, y.dtype
        )
        assert drawn is not None
        return obs.to(y.device), None, p.to(y.device), drawn.to(y.device)
    if not stream:
        perms = seeded_permutations(n, k, seed).to(y.device)
        signature = kernel.signature
        key = None if signature is None else (type(kernel).__name__, signature, n, k, seed, str(y.device), y.dtype)
        bound = memoised(key, lambda: kernel.bind(perms, y.dtype))
    stats, pvals, nulls = [], [], []
    for c0 in range(0, c, cols):
        yc = y[:, c0 : c0 + cols].contiguous()
        prepared = kernel.prepare(yc)
        per_permutation = max(1, kernel.bytes_per_permutation(yc.shape[1], itemsize))
        b = chunk_size or max(1, min(memory_budget, CHUNK_BYTES) // per_permutation)
        observed = kernel.run(prepared, bound_identity, 0, 1)[0].to(null_dtype)
        null = torch.empty(k, yc.shape[1], dtype=null_dtype, device=y.device)
        if stream:
            _run_streamed(kernel, prepared, null, n, seed, b)
        else:
            for s in range(0, k, b):
                null[s : s + b] = kernel.run(prepared, bound, s, min(s + b, k))
        stats.append(observed)
        pvals.append(two_sided_p_values(observed, null, y.dtype))
        nulls.append(null if c <= KEEP_NULL_MAX_COLUMNS else None)
    null_t = torch.cat(nulls, 1) if c <= KEEP_NULL_MAX_COLUMNS else None
    return torch.cat(stats), null_t, torch.cat(pvals), None


SEQUENTIAL_PILOT = 256
"""Shuffles drawn for every column first: their mean is the centre of the sequential test's two-sided
criterion. A column's count of shuffles drawn runs from the first one, so it may reach its limit
inside these (they are drawn for every column anyway)."""


def _sequential(
    null_block: Any,
    observed: np.ndarray,
    k: int,
    limit: int,
    rel_tol: float,
    block: int,
    dtype: torch.dtype,
) -> Paths:
    """The Besag-Clifford sequential test: draw shuffles in blocks, stop a column at ``limit`` extremes.

    The centre of "as extreme" is the mean of the first :data:`SEQUENTIAL_PILOT` null statistics
    (all K for the fixed test). A column that reaches ``limit`` extreme statistics after L
    shuffles gets p = limit / L; one that never does gets the fixed test's (b + 1) / (K + 1)
    with b its extremes among all K.
    """
    from propgrad.stats import cpu_kernels

    c = observed.shape[0]
    pilot = min(k, SEQUENTIAL_PILOT)
    head = null_block(slice(None), 0, pilot)
    finite = np.isfinite(head)
    centre = np.where(finite, head, 0).sum(0) / np.maximum(finite.sum(0), 1)
    scale = np.maximum(np.maximum(np.abs(observed), np.abs(centre)), np.where(finite, np.abs(head), 0).max(0))
    threshold = np.abs(observed - centre) - rel_tol * scale
    counts, hit = np.zeros(c, dtype=np.int64), np.zeros(c, dtype=np.int64)
    cpu_kernels.extreme_counts(head, centre, threshold, counts, hit, limit, 0)
    step = max(block, pilot)
    for s in range(pilot, k, step):
        active = np.flatnonzero(hit == 0)
        if active.size == 0:
            break
        null = null_block(active, s, min(s + step, k))
        sub_counts, sub_hit = counts[active], hit[active]
        cpu_kernels.extreme_counts(null, centre[active], threshold[active], sub_counts, sub_hit, limit, s)
        counts[active], hit[active] = sub_counts, sub_hit
    stopped = hit > 0
    p = np.where(stopped, limit / np.maximum(hit, 1), (counts + 1) / (k + 1))
    drawn = np.where(stopped, hit, k)
    return torch.from_numpy(observed), None, torch.from_numpy(p).to(dtype), torch.from_numpy(drawn)


def _run_streamed(kernel: NullStatistic, prepared: Any, null: torch.Tensor, n: int, seed: int, chunk: int) -> None:
    """Fill ``null`` (K, C) with the kernel's statistics while drawing the seeded permutations by block."""
    k = null.shape[0]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for s, block in permutation_blocks(n, k, generator):
        bound = kernel.bind(torch.from_numpy(block).to(null.device), null.dtype)
        rows = block.shape[0]
        for j in range(0, rows, chunk):
            null[s + j : s + min(j + chunk, rows)] = kernel.run(prepared, bound, j, min(j + chunk, rows))
