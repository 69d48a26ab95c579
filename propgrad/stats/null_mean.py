"""The exact mean of the gradient statistic's shuffled null, without resampling, and the effect size it gives.

The permutation test (:mod:`propgrad.stats.permutation`) compares the expected property gradient
``S = (1/N) sum_i |sum_k w_ik F[idx_ik]|`` (:func:`propgrad.stats.gradient.property_gradient`) with
its values over uniformly random shuffles of the outputs. The stencil (positions and weights) stays
put while the outputs move, so row ``i`` of a shuffle reads the outputs of a uniformly random
ordered tuple of *distinct* steps, whatever ``i``. Its mean is therefore exact and needs no
resampling (``a`` the outputs of one column, ``E`` over ordered tuples of distinct steps):

- a row with two opposite weights ``+-w`` (every interior row on equal steps, the first-order ends,
  the binary case, periodic equal steps): ``|w| * D`` with ``D = E|a_p - a_q|`` the mean pairwise
  absolute difference, ``D = 2 sum_j (2j - N + 1) b_j / (N (N - 1))`` from the sorted outputs ``b``
  (0-based j), O(N log N) (:func:`mean_abs_difference`);
- any other row (the second-order ends ``-3/2, 2, -1/2``, interior rows of a non-uniform grid,
  periodic rows of a non-uniform grid): ``T(w) = E|w0 a_p + w1 a_q + w2 a_r|``. For each ordered
  pair (p, q) the sum over all r of ``|w2 a_r + u|`` (``u = w0 a_p + w1 a_q``) is
  ``|w2| sum_r |b_r - t|`` with ``t = -u / w2``, read from prefix sums of the sorted outputs at the
  rank of ``t``; the two terms r = p and r = q are then taken out. O(N^2 log N) per distinct row
  (:func:`mean_abs_combination`). The triple is exchangeable, so ``T`` does not change when the
  weights are permuted or negated, and equal rows (the two ends of an equal-step grid) are computed once.

The null mean is ``(1/N) sum_i E|row_i|``, per column. :func:`gradient_effect_size` divides the
observed statistic by it: 1 is what a shuffle of the same outputs gives on average.

The whole-vector statistics (:mod:`propgrad.stats.vector_statistic`) shuffle whole rows, so row
``i`` of a shuffle reads the output *vectors* ``y_p, y_q, y_r`` (C columns) of one random tuple:

- ``"vector_l1"``: ``E sum_j |w . a_j|`` over the same tuple for every column ``j`` is, by the
  linearity of the mean, ``sum_j E|w . a_j|``: the null mean is the sum over the columns of the
  gradient statistic's null means, exactly;
- ``"vector_l2"``: ``E ||w0 y_p + w1 y_q + w2 y_r||_2`` does not split over the columns, but it
  is still a mean over ordered tuples of distinct steps. A two-point row gives ``|w|`` times the
  mean Euclidean distance between two distinct rows (:func:`mean_pairwise_distance`); a
  three-point row the mean norm over ordered triples, whose squares
  ``-(w0 w1 D_pq + w0 w2 D_pr + w1 w2 D_qr)`` are read from the (N, N) squared distances ``D``
  between the rows (the weights sum to 0): O(N^2 C) once for ``D``, then O(N^3) per distinct row
  (:func:`mean_norm_combination`).

:func:`exact_null_mean` and :func:`effect_size` give these for any statistic name, NaN where no
exact mean is derived (``"pearson"``, a callable) and where the exact mean would take more than a
few seconds: above :data:`PAIR_SEARCH_LIMIT` (``"gradient"``, ``"vector_l1"``) or
:data:`L2_TRIPLE_LIMIT` (``"vector_l2"``). Equal steps (with first-order ends, or a turn) have
only two-point rows and no limit; an uneven grid has about N distinct three-point rows.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Any, Sequence, Union

import numpy as np
import torch

from propgrad.errors import InvalidParameterError
from propgrad.stats.coercion import as_outputs, as_values
from propgrad.stats.gradient import finite_difference_weights, mean_abs_derivative, property_gradient, stencil_dtype
from propgrad.stats.null_statistics import StatisticFn
from propgrad.stats.statistic import check_statistic, observed_statistic
from propgrad.stats.vector_statistic import VECTOR_NORMS

__all__ = [
    "L2_TRIPLE_LIMIT",
    "PAIR_SEARCH_LIMIT",
    "effect_size",
    "exact_null_mean",
    "gradient_effect_size",
    "gradient_null_mean",
    "mean_abs_combination",
    "mean_abs_difference",
    "mean_norm_combination",
    "mean_pairwise_distance",
    "squared_distances",
]

_Stencil = tuple[torch.Tensor, torch.Tensor, tuple[float, Counter]]
"""A stencil's indices (N, 3), float64 weights (N, 3) and terms (:func:`_stencil_terms`), on the CPU."""

