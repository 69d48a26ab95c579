"""Coercion of the scorer's inputs: model outputs to a finite float (N, C) tensor, property values
to a strictly increasing float grid. Shared by the gradient, the permutation test and the flips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from propgrad.core.validation import check_values
from propgrad.errors import InvalidParameterError, ParameterTypeError

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
            raise InvalidParameterError(
                f"{name} must be numeric (a tensor, numpy array or list of numbers): {err}"
            ) from None
    if not isinstance(outputs, torch.Tensor):
        raise InvalidParameterError(f"{name} must be a torch.Tensor, numpy array or list, got {type(outputs).__name__}")
    if outputs.dim() not in (1, 2):
        raise InvalidParameterError(f"{name} must have shape (N,) or (N, C), got shape {tuple(outputs.shape)}")
    if outputs.is_complex():
        raise InvalidParameterError(f"{name} must be real-valued, got dtype {outputs.dtype}")
    if not outputs.is_floating_point():
        outputs = outputs.to(torch.get_default_dtype())
    elif outputs.dtype in (torch.float16, torch.bfloat16):
        outputs = outputs.float()
    if device is not None:
        outputs = outputs.to(device)
    outputs = outputs.detach()
    if outputs.numel() == 0:
        raise InvalidParameterError(f"{name} is empty: shape {tuple(outputs.shape)}")
    out2 = outputs.reshape(outputs.shape[0], -1)
    if bool(torch.isfinite(out2.sum())):  # one fast pass; a non-finite sum (NaN, Inf, or overflow) looks closer
        return out2, outputs.dim() == 1
    bad = ~torch.isfinite(out2)
    if bad.any():
        i, c = (int(v) for v in torch.nonzero(bad)[0])
        where = f"step {i}" if outputs.dim() == 1 else _STEP_AND_COLUMN.format(i=i, c=c)
        raise InvalidParameterError(f"{name} contains NaN or Inf (first at {where}: {float(out2[i, c])})")
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
        values = torch.as_tensor(_real_array(values, name))
    if isinstance(values, torch.Tensor) and values.is_complex():
        raise ParameterTypeError(f"{name} must be real numbers, got complex numbers (dtype {values.dtype})")
    if isinstance(values, torch.Tensor):
        if values.dim() == 1 and values.shape[0] != n:
            raise InvalidParameterError(
                f"{name} has {values.shape[0]} entries but outputs has {n} steps; give one value per step"
            )
        if not values.is_floating_point():
            values = values.to(torch.float64)
    check_values(values, n, name)
    return values.detach().to(device=device, dtype=dtype)


def _real_array(values: Any, name: str) -> np.ndarray:
    """``values`` (an array, list or tuple) as a float64 array, refusing text, complex numbers and other objects."""
    expected = f"{name} must be real numbers (one property value per step, e.g. angles or strengths)"
    try:
        array = np.asarray(values)
    except ValueError as err:  # ragged nesting
        raise ParameterTypeError(f"{expected}: {err}") from None
    if array.dtype.kind == "c":
        raise ParameterTypeError(f"{name} must be real numbers, got complex numbers (dtype {array.dtype})")
    if array.dtype.kind in "US" or (array.dtype.kind == "O" and any(isinstance(v, str) for v in array.flat)):
        shown = ", ".join(repr(str(v)) if isinstance(v, str) else repr(v) for v in array.flat[:3])
        raise ParameterTypeError(f"{expected}, got text ({shown}{', ...' if array.size > 3 else ''})")
    if array.dtype.kind not in "biuf":
        kinds = sorted({type(v).__name__ for v in array.flat})
        raise ParameterTypeError(f"{expected}, got {', '.join(kinds)} values")
    return array.astype(np.float64)


def as_scores(scores: Any, name: str) -> torch.Tensor:
    """A real float tensor from a tensor, array, list or number (integers become the default float).

    Raises:
        ParameterTypeError: not numbers, complex or boolean numbers (naming ``name``).
    """
    if not isinstance(scores, torch.Tensor):
        try:
            scores = torch.as_tensor(scores)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ParameterTypeError(f"{name} must be numbers (a tensor, numpy array, list or number): {err}") from None
    if scores.is_complex() or scores.dtype == torch.bool:
        raise ParameterTypeError(f"{name} must be real numbers, got a tensor of dtype {scores.dtype}")
    if not scores.is_floating_point():
        scores = scores.to(torch.get_default_dtype())
    elif scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    return scores.detach()
