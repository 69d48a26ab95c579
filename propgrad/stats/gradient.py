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

import math
from typing import Any

import torch

from propgrad.core.validation import Bounds, check_number
from propgrad.errors import InvalidParameterError
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

    A grid whose spacings are so small or so large that the weights' products of spacings would
    underflow or overflow (values 1e-300 apart) is rescaled by a power of two, which is exact, and
    the weights scaled back; ordinary grids are used as they are.

    Returns:
        ``(indices, weights)``: long tensor (N, 3) and float64 tensor (N, 3) on ``values.device``.

    Raises:
        ValueError: bad ``edge_order``, too few steps, a ``period`` not longer than the span, or
            spacings so uneven (their ratio beyond about 1e150) that the weights are not finite.
    """
    if edge_order not in (1, 2):
        raise InvalidParameterError(f"edge_order must be 1 or 2, got {edge_order!r}")
    if period is not None:
        period = check_number(
            period,
            "period",
            Bounds(minimum=0.0, min_inclusive=False),
            hint="the length of one full turn in the units of values, e.g. 360 for degrees; "
            "None for the span plus one mean step",
        )
    x = values.detach().to(torch.float64)
    n = int(x.shape[0])
    if n < 2:
        raise InvalidParameterError(f"outputs must have at least 2 steps (2 = the binary case), got {n}")
    if period is not None and periodic:
        span = float(x[-1]) - float(x[0])
        if not float(period) > span:
            raise InvalidParameterError(f"period must exceed the span of values ({span:.6g}), got {float(period):.6g}")
    scale = grid_scale(x)
    if scale == 1.0:
        idx, weights = _weights(x, edge_order, periodic, period)
    else:
        idx, weights = _weights(x / scale, edge_order, periodic, None if period is None else float(period) / scale)
        weights = weights / scale
    if not bool(torch.isfinite(weights).all()):
        h = (x[1:] / 2 - x[:-1] / 2) * 2
        raise InvalidParameterError(
            f"values are spaced from {float(h.min()):.3g} to {float(h.max()):.3g} apart, too unevenly for finite "
            "finite-difference weights; give values of a more even spacing (or None for unit steps)"
        )
    return idx, weights


def grid_scale(x: torch.Tensor) -> float:
    """A power of two bringing the spacings of the grid ``x`` (float64) near 1, or 1.0 when they are ordinary.

    Spacings within [2**-256, 2**256] (everything but grids such as values 1e-300 apart) give 1.0,
    so the stencil of an ordinary grid is computed from the values as given. Scaling by a power of
    two is exact, so a rescaled grid gives the weights of the original one up to the scale.
    """
    if x.shape[0] < 2:
        return 1.0
    halves = x[1:] / 2 - x[:-1] / 2  # halved: no overflow for values near the float64 limit
    lo, hi = float(halves.min()), float(halves.max())  # half the smallest and largest spacing
    if not lo > 0 or (2.0**-257 <= lo and hi <= 2.0**255):
        return 1.0
    return 2.0 ** round((math.log2(lo) + math.log2(hi)) / 2 + 1)


def _weights(
    x: torch.Tensor, edge_order: int, periodic: bool, period: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The stencil of :func:`finite_difference_weights` on the float64 grid ``x``, computed as given."""
    n = int(x.shape[0])
    dev = x.device
    i = torch.arange(n, device=dev)
    idx = torch.stack([i - 1, i, i + 1], dim=1)
    if periodic:
        if n < 3:
            raise InvalidParameterError(f"periodic=True needs at least 3 steps, got {n}")
        span = float(x[-1] - x[0])
        period = span * n / (n - 1) if period is None else float(period)
        if not period > span:
            raise InvalidParameterError(f"period must exceed the span of values ({span:.6g}), got {period:.6g}")
        xp = torch.cat([x[-1:] - period, x, x[:1] + period])
        hm, hp = xp[1:-1] - xp[:-2], xp[2:] - xp[1:-1]
        return idx % n, _central(hm, hp)
    if period is not None:
        raise InvalidParameterError("period is only used with periodic=True")
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


