"""Bad inputs to the baselines' helpers are refused up front, naming what was wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import propgrad
import propgrad.explain.quantus as pq
from propgrad.errors import InvalidParameterError
from propgrad.example_model import colour_balance_net


def test_baseline_maps_refuses_a_target_the_model_does_not_have():
    image = torch.rand(3, 16, 16)
    with pytest.raises(InvalidParameterError, match=r"target must be an integer in \[0, 1\], got 5; a class index"):
        propgrad.baseline_maps(colour_balance_net(), image, target=5, baselines=["occlusion"], source="alpha_patch")


@pytest.mark.parametrize(
    ("x_shape", "y", "s_shape", "match"),
    [
        ((2, 16, 16, 3), [0, 1], None, r"x_batch must be channel-first .*got shape \(2, 16, 16, 3\); .*transpose"),
        ((2, 3, 16, 16), [0, 1, 1], None, r"y_batch must be one class index per image of x_batch \(2 integers\)"),
        (
            (2, 3, 16, 16),
            [0, 1],
            (3, 1, 16, 16),
            r"s_batch must hold one mask .*\(2, 1, 16, 16\), got \(3, 1, 16, 16\)",
        ),
        ((2, 3, 16, 16), [0, 1], (2, 1, 8, 8), r"s_batch must hold one mask .*got \(2, 1, 8, 8\)"),
    ],
)
def test_quantus_evaluate_checks_its_batches_at_the_adapter(x_shape, y, s_shape, match):
    rng = np.random.default_rng(0)
    x = rng.random(x_shape, dtype=np.float32)
    s = None if s_shape is None else (rng.random(s_shape) > 0.5).astype(np.float32)
    metric = "RelevanceMassAccuracy" if s is not None else "Sparseness"
    with pytest.raises(InvalidParameterError, match=match):
        pq.evaluate(metric, colour_balance_net(), x, np.array(y), baseline="occlusion", s_batch=s)
