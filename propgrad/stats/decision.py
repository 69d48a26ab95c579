"""The significance rule, in one place: significant means ``p < alpha`` (strictly) and ``statistic >= min_effect``.

Every caller decides with :func:`decide`: the permutation test's ``significant``, the placebo
test, the explainer's (corrected, floored) verdict, the per-class scores, the benchmark's records
and its summary counts, and the corrections' feasibility (could an adjusted p-value be
significant at all?). To change how significance is decided, change :func:`decide`.
:func:`significant_with_min_effect` is its checked public door.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch

from propgrad.core.validation import Bounds, check_alpha, check_number
from propgrad.errors import InvalidParameterError
from propgrad.stats.coercion import as_scores

__all__ = ["check_min_effect", "decide", "significant_with_min_effect"]

P = TypeVar("P")


def decide(p_value: P, alpha: float, statistic: Any = None, min_effect: float = 0.0) -> P:
    """Significant: ``p_value < alpha`` and, when ``statistic`` is given, ``statistic >= min_effect``.

    A p-value says the effect is unlikely to be chance, not that it matters; ``min_effect`` is the
    smallest statistic (in its units, e.g. E|dF/dx| per step) worth reporting. The comparison with
    ``alpha`` is strict, so a p-value of exactly ``alpha`` is not significant; a NaN statistic is
    never large enough. Nothing is checked here (the doors checked the settings).

    Args:
        p_value: p-values (raw or adjusted): a number, numpy array or tensor.
        alpha: Significance level in (0, 1).
        statistic: The statistics, broadcastable with ``p_value``; None: no effect-size floor.
        min_effect: Effect-size floor >= 0.

    Returns:
        A bool (or bool array / tensor) of the broadcast shape.
    """
    significant = p_value < alpha
    if statistic is None:
        return significant
    return significant & (statistic >= min_effect)


def significant_with_min_effect(p: Any, score: Any, alpha: Any, min_effect: Any = 0.0) -> torch.Tensor:
    """:func:`decide` for any numbers, checked: ``(p < alpha) & (score >= min_effect)``.

    Args:
        p: p-values (any shape; tensor, array, list or number).
        score: The statistics, broadcastable with ``p`` (NaN is never large enough).
        alpha: Significance level in (0, 1).
        min_effect: Effect-size floor, a finite number >= 0 (0 with E|dF/dx| >= 0: no floor).

    Returns:
        A bool tensor of the broadcast shape, on ``p``'s device.

    Raises:
        InvalidParameterError: non-numeric ``p`` or ``score``, bad ``alpha`` or ``min_effect``,
            shapes that do not broadcast.
    """
    alpha = check_alpha(alpha)
    min_effect = check_min_effect(min_effect)
    p_t = as_scores(p, "p")
    s_t = as_scores(score, "score").to(p_t.device)
    try:
        shape = torch.broadcast_shapes(p_t.shape, s_t.shape)
    except RuntimeError:
        raise InvalidParameterError(
            f"p and score must have broadcastable shapes, got {tuple(p_t.shape)} and {tuple(s_t.shape)}"
        ) from None
    return decide(p_t, alpha, s_t, min_effect).expand(shape)


def check_min_effect(min_effect: Any) -> float:
    """Check an effect-size floor: a finite number >= 0, returned as a float.

    Raises:
        InvalidParameterError: a negative, NaN or infinite number (ParameterTypeError: not a number).
    """
    return check_number(
        min_effect,
        "min_effect",
        Bounds(minimum=0.0),
        hint="the smallest score worth calling significant (0: no floor; the statistics are magnitudes, "
        "so a negative floor would let every score through)",
    )
