"""Tests of propgrad.stats.flips: decisions along a sequence and the two flip definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from propgrad.stats.flips import flips_along, prediction_flips


def test_argmax_flips_and_both_definitions() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.5, 0.0], [0.5, 1.0, 0.0], [0.0, 1.0, 3.0], [0.0, 1.0, 0.5]])
    res = prediction_flips(logits)
    assert res.decisions.tolist() == [0, 0, 1, 2, 1]
    assert res.decisions.dtype == torch.long
    assert res.flip_steps.tolist() == [2, 3, 4] and res.n_flips == 3
    assert res.flipped_anywhere and res.final_differs


def test_flip_and_flip_back_differs_between_definitions() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.8, 0.2]])
    res = prediction_flips(probs)
    assert res.flip_steps.tolist() == [1, 3] and res.n_flips == 2
    assert res.flipped_anywhere and not res.final_differs


def test_no_flip() -> None:
    res = prediction_flips(np.array([[0.1, 0.9], [0.2, 0.8], [0.45, 0.55]]))
    assert res.n_flips == 0 and res.flip_steps.numel() == 0
    assert not res.flipped_anywhere and not res.final_differs


def test_binary_threshold_default_and_custom() -> None:
    scores = torch.tensor([0.2, 0.4, 0.6, 0.45, 0.7])
    default = prediction_flips(scores)
    assert default.decisions.tolist() == [0, 0, 1, 0, 1] and default.flip_steps.tolist() == [2, 3, 4]
    assert default.final_differs
    logit = prediction_flips(torch.tensor([-1.0, -0.2, 0.3, 0.1]), threshold=0.0)
    assert logit.decisions.tolist() == [0, 0, 1, 1] and logit.n_flips == 1
    high = prediction_flips(scores, threshold=0.65)
    assert high.decisions.tolist() == [0, 0, 0, 0, 1] and high.flip_steps.tolist() == [4]


def test_single_column_matrix_is_the_binary_case_and_to_dict() -> None:
    # a binary classifier returning (N, 1) flips exactly where the same scores as (N,) flip
    column = prediction_flips(torch.tensor([[0.1], [0.9], [0.2]]))
    flat = prediction_flips(torch.tensor([0.1, 0.9, 0.2]))
    assert column.to_dict() == flat.to_dict()
    record = json.loads(json.dumps(prediction_flips([0.1, 0.9, 0.2]).to_dict()))
    assert record == {
        "decisions": [0, 1, 0],
        "flip_steps": [1, 2],
        "n_flips": 2,
        "reference_decision": 0,
        "flipped_anywhere": True,
        "final_differs": False,
    }


def test_both_labels_compare_with_the_original_decision_when_given() -> None:
    # the sequence never changes its decision (class 1) but the original image was class 0
    outputs = torch.tensor([[0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])
    alone = prediction_flips(outputs)
    assert (alone.n_flips, alone.flipped_anywhere, alone.final_differs) == (0, False, False)
    against = prediction_flips(outputs, reference=torch.tensor([0.6, 0.4]))
    assert against.reference_decision == 0
    assert (against.n_flips, against.flipped_anywhere, against.final_differs) == (0, True, True)
    # an original agreeing with the last step: a flip mid-way counts anywhere, not at the end
    mid = prediction_flips(torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]]), reference=[0.9, 0.1])
    assert (mid.flipped_anywhere, mid.final_differs) == (True, False)


def test_reference_must_match_the_outputs_columns() -> None:
    with pytest.raises(ValueError, match="reference must hold the 2 output"):
        prediction_flips(torch.rand(3, 2), reference=torch.rand(3))


@pytest.mark.parametrize("threshold", [float("nan"), float("inf")])
def test_a_non_finite_threshold_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        prediction_flips(torch.tensor([0.1, 0.9]), threshold=threshold)


def test_numpy_scalar_threshold_is_accepted() -> None:
    assert prediction_flips(torch.tensor([0.1, 0.9]), threshold=np.float32(0.05)).n_flips == 0


@pytest.mark.parametrize(
    ("outputs", "kwargs", "error", "match"),
    [
        (torch.zeros(3, 2), {"threshold": 0.5}, ValueError, "threshold applies to"),
        (torch.zeros(3), {"threshold": "high"}, TypeError, "threshold must be a number"),
        (torch.tensor([0.1, float("nan")]), {}, ValueError, "outputs contains NaN or Inf .*step 1"),
        (torch.zeros(2, 2, 2), {}, ValueError, "outputs must have shape"),
        ({"a": 1}, {}, TypeError, "outputs must be"),
    ],
)
def test_bad_input(outputs: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        prediction_flips(outputs, **kwargs)


@pytest.mark.parametrize("columns", [1, 2, 7])
def test_flips_along_a_checked_block_are_prediction_flips_against_its_first_row(columns) -> None:
    # the scorer's path for outputs a forward pass has checked: row 0 the original image, the steps after it
    generator = torch.Generator().manual_seed(columns)
    for trial in range(20):
        block = torch.rand(12, columns, generator=generator)
        if trial % 4 == 0:
            block[5:] = block[0]  # no flip at all
        fast = flips_along(block)
        checked = prediction_flips(block[1:], reference=block[0])
        assert fast.to_dict() == checked.to_dict()
        assert fast.decisions.dtype == fast.flip_steps.dtype == torch.long
