"""The bad-input corpus for the mathematics: property_gradient, permutation_test, prediction_flips.

Each bad input gets a clear error naming what was wrong and what was expected, or, where the input
is valid but extreme, a finite and correct result instead of inf or NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from propgrad.core.validation import ParameterTypeError
from propgrad.errors import InvalidParameterError
from propgrad.stats import permutation as permutation_module
from propgrad.stats.flips import prediction_flips
from propgrad.stats.gradient import finite_difference_weights, property_gradient
from propgrad.stats.permutation import clear_cache, permutation_test

HUGE = torch.tensor([3e38, -3e38, 3e38, -3e38, 3e38], dtype=torch.float32)


def _numpy_score(y: np.ndarray, x: np.ndarray | None = None) -> float:
    return float(np.abs(np.gradient(y, *(() if x is None else (x,)))).mean())


def test_float32_outputs_whose_differences_overflow_score_finite_in_float64():
    expected = _numpy_score(HUGE.double().numpy())  # 3.6e38: beyond float32
    score = property_gradient(HUGE)
    assert torch.isfinite(score) and score.dtype == torch.float64
    assert float(score) == pytest.approx(expected, rel=1e-12)
    test = permutation_test(HUGE, n_permutations=200)
    assert torch.isfinite(test.statistic) and float(test.statistic) == pytest.approx(expected, rel=1e-12)
    assert torch.isfinite(test.null_distribution).all()
    assert test.p_value == permutation_test(HUGE.double(), n_permutations=200).p_value
    pearson = permutation_test(HUGE, n_permutations=200, statistic="pearson")
    r = abs(np.corrcoef(np.arange(5), HUGE.double().numpy())[0, 1])
    assert float(pearson.statistic) == pytest.approx(r, rel=1e-5)
    assert torch.isfinite(pearson.null_distribution).all()


def test_ordinary_float32_outputs_keep_their_dtype():
    y = torch.tensor([0.1, 0.4, 0.2, 0.9], dtype=torch.float32)
    assert property_gradient(y).dtype == torch.float32
    assert permutation_test(y, n_permutations=20).statistic.dtype == torch.float32


def test_float64_outputs_too_large_even_for_float64_are_refused_by_name():
    y = torch.tensor([1e308, -1e308, 1e308], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"outputs range over .* overflow even float64; rescale the outputs"):
        property_gradient(y)
    with pytest.raises(ValueError, match="overflow even float64"):
        permutation_test(y, n_permutations=10)


@pytest.mark.parametrize("spacing", [1e-300, 1e-200, 1e200, 1e300])
def test_values_of_extreme_spacing_give_the_scaled_score_not_nan(spacing):
    y = np.array([0.0, 1.0, 4.0, 9.0, 16.0, 20.0])
    x = np.arange(6) * spacing
    expected = _numpy_score(y) / spacing  # numpy itself gives inf/nan for 1e-300
    score = property_gradient(torch.tensor(y), torch.tensor(x))
    assert float(score) == pytest.approx(expected, rel=1e-12)
    test = permutation_test(torch.tensor(y), torch.tensor(x), n_permutations=200)
    assert float(test.statistic) == pytest.approx(expected, rel=1e-12)
    reference = permutation_test(torch.tensor(y), n_permutations=200)
    assert test.p_value == reference.p_value  # a rescaled grid: the same test
    pearson = permutation_test(torch.tensor(y), torch.tensor(x), n_permutations=200, statistic="pearson")
    unit = permutation_test(torch.tensor(y), n_permutations=200, statistic="pearson")
    assert float(pearson.statistic) == pytest.approx(float(unit.statistic), rel=1e-12)


def test_values_of_extreme_spacing_with_float32_outputs_and_periodic_wrap():
    y = torch.tensor([0.0, 1.0, 0.5, 2.0], dtype=torch.float32)
    score = property_gradient(y, torch.arange(4, dtype=torch.float64) * 1e-300, periodic=True)
    unit = property_gradient(y.double(), periodic=True)
    assert torch.isfinite(score) and float(score) == pytest.approx(float(unit) * 1e300, rel=1e-6)


def test_values_too_unevenly_spaced_for_a_finite_stencil_are_refused_by_name():
    x = torch.tensor([0.0, 1e-300, 2e-300, 1e300], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"values are spaced from 1e-300 to 1e\+300 apart, too unevenly"):
        finite_difference_weights(x)


def test_ordinary_grids_give_the_weights_they_always_did():
    x = torch.tensor([0.0, 0.5, 2.0, 2.25, 7.0], dtype=torch.float64)
    _, w = finite_difference_weights(x)
    h0, h1 = 0.5, 1.5
    assert float(w[1, 0]) == -h1 / (h0 * (h0 + h1))  # the formula on the values as given, bit for bit


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seed": 1.5}, ParameterTypeError, r"seed must be an integer in \[0, 2\*\*63 - 1\], got 1.5 \(float\)"),
        ({"seed": None}, ParameterTypeError, r"seed must be an integer .*, got None"),
        ({"seed": "abc"}, ParameterTypeError, r"seed must be an integer .*, got 'abc' \(str\)"),
        ({"seed": 2**70}, ValueError, r"seed must be an integer .*signed 64-bit.*, got 1180591620717411303424"),
        ({"seed": -1}, ValueError, r"seed must be an integer in \[0, 2\*\*63 - 1\].*got -1"),
        ({"alpha": "0.05"}, ParameterTypeError, r"alpha must be a number in \(0, 1\), got '0.05' \(str\)"),
        ({"alpha": 0.0}, ValueError, r"alpha must be a number in \(0, 1\), got 0.0"),
        ({"alpha": 1.0}, ValueError, r"alpha must be a number in \(0, 1\), got 1.0"),
        ({"alpha": float("nan")}, ValueError, r"alpha must be a number in \(0, 1\), not NaN"),
        ({"alpha": True}, ParameterTypeError, r"alpha must be a number in \(0, 1\), got True \(bool\)"),
        ({"n_permutations": 10**12}, ValueError, r"n_permutations must be an integer in \[1, 10000000\].*resolve"),
        ({"n_permutations": 10.0}, ParameterTypeError, r"n_permutations must be an integer .*got 10.0 \(float\)"),
        (
            {"statistic": "integrated_gradients"},
            ValueError,
            r"statistic must be one of 'gradient', 'pearson', .* or a callable .*got 'integrated_gradients'.*baselines",
        ),
        ({"statistic": "gradients"}, ValueError, r"got 'gradients'; did you mean 'gradient'\?"),
        ({"statistic": None}, TypeError, "statistic must be a name .* or a callable, got NoneType"),
        ({"device": "bogus"}, ValueError, r"device must be one of the available devices \('cpu'"),
        ({"device": 7}, ParameterTypeError, r"device must be a device name such as 'cpu'.*, got 7 \(int\)"),
    ],
)
def test_bad_settings_of_the_permutation_test_are_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        permutation_test(torch.tensor([0.0, 1.0, 3.0, 2.0, 5.0]), **{"n_permutations": 10, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_says_which_devices_exist():
    with pytest.raises(ValueError, match=r"device 'cuda' is not available: .*; available devices: 'cpu'"):
        permutation_test(torch.rand(5), n_permutations=10, device="cuda")


def test_numpy_scalars_are_numbers_for_alpha_and_threshold():
    y = torch.tensor([0.0, 1.0, 3.0, 2.0, 5.0])
    test = permutation_test(y, n_permutations=50, alpha=np.float32(0.05))
    assert isinstance(test.alpha, float) and test.alpha == pytest.approx(0.05)
    assert permutation_test(y, n_permutations=np.int64(50), seed=np.int64(3)).n_permutations == 50
    scores = torch.tensor([0.2, 0.4, 0.6, 0.3])
    assert prediction_flips(scores, threshold=np.float32(0.5)).to_dict() == prediction_flips(scores).to_dict()
    assert prediction_flips(scores, threshold=np.float64(0.35)).flip_steps.tolist() == [1, 3]


def test_a_test_too_large_for_memory_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(permutation_module, "MAX_TEST_BYTES", 2**20)
    with pytest.raises(ValueError, match=r"n_permutations=100000 for 50 steps and 3 output columns would need about"):
        permutation_test(torch.rand(50, 3), n_permutations=100_000)
    with pytest.raises(ValueError, match=r"MAX_TEST_BYTES\); use fewer permutations"):
        permutation_test(torch.rand(50, 3), n_permutations=100_000)


def test_the_size_check_counts_no_permutation_matrix_where_the_kernel_draws_them(monkeypatch):
    # 20,000 shuffles of 200 steps: a 16 MB (K, N) matrix, over a 4 MiB limit; the null (K, 1) is 160 kB
    monkeypatch.setattr(permutation_module, "MAX_TEST_BYTES", 4 * 2**20)
    y = torch.rand(200)
    clear_cache()
    for _ in range(2):  # a first use streams; the second too, since stream 2's one-column kernel draws its own
        assert permutation_test(y, n_permutations=20_000).null_distribution.shape == (20_000,)
    with pytest.raises(ValueError, match="MAX_TEST_BYTES"):  # stream 1 memoises the matrix on a second use
        for _ in range(2):
            permutation_test(y, n_permutations=20_000, permutation_stream=1)


def test_a_test_that_would_take_minutes_warns(monkeypatch):
    monkeypatch.setattr(permutation_module, "SLOW_TEST_WORK", 10**4)
    with pytest.warns(UserWarning, match=r"shuffles 20 steps of 1 output columns 1000 times .*may take minutes"):
        permutation_test(torch.rand(20), n_permutations=1000)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (["a", "b", "c"], r"values must be real numbers .*one property value per step.*got text \('a'"),
        (np.array(["a", "b", "c"]), r"values must be real numbers .*got text"),
        (np.array([0, 1j, 2]), r"values must be real numbers, got complex"),
        (torch.tensor([0, 1j, 2]), r"values must be real numbers, got complex"),
        ([0, 1 + 0j, 2], r"values must be real numbers, got complex"),
        ([0, None, 2], r"values must be real numbers"),
    ],
)
def test_values_that_are_not_real_numbers_are_named(values, match) -> None:
    with pytest.raises(ParameterTypeError, match=match):
        property_gradient(torch.randn(3), values)
    with pytest.raises(ParameterTypeError, match=match):
        permutation_test(torch.randn(3), values, n_permutations=10)


@pytest.mark.parametrize("period", ["x", "360", [360], 1j])
def test_a_period_that_is_not_a_number_is_named(period) -> None:
    with pytest.raises(ParameterTypeError, match=r"period must be a number > 0.*one full turn"):
        property_gradient(torch.randn(3), [0.0, 1.0, 2.0], periodic=True, period=period)
    with pytest.raises(ParameterTypeError, match=r"period must be a number > 0"):
        permutation_test(torch.randn(3), [0.0, 1.0, 2.0], periodic=True, period=period, n_permutations=10)


def test_a_negative_min_effect_is_refused_at_every_door() -> None:
    from propgrad.stats.decision import significant_with_min_effect
    from propgrad.stats.placebo_test import placebo_test
    from propgrad.stats.settings import test_settings

    match = r"min_effect must be a number >= 0, got -1.*smallest score"
    with pytest.raises(InvalidParameterError, match=match):
        test_settings(min_effect=-1)
    with pytest.raises(InvalidParameterError, match=match):
        significant_with_min_effect(0.001, 0.5, 0.01, -1)
    with pytest.raises(InvalidParameterError, match=match):
        placebo_test(torch.tensor(1.0), torch.zeros(20), min_effect=-1)
    assert test_settings(min_effect=0).min_effect == 0.0
