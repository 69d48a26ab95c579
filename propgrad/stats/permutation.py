"""Permutation significance test of a property's effect (Penzel & Denzler, Algorithm 1).

The order of the outputs is shuffled K times while the property values stay put; the statistic is
recomputed for every shuffle. The test is two-sided around the null mean: with ``m`` the mean of
the K permuted statistics, ``b = #{k : |s_k - m| >= |s_obs - m|}``, ties (within a relative
tolerance of ``1000 * eps`` of the dtype, so float noise is a tie) counted as extreme, and
``p = (b + 1) / (K + 1)`` (the standard Monte-Carlo p-value, never 0; Algorithm 1 writes ``b / K``).
A column whose outputs are all equal carries no information: its p-value is 1. A statistic that is
NaN (Pearson's r of a constant) also gives p = 1; NaN permuted statistics count as extreme.

:func:`permutation_test` is the public door: it checks its settings once
(:func:`propgrad.stats.settings.test_settings`) and its data, then :func:`run_permutation_test`
trusts them. That computes the observed statistic directly (:mod:`propgrad.stats.statistic`),
lets :func:`propgrad.stats.backends.plan_test` choose the backend once (compiled CPU kernels for
the gradient on the CPU, torch otherwise) and asks it for the null distribution and the p-values.
One (K, N) matrix of permutation indices serves every output column. No backend, block or chunk
size changes a result. With ``sequential=h`` columns stop early (:mod:`propgrad.stats.sequential`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Union

import torch

from propgrad.core.validation import check_device
from propgrad.errors import InvalidParameterError
from propgrad.stats.backends import BACKENDS, KEEP_NULL_MAX_COLUMNS, NullJob, plan_test
from propgrad.stats.coercion import as_outputs, as_values
from propgrad.stats.decision import decide
from propgrad.stats.gradient import stencil_dtype
from propgrad.stats.null_statistics import GradientNull, StatisticFn
from propgrad.stats.permutations import DEFAULT_STREAM
from propgrad.stats.settings import MAX_PERMUTATIONS, TestSettings, test_settings
from propgrad.stats.statistic import Grid, Statistic, as_statistic

__all__ = [
    "MAX_PERMUTATIONS",
    "PermutationResult",
    "clear_cache",
    "permutation_test",
    "permutation_test_with",
    "run_permutation_test",
]
MAX_TEST_BYTES = 4 * 2**30
"""Largest memory of one test's permutation indices and null statistics, in bytes (4 GiB; raise it
on a machine with more memory)."""
SLOW_TEST_WORK = 10**12
"""Shuffled values (permutations x steps x columns) above which a test warns that it may take minutes
(about 3 minutes on two cores with the compiled kernels; 3.6e10, a turn of 360 steps against 10,000
CLIP columns, took 6 s)."""


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    Attributes:
        statistic: Observed statistic, shape () for 1-D outputs, (C,) for (N, C) outputs.
        p_value: Two-sided permutation p-values, same shape.
        significant: Bool tensor, significant at ``alpha`` (:func:`propgrad.stats.decision.decide`).
        null_distribution: The K permuted statistics, (K,) or (K, C), kept only when there are at
            most 16 output columns (None otherwise, to bound memory).
        n_permutations: K.
        alpha: Significance level.
        statistic_name: "gradient", "pearson" or the callable's ``__name__``.
        n_drawn: With ``sequential``, the shuffles drawn per column (same shape as ``p_value``;
            K for a column that never reached the limit); None for the fixed-K test.
        seed: Seed of the permutations.
        permutation_stream: Version of the stream that drew them from ``seed``
            (:mod:`propgrad.stats.permutations`); with the seed it reproduces the p-values.
    """

    statistic: torch.Tensor
    p_value: torch.Tensor
    significant: torch.Tensor
    null_distribution: torch.Tensor | None = field(repr=False)
    n_permutations: int
    alpha: float
    statistic_name: str
    n_drawn: torch.Tensor | None = field(default=None, repr=False)
    seed: int = 0
    permutation_stream: int = DEFAULT_STREAM

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the null distribution is left out; it can be large)."""
        return {
            "statistic": self.statistic.tolist(),
            "p_value": self.p_value.tolist(),
            "significant": self.significant.tolist(),
            "n_permutations": self.n_permutations,
            "alpha": self.alpha,
            "statistic_name": self.statistic_name,
            "seed": self.seed,
            "permutation_stream": self.permutation_stream,
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
    sequential: int | None = None,
    permutation_stream: int = DEFAULT_STREAM,
) -> PermutationResult:
    """Is the change of the outputs along the property systematic? (Algorithm 1, vectorised).

    Args:
        outputs: (N,) or (N, C) outputs for N ordered steps (tensor, numpy array or list; integers
            become float). Computation runs in the outputs' float dtype on their device, except that
            the gradient statistic of outputs whose differences would overflow that dtype (float32
            outputs of +-3e38, values 1e-300 apart) is computed, and returned, in float64.
        values: (N,) strictly increasing real property values, or None for unit steps.
        n_permutations: K, the number of shuffles, from 1 to :data:`MAX_PERMUTATIONS`; a test
            whose indices and null statistics would exceed :data:`MAX_TEST_BYTES` is refused, one
            of more than :data:`SLOW_TEST_WORK` shuffled values warns that it may take minutes.
        alpha: Significance level in (0, 1) (Python or numpy number).
        statistic: "gradient" (the expected property gradient magnitude, as
            :func:`propgrad.stats.gradient.property_gradient`), "pearson" (|Pearson r| between values and
            outputs; ``periodic``/``period`` do not apply), or a callable
            ``f(permuted_outputs, values) -> Tensor`` taking (B, N, C) outputs (B shuffles at once;
            columns may arrive in chunks, so treat them independently) and the (N,) values (unit
            steps 0..N-1 when ``values`` is None), returning (B, C), one statistic per shuffle and
            column; the observed statistic comes from the same callable with the outputs in order.
        seed: Seed of the permutations (same seed and stream, same permutations, same p-values), an
            integer in [0, 2**63 - 1]; they are drawn on the CPU, indices then moved to ``device``.
        device: Device to compute on (default: that of ``outputs``; CPU for arrays and lists); it
            must exist here (:func:`propgrad.core.validation.check_device`).
        periodic: Wrap-around differences for a full rotation (statistic "gradient").
        period: Period for ``periodic`` (default: span plus one mean step).
        sequential: Besag-Clifford's sequential test: a column stops drawing after this many null
            statistics as extreme as the observed one (10 is usual); None for the fixed-K test.
        permutation_stream: Version of the stream drawing the permutations from ``seed``
            (:mod:`propgrad.stats.permutations`): 2, counter-based Fisher-Yates (the default), or 1,
            sorted random keys (the stream of propgrad's results before it).

    Returns:
        A :class:`PermutationResult`; fields have shape () for 1-D outputs, (C,) otherwise.

    Raises:
        InvalidParameterError: bad settings (see :func:`propgrad.stats.settings.test_settings`),
            bad ``outputs``/``values`` (see :func:`propgrad.stats.gradient.property_gradient`),
            ``n_permutations`` too large for memory, an unknown device, a callable returning
            the wrong shape (its subclass ParameterTypeError for a value of the wrong type).
    """
    settings = test_settings(
        n_permutations=n_permutations,
        alpha=alpha,
        statistic=statistic,
        seed=seed,
        sequential=sequential,
        permutation_stream=permutation_stream,
    )
    return permutation_test_with(outputs, values, settings, periodic=periodic, period=period, device=device)


def permutation_test_with(
    outputs: Any,
    values: Any,
    settings: TestSettings,
    *,
    periodic: bool = False,
    period: float | None = None,
    device: torch.device | str | None = None,
    edge_order: int = 1,
) -> PermutationResult:
    """:func:`permutation_test` under settings checked by :func:`propgrad.stats.settings.test_settings`.

    The outputs and values are checked here (they are data, not settings); ``settings`` is trusted.
    Only ``n_permutations``, ``alpha``, ``statistic``, ``seed``, ``permutation_stream`` and ``sequential`` of the
    settings     apply (the decision rule with ``min_effect`` and corrections is the caller's,
    :func:`propgrad.stats.decision.decide`). ``edge_order`` (1 or 2) is that of the gradient's ends.
    """
    y, one_d = as_outputs(outputs, device=None if device is None else check_device(device))
    n = y.shape[0]
    if n < 2:
        raise InvalidParameterError(f"outputs must have at least 2 steps (2 = the binary case), got {n}")
    grid = Grid(as_values(values, n, dtype=torch.float64, device=y.device), periodic, period, edge_order)
    result = run_permutation_test(y, as_statistic(settings.statistic), grid, settings)
    if not one_d:
        return result
    return PermutationResult(
        statistic=result.statistic[0],
        p_value=result.p_value[0],
        significant=result.significant[0],
        null_distribution=None if result.null_distribution is None else result.null_distribution[:, 0],
        n_permutations=result.n_permutations,
        alpha=result.alpha,
        statistic_name=result.statistic_name,
        n_drawn=None if result.n_drawn is None else result.n_drawn[0],
        seed=result.seed,
        permutation_stream=result.permutation_stream,
    )


def run_permutation_test(
    y: torch.Tensor, statistic: Statistic, grid: Grid, settings: TestSettings, backends: Any = BACKENDS
) -> PermutationResult:
    """The test of checked (N, C) outputs on a checked grid: observed statistic, backend, p-values.

    Args:
        y: (N, C) float outputs, N >= 2 (:func:`propgrad.stats.coercion.as_outputs`).
        statistic: The statistic.
        grid: The property values (on ``y``'s device) and the gradient's end treatment.
        settings: Checked settings.
        backends: The backends to choose from, in order (:data:`propgrad.stats.backends.BACKENDS`).

    Returns:
        A :class:`PermutationResult` with fields of shape (C,).
    """
    n, c = y.shape
    k = settings.n_permutations
    kernel = statistic.null_kernel(grid, k, c)
    if isinstance(kernel, GradientNull):  # differences of +-3e38 in float32: score in float64
        y = y.to(stencil_dtype(y, kernel.weights, max(n, k)))
    plan = plan_test(kernel, y, k, (settings.seed, settings.permutation_stream), settings.sequential, backends)
    _check_size((n, k, c), plan.columns, plan.null_columns, y.element_size(), plan.stream)
    observed = statistic.observed(y, grid, kernel, plan.observed_columns, plan.backend.compiled)
    job = NullJob(kernel, y, observed, k, settings.seed, settings.permutation_stream, settings.sequential, plan.stream)
    outcome = plan.backend.null(job)
    constant = (y == y[:1]).all(0)
    if outcome.p_value.shape[0] != c:  # one statistic of the whole output vector: constant if every column is
        constant = constant.all().reshape(1)
    p_value = torch.where(constant, torch.ones_like(outcome.p_value), outcome.p_value)
    return PermutationResult(
        statistic=observed.to(y.dtype),
        p_value=p_value,
        significant=decide(p_value, settings.alpha),
        null_distribution=None if outcome.null is None else outcome.null.to(y.dtype),
        n_permutations=k,
        alpha=settings.alpha,
        statistic_name=statistic.name,
        n_drawn=outcome.drawn,
        seed=settings.seed,
        permutation_stream=settings.permutation_stream,
    )


def clear_cache() -> None:
    """Forget the permutation matrices (and the tensors derived from them) the default backends memoised."""
    for backend in BACKENDS:
        backend.memo.clear()


def _check_size(shape: tuple[int, int, int], cols: int, null_columns: int, itemsize: int, stream: bool) -> None:
    """Refuse a test whose permutation indices and null statistics would exceed :data:`MAX_TEST_BYTES`;
    warn when it would take minutes. ``shape`` is (N, K, C); ``null_columns`` the null's columns (C, or 1
    for a whole-vector statistic)."""
    n, k, c = shape
    indices = 0 if stream else k * n * 4  # the (K, N) int32 permutations
    kept = k * null_columns * itemsize if null_columns <= KEEP_NULL_MAX_COLUMNS else 0
    nulls = k * min(cols, null_columns) * 8 + kept  # float64 null statistics of one block, and the kept ones
    total = indices + nulls
    if total > MAX_TEST_BYTES:
        raise InvalidParameterError(
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
            stacklevel=5,  # the caller of permutation_test
        )
