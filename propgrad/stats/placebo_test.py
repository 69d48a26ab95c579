"""The placebo-controlled test of a property's effect: is it larger than changing the image as much?

The permutation test (:mod:`propgrad.stats.permutation`) asks whether the outputs change
*systematically* along the intervention; deterministic outputs along a smooth intervention almost
always do, however small the change, so with enough steps nearly every property is "significant".
The placebo test asks a question of size instead: does the model react to the property more than
to M placebo interventions that change the image by the same amount per step, but not along the
property (see :mod:`propgrad.sources.placebo_sequences`)? The statistic (e.g. the expected property gradient
magnitude E|dF/dx|) of the real sequence is compared with those of the placebos, one-sided:

``b = #{m : placebo_m >= observed}``, ``p = (b + 1) / (M + 1)``

(the Monte-Carlo p-value, never 0; ties count against significance, and scores within a relative
tolerance of ``1000 * eps`` of the dtype count as ties, so float noise is a tie). If the real
intervention is exchangeable with the placebos (no effect beyond the amount of change), ``P(p <= a)
<= a``. A NaN observed statistic gives p = 1 and NaN placebo scores count against significance,
as in the permutation test. :func:`propgrad.stats.decision.decide` is the significance rule (with an effect-size floor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from propgrad.core.validation import check_alpha, check_choice
from propgrad.errors import InvalidParameterError
from propgrad.stats.coercion import as_scores
from propgrad.stats.corrections import METHODS, adjust_p_values
from propgrad.stats.decision import check_min_effect, decide

__all__ = ["PlaceboResult", "placebo_p_value", "placebo_result", "placebo_test"]

TIE_EPS = 1000
"""Scores within ``TIE_EPS * eps * scale`` of the observed statistic count as ties (``scale``: the
largest finite magnitude among the observed statistic and the placebo scores of its column)."""


def _check_pair(observed: Any, placebo_scores: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Observed () or (C,) and placebo scores (M,) or (M, C), in a common dtype on the observed's device."""
    obs = as_scores(observed, "observed")
    plc = as_scores(placebo_scores, "placebo_scores")
    if obs.dim() > 1:
        raise InvalidParameterError(
            f"observed must have shape () or (C,), one statistic per output column, got {tuple(obs.shape)}"
        )
    if plc.dim() != obs.dim() + 1 or tuple(plc.shape[1:]) != tuple(obs.shape):
        want = "(M,)" if obs.dim() == 0 else f"(M, {obs.shape[0]})"
        raise InvalidParameterError(
            f"placebo_scores must have shape {want}, one row per placebo for observed of shape {tuple(obs.shape)}, "
            f"got {tuple(plc.shape)}"
        )
    if plc.shape[0] < 1:
        raise InvalidParameterError("placebo_scores must hold at least one placebo (M >= 1), got M = 0")
    dtype = torch.promote_types(obs.dtype, plc.dtype)
    return obs.to(dtype), plc.to(device=obs.device, dtype=dtype)


def placebo_p_value(observed: Any, placebo_scores: Any) -> torch.Tensor:
    """One-sided placebo p-values ``(b + 1) / (M + 1)``, ``b = #{m : placebo_m >= observed}`` (ties count).

    Args:
        observed: The real sequence's statistic: shape () or (C,) (one per output column); a
            tensor, numpy array, list or number.
        placebo_scores: The same statistic of M placebo sequences: shape (M,) for a scalar
            ``observed``, (M, C) for (C,).

    Returns:
        p-values of the shape of ``observed``, in the common float dtype, on ``observed``'s
        device: 1 where ``observed`` is NaN; NaN placebo scores count as at least ``observed``.

    Raises:
        TypeError: non-numeric input.
        ValueError: shapes that do not match, or no placebos.
    """
    obs, plc = _check_pair(observed, placebo_scores)
    return _p_value(obs, plc)


def _p_value(obs: torch.Tensor, plc: torch.Tensor) -> torch.Tensor:
    """:func:`placebo_p_value` of a checked pair (a common dtype, on one device)."""
    m = plc.shape[0]
    finite = torch.isfinite(plc)
    scale = torch.where(finite, plc.abs(), 0).amax(0)
    scale = torch.maximum(scale, torch.where(torch.isfinite(obs), obs.abs(), 0))
    tol = TIE_EPS * torch.finfo(plc.dtype).eps * scale
    # observed - tol is -inf only for observed = -inf (every placebo is then at least it)
    at_least = (plc >= obs - tol) | torch.isnan(plc)
    b = at_least.sum(0)
    p = (b.to(plc.dtype) + 1) / (m + 1)
    return torch.where(torch.isnan(obs), torch.ones_like(p), p)


