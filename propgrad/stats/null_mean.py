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
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
import torch

from propgrad.stats.coercion import as_outputs, as_values
from propgrad.stats.gradient import finite_difference_weights, property_gradient, stencil_dtype

__all__ = ["gradient_effect_size", "gradient_null_mean", "mean_abs_combination", "mean_abs_difference"]

CHUNK_ELEMENTS = 2**20
"""Pairs (p, q) evaluated at once by :func:`mean_abs_combination` (bounds its temporaries to some 40 MB)."""


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
    y, one_d = as_outputs(outputs)
    n = y.shape[0]
    x = as_values(values, n, dtype=torch.float64, device=torch.device("cpu"))
    indices, weights = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
    dtype = stencil_dtype(y, weights.to(y.device), n)
    a = y.detach().cpu().numpy().astype(np.float64)
    pair_weight, triples = _stencil_terms(indices, weights)
    total = pair_weight * mean_abs_difference(a) if pair_weight else np.zeros(a.shape[1])
    for key, count in triples.items():
        total += count * np.array([mean_abs_combination(a[:, j], key) for j in range(a.shape[1])])
    mean = torch.from_numpy(total / n).to(device=y.device, dtype=dtype)
    return mean[0] if one_d else mean


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
    kwargs = {"periodic": periodic, "period": period, "edge_order": edge_order}
    observed = property_gradient(outputs, values, **kwargs).to(torch.float64).cpu()
    ratio = observed / gradient_null_mean(outputs, values, **kwargs).to(torch.float64).cpu()
    y, _ = as_outputs(outputs)
    constant = (y == y[:1]).all(0).cpu().reshape(ratio.shape)  # 0 / 0, whatever the rounding of the weights
    return torch.where(constant, torch.nan, ratio)
