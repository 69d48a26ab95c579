"""The expected property gradient magnitude (Penzel & Denzler, Eq. 2).

``E|dF/dx| = mean over the N steps of |dF/dx|``, the derivative estimated with second-order
finite differences on the (possibly non-uniform) property grid, exactly as ``numpy.gradient``
computes it. The finite-difference weights are pure functions of the grid, so the permutation
test (:mod:`propgrad.stats.permutation`) reuses them: shuffling the outputs leaves the grid, and hence the
stencil, unchanged.

Edge order: ``numpy.gradient``'s default, ``edge_order=1`` (one-sided first-order differences at
the two ends, second-order central differences inside), is the reference and the default here;
``edge_order=2`` uses numpy's second-order one-sided three-point formulas at the ends.
"""

from __future__ import annotations

from typing import Any

import torch

from propgrad.stats.coercion import as_outputs, as_values


def finite_difference_weights(
    values: torch.Tensor, *, edge_order: int = 1, periodic: bool = False, period: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Three-point finite-difference stencils of ``d/dx`` on a grid (numpy.gradient's formulas).

    Row ``i`` says ``dF/dx(x_i) = sum_k weights[i, k] * F[indices[i, k]]``. Interior rows are the
    second-order central differences for non-uniform spacing (Fornberg), on ``(i-1, i, i+1)``.
    End rows are one-sided: first order (``edge_order=1``) or second order (``edge_order=2``).
    With ``periodic`` every row is central and wraps around. With N=2 (binary case) both rows are
    the single difference ``(F1 - F0) / (x1 - x0)``.

    Args:
        values: Strictly increasing grid (N,), N >= 2 (N >= 3 for ``periodic``/``edge_order=2``).
        edge_order: 1 (numpy's default) or 2; ignored when ``periodic`` and for N=2.
        periodic: Wrap around: the step after the last is the first, one ``period`` further on.
        period: Length of one full period; default ``(x[-1] - x[0]) * N / (N - 1)``, i.e. the span
            plus one mean step (N for unit steps). Must exceed ``x[-1] - x[0]``.

    Returns:
        ``(indices, weights)``: long tensor (N, 3) and float64 tensor (N, 3) on ``values.device``.

    Raises:
        ValueError: bad ``edge_order``, too few steps, or a ``period`` not longer than the span.
    """
    if edge_order not in (1, 2):
        raise ValueError(f"edge_order must be 1 or 2, got {edge_order!r}")
    x = values.detach().to(torch.float64)
    n = int(x.shape[0])
    if n < 2:
        raise ValueError(f"outputs must have at least 2 steps (2 = the binary case), got {n}")
    dev = x.device
    i = torch.arange(n, device=dev)
    idx = torch.stack([i - 1, i, i + 1], dim=1)
    if periodic:
        if n < 3:
            raise ValueError(f"periodic=True needs at least 3 steps, got {n}")
        span = float(x[-1] - x[0])
        period = span * n / (n - 1) if period is None else float(period)
        if not period > span:
            raise ValueError(f"period must exceed the span of values ({span:.6g}), got {period:.6g}")
        xp = torch.cat([x[-1:] - period, x, x[:1] + period])
        hm, hp = xp[1:-1] - xp[:-2], xp[2:] - xp[1:-1]
        return idx % n, _central(hm, hp)
    if period is not None:
        raise ValueError("period is only used with periodic=True")
    h = x[1:] - x[:-1]
    weights = torch.zeros(n, 3, dtype=torch.float64, device=dev)
    if n == 2 or edge_order == 1:
        first = torch.stack([-1 / h[0], 1 / h[0], h[0] * 0])
        last = torch.stack([h[-1] * 0, -1 / h[-1], 1 / h[-1]])
    else:
        a, b = h[0], h[1]
        first = torch.stack([-(2 * a + b) / (a * (a + b)), (a + b) / (a * b), -a / (b * (a + b))])
        a, b = h[-2], h[-1]
        last = torch.stack([b / (a * (a + b)), -(a + b) / (a * b), (2 * b + a) / (b * (a + b))])
    weights[0], weights[-1] = first, last
    idx[0] = torch.tensor([0, 1, min(2, n - 1)], device=dev)
    idx[-1] = torch.tensor([max(n - 3, 0), n - 2, n - 1], device=dev)
    if n > 2:
        weights[1:-1] = _central(h[:-1], h[1:])
    return idx, weights


def _central(hm: torch.Tensor, hp: torch.Tensor) -> torch.Tensor:
    """Weights on (x_{i-1}, x_i, x_{i+1}) of the second-order central difference, spacings hm, hp."""
    return torch.stack([-hp / (hm * (hm + hp)), (hp - hm) / (hm * hp), hm / (hp * (hm + hp))], dim=1)


def apply_stencil(outputs: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Derivative estimates (N, C) of outputs (N, C) with a stencil from :func:`finite_difference_weights`."""
    w = weights.to(outputs.dtype)
    return sum(w[:, k, None] * outputs[indices[:, k]] for k in range(3))


def property_gradient(
    outputs: Any,
    values: Any = None,
    *,
    periodic: bool = False,
    period: float | None = None,
    edge_order: int = 1,
) -> torch.Tensor:
    """Expected property gradient magnitude: mean over the steps of |dF/dx|, one per column.

    Equals ``np.abs(np.gradient(F, x, axis=0, edge_order=edge_order)).mean(axis=0)`` for
    non-periodic input, computed in torch on the outputs' device. With ``values=None`` the steps
    are unit-spaced, so the score is the average deviation per discrete step (the paper's
    convention). N=2 is the binary case of the paper's Appendix A.4: ``|F(x1) - F(x0)| / (x1 - x0)``,
    the absolute causal concept effect per step.

    Args:
        outputs: (N,) or (N, C) model outputs for N ordered steps (tensor, numpy array or list;
            integers are converted to float).
        values: (N,) strictly increasing property values, or None for unit steps.
        periodic: The sequence wraps around (a full rotation): central differences across the
            seam instead of one-sided ends.
        period: Period for ``periodic`` (see :func:`finite_difference_weights` for the default).
        edge_order: 1 (numpy's default) or 2, the accuracy of the one-sided end differences.

    Returns:
        A tensor of shape () for 1-D ``outputs``, (C,) for 2-D ``outputs``.

    Raises:
        TypeError: ``outputs`` or ``values`` of an unsupported type.
        ValueError: NaN/Inf outputs, fewer than 2 steps, mismatched lengths, values not strictly
            increasing, bad ``edge_order`` or ``period``.
    """
    y, one_d = as_outputs(outputs)
    x = as_values(values, y.shape[0], dtype=torch.float64, device=y.device)
    idx, w = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
    score = apply_stencil(y, idx, w).abs().mean(dim=0)
    return score[0] if one_d else score
