"""Summaries over realisations of one intervention: mean score, bootstrap interval, share significant.

A source with randomness (a patch's position and sticker, a vignette's centre, a diffusion edit's
seed) gives a different intervention sequence per seed, and so a different score. Scoring R
realisations of the same image estimates how much the score depends on that draw:
:func:`summarise_realisations` reports the mean score over the R realisations, a percentile
bootstrap confidence interval of that mean (:func:`scipy.stats.bootstrap`, seeded) and the fraction
of realisations whose test was significant.

Degenerate cases: with R = 1 the interval is undefined and reported as NaN (a bootstrap of one
value says nothing about the spread); when all R scores of a column are equal (a source without
randomness) every bootstrap mean is that value, and the interval is that value on both sides. A NaN
score makes its column's mean and interval NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from propgrad.core.validation import Bounds, check_int, check_number, check_seed
from propgrad.errors import InvalidParameterError

__all__ = ["RealisationSummary", "summarise_realisations"]


@dataclass(frozen=True)
class RealisationSummary:
    """The summary of R realisations' scores.

    Attributes:
        mean: Mean score over the realisations, shape () or (C,) (float64).
        ci_low: Lower end of the bootstrap confidence interval of the mean (NaN for R = 1).
        ci_high: Upper end.
        fraction_significant: Share of realisations whose test was significant, same shape.
        n_realisations: R.
        confidence_level: Of the interval, e.g. 0.95.
        n_resamples: Bootstrap resamples.
    """

    mean: torch.Tensor
    ci_low: torch.Tensor
    ci_high: torch.Tensor
    fraction_significant: torch.Tensor
    n_realisations: int
    confidence_level: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN stays a float NaN)."""
        return {
            "mean": self.mean.tolist(),
            "ci_low": self.ci_low.tolist(),
            "ci_high": self.ci_high.tolist(),
            "fraction_significant": self.fraction_significant.tolist(),
            "n_realisations": self.n_realisations,
            "confidence_level": self.confidence_level,
            "n_resamples": self.n_resamples,
        }


def summarise_realisations(
    scores: Any,
    significant: Any,
    *,
    confidence_level: Any = 0.95,
    n_resamples: Any = 9999,
    seed: Any = 0,
) -> RealisationSummary:
    """Mean, percentile-bootstrap interval of the mean and share significant over R realisations.

    Args:
        scores: The R realisations' scores, shape (R,) or (R, C); a tensor, array or list.
        significant: Their significance flags, the same shape (bool).
        confidence_level: Of the interval, in (0, 1).
        n_resamples: Bootstrap resamples (a positive integer).
        seed: Seed of the bootstrap's generator (``numpy.random.default_rng(seed)``).

    Returns:
        A :class:`RealisationSummary` (CPU tensors of shape () or (C,)).

    Raises:
        ParameterTypeError, ValueError: bad settings; ``scores`` not (R,) or (R, C) with R >= 1;
            ``significant`` of another shape.
    """
    level = check_number(
        confidence_level,
        "confidence_level",
        Bounds(0.0, 1.0, min_inclusive=False, max_inclusive=False),
        hint="e.g. 0.95",
    )
    n_resamples = check_int(n_resamples, "n_resamples", hint="bootstrap resamples, e.g. 9999")
    seed = check_seed(seed)
    x = torch.as_tensor(scores).detach().to("cpu", torch.float64).numpy()
    flags = torch.as_tensor(significant).detach().to("cpu").numpy()
    if x.ndim not in (1, 2) or x.shape[0] < 1:
        raise InvalidParameterError(
            f"scores must have shape (R,) or (R, C) with R >= 1 realisations, got {tuple(x.shape)}"
        )
    if flags.shape != x.shape:
        raise InvalidParameterError(
            f"significant must have the shape of scores {tuple(x.shape)}, got {tuple(flags.shape)}"
        )
    mean = x.mean(axis=0)
    low, high = np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    finite = np.isfinite(x).all(axis=0)
    constant = finite & (x == x[:1]).all(axis=0) & (x.shape[0] >= 2)
    low[constant], high[constant] = mean[constant], mean[constant]
    spread = finite & ~constant
    if x.shape[0] >= 2 and spread.any():
        import scipy.stats  # here: an explanation of one realisation never needs scipy.stats (slow to import)

        columns = x if x.ndim == 1 else x[:, spread]
        with warnings.catch_warnings():  # few realisations: scipy warns about a coarse bootstrap distribution
            warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
            interval = scipy.stats.bootstrap(
                (columns,),
                np.mean,
                axis=0,
                confidence_level=level,
                n_resamples=n_resamples,
                method="percentile",
                rng=np.random.default_rng(seed),
            ).confidence_interval
        low[spread], high[spread] = interval.low, interval.high
    return RealisationSummary(
        mean=torch.from_numpy(np.asarray(mean)),
        ci_low=torch.from_numpy(np.asarray(low)),
        ci_high=torch.from_numpy(np.asarray(high)),
        fraction_significant=torch.from_numpy(np.asarray(flags.astype(np.float64).mean(axis=0))),
        n_realisations=int(x.shape[0]),
        confidence_level=level,
        n_resamples=n_resamples,
    )
