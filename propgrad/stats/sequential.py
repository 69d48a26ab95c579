"""The Besag-Clifford sequential permutation test: a column stops drawing once it is clearly not significant.

Both backends (:mod:`propgrad.stats.backends`) run it with their own null kernel.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

SEQUENTIAL_PILOT = 256
"""Shuffles drawn for every column first: their mean is the centre of the sequential test's two-sided
criterion. A column's count of shuffles drawn runs from the first one, so it may reach its limit
inside these (they are drawn for every column anyway)."""

NullBlock = Callable[[np.ndarray | slice, int, int], np.ndarray]
"""``null_block(columns, s, e)``: the (e - s, columns) float64 null statistics of shuffles ``s:e``."""


def sequential_test(
    null_block: NullBlock, observed: np.ndarray, k: int, limit: int, rel_tol: float, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw shuffles in blocks and stop a column at ``limit`` extreme null statistics.

    The centre of "as extreme" is the mean of the first :data:`SEQUENTIAL_PILOT` null statistics
    (all K for the fixed test). A column that reaches ``limit`` extreme statistics after L
    shuffles gets p = limit / L; one that never does gets the fixed test's (b + 1) / (K + 1)
    with b its extremes among all K.

    Args:
        null_block: Computes the null statistics of some columns and shuffles.
        observed: (C,) float64 observed statistics.
        k: K, the most shuffles a column draws.
        limit: h, the extremes after which a column stops.
        rel_tol: Relative tolerance under which a difference is a tie (counted as extreme).
        block: Shuffles drawn per block after the pilot.

    Returns:
        ``(p_values, drawn)``: (C,) float64 p-values and the shuffles drawn per column.
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
    return p, drawn


def as_tensors(p: np.ndarray, drawn: np.ndarray, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The sequential test's p-values in ``dtype`` and its draws, on ``device``."""
    return torch.from_numpy(p).to(dtype).to(device), torch.from_numpy(drawn).to(device)
