"""Coercion of the scorer's inputs: model outputs to a finite float (N, C) tensor, property values
to a strictly increasing float grid. Shared by the gradient, the permutation test and the flips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from propgrad.core.validation import check_values

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
    if bool(torch.isfinite(out2.sum())):  # one fast pass; a non-finite sum (NaN, Inf, or overflow) looks closer
        return out2, outputs.dim() == 1
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
        TypeError, ValueError: as :func:`propgrad.core.validation.check_values`, plus a length mismatch
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
