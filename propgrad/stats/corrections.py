"""Multiple-testing corrections for many p-values from one explanation or one benchmark.

Scoring every class of a classifier, or every property of a suite, runs many tests at once; at
``alpha = 0.05`` one in twenty null effects is "significant" by chance. The corrections here adjust
a family of p-values so that ``adjusted < alpha`` controls an error rate over the whole family:

- ``"holm"``: Holm's step-down procedure, controlling the family-wise error rate (the chance of
  any false rejection) under any dependence between the tests. With ``p_(1) <= ... <= p_(n)`` the
  sorted p-values, ``adjusted_(i) = max_{j <= i} min(1, (n - j + 1) p_(j))``.
- ``"bh"``: Benjamini-Hochberg, controlling the false discovery rate (the expected share of false
  rejections among the rejections) for independent or positively dependent tests:
  ``adjusted_(i) = min_{j >= i} min(1, n p_(j) / j)``, computed by
  ``scipy.stats.false_discovery_control(..., method="bh")``.
- ``None``: no correction (the p-values come back unchanged).

The family is the **last axis**: a vector of n p-values is one family of n tests, and an array
(..., n) holds independent families, one per leading index (e.g. (images, classes) adjusts the
classes of each image separately). Flatten first to correct over everything at once.

Monte-Carlo tests (the permutation test with K shuffles, the placebo test with M placebos) cannot
give a p-value below ``1 / (K + 1)``, so with many tests a correction can make every result
non-significant whatever the data: with Holm over n tests nothing is significant unless
``n / (K + 1) < alpha``. :func:`correction_feasibility` says whether a correction can reject at all
at a given K and which K it would need; :func:`warn_if_infeasible` warns before the work is done.
Significance is ``adjusted p < alpha`` (strictly), as in :class:`propgrad.stats.permutation.PermutationResult`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from propgrad.core.validation import check_alpha, check_choice, check_int
from propgrad.errors import InvalidParameterError, PropgradWarning
from propgrad.stats.decision import decide

__all__ = [
    "METHODS",
    "CorrectionFeasibility",
    "InfeasibleCorrectionWarning",
    "adjust_p_values",
    "correction_feasibility",
    "minimum_p_value",
    "resamples_needed",
    "warn_if_infeasible",
]

METHODS: tuple[str | None, ...] = (None, "holm", "bh")
"""The corrections :func:`adjust_p_values` knows: none, Holm (family-wise error), Benjamini-Hochberg (FDR)."""

Method = Literal["holm", "bh"] | None


class InfeasibleCorrectionWarning(PropgradWarning):
    """Too few permutations (or placebos) for any test to be significant after a correction."""


def _as_p_array(p_values: Any) -> np.ndarray:
    """``p_values`` as a float64 numpy array, checked: real numbers in [0, 1], no NaN."""
    if isinstance(p_values, torch.Tensor):
        if p_values.is_complex():
            raise InvalidParameterError(
                f"p_values must be real numbers in [0, 1], got a tensor of dtype {p_values.dtype}"
            )
        array = p_values.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            array = np.asarray(p_values)
        except (TypeError, ValueError) as err:
            raise InvalidParameterError(
                f"p_values must be numbers in [0, 1] (a tensor, array or list): {err}"
            ) from None
        if array.dtype == np.bool_ or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
        ):
            raise InvalidParameterError(
                "p_values must be real numbers in [0, 1] (a tensor, array or list), "
                f"got an array of dtype {array.dtype}"
            )
        array = array.astype(np.float64)
    if np.isnan(array).any():
        where = np.argwhere(np.isnan(array))[0]
        at = f" at index {tuple(int(i) for i in where)}" if array.ndim else ""
        raise InvalidParameterError(
            f"p_values contains NaN{at} ({int(np.isnan(array).sum())} of {array.size}); a correction needs every "
            "p-value of the family; drop the NaN tests or set their p-values to 1 (never significant) first"
        )
    if array.size and (array.min() < 0 or array.max() > 1):
        raise InvalidParameterError(f"p_values must lie in [0, 1], got range [{array.min():.6g}, {array.max():.6g}]")
    return array


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values along the last axis of a float64 array (..., n)."""
    n = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    factors = np.arange(n, 0, -1, dtype=np.float64)  # n, n - 1, ..., 1 for ranks 1..n
    adjusted = np.minimum(np.maximum.accumulate(ranked * factors, axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def adjust_p_values(p_values: Any, method: Method) -> Any:
    """Adjust a family of p-values for multiple testing, along the last axis.

    Args:
        p_values: p-values in [0, 1]: a torch tensor, numpy array, list or number. Shape (n,) is
            one family of n tests; shape (..., n) holds independent families along the last axis;
            a scalar is a family of one (returned unchanged). NaN is refused.
        method: ``"holm"`` (family-wise error rate, Holm's step-down), ``"bh"``
            (Benjamini-Hochberg false discovery rate) or ``None`` (no correction).

    Returns:
        Adjusted p-values of the same shape, each at least the original and at most 1: a tensor
        of the input's float dtype (float64 for integer tensors) on its device for a tensor
        input, a float64 numpy array otherwise (a 0-d array for a number). Compare them with
        ``alpha`` (``adjusted < alpha``) as the uncorrected ones.

    Raises:
        ParameterTypeError: ``method`` not a string or None.
        TypeError: ``p_values`` not numbers.
        ValueError: an unknown ``method``; p-values that are NaN or outside [0, 1].
    """
    method = check_choice(method, "method", METHODS)
    array = _as_p_array(p_values)
    if method is None or array.ndim == 0 or array.shape[-1] <= 1:
        adjusted = array.copy()
    elif method == "holm":
        adjusted = _holm(array)
    else:
        import scipy.stats  # here: importing scipy.stats takes longer than the commands that need no correction

        adjusted = np.asarray(scipy.stats.false_discovery_control(array, axis=-1, method="bh"), dtype=np.float64)
    if isinstance(p_values, torch.Tensor):
        dtype = p_values.dtype if p_values.is_floating_point() else torch.float64
        return torch.from_numpy(adjusted).to(device=p_values.device, dtype=dtype)
    return adjusted


def minimum_p_value(k: Any) -> float:
    """The smallest p-value of a Monte-Carlo test with ``k`` resamples: ``1 / (k + 1)``.

    Both the permutation test (K shuffles) and the placebo test (M placebos) use the
    ``(b + 1) / (k + 1)`` p-value, which is never 0.

    Args:
        k: The number of permutations K, or placebos M (a positive integer).

    Raises:
        ParameterTypeError, ValueError: ``k`` not a positive integer.
    """
    k = check_int(k, "k", hint="the number of permutations K (or placebos M) of a Monte-Carlo test")
    return 1.0 / (k + 1)


@dataclass(frozen=True)
class CorrectionFeasibility:
    """Can a correction reject anything at a given number of permutations (placebos)?

    Two best cases are reported. In the first every test reaches the smallest p-value
    ``1 / (K + 1)`` (every effect is strong); in the second only one test does and the others
    have p = 1 (one strong effect among null tests, as when one class of many is affected).
    For Holm both cases give the same bound, ``n / (K + 1) < alpha``; for Benjamini-Hochberg
    the first is just ``1 / (K + 1) < alpha`` (n p-values of 1/(K+1) adjust to 1/(K+1) at rank n)
    and the second ``n / (K + 1) < alpha`` (rank 1). Without correction both are
    ``1 / (K + 1) < alpha``.

    Attributes:
        n_tests: n, the size of the family.
        k: K, permutations (or M, placebos) per test.
        alpha: Significance level.
        method: ``"holm"``, ``"bh"`` or None.
        min_p: ``1 / (K + 1)``, the smallest p-value one test can have.
        best_adjusted_p: The smallest adjusted p-value any test can reach (every test at ``min_p``).
        feasible: Whether ``best_adjusted_p < alpha``: some test can be significant at all.
        k_needed: The smallest K for which ``feasible`` holds.
        single_adjusted_p: The smallest adjusted p-value of a lone strong test among null ones.
        single_feasible: Whether ``single_adjusted_p < alpha``.
        k_needed_single: The smallest K for which ``single_feasible`` holds.
    """

    n_tests: int
    k: int
    alpha: float
    method: str | None
    min_p: float
    best_adjusted_p: float
    feasible: bool
    k_needed: int
    single_adjusted_p: float
    single_feasible: bool
    k_needed_single: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dict(self.__dict__)


def _best_adjusted(n: int, k: int, method: str | None, *, strong: int) -> float:
    """The smallest adjusted p-value of ``strong`` of ``n`` tests of ``k`` resamples when those
    ``strong`` reach the minimum ``1 / (k + 1)`` and the others have p = 1 (float64, as computed)."""
    p = 1.0 / (k + 1)
    if method is None or n == 1:
        return p
    if method == "holm":  # rank 1 is multiplied by n, and the step-down keeps the maximum
        return min(1.0, p * n)
    return min(1.0, p * (n / strong))  # BH: the tied minima adjust to their highest rank's p * n / rank


def _k_needed(n: int, alpha: float, method: str | None, *, strong: int) -> int:
    """The smallest K >= 1 with ``_best_adjusted(n, K) < alpha`` (the bound is decreasing in K)."""
    factor = 1.0 if method is None or n == 1 else (n if method == "holm" else n / strong)
    k = max(1, math.floor(factor / alpha) - 1)  # (K + 1) alpha > factor, up to rounding
    while k > 1 and decide(_best_adjusted(n, k - 1, method, strong=strong), alpha):
        k -= 1
    while not decide(_best_adjusted(n, k, method, strong=strong), alpha):
        k += 1
    return k


def resamples_needed(n_tests: Any, n_strong: Any, alpha: Any, method: Method) -> int:
    """The smallest K (permutations, or M placebos) with which ``n_strong`` of ``n_tests`` tests can
    stay significant after ``method``, if those reach the smallest p-value ``1 / (K + 1)``.

    Holm needs ``n / (K + 1) < alpha`` however many are strong; Benjamini-Hochberg adjusts ``s``
    tied minima to ``n / (s (K + 1))``, so ``K + 1 > n / (s alpha)``; no correction needs
    ``K + 1 > 1 / alpha``. When the other tests have small p-values too, BH may need less.

    Args:
        n_tests: n, the size of the family (a positive integer).
        n_strong: s, how many tests are meant to survive (1 to n).
        alpha: Significance level in (0, 1).
        method: ``"holm"``, ``"bh"`` or None.

    Raises:
        ParameterTypeError, ValueError: ``n_tests`` or ``n_strong`` not a positive integer,
            ``n_strong`` above ``n_tests``, ``alpha`` not in (0, 1), an unknown ``method``.
    """
    n = check_int(n_tests, "n_tests", hint="the number of tests in the family")
    strong = check_int(n_strong, "n_strong", maximum=n, hint="how many tests are meant to stay significant")
    return _k_needed(n, check_alpha(alpha), check_choice(method, "method", METHODS), strong=strong)


def correction_feasibility(n_tests: Any, k: Any, alpha: Any, method: Method) -> CorrectionFeasibility:
    """Whether any of ``n_tests`` tests of ``k`` resamples can be significant after ``method``.

    A Monte-Carlo p-value is at least ``1 / (K + 1)``. Holm multiplies the smallest p-value by n,
    so nothing is significant unless ``n / (K + 1) < alpha``, i.e. ``K + 1 > n / alpha``.
    Benjamini-Hochberg multiplies the p-value of rank j by ``n / j``: when all n tests reach
    ``1 / (K + 1)`` they all adjust to ``1 / (K + 1)`` (rank n), but a lone strong test among null
    ones adjusts to ``n / (K + 1)`` (rank 1), as with Holm. See :class:`CorrectionFeasibility`.

    Args:
        n_tests: The number of tests in the family (a positive integer).
        k: Permutations K (or placebos M) per test (a positive integer).
        alpha: Significance level in (0, 1).
        method: ``"holm"``, ``"bh"`` or None (no correction).

    Returns:
        A :class:`CorrectionFeasibility`.

    Raises:
        ParameterTypeError, ValueError: ``n_tests`` or ``k`` not a positive integer, ``alpha``
            not in (0, 1), an unknown ``method``.
    """
    n = check_int(n_tests, "n_tests", hint="the number of tests in the family")
    k = check_int(k, "k", hint="the number of permutations K (or placebos M) per test")
    alpha = check_alpha(alpha)
    method = check_choice(method, "method", METHODS)
    best = _best_adjusted(n, k, method, strong=n)
    single = _best_adjusted(n, k, method, strong=1)
    return CorrectionFeasibility(
        n_tests=n,
        k=k,
        alpha=alpha,
        method=method,
        min_p=1.0 / (k + 1),
        best_adjusted_p=best,
        feasible=decide(best, alpha),
        k_needed=_k_needed(n, alpha, method, strong=n),
        single_adjusted_p=single,
        single_feasible=decide(single, alpha),
        k_needed_single=_k_needed(n, alpha, method, strong=1),
    )


def warn_if_infeasible(
    n_tests: Any,
    k: Any,
    alpha: Any,
    method: Method,
    *,
    require: Literal["any", "single"] = "any",
    what: str = "permutations",
    stacklevel: int = 2,
) -> CorrectionFeasibility:
    """Warn (:class:`InfeasibleCorrectionWarning`) when the correction leaves nothing significant at K.

    Args:
        n_tests: The number of tests in the family.
        k: Permutations K (or placebos M) per test.
        alpha: Significance level in (0, 1).
        method: ``"holm"``, ``"bh"`` or None.
        require: ``"any"`` warns when no test can be significant even if all are strong
            (:attr:`CorrectionFeasibility.feasible`); ``"single"`` also when a lone strong test
            among null ones cannot be (:attr:`CorrectionFeasibility.single_feasible`; the same as
            "any" for Holm and no correction, stricter for BH).
        what: What K counts, for the message: "permutations" or "placebos".
        stacklevel: Passed to :func:`warnings.warn` (2: the caller's line).

    Returns:
        The :class:`CorrectionFeasibility`, whether or not it warned.

    Raises:
        ParameterTypeError, ValueError: as :func:`correction_feasibility`; an unknown ``require``
            or ``what``.
    """
    require = check_choice(require, "require", ("any", "single"))
    what = check_choice(what, "what", ("permutations", "placebos"))
    stacklevel = check_int(stacklevel, "stacklevel")
    result = correction_feasibility(n_tests, k, alpha, method)
    symbol = "K" if what == "permutations" else "M"
    correction = "no correction" if result.method is None else f"the {result.method!r} correction"
    if not result.feasible:
        message = (
            f"{correction} over {result.n_tests} tests at alpha={result.alpha:g} can find nothing significant with "
            f"{symbol}={result.k} {what}: the smallest p-value 1/({symbol}+1)={result.min_p:.3g} adjusts to at least "
            f"{result.best_adjusted_p:.3g}, not below alpha; use {symbol} >= {result.k_needed} "
            f"(or fewer tests, or a larger alpha)"
        )
    elif require == "single" and not result.single_feasible:
        message = (
            f"{correction} over {result.n_tests} tests at alpha={result.alpha:g} cannot find a lone strong effect "
            f"among null tests with {symbol}={result.k} {what}: its p-value 1/({symbol}+1)={result.min_p:.3g} adjusts "
            f"to {result.single_adjusted_p:.3g}, not below alpha (only many strong effects together can be "
            f"significant); use {symbol} >= {result.k_needed_single}"
        )
    else:
        return result
    warnings.warn(message, InfeasibleCorrectionWarning, stacklevel=stacklevel)
    return result