@dataclass(frozen=True)
class PlaceboResult:
    """Outcome of :func:`placebo_test`.

    Attributes:
        statistic: The real sequence's statistic, shape () or (C,).
        p_value: One-sided placebo p-values, same shape.
        significant: Bool tensor, :func:`propgrad.stats.decision.decide` of the p-values (adjusted ones
            with a correction), ``alpha``, the statistic and ``min_effect``.
        placebo_scores: The M placebos' statistics, (M,) or (M, C).
        n_placebos: M.
        alpha: Significance level.
        min_effect: The effect-size floor (0.0: none for a non-negative statistic).
        correction: The multiple-testing correction over the last axis (``"holm"``, ``"bh"``) or None.
        p_value_adjusted: The corrected p-values (None without a correction).
    """

    statistic: torch.Tensor
    p_value: torch.Tensor
    significant: torch.Tensor
    placebo_scores: torch.Tensor = field(repr=False)
    n_placebos: int
    alpha: float
    min_effect: float
    correction: str | None = None
    p_value_adjusted: torch.Tensor | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; the placebo scores are summarised by their mean (the full (M, C)
        matrix can be large), as the permutation test leaves out its null distribution."""
        return {
            "statistic": self.statistic.tolist(),
            "p_value": self.p_value.tolist(),
            "significant": self.significant.tolist(),
            "placebo_mean": self.placebo_scores.mean(0).tolist(),
            "n_placebos": self.n_placebos,
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "correction": self.correction,
            "p_value_adjusted": None if self.p_value_adjusted is None else self.p_value_adjusted.tolist(),
        }


def placebo_test(
    observed: Any, placebo_scores: Any, *, alpha: Any = 0.05, min_effect: Any = 0.0, correction: Any = None
) -> PlaceboResult:
    """The placebo-controlled test: :func:`placebo_p_value` plus :func:`significant_with_min_effect`.

    Args:
        observed: The real sequence's statistic, shape () or (C,).
        placebo_scores: The placebos' statistics, (M,) or (M, C).
        alpha: Significance level in (0, 1). With M placebos p >= 1 / (M + 1), so M + 1 > 1 / alpha
            is needed for anything to be significant (M >= 20 at alpha = 0.05, M >= 100 at 0.01:
            the rule of :func:`propgrad.stats.decision.decide` is strict).
        min_effect: Effect-size floor on the statistic.
        correction: ``"holm"``, ``"bh"`` or None: adjust the p-values of the C columns (one family,
            :func:`propgrad.stats.corrections.adjust_p_values`); ``significant`` then uses them.

    Returns:
        A :class:`PlaceboResult`.

    Raises:
        TypeError, ValueError: as :func:`placebo_p_value` and :func:`significant_with_min_effect`;
            an unknown ``correction``.
    """
    correction = check_choice(correction, "correction", METHODS)
    alpha = check_alpha(alpha)
    min_effect = check_min_effect(min_effect)
    obs, plc = _check_pair(observed, placebo_scores)
    return placebo_result(obs, plc, alpha, min_effect, correction)


def placebo_result(
    observed: torch.Tensor, placebo_scores: torch.Tensor, alpha: float, min_effect: float, correction: str | None
) -> PlaceboResult:
    """:func:`placebo_test` for settings checked at their door (e.g. a :class:`~propgrad.stats.settings.TestSettings`).

    Args:
        observed: The real sequence's statistic, a tensor of shape () or (C,).
        placebo_scores: The placebos' statistics, a tensor (M,) or (M, C), M >= 1.
        alpha: Significance level, checked.
        min_effect: Effect-size floor, checked.
        correction: ``"holm"``, ``"bh"`` or None, checked.

    Returns:
        A :class:`PlaceboResult`, in the two tensors' common dtype on ``observed``'s device.
    """
    dtype = torch.promote_types(observed.dtype, placebo_scores.dtype)
    obs = observed.to(dtype)
    plc = placebo_scores.to(device=obs.device, dtype=dtype)
    p = _p_value(obs, plc)
    adjusted = None if correction is None else adjust_p_values(p, correction)
    return PlaceboResult(
        statistic=obs,
        p_value=p,
        significant=decide(p if adjusted is None else adjusted, alpha, obs, min_effect),
        placebo_scores=plc,
        n_placebos=int(plc.shape[0]),
        alpha=alpha,
        min_effect=min_effect,
        correction=correction,
        p_value_adjusted=adjusted,
    )