CHUNK_ELEMENTS = 2**20
"""Pairs (p, q) evaluated at once by :func:`mean_abs_combination` (bounds its temporaries to some 40 MB),
and values of the chunks of :func:`mean_pairwise_distance` and :func:`mean_norm_combination`."""
PAIR_SEARCH_LIMIT = 2**25
"""Most ordered pairs (p, q) searched (summed over the distinct three-point rows and the columns) for
which :func:`exact_null_mean` and :func:`effect_size` compute the exact null mean of ``"gradient"``
and ``"vector_l1"`` (a few seconds); above it, NaN. An uneven grid of N steps and C columns needs
about N^3 C: one column up to N = 320, 1000 columns up to N = 32. :func:`gradient_null_mean` and
:func:`gradient_effect_size` have no limit."""
L2_TRIPLE_LIMIT = 2**27
"""Most ordered triples (summed over the distinct three-point rows) for which :func:`exact_null_mean`
and :func:`effect_size` compute the exact null mean of ``"vector_l2"`` (a few seconds); above it,
NaN. An uneven grid of N steps needs about N^4, whatever C: up to N = 105."""


def mean_abs_difference(outputs: np.ndarray) -> np.ndarray:
    """Mean absolute difference ``E|a_p - a_q|`` over ordered pairs of distinct steps, per column.

    ``sum_{p<q} |b_q - b_p| = sum_j (2j - N + 1) b_j`` for the sorted column ``b`` (j from 0), so
    the mean over the ``N (N - 1)`` ordered pairs is ``2 sum_j (2j - N + 1) b_j / (N (N - 1))``.

    Args:
        outputs: (N, C) float64 array, N >= 2.

    Returns:
        (C,) float64 mean pairwise absolute differences.
    """
    n = outputs.shape[0]
    centred = outputs - np.median(outputs, axis=0)  # differences unchanged, the weighted sum smaller
    coef = (2 * np.arange(n) - n + 1).astype(np.float64)
    return 2 * (coef @ np.sort(centred, axis=0)) / (n * (n - 1))


