"""How much an intervention moves a model, in its outputs' own units, and a one-line reading of a result.

A p-value says whether a response is there, not whether it matters: a deterministic model's
output that moves from 0.991 to 0.983 along a smooth intervention is "significant" under the
paper's permutation test. Every result therefore also states its practical size, at no extra
cost (the outputs along the sequence are already there): the largest change of the scored output
from its value on the original image, and the decision flips. :func:`reading` puts the two tests
and the size into one line, e.g. ``"systematic but small: 0.8 points, no decision flip"``.

Outputs that are probabilities (every value in [0, 1]) are measured in percentage points
(0.008 is 0.8 points); other outputs (logits, similarities) in their own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PracticalSize", "format_size", "practical_size", "reading", "why_untested"]


@dataclass(frozen=True)
class PracticalSize:
    """The practical size of one explanation's response.

    Attributes:
        largest_change: Per output column (C,), the largest ``|F_i - F_original|`` over the steps i
            of the sequence, in the outputs' units (float64).
        in_points: The outputs are probabilities (all in [0, 1]): sizes read as percentage points.
    """

    largest_change: torch.Tensor
    in_points: bool

    def describe(self, column: int) -> str:
        """The largest change of one column in words: ``"0.8 points"`` or ``"1.2 output units"``."""
        return format_size(float(self.largest_change[column]), self.in_points)

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form."""
        return {"largest_change": self.largest_change.tolist(), "in_points": self.in_points}


def practical_size(outputs: torch.Tensor, original_outputs: torch.Tensor) -> PracticalSize:
    """The largest change of every output column along a sequence, from the original image's outputs.

    Args:
        outputs: Transformed outputs (N, C) along the sequence.
        original_outputs: Transformed outputs (C,) on the original image.

    Returns:
        A :class:`PracticalSize`; ``in_points`` when every output (steps and original) lies in [0, 1].
    """
    steps = outputs.detach().double()
    original = original_outputs.detach().double().to(steps.device)
    change = (steps - original).abs().amax(dim=0).cpu()
    probabilities = bool(((steps >= 0) & (steps <= 1)).all()) and bool(((original >= 0) & (original <= 1)).all())
    return PracticalSize(largest_change=change, in_points=probabilities)


def format_size(change: float, in_points: bool) -> str:
    """A change in words: percentage points for probabilities (2 significant digits below 10, whole
    points above), else output units (3 significant digits)."""
    if change != change:  # NaN
        return "unknown size"
    if not in_points:
        return f"{change:.3g} output units"
    points = 100 * change
    text = f"{points:.0f}" if points >= 10 else f"{points:.2g}"
    return f"{text} point{'' if text == '1' else 's'}"


def why_untested(periodic: bool) -> str:
    """Why a sequence has no placebo test, for :func:`reading`: a periodic one has no placebos; else ""."""
    return "a periodic sequence has no placebos" if periodic else ""


def _flips(n_flips: int) -> str:
    if n_flips == 0:
        return "no decision flip"
    return f"{n_flips} decision flip{'' if n_flips == 1 else 's'}"


def reading(systematic: bool, size_aware: bool | None, size: str, n_flips: int, why_untested: str = "") -> str:
    """One line that reads a result: what the two tests say, the size and the flips.

    Args:
        systematic: The paper's permutation test is significant (an ordered response, however small).
        size_aware: The placebo test is significant (the response is larger than an arbitrary
            change of the image of the same size); None when it did not run.
        size: The practical size in words (:meth:`PracticalSize.describe`).
        n_flips: Decision flips along the sequence.
        why_untested: When ``size_aware`` is None: why the placebo test did not run (e.g.
            :func:`why_untested`); "" for "not run".

    Returns:
        E.g. ``"systematic but small: 0.8 points, no decision flip"``.
    """
    tail = f"{size}, {_flips(n_flips)}"
    if size_aware is None:
        why = why_untested or "placebo test not run"
        head = "systematic" if systematic else "no systematic response"
        return f"{head} (size not tested: {why}): {tail}"
    if size_aware:
        if systematic:
            return f"larger than an arbitrary change of the same size: {tail}"
        return f"larger than a change of the same size, but not ordered along the property: {tail}"
    if systematic:
        return f"systematic but small: {tail}"
    return f"no systematic response: {tail}"
