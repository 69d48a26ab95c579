"""The expected property gradient magnitude (Penzel & Denzler, Eq. 2).

``E|dF/dx| = mean over the N steps of |dF/dx|``, the derivative estimated with second-order
finite differences on the (possibly non-uniform) property grid, exactly as ``numpy.gradient``
computes it. The finite-difference weights are pure functions of the grid, so the permutation
test (``propgrad.permutation``) reuses them: shuffling the outputs leaves the grid, and hence the
stencil, unchanged.

Edge order: ``numpy.gradient``'s default, ``edge_order=1`` (one-sided first-order differences at
the two ends, second-order central differences inside), is the reference and the default here;
``edge_order=2`` uses numpy's second-order one-sided three-point formulas at the ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from propgrad.validation import check_values

_STEP_AND_COLUMN = "step {i}, column {c}"


def as_outputs(
    outputs: Any, name: str = "outputs", device: torch.device | str | None = None
) -> tuple[torch.Tensor, bool]:
    """Coerce model outputs to a finite float tensor (N, C).

    Accepts a torch.Tensor, a numpy array or a (nested) list. Integer and boolean inputs become the
    default float dtype; float16/bfloat16 become float32; float32/float64 are kept.

    Args:
        outputs: (N,) or (N, C) outputs for N ordered steps.
        name: Argument name used in error messages.
        device: Device to move the tensor to (None keeps its device; numpy/lists go to the CPU).

    Returns:
        ``(outputs2d, one_d)``: a float tensor of shape (N, C) (a 1-D input becomes (N, 1)) and
        whether the input was 1-D.

    Raises:
        TypeError: ``outputs`` is not a tensor, an array or a list.
        ValueError: wrong number of dimensions, empty, or NaN/Inf (naming the step and column).
    """
    if isinstance(outputs, np.ndarray) or isinstance(outputs, (list, tuple)):
        try:
            outputs = torch.as_tensor(np.asarray(outputs))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric (a tensor, numpy array or list of numbers): {err}") from None
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, numpy array or list, got {type(outputs).__name__}")
    if outputs.dim() not in (1, 2):
        raise ValueError(f"{name} must have shape (N,) or (N, C), got shape {tuple(outputs.shape)}")
    if outputs.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {outputs.dtype}")
    if not outputs.is_floating_point():
        outputs = outputs.to(torch.get_default_dtype())
    elif outputs.dtype in (torch.float16, torch.bfloat16):
        outputs = outputs.float()
    if device is not None:
        outputs = outputs.to(device)
    outputs = outputs.detach()
    if outputs.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(outputs.shape)}")
    out2 = outputs.reshape(outputs.shape[0], -1)
    bad = ~torch.isfinite(out2)
    if bad.any():
        i, c = (int(v) for v in torch.nonzero(bad)[0])
        where = f"step {i}" if outputs.dim() == 1 else _STEP_AND_COLUMN.format(i=i, c=c)
        raise ValueError(f"{name} contains NaN or Inf (first at {where}: {float(out2[i, c])})")
    return out2, outputs.dim() == 1


def as_values(values: Any, n: int, *, dtype: torch.dtype, device: torch.device, name: str = "values") -> torch.Tensor:
    """Coerce property values to a strictly increasing float tensor (n,) (None -> unit steps 0..n-1).

    Args:
        values: (n,) tensor, numpy array or list, or None.
        n: Number of steps of the outputs.
        dtype: Float dtype of the result.
        device: Device of the result.
        name: Argument name used in error messages.

    Returns:
        The values as a float tensor on ``device``.

    Raises:
        TypeError, ValueError: as :func:`propgrad.validation.check_values`, plus a length mismatch
        message naming both lengths.
    """
    if values is None:
        return torch.arange(n, dtype=dtype, device=device)
    if isinstance(values, (np.ndarray, list, tuple)):
        values = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if isinstance(values, torch.Tensor):
        if values.dim() == 1 and values.shape[0] != n:
            raise ValueError(f"{name} has {values.shape[0]} entries but outputs has {n} steps; give one value per step")
        if not values.is_floating_point():
            values = values.to(torch.float64)
    check_values(values, n, name)
    return values.detach().to(device=device, dtype=dtype)


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
