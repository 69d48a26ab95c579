"""The test's settings door, the Statistic, the one decision rule and the backends' memory settings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from propgrad.errors import InvalidParameterError, ParameterTypeError
from propgrad.stats import permutation as permutation_module
from propgrad.stats.backends import COMPILED, TORCH, CompiledBackend, TorchBackend
from propgrad.stats.decision import decide
from propgrad.stats.null_statistics import GradientNull
from propgrad.stats.permutation import permutation_test
from propgrad.stats.settings import PLACEBO_VARIANTS, TestSettings, test_settings
from propgrad.stats.statistic import LABELS, as_statistic, observed_statistic


def test_the_door_returns_frozen_checked_settings_with_plain_types() -> None:
    settings = test_settings(n_permutations=np.int64(200), alpha=np.float32(0.05), seed=np.int32(3), sequential=10)
    # float32 0.05 lies a hair above 0.05, so the automatic placebo stop ceil(alpha * M) is 6, not 5
    expected = TestSettings(n_permutations=200, alpha=float(np.float32(0.05)), seed=3, sequential=10, placebo_stop=6)
    assert settings == expected
    assert type(settings.n_permutations) is int and type(settings.alpha) is float and type(settings.seed) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.alpha = 0.5  # type: ignore[misc]
    assert TestSettings.checked(per="unit").per == "unit"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"per": "pixel"}, InvalidParameterError, r"per must be one of 'step', 'unit', got 'pixel'"),
        ({"correction": "bonferroni"}, InvalidParameterError, r"correction must be one of None, 'holm', 'bh'"),
        ({"n_placebos": -1}, InvalidParameterError, r"n_placebos must be an integer >= 0, got -1"),
        ({"placebo": "noise"}, InvalidParameterError, r"placebo must be one of 'smooth_direction', 'region'"),
        ({"sequential": 0}, InvalidParameterError, r"sequential must be a positive integer, got 0"),
        ({"statistic": "spearman"}, InvalidParameterError, r"statistic must be one of 'gradient', 'pearson'"),
        ({"statistic": 3}, ParameterTypeError, r"statistic must be a name"),
        ({"min_effect": float("nan")}, InvalidParameterError, r"min_effect must be a number >= 0, not NaN"),
        ({"n_permutations": 0}, InvalidParameterError, r"n_permutations must be an integer in \[1, 10000000\]"),
    ],
)
def test_the_door_refuses_bad_settings_by_name(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        test_settings(**kwargs)


def test_the_placebo_variants_are_those_the_sources_draw() -> None:
    from propgrad.sources.placebo_sequences import VARIANTS

    assert tuple(VARIANTS) == PLACEBO_VARIANTS


def _spread(permuted: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return (permuted[:, 1:] - permuted[:, :-1]).abs().amax(1)


@pytest.mark.parametrize("statistic", ["gradient", "pearson", _spread])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_observed_statistic_is_the_tests_statistic_bit_for_bit(statistic, dtype) -> None:
    rng = np.random.default_rng(5)
    y = torch.tensor(rng.normal(size=(37, 6)), dtype=dtype)
    x = torch.tensor(np.cumsum(rng.uniform(0.1, 2.0, 37)))
    direct = observed_statistic(y, x, statistic=statistic)
    assert torch.equal(direct, permutation_test(y, x, n_permutations=50, statistic=statistic).statistic)
    assert torch.equal(observed_statistic(y[:, 2], x, statistic=statistic), direct[2])
    if statistic == "gradient":  # the compiled null kernel's value at the identity shuffle, bit for bit
        kernel = GradientNull(x, periodic=False, period=None, edge_order=1)
        identity = kernel.cpu_block(y.numpy(), np.arange(37, dtype=np.int32)[None], np.empty((1, 6)))[0]
        assert torch.equal(direct, torch.from_numpy(identity).to(dtype))


def test_a_statistic_has_one_name_and_label() -> None:
    assert as_statistic("gradient").label == LABELS["gradient"] == "E|grad|"
    assert as_statistic("pearson").label == "|Pearson r|"
    wrapped = as_statistic(_spread)
    assert (wrapped.name, wrapped.label, wrapped.fn) == ("_spread", "_spread", _spread)
    y = torch.randn(9, 2, dtype=torch.float64)
    assert permutation_test(y, n_permutations=20, statistic=_spread).statistic_name == "_spread"


def test_the_observed_statistic_is_computed_without_a_permutation(monkeypatch) -> None:
    from propgrad.stats import permutations

    def no_permutations(*args, **kwargs):
        raise AssertionError("a permutation was drawn")

    monkeypatch.setattr(permutations, "permutation_indices", no_permutations)
    monkeypatch.setattr(permutations, "permutation_blocks", no_permutations)
    for statistic in ("gradient", "pearson", _spread):
        assert observed_statistic(torch.randn(10, 3), statistic=statistic).shape == (3,)


def test_one_decision_rule() -> None:
    p = torch.tensor([0.001, 0.01, 0.001, 0.5])
    score = torch.tensor([1.0, 1.0, 0.05, 1.0])
    assert decide(p, 0.01).tolist() == [True, False, True, False]  # strict: p = alpha is not significant
    assert decide(p, 0.01, score, 0.1).tolist() == [True, False, False, False]
    assert decide(0.001, 0.01) is True and decide(np.float64(0.02), 0.01) == np.False_
    assert not bool(decide(torch.tensor(0.001), 0.01, torch.tensor(float("nan"))))


def test_memory_settings_belong_to_the_backends() -> None:
    import inspect

    assert {"chunk_size", "memory_budget", "edge_order"}.isdisjoint(inspect.signature(permutation_test).parameters)
    assert not hasattr(permutation_module, "_COMPILED")
    assert COMPILED.memo is TORCH.memo
    with pytest.raises(InvalidParameterError, match="chunk_size must be a positive integer, got 0"):
        TorchBackend(chunk_size=0)
    with pytest.raises(ParameterTypeError, match="memory_budget must be a positive integer, got 1.5"):
        CompiledBackend(memory_budget=1.5)  # type: ignore[arg-type]
