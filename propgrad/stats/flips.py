"""Decision flips along an intervention sequence (the paper's "F" and the flip benchmark's label).

The decision at each step is the argmax over classes for (N, C) logits or probabilities, or
``output > threshold`` for a single (N,) output (binary classifier; threshold 0.5 by default, so
pass ``threshold=0.0`` for a logit). Two flip definitions are reported: ``flipped_anywhere`` (the
decision changes somewhere along the sequence, the paper code's definition) and
``final_differs`` (the last decision differs from the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from propgrad.stats.coercion import as_outputs


@dataclass(frozen=True)
class FlipResult:
    """Decisions along a sequence and where they change.

    Attributes:
        decisions: Long tensor (N,), the decision (class index, or 0/1 with a threshold) per step.
        flip_steps: Long tensor of the steps i >= 1 whose decision differs from step i - 1.
        n_flips: Number of such changes.
        flipped_anywhere: The decision changes anywhere along the sequence (n_flips > 0).
        final_differs: The last decision differs from the first.
    """

    decisions: torch.Tensor
    flip_steps: torch.Tensor
    n_flips: int
    flipped_anywhere: bool
    final_differs: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "decisions": self.decisions.tolist(),
            "flip_steps": self.flip_steps.tolist(),
            "n_flips": self.n_flips,
            "flipped_anywhere": self.flipped_anywhere,
            "final_differs": self.final_differs,
        }


def decisions_of(outputs: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """Per-step decisions of validated outputs (N, C): argmax, or ``> threshold`` for C = 1."""
    if threshold is not None:
        return (outputs[:, 0] > threshold).long()
    return outputs.argmax(dim=1)


def prediction_flips(outputs: Any, *, threshold: float | None = None) -> FlipResult:
    """Find where the model's decision changes along an ordered sequence of outputs.

    Args:
        outputs: (N, C) logits or probabilities (decision = argmax per step), or (N,) scores of a
            binary classifier (decision = ``output > threshold``). Tensors, numpy arrays and lists
            are accepted; integers are converted to float.
        threshold: Decision threshold for (N,) outputs; default 0.5 (probabilities). Not allowed
            with (N, C) outputs, C > 1.

    Returns:
        A :class:`FlipResult`.

    Raises:
        TypeError: ``outputs`` of an unsupported type, or a non-numeric ``threshold``.
        ValueError: NaN/Inf outputs, no steps, wrong dimensions, or a threshold with (N, C) outputs.
    """
    y, one_d = as_outputs(outputs)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"threshold must be a number or None, got {type(threshold).__name__}")
        if not one_d:
            raise ValueError(
                f"threshold applies to (N,) binary outputs; outputs has shape {tuple(y.shape)}, "
                "whose decision is the argmax over columns (pass threshold=None)"
            )
    elif one_d:
        threshold = 0.5
    decisions = decisions_of(y, threshold)
    flip_steps = torch.nonzero(decisions[1:] != decisions[:-1]).flatten() + 1
    n_flips = int(flip_steps.numel())
    return FlipResult(
        decisions=decisions,
        flip_steps=flip_steps,
        n_flips=n_flips,
        flipped_anywhere=n_flips > 0,
        final_differs=bool(decisions[-1] != decisions[0]),
    )
