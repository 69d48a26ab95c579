"""The placebo-controlled test of a property's effect: is it larger than changing the image as much?

The permutation test (:mod:`propgrad.stats.permutation`) asks whether the outputs change
*systematically* along the intervention; deterministic outputs along a smooth intervention almost
always do, however small the change, so with enough steps nearly every property is "significant".
The placebo test asks a question of size instead: does the model react to the property more than
to M placebo interventions that change the image by the same amount per step, but not along the
property (see :mod:`propgrad.sources.placebo_sequences`)? The statistic (e.g. the expected property gradient
magnitude E|dF/dx|) of the real sequence is compared with those of the placebos, one-sided:

``b = #{m : placebo_m >= observed}``, ``p = (b + 1) / (M + 1)``

(the Monte-Carlo p-value, never 0; ties count against significance, and a placebo within a relative
tolerance of ``1000 * eps`` of the dtype of the observed statistic, relative to the larger of the
two, counts as a tie, so float noise is a tie). If the real intervention is exchangeable with the
placebos (no effect beyond the amount of change), ``P(p <= a) <= a``. A NaN observed statistic
gives p = 1 and NaN placebo scores count against significance, as in the permutation test.
:func:`propgrad.stats.decision.decide` is the significance rule (with an effect-size floor).

Sequential stopping (Besag & Clifford 1991, as the permutation test's ``sequential`` option).
Placebos cost a forward pass of the whole sequence each, and a model that ignores the property
is told apart after a few: with ``stop = h``, the placebos are drawn in order and a column stops
once h of them reach its statistic. A column that stops after L placebos gets ``p = h / L``; one
that never does gets the fixed test's ``(b + 1) / (M + 1)`` over all M. This p-value is valid
(``P(p <= a) <= a`` under exchangeability, Besag & Clifford's theorem), and when ``h >= alpha * M``
every decision ``p < alpha`` equals the fixed-M test's: a column that stops has ``p = h / L >=
h / M >= alpha``, and a column significant under the fixed test has ``b + 1 < alpha (M + 1)``, so
fewer than h placebos reach it and it never stops. So the sequential test changes the cost (a
column that is not significant draws about ``h (1 + ln(M / h))`` placebos on average under the
null, against M) and the resolution of p-values above alpha, never a verdict at that alpha.
:func:`auto_stop` gives that h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from propgrad.errors import InvalidParameterError
from propgrad.stats.coercion import as_scores
from propgrad.stats.corrections import adjust_p_values
from propgrad.stats.decision import decide

if TYPE_CHECKING:
    from propgrad.stats.settings import TestSettings

__all__ = [
    "PlaceboResult",
    "auto_stop",
    "placebo_p_value",
    "placebo_reached",
    "placebo_result",
    "placebo_stopped",
    "placebo_test",
]

TIE_EPS = 1000
"""A placebo within ``TIE_EPS * eps * scale`` of the observed statistic counts as a tie (``scale``:
the larger finite magnitude of the two)."""


def auto_stop(alpha: float, n_placebos: int) -> int:
    """The smallest sequential stop h whose verdicts at ``alpha`` equal the fixed M-placebo test's:
    ``max(1, ceil(alpha * M))`` (see the module docstring)."""
    return max(1, math.ceil(alpha * n_placebos - 1e-9))


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


def placebo_reached(obs: torch.Tensor, plc: torch.Tensor) -> torch.Tensor:
    """Bool (M, ...): placebo m reaches the observed statistic (``>=``, a tie within tolerance, or NaN).

    ``obs`` () or (C,) and ``plc`` (M,) or (M, C) in a common dtype on one device. The tolerance of
    a pair depends on that pair alone, so whether a placebo reaches does not depend on the others
    (what the sequential test needs).
    """
    finite_plc = torch.where(torch.isfinite(plc), plc.abs(), 0)
    scale = torch.maximum(finite_plc, torch.where(torch.isfinite(obs), obs.abs(), 0))
    tol = TIE_EPS * torch.finfo(plc.dtype).eps * scale
    # observed - tol is -inf only for observed = -inf (every placebo is then at least it)
    return (plc >= obs - tol) | torch.isnan(plc)


def _p_value(obs: torch.Tensor, plc: torch.Tensor) -> torch.Tensor:
    """:func:`placebo_p_value` of a checked pair (a common dtype, on one device)."""
    m = plc.shape[0]
    b = placebo_reached(obs, plc).sum(0)
    p = (b.to(plc.dtype) + 1) / (m + 1)
    return torch.where(torch.isnan(obs), torch.ones_like(p), p)


def _sequential(obs: torch.Tensor, plc: torch.Tensor, m: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Besag-Clifford p-values and placebos used per column, from the first L <= M placebos in draw order.

    A column whose h-th reaching placebo is number L gets ``h / L`` (L used); a column that has none
    such among the rows must have all M of them and gets ``(b + 1) / (M + 1)`` (M used).
    """
    reached = placebo_reached(obs, plc)
    count = reached.cumsum(0)
    done = count >= stop
    stopped = done.any(0)
    if plc.shape[0] < m and not bool(stopped.all()):
        raise InvalidParameterError(
            f"placebo_scores hold {plc.shape[0]} of n_placebos = {m} placebos but a column has not reached its "
            f"stop of {stop} placebos at least its statistic: draw all M, or until every column stops"
        )
    used = torch.where(stopped, done.to(torch.int64).argmax(0) + 1, torch.full_like(count[-1], m))
    fixed = (count[-1].to(plc.dtype) + 1) / (m + 1)
    p = torch.where(stopped, stop / used.to(plc.dtype), fixed)
    return torch.where(torch.isnan(obs), torch.ones_like(p), p), used


