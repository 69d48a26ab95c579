"""Decision flips along an intervention sequence (the paper's "F" and the flip benchmark's label).

The decision at each step is the argmax over classes for (N, C) logits or probabilities, or
``output > threshold`` for a single (N,) output (binary classifier; threshold 0.5 by default, so
pass ``threshold=0.0`` for a logit); an (N, 1) input is that binary case too. Both flip labels
compare with one *reference decision*: the decision on the original image when its outputs are
given as ``reference``, else the first step's. ``flipped_anywhere``: some step's decision differs
from the reference (the paper code's definition, when the first step is the original image);
``final_differs``: the last step's decision differs from the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from propgrad.errors import InvalidParameterError
from propgrad.stats.coercion import as_outputs


@dataclass(frozen=True)
class FlipResult:
    """Decisions along a sequence and where they change.

    Attributes:
        decisions: Long tensor (N,), the decision (class index, or 0/1 with a threshold) per step.
        flip_steps: Long tensor of the steps i >= 1 whose decision differs from step i - 1.
        n_flips: Number of such changes.
        reference_decision: The decision both labels compare with: the original image's when
            ``reference`` was given, else the first step's.
        flipped_anywhere: Some step's decision differs from the reference decision.
        final_differs: The last step's decision differs from the reference decision.
    """

    decisions: torch.Tensor
    flip_steps: torch.Tensor
    n_flips: int
    reference_decision: int
    flipped_anywhere: bool
    final_differs: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "decisions": self.decisions.tolist(),
            "flip_steps": self.flip_steps.tolist(),
            "n_flips": self.n_flips,
            "reference_decision": self.reference_decision,
            "flipped_anywhere": self.flipped_anywhere,
            "final_differs": self.final_differs,
        }


def decisions_of(outputs: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """Per-step decisions of validated outputs (N, C): argmax, or ``> threshold`` for C = 1."""
    if threshold is not None:
        return (outputs[:, 0] > threshold).long()
    return outputs.argmax(dim=1)


def prediction_flips(outputs: Any, *, threshold: float | None = None, reference: Any = None) -> FlipResult:
    """Find where the model's decision changes along an ordered sequence of outputs.

    Args:
        outputs: (N, C) logits or probabilities (decision = argmax per step), or (N,) or (N, 1)
            scores of a binary classifier (decision = ``output > threshold``). Tensors, numpy
            arrays and lists are accepted; integers are converted to float.
        threshold: Decision threshold for binary outputs; default 0.5 (probabilities). Not
            allowed with (N, C) outputs, C > 1.
        reference: The outputs (C,) (or a scalar for binary outputs) on the original image; both
            flip labels then compare with its decision. None compares with the first step.

    Returns:
        A :class:`FlipResult`.

    Raises:
        TypeError: ``outputs`` or ``reference`` of an unsupported type, or a non-numeric ``threshold``.
        ValueError: NaN/Inf outputs, no steps, wrong dimensions, a NaN threshold, a threshold with
            (N, C) outputs, or a ``reference`` with another number of columns.
    """
    y, _ = as_outputs(outputs)
    binary = y.shape[1] == 1
    if threshold is not None:
        if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise InvalidParameterError(f"threshold must be a number or None, got {type(threshold).__name__}")
        if not np.isfinite(threshold):
            raise InvalidParameterError(f"threshold must be a finite number, got {threshold!r}")
        threshold = float(threshold)
        if not binary:
            raise InvalidParameterError(
                f"threshold applies to (N,) binary outputs; outputs has shape {tuple(y.shape)}, "
                "whose decision is the argmax over columns (pass threshold=None)"
            )
    elif binary:
        threshold = 0.5
    decisions = decisions_of(y, threshold)
    if reference is None:
        reference_decision = int(decisions[0])
    else:
        ref, _ = as_outputs(
            torch.as_tensor(reference).reshape(1, -1) if _is_array(reference) else reference, "reference"
        )
        if ref.shape != (1, y.shape[1]):
            raise InvalidParameterError(
                f"reference must hold the {y.shape[1]} output(s) of the original image, got shape "
                f"{tuple(torch.as_tensor(reference).shape)}"
            )
        reference_decision = int(decisions_of(ref.to(y.device), threshold)[0])
    return flip_result(decisions, reference_decision)


def flips_along(block: torch.Tensor) -> FlipResult:
    """:func:`prediction_flips` of checked outputs (1 + N, C), row 0 the original image's (the reference).

    For outputs a forward pass has already checked (finite floats): the decisions of the original and of
    every step come from one argmax, or ``> 0.5`` for one binary column, as :func:`prediction_flips` has them.
    """
    decisions = decisions_of(block, 0.5 if block.shape[1] == 1 else None)
    return flip_result(decisions[1:], int(decisions[0]))


def flip_result(decisions: torch.Tensor, reference_decision: int) -> FlipResult:
    """The :class:`FlipResult` of per-step decisions (N,) (long) against the reference decision."""
    d = decisions.cpu().numpy()  # a few dozen values: numpy's small operations cost less than torch's
    flip_steps = torch.from_numpy(np.flatnonzero(d[1:] != d[:-1]) + 1).to(decisions.device)
    return FlipResult(
        decisions=decisions,
        flip_steps=flip_steps,
        n_flips=int(flip_steps.numel()),
        reference_decision=reference_decision,
        flipped_anywhere=bool((d != reference_decision).any()),
        final_differs=bool(d[-1] != reference_decision),
    )


def _is_array(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray, list, tuple, int, float, np.number))
