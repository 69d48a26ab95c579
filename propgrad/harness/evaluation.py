"""The mathematics of the "predict the flip" evaluation, as pure functions.

A method's score predicts a flip when it is *higher* than a threshold. Each method gets the
threshold that maximises its accuracy on the images at hand (as in Penzel & Denzler, Tab. 2);
ROC AUC needs no threshold. Resampling draws a fixed number of images per class again and
again with a seeded generator, so a method's accuracy comes with a standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from propgrad.errors import InvalidParameterError


def _as_arrays(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise InvalidParameterError(
            f"scores and labels must have the same length, got {s.shape[0]} scores and {y.shape[0]} labels"
        )
    if s.size == 0:
        raise InvalidParameterError("scores is empty: at least one image is needed")
    if not np.isfinite(s).all():
        raise InvalidParameterError("scores contains NaN or Inf values")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise InvalidParameterError(
                f"labels must be booleans (flipped or not) or 0/1, got values {np.unique(y)[:5].tolist()}"
            )
        y = y.astype(bool)
    return s, y


def best_threshold_accuracy(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray
) -> tuple[float, float]:
    """The highest accuracy of the rule "predict a flip iff score > threshold", and its threshold.

    Images with equal scores always get the same prediction (ties cannot be split). Candidate
    thresholds are ``-inf`` (predict a flip for every image) and every distinct score (the
    images up to and including it are predicted not to flip). When several thresholds reach the
    best accuracy the lowest is returned. If all labels are equal the accuracy is 1.

    Args:
        scores: One score per image (higher means "more likely to flip").
        labels: Whether each image's prediction flipped.

    Returns:
        ``(accuracy, threshold)``, accuracy in [0, 1]; threshold is ``-inf`` when predicting a
        flip for every image is best.

    Raises:
        ValueError: Mismatched lengths, no images, non-finite scores or non-binary labels.
    """
    s, y = _as_arrays(scores, labels)
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    n, n_pos = s.size, int(y.sum())
    # last index of every run of equal scores: cutting there keeps ties together
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    neg_below = np.cumsum(~y)[ends]  # correct "no flip" predictions at or below each cut
    pos_below = np.cumsum(y)[ends]
    correct = np.concatenate(([n_pos], neg_below + (n_pos - pos_below)))
    thresholds = np.concatenate(([-math.inf], s[ends]))
    best = int(np.argmax(correct))  # argmax returns the first, i.e. the lowest threshold
    return float(correct[best]) / n, float(thresholds[best])


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve via ranks (Mann–Whitney U); ties count one half.

    Reported as is: an AUC below 0.5 means the score ranks flipped images *lower*, which is
    information and is not flipped around.

    Returns:
        The AUC in [0, 1], or ``nan`` when all labels are equal (the AUC is undefined).
    """
    s, y = _as_arrays(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(s)  # average ranks for ties
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def resample_indices(
    groups: Sequence[int] | np.ndarray, per_group: int, n_resamples: int, seed: int
) -> list[np.ndarray]:
    """Draw ``per_group`` images of every group (class), ``n_resamples`` times.

    A group with more than ``per_group`` images is sampled without replacement; a group with
    ``per_group`` images or fewer is bootstrapped (drawn with replacement), so that every
    resample differs. The draws depend only on ``seed``, the groups and the sizes.

    Args:
        groups: Group (class) label of every image.
        per_group: Images drawn per group in each resample (>= 1).
        n_resamples: Number of resamples (>= 1).
        seed: Seed of the ``torch.Generator`` that draws.

    Returns:
        ``n_resamples`` integer index arrays into ``groups``, each sorted by group.
    """
    if per_group < 1:
        raise InvalidParameterError(f"per_group must be >= 1, got {per_group}")
    if n_resamples < 1:
        raise InvalidParameterError(f"n_resamples must be >= 1, got {n_resamples}")
    g = np.asarray(groups).reshape(-1)
    if g.size == 0:
        raise InvalidParameterError("groups is empty: at least one image is needed")
    gen = torch.Generator().manual_seed(int(seed))
    members = [np.flatnonzero(g == value) for value in np.unique(g)]
    draws = []
    for _ in range(n_resamples):
        parts = []
        for idx in members:
            if idx.size > per_group:
                pick = torch.randperm(idx.size, generator=gen)[:per_group]
            else:
                pick = torch.randint(idx.size, (per_group,), generator=gen)
            parts.append(idx[pick.numpy()])
        draws.append(np.concatenate(parts))
    return draws


@dataclass(frozen=True)
class MethodEvaluation:
    """How well one method's scores predict the flips.

    Attributes:
        accuracy_mean: Mean best-threshold accuracy over the resamples.
        accuracy_std: Its standard deviation (population, ddof=0).
        auc_mean: Mean ROC AUC over resamples where it is defined (nan if never).
        auc_std: Its standard deviation.
        auc_all: ROC AUC on all images.
        threshold_all: Best threshold on all images.
        accuracy_all: Best-threshold accuracy on all images.
        accuracies: Accuracy of every resample.
    """

    accuracy_mean: float
    accuracy_std: float
    auc_mean: float
    auc_std: float
    auc_all: float
    threshold_all: float
    accuracy_all: float
    accuracies: tuple[float, ...]


def evaluate_method(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    resamples: Sequence[np.ndarray],
) -> MethodEvaluation:
    """Best-threshold accuracy (threshold chosen on each resample) and AUC, mean ± std.

    Args:
        scores: One score per image.
        labels: Whether each image flipped.
        resamples: Index arrays from :func:`resample_indices`.

    Returns:
        The :class:`MethodEvaluation`.
    """
    s, y = _as_arrays(scores, labels)
    if len(resamples) == 0:
        raise InvalidParameterError("resamples is empty: at least one resample is needed")
    accs, aucs = [], []
    for idx in resamples:
        accs.append(best_threshold_accuracy(s[idx], y[idx])[0])
        aucs.append(roc_auc(s[idx], y[idx]))
    acc_all, thr_all = best_threshold_accuracy(s, y)
    defined = [a for a in aucs if not math.isnan(a)]
    return MethodEvaluation(
        accuracy_mean=float(np.mean(accs)),
        accuracy_std=float(np.std(accs)),
        auc_mean=float(np.mean(defined)) if defined else math.nan,
        auc_std=float(np.std(defined)) if defined else math.nan,
        auc_all=roc_auc(s, y),
        threshold_all=thr_all,
        accuracy_all=acc_all,
        accuracies=tuple(float(a) for a in accs),
    )
