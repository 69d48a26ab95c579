"""The evaluation mathematics of the flip benchmark against brute force and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from propgrad.harness.evaluation import best_threshold_accuracy, evaluate_method, resample_indices, roc_auc


def brute_force_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Try every threshold of the rule "flip iff score > t" at and between all scores."""
    u = np.unique(scores)
    candidates = np.concatenate(([u[0] - 1.0], u, (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]))
    return max(float(np.mean((scores > t) == labels)) for t in candidates)


@pytest.mark.parametrize("seed", range(25))
def test_best_threshold_matches_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    scores = rng.integers(0, 6, n).astype(float)  # few distinct values: many ties
    labels = rng.random(n) < rng.random()
    acc, thr = best_threshold_accuracy(scores, labels)
    assert acc == pytest.approx(brute_force_accuracy(scores, labels))
    assert float(np.mean((scores > thr) == labels)) == pytest.approx(acc)  # the threshold achieves it


def test_ties_cannot_be_split() -> None:
    # equal scores must get the same prediction: the best is 3 of 4, not 4 of 4
    acc, thr = best_threshold_accuracy([1.0, 1.0, 2.0, 2.0], [False, True, True, True])
    assert acc == pytest.approx(0.75)
    assert thr == -math.inf  # predicting all flips ties with cutting at 1.0 (also 3/4); lowest wins


def test_all_same_label_is_perfect() -> None:
    assert best_threshold_accuracy([0.3, 0.1, 0.2], [True, True, True]) == (1.0, -math.inf)
    acc, thr = best_threshold_accuracy([0.3, 0.1, 0.2], [False, False, False])
    assert acc == 1.0 and thr == pytest.approx(0.3)


def test_higher_score_predicts_flip_and_is_not_inverted() -> None:
    # scores perfectly *anti*-correlated with flips: the best rule is the majority, not the inversion
    acc, _ = best_threshold_accuracy([0.9, 0.8, 0.1, 0.2, 0.3], [False, False, True, True, True])
    assert acc == pytest.approx(0.6)


@pytest.mark.parametrize("seed", range(20))
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score

    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 40))
    scores = rng.integers(0, 5, n).astype(float) + (rng.random(n) if seed % 2 else 0.0)
    labels = rng.random(n) < 0.5
    labels[0], labels[1] = True, False
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_auc_below_half_is_reported_as_is_and_undefined_is_nan() -> None:
    assert roc_auc([3.0, 2.0, 1.0, 0.0], [False, False, True, True]) == 0.0
    assert roc_auc([1.0, 1.0], [True, False]) == 0.5
    assert math.isnan(roc_auc([1.0, 2.0], [True, True]))


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="same length"):
        best_threshold_accuracy([1.0, 2.0], [True])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([1.0, float("nan")], [True, False])
    with pytest.raises(ValueError, match="labels must be booleans"):
        roc_auc([1.0, 2.0], [2, 0])
    with pytest.raises(ValueError, match="per_group"):
        resample_indices([0, 1], 0, 3, seed=0)


def test_resampling_draws_per_class_and_is_seeded() -> None:
    groups = np.array([0] * 10 + [1] * 4)
    draws = resample_indices(groups, per_group=5, n_resamples=10, seed=3)
    assert len(draws) == 10
    for d in draws:
        assert (groups[d] == 0).sum() == 5 and (groups[d] == 1).sum() == 5
        assert len(set(d[groups[d] == 0].tolist())) == 5  # larger class: without replacement
    assert any(len(set(d[groups[d] == 1].tolist())) < 5 for d in draws)  # smaller class: bootstrap
    again = resample_indices(groups, per_group=5, n_resamples=10, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(draws, again))
    other = resample_indices(groups, per_group=5, n_resamples=10, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(draws, other))
    # the larger class is not always the same subset (the draws actually differ)
    assert len({tuple(sorted(d[groups[d] == 0].tolist())) for d in draws}) > 1


def test_evaluate_method_chooses_threshold_per_resample() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([True] * 20 + [False] * 20)
    scores = np.where(labels, 1.0, 0.0) + rng.normal(0, 0.6, 40)
    groups = labels.astype(int)
    draws = resample_indices(groups, 20, 10, seed=0)
    ev = evaluate_method(scores, labels, draws)
    expected = [best_threshold_accuracy(scores[d], labels[d])[0] for d in draws]
    assert ev.accuracies == pytest.approx(expected)
    assert ev.accuracy_mean == pytest.approx(np.mean(expected))
    assert ev.accuracy_std == pytest.approx(np.std(expected))
    assert ev.accuracy_std > 0
    assert ev.auc_all == pytest.approx(roc_auc(scores, labels))
    perfect = evaluate_method(labels.astype(float), labels, draws)
    assert perfect.accuracy_mean == 1.0 and perfect.auc_mean == 1.0 and perfect.accuracy_std == 0.0
