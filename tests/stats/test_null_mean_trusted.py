"""The effect size's one checked pass (propgrad.stats.null_mean): the same values, to the last bit, as its definition.

``effect_size`` checks its input once, builds the stencil once (unit steps: once per grid, then
reused) and computes the observed gradient statistic on that stencil instead of calling
``property_gradient`` again. Its definition is ``property_gradient(outputs) / exact_null_mean(outputs)``
(NaN for a constant column); every result here must equal that division to the last bit, whatever
grid was used before (the reused unit-step stencils must not leak between grids).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import propgrad.stats.null_mean as null_mean_module
from propgrad.errors import InvalidParameterError
from propgrad.stats.gradient import finite_difference_weights, property_gradient
from propgrad.stats.null_mean import effect_size, exact_null_mean, gradient_effect_size
from propgrad.stats.statistic import observed_statistic


def _by_definition(outputs, values, statistic: str, **kwargs) -> torch.Tensor:
    """observed / exact null mean through the public doors, NaN where every output is constant."""
    if statistic == "gradient":
        observed = property_gradient(outputs, values, **kwargs)
    else:
        observed = observed_statistic(outputs, values, statistic=statistic, **kwargs)
    mean = exact_null_mean(outputs, values, statistic=statistic, **kwargs)
    y = torch.as_tensor(outputs).reshape(len(outputs), -1)
    constant = (y == y[:1]).all(0)
    if mean.numel() != constant.numel():
        constant = constant.all()
    return torch.where(constant.reshape(mean.shape), torch.nan, observed.to(torch.float64) / mean)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _cases():
    rng = np.random.default_rng(5)
    for i in range(48):
        n = int(rng.integers(3, 33))
        c = int(rng.integers(1, 4))
        y = rng.normal(size=(n, c)) + np.linspace(0.0, float(rng.uniform(-2, 2)), n)[:, None]
        if i % 5 == 0:
            y[:, 0] = 0.3  # a constant column
        outputs = torch.from_numpy(y if i % 2 else y.astype(np.float32))
        if i % 3 == 0:
            outputs = outputs[:, -1]  # 1-D outputs
        values = None if i % 4 < 2 else np.cumsum(rng.uniform(0.4, 2.0, n))
        kwargs = {"periodic": i % 6 == 1, "edge_order": 2 if i % 7 == 3 else 1}
        if kwargs["periodic"] and i % 12 == 7:
            kwargs["period"] = float(n + 3) if values is None else float(values[-1] - values[0]) * 1.2
        yield outputs, values, kwargs


@pytest.mark.parametrize("statistic", ["gradient", "vector_l1", "vector_l2"])
def test_effect_size_equals_its_definition_to_the_last_bit(statistic) -> None:
    for outputs, values, kwargs in _cases():
        got = effect_size(outputs, values, statistic=statistic, **kwargs)
        expected = _by_definition(outputs, values, statistic, **kwargs)
        assert _same_bits(got, expected), (statistic, tuple(outputs.shape), values is None, kwargs, got, expected)
        if statistic == "gradient":
            assert _same_bits(gradient_effect_size(outputs, values, **kwargs), expected)


def test_reused_unit_step_stencils_are_those_of_each_grid_and_stay_unchanged() -> None:
    y = torch.rand(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grids = [{}, {"edge_order": 2}, {"periodic": True}, {"periodic": True, "period": 12.0}]
    first = [effect_size(y, **grid) for grid in grids]
    second = [effect_size(y, **grid) for grid in reversed(grids)][::-1]  # the other order: cached ones reused
    for a, b, grid in zip(first, second, grids):
        assert _same_bits(a, b) and _same_bits(a, _by_definition(y, None, "gradient", **grid))
    assert len({tuple(t.tolist()) for t in first}) == len(grids)  # four grids, four different results
    for grid in grids:
        indices, weights, _ = null_mean_module._unit_stencil(
            9, grid.get("periodic", False), grid.get("period"), grid.get("edge_order", 1)
        )
        expected = finite_difference_weights(torch.arange(9, dtype=torch.float64), **grid)
        assert torch.equal(indices, expected[0]) and torch.equal(weights, expected[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"edge_order": 3}, "edge_order must be 1 or 2"),
        ({"periodic": True, "period": 2.0}, "period must exceed the span"),
        ({"periodic": True, "period": -1.0}, "period"),
        ({"values": [0.0, 2.0, 1.0, 3.0, 4.0]}, "increasing"),
    ],
)
def test_bad_grids_are_still_refused_after_good_ones_were_reused(kwargs, match) -> None:
    y = np.arange(5.0) ** 2
    effect_size(y)
    effect_size(y, periodic=True)
    with pytest.raises(InvalidParameterError, match=match):
        effect_size(y, **kwargs)
    with pytest.raises(InvalidParameterError, match=match):
        exact_null_mean(y, **kwargs)


def test_bad_outputs_are_refused_at_the_door() -> None:
    with pytest.raises(InvalidParameterError, match="NaN or Inf"):
        effect_size(torch.tensor([0.0, 1.0, float("nan"), 2.0]))
    with pytest.raises(InvalidParameterError, match="at least 2 steps"):
        effect_size(torch.tensor([1.0]))
