"""The bad-input corpus for PropertyGradient.attribute: every mistake is a TypeError or ValueError
naming what was wrong and what was expected, raised before any work where it can be."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from propgrad import PropertyGradient
from propgrad.core.forward import run_settings
from propgrad.errors import ModelOutputError
from propgrad.explain.scoring import PropertyAxis, score_outputs, score_sequences
from propgrad.stats.settings import test_settings
from tests.fakes import Brighten


def two_logits(x: torch.Tensor) -> torch.Tensor:
    m = x.mean((1, 2, 3))
    return torch.stack([10 * (m - 0.5), 10 * (0.5 - m)], dim=1)


@pytest.fixture
def image() -> torch.Tensor:
    return torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))


RUN_OPTIONS = ("batch_size", "show_progress")  # PropertyGradient's own settings
TEST_OPTIONS = ("statistic", "per", "sequential", "placebo")  # the rarer test options, in settings=


def attribute(image: torch.Tensor, model=two_logits, *, pg_kwargs=None, **kwargs):
    """``PropertyGradient(model, **pg_kwargs).attribute(image, source, ...)``; run and rarer test
    options go where they belong (the constructor, ``settings=test_settings(...)``)."""
    source = kwargs.pop("source", Brighten(steps=6))  # 7 images with the original
    pg_kwargs = {**(pg_kwargs or {}), **{k: kwargs.pop(k) for k in RUN_OPTIONS if k in kwargs}}
    rare = {k: kwargs.pop(k) for k in TEST_OPTIONS if k in kwargs}
    if rare:
        kwargs["settings"] = test_settings(**rare)
    settings = {"n_permutations": 20, **kwargs}
    return PropertyGradient(model, **pg_kwargs).attribute(image, source, **settings)


# (attribute keyword arguments, error type, message) - message names the argument, the value and what is expected
SETTINGS = [
    ({"target": 2.0}, TypeError, r"target must be an int, None, .*got 2.0 \(float\); bools and floats are not"),
    ({"target": True}, TypeError, r"target must be an int, None, .*got True \(bool\)"),
    ({"target": torch.tensor(1.0)}, TypeError, r"integer column indices, got tensor\(1.\) of dtype torch.float32"),
    ({"target": np.array([1.0])}, TypeError, r"integer column indices, got array\(\[1.\]\) of dtype float64"),
    ({"target": [0.0]}, TypeError, r"integer column indices, got 0.0 \(float\)"),
    ({"target": "cat"}, TypeError, r"target must be an int, None, .*got 'cat' \(str\)"),
    (
        {"seed": 1.5},
        TypeError,
        r"seed must be an integer in \[0, 2\*\*63 - 1\], got 1.5 \(float\); seeds are not rounded",
    ),
    ({"seed": None}, TypeError, r"seed must be an integer in \[0, 2\*\*63 - 1\], got None"),
    ({"seed": "abc"}, TypeError, r"seed must be an integer in \[0, 2\*\*63 - 1\], got 'abc' \(str\)"),
    ({"seed": 2**70}, ValueError, r"seed must be an integer in \[0, 2\*\*63 - 1\] .*got 1180591620717411303424"),
    ({"alpha": 1.5}, ValueError, r"alpha must be a number in \(0, 1\), got 1.5"),
    ({"alpha": -0.1}, ValueError, r"alpha must be a number in \(0, 1\), got -0.1"),
    ({"alpha": "0.05"}, TypeError, r"alpha must be a number in \(0, 1\), got '0.05' \(str\)"),
    ({"n_permutations": 10**12}, ValueError, r"n_permutations must be an integer in \[1, 10000000\], got 10{12}"),
    ({"n_permutations": 0}, ValueError, r"n_permutations must be an integer in \[1, 10000000\], got 0"),
    ({"n_permutations": 100.0}, TypeError, r"n_permutations must be an integer .*got 100.0 \(float\)"),
    (
        {"statistic": "integrated_gradients"},
        ValueError,
        r"statistic must be one of 'gradient', 'pearson', .* or a callable",
    ),
    ({"statistic": "pearsons"}, ValueError, r"got 'pearsons'; did you mean 'pearson'\?"),
    ({"statistic": 3}, TypeError, r"statistic must be a name \(gradient, pearson, .*\) or a callable, got int"),
    ({"per": "degree"}, ValueError, r"per must be one of 'step', 'unit', got 'degree'"),
    ({"batch_size": 0}, ValueError, r"batch_size must be a positive integer, got 0"),
    ({"batch_size": 2.5}, TypeError, r"batch_size must be a positive integer, got 2.5 \(float\)"),
    ({"show_progress": "yes"}, TypeError, r"show_progress must be True or False, got 'yes' \(str\)"),
    (
        {"source": "gaussian_vignette", "source_params": [("steps", 5)]},
        TypeError,
        r"source_params must be a dict .*list",
    ),
    (
        {"source": "gaussian_vignette", "source_params": {5: 1}},
        TypeError,
        r"source_params keys must be parameter names",
    ),
    (
        {"source": "gaussian_vignette", "source_params": {"stepz": 5}},
        TypeError,
        r"source 'gaussian_vignette' has no parameter 'stepz'; its parameters: .*steps",
    ),
    (
        {"source": "gaussian_vignette", "source_params": {"steps": 10**9}},
        ValueError,
        r"steps must be an integer in \[2, ",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), SETTINGS)
def test_bad_settings_are_refused_before_any_sequence_is_built(image, kwargs, error, match):
    before = Brighten.calls
    with pytest.raises(error, match=match):
        attribute(image, **kwargs)
    if "target" not in kwargs:
        assert Brighten.calls == before  # refused before the source ran


def _complex(x):
    return torch.zeros(x.shape[0], 2, dtype=torch.complex64)


# (model or PropertyGradient keyword arguments, error type, message)
MODELS = [
    (
        lambda x: torch.zeros(x.shape[0], 0),
        ValueError,
        r"must return shape \(7, n_outputs\) with n_outputs >= 1 .*\(7, 0\)",
    ),
    (_complex, ModelOutputError, r"the model returned complex outputs \(torch.complex64\); return real values"),
    (
        lambda x: [x.mean((1, 2, 3))],
        ValueError,
        r"must return a tensor of shape \(batch, n_outputs\) or \(batch,\), got list",
    ),
    (
        lambda x: torch.ones(x.shape[0], 2, dtype=torch.bool),
        ModelOutputError,
        r"must return numbers, got a tensor of dtype torch.bool",
    ),
    (
        {"preprocess": lambda x: list(x)},
        TypeError,
        r"preprocess '<lambda>' must return a tensor with one row per image, .*got list",
    ),
    (
        {"preprocess": lambda x: x[0]},
        ValueError,
        r"one row per image, \(B, \.\.\.\) = \(7, \.\.\.\) .*got shape \(3, 8, 8\)",
    ),
    ({"preprocess": lambda x: x.sum()}, ValueError, r"one row per image.*got shape \(\)"),
    (
        {"output_transform": lambda o: o.sum()},
        ValueError,
        r"output_transform '<lambda>' must return shape \(7, C\) or \(7,\) .*got \(\)",
    ),
    (
        {"output_transform": lambda o: o * float("nan")},
        ValueError,
        r"output_transform '<lambda>' returned NaN or Inf at step 0, column 0",
    ),
    (
        {"output_transform": lambda o: o.tolist()},
        TypeError,
        r"output_transform '<lambda>' must return a real tensor .*got list",
    ),
]


@pytest.mark.parametrize(("model", "error", "match"), MODELS)
def test_models_preprocessing_and_transforms_returning_the_wrong_thing(image, model, error, match):
    kwargs = model if isinstance(model, dict) else {}
    with pytest.raises(error, match=match):
        attribute(image, two_logits if kwargs else model, pg_kwargs=kwargs)


def test_errors_are_value_or_type_errors_for_the_command_line(image):
    for _, error, _ in SETTINGS:
        assert issubclass(error, (TypeError, ValueError))
    with pytest.raises((TypeError, ValueError)):
        attribute(image, seed=1.5)


def test_numpy_scalars_are_accepted_where_numbers_are(image):
    a = attribute(image, target=np.int64(1), alpha=np.float32(0.05), seed=np.int64(2), n_permutations=np.int64(50))
    b = attribute(image, target=1, alpha=0.05, seed=2, n_permutations=50)
    assert a.target == 1 and torch.equal(a.score, b.score) and torch.equal(a.p_value, b.p_value)
    assert attribute(image, target=torch.tensor(1)).target == 1


def test_score_outputs_refuses_a_float_target_by_name():
    outputs = torch.rand(5, 3).softmax(1)
    test = test_settings(n_permutations=10)
    with pytest.raises(TypeError, match=r"target must be an integer column index, None or 'predicted', got 1.0"):
        score_outputs(outputs, outputs[0], 1.0, PropertyAxis(), test)
    with pytest.raises(TypeError, match=r"got True \(bool\)"):
        score_outputs(outputs, outputs[0], True, PropertyAxis(), test)
    assert score_outputs(outputs, outputs[0], np.int64(2), PropertyAxis(), test).target == 2


def test_the_scoring_settings_are_refused_at_their_doors_before_the_model_runs(image):
    calls = []

    def model(x):
        calls.append(x.shape[0])
        return two_logits(x)

    sequence = Brighten().generate(image)
    for door, kwargs, match in [
        (test_settings, {"seed": 1.5}, "seed must be an integer"),
        (test_settings, {"alpha": 2.0}, "alpha must be a number"),
        (test_settings, {"statistic": "integrated_gradients"}, "statistic must be one of"),
        (test_settings, {"n_permutations": 10**12}, "n_permutations must be an integer"),
        (run_settings, {"device": "bogus"}, "device must be one of the available devices"),
        (run_settings, {"output_transform": "logsoftmax"}, "output_transform must be one of"),
        (run_settings, {"additional_forward_args": (1.0,), "per_image_args": (True, False)}, "2 flags for 1"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            run, test = run_settings(), test_settings(n_permutations=10)
            run, test = (door(**kwargs), test) if door is run_settings else (run, door(**kwargs))
            score_sequences(model, image[None], [sequence], [None], run, test)
    assert calls == []