def placebo_stopped(observed: torch.Tensor, placebo_scores: torch.Tensor, stop: int) -> torch.Tensor:
    """Bool like ``observed``: the column has ``stop`` placebos (of those drawn so far) at least its statistic,
    so it needs no more (trusted inputs: a common dtype, on one device)."""
    return placebo_reached(observed, placebo_scores).sum(0) >= stop


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
        stop: The sequential test's h (a column stopped once h placebos reached its statistic), or
            None for the fixed test over all M.
        n_used: Placebos each column's p-value used, like ``p_value`` (M for the fixed test; L for a
            column that stopped at placebo L). ``placebo_scores`` holds every placebo drawn (at
            least the most any column used).
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
    stop: int | None = None
    n_used: torch.Tensor | None = None

    @property
    def n_drawn(self) -> int:
        """Placebo sequences drawn and scored (every column's test shares them)."""
        return int(self.placebo_scores.shape[0])

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
            "stop": self.stop,
            "n_used": None if self.n_used is None else self.n_used.tolist(),
            "n_drawn": self.n_drawn,
        }


def placebo_test(
    observed: Any,
    placebo_scores: Any,
    *,
    alpha: Any = 0.05,
    min_effect: Any = 0.0,
    correction: Any = None,
    stop: Any = None,
    n_placebos: Any = None,
) -> PlaceboResult:
    """The placebo-controlled test: :func:`placebo_p_value` plus :func:`significant_with_min_effect`.

    Args:
        observed: The real sequence's statistic, shape () or (C,).
        placebo_scores: The placebos' statistics in the order they were drawn, (L,) or (L, C).
        alpha: Significance level in (0, 1). With M placebos p >= 1 / (M + 1), so M + 1 > 1 / alpha
            is needed for anything to be significant (M >= 20 at alpha = 0.05, M >= 100 at 0.01:
            the rule of :func:`propgrad.stats.decision.decide` is strict).
        min_effect: Effect-size floor on the statistic.
        correction: ``"holm"``, ``"bh"`` or None: adjust the p-values of the C columns (one family,
            :func:`propgrad.stats.corrections.adjust_p_values`); ``significant`` then uses them.
        stop: The sequential test's h (a positive integer; see the module docstring), or None for
            the fixed test over all the rows.
        n_placebos: M, the most placebos a column may use (default: the rows given). With ``stop``,
            fewer rows are enough when every column has stopped among them.

    Returns:
        A :class:`PlaceboResult`.

    Raises:
        TypeError, ValueError: as :func:`placebo_p_value` and :func:`significant_with_min_effect`;
            an unknown ``correction``; a bad ``stop`` or ``n_placebos``; fewer rows than
            ``n_placebos`` while a column has not stopped.
    """
    from propgrad.stats.settings import test_settings

    obs, plc = _check_pair(observed, placebo_scores)
    m = plc.shape[0] if n_placebos is None else n_placebos
    test = test_settings(alpha=alpha, min_effect=min_effect, correction=correction, n_placebos=m, placebo_stop=stop)
    if plc.shape[0] > test.n_placebos:
        raise InvalidParameterError(
            f"placebo_scores hold {plc.shape[0]} placebos, more than n_placebos = {test.n_placebos}"
        )
    return placebo_result(obs, plc, test)


def placebo_result(observed: torch.Tensor, placebo_scores: torch.Tensor, test: TestSettings) -> PlaceboResult:
    """:func:`placebo_test` for settings checked at their door (a :class:`~propgrad.stats.settings.TestSettings`).

    Args:
        observed: The real sequence's statistic, a tensor of shape () or (C,).
        placebo_scores: The placebos' statistics in draw order, a tensor (L,) or (L, C), 1 <= L <=
            ``test.n_placebos``; L < M only when every column stopped (``test.placebo_stop``).
        test: alpha, min_effect, correction, n_placebos (M) and placebo_stop (h or None).

    Returns:
        A :class:`PlaceboResult`, in the two tensors' common dtype on ``observed``'s device.
    """
    dtype = torch.promote_types(observed.dtype, placebo_scores.dtype)
    obs = observed.to(dtype)
    plc = placebo_scores.to(device=obs.device, dtype=dtype)
    m = test.n_placebos
    if test.placebo_stop is None:
        if plc.shape[0] != m:
            raise InvalidParameterError(f"the fixed placebo test needs all {m} placebos, got {plc.shape[0]}")
        p, used = _p_value(obs, plc), torch.full(obs.shape, m, dtype=torch.int64, device=obs.device)
    else:
        p, used = _sequential(obs, plc, m, test.placebo_stop)
    adjusted = None if test.correction is None else adjust_p_values(p, test.correction)
    return PlaceboResult(
        statistic=obs,
        p_value=p,
        significant=decide(p if adjusted is None else adjusted, test.alpha, obs, test.min_effect),
        placebo_scores=plc,
        n_placebos=m,
        alpha=test.alpha,
        min_effect=test.min_effect,
        correction=test.correction,
        p_value_adjusted=adjusted,
        stop=test.placebo_stop,
        n_used=used,
    )