def mean_abs_combination(outputs: np.ndarray, weights: Sequence[float]) -> float:
    """``E|w0 a_p + w1 a_q + w2 a_r|`` over ordered triples (p, q, r) of distinct steps, exactly.

    The triple is exchangeable, so the weights may come in any order; the largest in magnitude is
    taken as ``w2``. For every ordered pair (p, q), ``sum_r |w2 a_r + u| = |w2| sum_r |b_r - t|``
    (``u = w0 a_p + w1 a_q``, ``t = -u / w2``, ``b`` the sorted outputs) is read in O(log N) from
    prefix sums of ``b`` at the rank ``L`` of ``t``: ``t (2L - N) + sum(b) - 2 sum_{j<L} b_j``. The
    terms r = p and r = q are subtracted and the pairs p = q dropped. O(N^2 log N) time.

    Args:
        outputs: (N,) float64 outputs of one column, N >= 3.
        weights: Three weights, at least one non-zero (a zero weight gives the mean over pairs).

    Returns:
        The mean over the ``N (N - 1) (N - 2)`` ordered triples.
    """
    a = np.asarray(outputs, dtype=np.float64)
    n = a.shape[0]
    w0, w1, w2 = sorted((float(w) for w in weights), key=abs)
    centre = float(np.median(a))  # thresholds and prefix sums relative to the centre: smaller sums
    b = np.sort(a - centre)
    prefix = np.concatenate([[0.0], np.cumsum(b)])
    total = prefix[-1]
    rows = max(1, CHUNK_ELEMENTS // n)
    acc = 0.0
    for q0 in range(0, n, rows):
        aq = a[q0 : q0 + rows, None]  # (Q, 1): the step q of each pair
        u = w0 * a[None, :] + w1 * aq  # (Q, N) over p
        t = -u / w2 - centre
        rank = np.searchsorted(b, t)
        every_r = abs(w2) * (t * (2 * rank - n) + total - 2 * prefix[rank])
        inner = every_r - np.abs(w2 * a[None, :] + u) - np.abs(w2 * aq + u)  # r = p and r = q left out
        q = np.arange(q0, q0 + aq.shape[0])
        inner[q - q0, q] = 0.0  # p = q is not a pair of distinct steps
        acc += float(inner.sum())
    return acc / (n * (n - 1) * (n - 2))


def squared_distances(outputs: np.ndarray) -> np.ndarray:
    """The (N, N) squared Euclidean distances ``||y_p - y_q||^2`` between the rows, from the differences.

    Computed from the differences themselves, in chunks of rows (no Gram matrix, so rows that agree
    are exactly 0 apart and rows that nearly agree keep their small distance to float64 rounding):
    O(N^2 C).

    Args:
        outputs: (N, C) float64 array.
    """
    n = outputs.shape[0]
    rows = max(1, CHUNK_ELEMENTS // max(1, outputs.size))
    out = np.empty((n, n))
    for p0 in range(0, n, rows):
        diff = outputs[p0 : p0 + rows, None, :] - outputs[None, :, :]  # (P, N, C)
        out[p0 : p0 + rows] = np.einsum("pqc,pqc->pq", diff, diff)
    return out


def mean_pairwise_distance(outputs: np.ndarray, distances: np.ndarray | None = None) -> float:
    """Mean Euclidean distance ``E||y_p - y_q||_2`` between the rows of distinct steps, over ordered pairs.

    Args:
        outputs: (N, C) float64 array, N >= 2.
        distances: Its :func:`squared_distances`, when the caller has them already.

    Returns:
        The mean over the ``N (N - 1)`` ordered pairs.
    """
    n = outputs.shape[0]
    d2 = squared_distances(outputs) if distances is None else distances
    return float(np.sqrt(d2).sum()) / (n * (n - 1))  # the diagonal (p = q) is 0


def mean_norm_combination(outputs: np.ndarray, weights: Sequence[float], distances: np.ndarray | None = None) -> float:
    """``E||w0 y_p + w1 y_q + w2 y_r||_2`` over ordered triples (p, q, r) of distinct steps (rows), exactly.

    For weights summing to 0 (a derivative's), the squared norm of a triple is
    ``-(w0 w1 D_pq + w0 w2 D_pr + w1 w2 D_qr)`` with ``D`` the squared distances between the rows
    (:func:`squared_distances`; expand ``D_kl = G_kk + G_ll - 2 G_kl`` and use ``sum_k w_k = 0``).
    It depends on how far apart the three rows are, never on where they lie, so outputs with a
    large common offset or rows that agree lose no precision; squares that rounding makes
    negative are clipped at 0. O(N^2 C) for ``D``, then O(N^3).

    Args:
        outputs: (N, C) float64 array, N >= 3.
        weights: Three weights summing to 0 (to rounding), in any order (the triple is exchangeable).
        distances: The outputs' :func:`squared_distances`, when the caller has them already.

    Returns:
        The mean over the ``N (N - 1) (N - 2)`` ordered triples.

    Raises:
        InvalidParameterError: weights that do not sum to 0.
    """
    w0, w1, w2 = (float(w) for w in weights)
    if abs(w0 + w1 + w2) > 1e-9 * (abs(w0) + abs(w1) + abs(w2)):
        raise InvalidParameterError(
            f"weights must sum to 0 (those of a derivative), got {w0!r}, {w1!r}, {w2!r} (sum {w0 + w1 + w2!r})"
        )
    n = outputs.shape[0]
    d2 = squared_distances(outputs) if distances is None else distances
    qr = -w1 * w2 * d2  # (q, r)
    qr[np.diag_indices(n)] = np.nan  # q = r is not a triple of distinct steps
    rows = max(1, CHUNK_ELEMENTS // (n * n))
    total = 0.0
    for p0 in range(0, n, rows):
        d_p = d2[p0 : p0 + rows]  # (P, N): D[p, .]
        square = qr - (w0 * w1) * d_p[:, :, None] - (w0 * w2) * d_p[:, None, :]  # (P, N, N) over (p, q, r)
        p = np.arange(square.shape[0])
        square[p, p0 + p, :] = np.nan  # q = p
        square[p, :, p0 + p] = np.nan  # r = p
        total += float(np.nansum(np.sqrt(np.maximum(square, 0.0))))
    return total / (n * (n - 1) * (n - 2))


def _stencil_terms(indices: torch.Tensor, weights: torch.Tensor) -> tuple[float, Counter]:
    """The stencil's rows as ``(pair_weight, triples)``: the summed ``|w|`` of the rows with two
    opposite weights, and a count of the other rows by their canonical weights (sorted, sign chosen)."""
    pair_weight = 0.0
    triples: Counter = Counter()
    for idx_row, w_row in zip(indices.tolist(), weights.tolist()):
        merged: dict[int, float] = {}
        for i, w in zip(idx_row, w_row):  # a repeated index (N = 2) carries the sum of its weights
            merged[i] = merged.get(i, 0.0) + w
        live = sorted(w for w in merged.values() if w != 0.0)
        if len(live) == 2 and live[0] == -live[1]:
            pair_weight += live[1]
            continue
        live += [0.0] * (3 - len(live))
        key = min(tuple(sorted(live)), tuple(sorted(-w for w in live)))  # T(w) = T(-w) = T(any order of w)
        triples[key] += 1
    return pair_weight, triples


def gradient_null_mean(
    outputs: Any,
    values: Any = None,
    *,
    periodic: bool = False,
    period: float | None = None,
    edge_order: int = 1,
) -> torch.Tensor:
    """The exact mean of the gradient statistic over all shuffles of the outputs, per column.

    What the mean of the permutation test's null distribution (statistic ``"gradient"``,
    :func:`propgrad.stats.permutation.permutation_test`) tends to as K grows, computed without a
    shuffle: ``(1/N) [sum of |w| over two-point rows * D + sum over three-point rows of T(w)]``
    (see the module docstring; ``D`` is the outputs' mean pairwise absolute difference). Equal
    steps with first-order ends (the default) need only ``D``: O(N log N) per column; each distinct
    three-point row (second-order ends, a non-uniform or non-uniform periodic grid) costs
    O(N^2 log N) per column.

    Args:
        outputs: (N,) or (N, C) outputs for N >= 2 steps (tensor, numpy array or list).
        values: (N,) strictly increasing property values, or None for unit steps.
        periodic: The sequence wraps around (every row is a central difference).
        period: Period for ``periodic`` (default: span plus one mean step).
        edge_order: 1 or 2, the one-sided end differences, as in :func:`propgrad.stats.gradient.property_gradient`.

    Returns:
        Shape () for 1-D outputs, (C,) otherwise, in the dtype :func:`property_gradient` returns
        (the outputs' float dtype, float64 where it would overflow); computed in float64 on the CPU.

    Raises:
        InvalidParameterError: bad outputs, values, ``edge_order`` or ``period`` (as
            :func:`property_gradient`).
    """
    y, one_d, a, (_, weights, terms) = _checked(outputs, values, periodic, period, edge_order)
    dtype = stencil_dtype(y, weights.to(y.device), a.shape[0])
    mean = torch.from_numpy(_column_null_means(a, *terms)).to(device=y.device, dtype=dtype)
    return mean[0] if one_d else mean


def _checked(
    outputs: Any, values: Any, periodic: bool, period: float | None, edge_order: int
) -> tuple[torch.Tensor, bool, np.ndarray, _Stencil]:
    """The checked outputs (N, C), whether they were 1-D, their float64 numpy copy and the checked values'
    stencil ``(indices, weights, terms)`` (:func:`_stencil`)."""
    y, one_d = as_outputs(outputs)
    stencil = _stencil(values, y.shape[0], periodic, period, edge_order)
    return y, one_d, y.detach().cpu().numpy().astype(np.float64), stencil


def _stencil(values: Any, n: int, periodic: bool, period: float | None, edge_order: int) -> _Stencil:
    """The checked values' stencil on the CPU, ``(indices, weights, terms)``; that of unit steps (``values``
    None, every per-step score) is computed once per ``(n, periodic, period, edge_order)`` and reused.
    The tensors are shared: callers read them and never write to them."""
    plain = isinstance(edge_order, int) and (period is None or isinstance(period, (int, float)))
    if values is None and plain and not isinstance(period, bool):
        return _unit_stencil(n, bool(periodic), period, edge_order)
    return _stencil_of(
        as_values(values, n, dtype=torch.float64, device=torch.device("cpu")), periodic, period, edge_order
    )


def _stencil_of(x: torch.Tensor, periodic: bool, period: float | None, edge_order: int) -> _Stencil:
    indices, weights = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
    return indices, weights, _stencil_terms(indices, weights)


@functools.lru_cache(maxsize=64)
def _unit_stencil(n: int, periodic: bool, period: float | None, edge_order: int) -> _Stencil:
    """:func:`_stencil_of` unit steps ``0 .. n-1`` (what :func:`as_values` gives for None), cached."""
    return _stencil_of(torch.arange(n, dtype=torch.float64), periodic, period, edge_order)


def _trusted_null_mean(name: str, a: np.ndarray, one_d: bool, terms: tuple[float, Counter]) -> torch.Tensor:
    """:func:`exact_null_mean` of checked float64 outputs ``a`` (N, C) and their stencil's terms (a known name)."""
    n, c = a.shape
    whole_vector = name in VECTOR_NORMS
    if name not in ("gradient", *VECTOR_NORMS) or _too_costly(name, n, c, terms[1]):
        mean = np.full(1 if whole_vector else c, math.nan)
    elif name == "gradient":
        mean = _column_null_means(a, *terms)
    elif name == "vector_l1":
        mean = np.array([_column_null_means(a, *terms).sum()])
    else:
        mean = np.array([_l2_null_mean(a, *terms)])
    mean_t = torch.from_numpy(mean)
    return mean_t[0] if one_d else mean_t


def _column_null_means(a: np.ndarray, pair_weight: float, triples: Counter) -> np.ndarray:
    """(C,) float64 exact null means of the gradient statistic of the (N, C) outputs ``a``."""
    total = pair_weight * mean_abs_difference(a) if pair_weight else np.zeros(a.shape[1])
    for key, count in triples.items():
        total += count * np.array([mean_abs_combination(a[:, j], key) for j in range(a.shape[1])])
    return total / a.shape[0]


def _l2_null_mean(a: np.ndarray, pair_weight: float, triples: Counter) -> float:
    """The exact null mean of ``"vector_l2"`` of the (N, C) outputs ``a``."""
    distances = squared_distances(a)
    total = pair_weight * mean_pairwise_distance(a, distances) if pair_weight else 0.0
    for key, count in triples.items():
        total += count * mean_norm_combination(a, key, distances)
    return total / a.shape[0]


def _too_costly(name: str, n: int, c: int, triples: Counter) -> bool:
    """Whether the exact null mean of ``name`` would exceed :data:`PAIR_SEARCH_LIMIT` or :data:`L2_TRIPLE_LIMIT`."""
    if name == "vector_l2":
        return len(triples) * n * (n - 1) * (n - 2) > L2_TRIPLE_LIMIT
    return len(triples) * n * (n - 1) * c > PAIR_SEARCH_LIMIT


def _ratio(observed: torch.Tensor, mean: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``observed / mean`` (float64, CPU), NaN where nothing moves: a constant column, or for a
    whole-vector statistic (one value for C columns) outputs whose columns are all constant (0 / 0,
    whatever the rounding of the weights)."""
    constant = (y == y[:1]).all(0).cpu()
    if mean.numel() != constant.numel():  # one statistic of the whole output vector
        constant = constant.all()
    return torch.where(constant.reshape(mean.shape), torch.nan, observed / mean)


def gradient_effect_size(
    outputs: Any,
    values: Any = None,
    *,
    periodic: bool = False,
    period: float | None = None,
    edge_order: int = 1,
) -> torch.Tensor:
    """Effect size without resampling: the observed gradient statistic divided by its exact null mean.

    ``property_gradient(outputs) / gradient_null_mean(outputs)``: 1 means the outputs change along
    the property as much as a random order of the same outputs does on average; a systematic,
    smooth response gives a value well below 1 (each step moves little compared with a random
    pair of steps); an order that alternates between extremes gives more than 1. It needs no
    permutation and does not depend on a seed. A column whose outputs are all equal has 0 / 0:
    NaN, even on a grid whose weights do not sum to exactly 0 (it carries no information; the
    permutation test gives it p = 1).

    Args:
        outputs: (N,) or (N, C) outputs for N >= 2 steps.
        values: (N,) strictly increasing property values, or None for unit steps.
        periodic: The sequence wraps around.
        period: Period for ``periodic`` (default: span plus one mean step).
        edge_order: 1 or 2, the one-sided end differences.

    Returns:
        Shape () or (C,), float64.

    Raises:
        InvalidParameterError: as :func:`gradient_null_mean`.
    """
    y, one_d, a, stencil = _checked(outputs, values, periodic, period, edge_order)
    mean = torch.from_numpy(_column_null_means(a, *stencil[2]))  # no cost limit here
    return _ratio(
        _observed_gradient(outputs, values, y, one_d, stencil, periodic, period, edge_order),
        mean[0] if one_d else mean,
        y,
    )


def exact_null_mean(
    outputs: Any,
    values: Any = None,
    *,
    statistic: Union[str, StatisticFn] = "gradient",
    periodic: bool = False,
    period: float | None = None,
    edge_order: int = 1,
) -> torch.Tensor:
    """The exact mean of a statistic's shuffled null distribution, without resampling (NaN where none is derived).

    What the mean of :func:`propgrad.stats.permutation.permutation_test`'s null distribution tends
    to as K grows (see the module docstring):

    - ``"gradient"``: :func:`gradient_null_mean`, per column (in float64);
    - ``"vector_l1"``: the sum over the columns of the gradient's null means (exact: the mean of a
      sum over the columns of one random tuple is the sum of the columns' means);
    - ``"vector_l2"``: the mean norm over random pairs and triples of whole rows (exact, but it
      does not split over the columns);
    - ``"pearson"`` and callables: NaN (no exact mean is derived).

    NaN too where the grid's three-point rows would take more than :data:`PAIR_SEARCH_LIMIT`
    searched pairs (``"gradient"``, ``"vector_l1"``) or :data:`L2_TRIPLE_LIMIT` triples
    (``"vector_l2"``); equal steps never do.

    Args:
        outputs: (N,) or (N, C) outputs for N >= 2 steps (tensor, numpy array or list).
        values: (N,) strictly increasing property values, or None for unit steps.
        statistic: ``"gradient"``, ``"pearson"``, ``"vector_l1"``, ``"vector_l2"`` or a callable.
        periodic: The sequence wraps around.
        period: Period for ``periodic`` (default: span plus one mean step).
        edge_order: 1 or 2, the one-sided end differences.

    Returns:
        Float64 on the CPU, shaped like the statistic: () for 1-D outputs, (C,) otherwise, (1,) for
        a whole-vector statistic of (N, C) outputs.

    Raises:
        InvalidParameterError: bad outputs, values, ``edge_order``, ``period`` or statistic.
    """
    name = check_statistic(statistic)
    _, one_d, a, (_, _, terms) = _checked(outputs, values, periodic, period, edge_order)
    return _trusted_null_mean(name, a, one_d, terms)


def effect_size(
    outputs: Any,
    values: Any = None,
    *,
    statistic: Union[str, StatisticFn] = "gradient",
    periodic: bool = False,
    period: float | None = None,
    edge_order: int = 1,
) -> torch.Tensor:
    """Effect size of any scored result without resampling: observed statistic / exact shuffled-null mean.

    1 means the outputs change along the property as much as a random order of the same outputs
    does on average; a systematic, smooth response is well below 1 (a straight ramp of N steps
    gives ``6N / ((N + 1)(N + 2))``, 0.18 for N = 31); an order alternating between extremes is
    above 1. ``"gradient"`` gives :func:`gradient_effect_size` (per column); ``"vector_l1"`` and
    ``"vector_l2"`` divide the whole-vector statistic by its :func:`exact_null_mean`. NaN where the
    statistic carries no information (a constant column; for a whole-vector statistic, outputs
    whose columns are all constant) and where :func:`exact_null_mean` is NaN (``"pearson"``, a
    callable, an uneven grid beyond :data:`PAIR_SEARCH_LIMIT` or :data:`L2_TRIPLE_LIMIT`).

    Args:
        outputs: (N,) or (N, C) outputs for N >= 2 steps, as scored (the target column or all).
        values: (N,) strictly increasing property values, or None for unit steps.
        statistic: The test statistic the outputs were scored with (``TestSettings.statistic``).
        periodic: The sequence wraps around.
        period: Period for ``periodic`` (default: span plus one mean step).
        edge_order: 1 or 2, the one-sided end differences.

    Returns:
        Float64 on the CPU, shaped like the statistic (as :func:`exact_null_mean`).

    Raises:
        InvalidParameterError: as :func:`exact_null_mean`.
    """
    name = check_statistic(statistic)
    kwargs = {"periodic": periodic, "period": period, "edge_order": edge_order}
    y, one_d, a, stencil = _checked(outputs, values, periodic, period, edge_order)  # checked once
    mean = _trusted_null_mean(name, a, one_d, stencil[2])
    if name not in ("gradient", *VECTOR_NORMS):  # "pearson" or a callable: no exact mean, the NaN of its shape
        return mean
    if name == "gradient":  # as gradient_effect_size
        observed = _observed_gradient(outputs, values, y, one_d, stencil, periodic, period, edge_order)
    else:
        observed = observed_statistic(outputs, values, statistic=name, **kwargs).to(torch.float64).cpu()
    return _ratio(observed, mean, y)


def _observed_gradient(
    outputs: Any,
    values: Any,
    y: torch.Tensor,
    one_d: bool,
    stencil: _Stencil,
    periodic: bool,
    period: float | None,
    edge_order: int,
) -> torch.Tensor:
    """:func:`property_gradient` of the outputs (float64, CPU). On the CPU its own steps on the stencil already
    checked and built (:func:`stencil_dtype`'s dtype, then :func:`mean_abs_derivative`), so the same value to
    the last bit without building the stencil again; elsewhere :func:`property_gradient` itself."""
    if y.device.type != "cpu":
        kwargs = {"periodic": periodic, "period": period, "edge_order": edge_order}
        return property_gradient(outputs, values, **kwargs).to(torch.float64).cpu()
    indices, weights, _ = stencil
    score = mean_abs_derivative(y.to(stencil_dtype(y, weights, y.shape[0])), indices, weights)
    return (score[0] if one_d else score).to(torch.float64)