def stencil_dtype(outputs: torch.Tensor, weights: torch.Tensor, terms: int, name: str = "outputs") -> torch.dtype:
    """The dtype to apply a stencil in: that of ``outputs``, or float64 where it would overflow.

    Finite outputs can have differences, derivatives or sums of ``terms`` derivative magnitudes
    beyond the largest float32 (outputs of +-3e38), and large weights (a fine grid) can overflow a
    float32 weight or small ones underflow it. Such inputs are scored in float64; ordinary ones
    keep their dtype (and so their results). The bound is conservative: rows' absolute weight sums
    times the outputs' range (and magnitude), times ``terms``.

    Args:
        outputs: Finite float outputs (N, C).
        weights: The stencil's weights (N, 3), float64.
        terms: How many derivative magnitudes are summed (N for the mean; K, too, for the null mean).
        name: Argument name used in error messages.

    Raises:
        ValueError: the outputs are too large to score even in float64.
    """
    lo, hi = (float(v) for v in torch.aminmax(outputs))  # one pass over the outputs
    magnitude = max(abs(lo), abs(hi))
    spread = hi - lo
    w = weights.abs()
    row_sum = float(w.sum(1).max())
    nonzero = w[w > 0]
    smallest = float(nonzero.min()) if nonzero.numel() else 1.0
    need = max(terms * spread * max(1.0, row_sum), row_sum * magnitude, row_sum)
    for dtype in dict.fromkeys((outputs.dtype, torch.float64)):
        info = torch.finfo(dtype)
        if need <= info.max / 4 and smallest >= info.tiny:
            return dtype
    raise InvalidParameterError(
        f"{name} range over {spread:.3g} (up to {magnitude:.3g} in magnitude): their finite differences, "
        "divided by the spacing of the values, overflow even float64; rescale the outputs"
    )


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
        A tensor of shape () for 1-D ``outputs``, (C,) for 2-D ``outputs``, in the outputs' float
        dtype; float64 when that dtype would overflow (float32 outputs of +-3e38, values 1e-300
        apart; see :func:`stencil_dtype`).

    Raises:
        TypeError: ``outputs`` or ``values`` of an unsupported type.
        ValueError: NaN/Inf outputs, fewer than 2 steps, mismatched lengths, values not strictly
            increasing or too unevenly spaced, outputs too large even for float64, bad
            ``edge_order`` or ``period``.
    """
    y, one_d = as_outputs(outputs)
    x = as_values(values, y.shape[0], dtype=torch.float64, device=y.device)
    idx, w = finite_difference_weights(x, edge_order=edge_order, periodic=periodic, period=period)
    y = y.to(stencil_dtype(y, w, y.shape[0]))
    score = mean_abs_derivative(y, idx, w)
    return score[0] if one_d else score


def mean_abs_derivative(y: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``apply_stencil(y, indices, weights).abs().mean(0)`` (C,), computed with slices, not gathers.

    Interior rows of every stencil of :func:`finite_difference_weights` (periodic or not) use
    ``(i - 1, i, i + 1)``, so they are three shifted views of ``y``; on a grid with equal steps the
    weights are ``(-w, 0, w)`` on every interior row and ``w`` is applied once, after the sum. Only
    the two end rows are gathered. About as many passes over ``y`` as ``numpy.gradient`` plus a mean.
    """
    n = y.shape[0]
    w = weights.to(y.dtype)
    ends = torch.stack([indices[0], indices[-1]])  # (2, 3)
    total = (w[[0, -1], :, None] * y[ends.reshape(-1)].view(2, 3, -1)).sum(1).abs().sum(0)
    if n > 2:
        lo, mid, hi = weights[1:-1].unbind(1)
        if bool((mid == 0).all()) and bool((lo == -hi).all()) and bool((hi == hi[0]).all()):
            total += torch.sub(y[2:], y[:-2]).abs_().sum(0) * w[1, 2]
        else:
            lo, mid, hi = (t[:, None] for t in w[1:-1].unbind(1))
            total += (y[:-2] * lo).addcmul_(y[1:-1], mid).addcmul_(y[2:], hi).abs_().sum(0)
    return total / n
