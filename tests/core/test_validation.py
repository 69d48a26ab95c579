"""Shared input checks: one vocabulary, one message style (name, expected, received)."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from propgrad import errors
from propgrad.core import validation
from propgrad.core.validation import (
    MAX_STEPS,
    Bounds,
    ParameterTypeError,
    check_alpha,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_probability,
    check_seed,
    check_sequence_size,
    check_steps,
    check_values,
)
from propgrad.errors import InvalidParameterError, PropgradError


def test_check_int_accepts_integers_and_names_bad_values():
    assert check_int(np.int64(3), "steps", minimum=2) == 3
    assert type(check_int(np.int32(3), "steps")) is int
    with pytest.raises(ValueError, match="steps must be an integer >= 2, got 1"):
        check_int(1, "steps", minimum=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got True"):
        check_int(True, "batch_size")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 2.0"):
        check_int(2.0, "batch_size")


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (11, {"maximum": 10}, ValueError, r"n must be an integer in \[1, 10\], got 11"),
        (-5, {"minimum": None, "maximum": -6}, ValueError, r"n must be an integer <= -6, got -5"),
        (np.bool_(True), {}, ParameterTypeError, r"n must be a positive integer, got .*\(bool_?\)"),
        ("3", {}, ParameterTypeError, r"n must be a positive integer, got '3' \(str\)"),
        ("3.5", {"strings": True}, ValueError, r"n must be a positive integer, got '3.5'"),
        (None, {}, TypeError, r"n must be a positive integer, got None \(NoneType\)"),
        (0, {"hint": "one per row"}, ValueError, r"got 0; one per row"),
    ],
)
def test_check_int_bad_values(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_int(value, "n", **kwargs)


def test_check_int_bounds_and_text():
    assert check_int(10, "n", maximum=10) == 10
    assert check_int(-7, "n", minimum=None) == -7
    assert check_int(" 4 ", "n", strings=True) == 4


def test_wrong_types_are_both_type_and_value_errors():
    with pytest.raises(TypeError):
        check_number("x", "p")
    with pytest.raises(ValueError):
        check_number("x", "p")
    assert issubclass(ParameterTypeError, TypeError) and issubclass(ParameterTypeError, ValueError)


@pytest.mark.parametrize(
    "value", [0.05, np.float32(0.05), np.float16(0.5), np.float64(0.05), 1, np.int64(1), Fraction(1, 4)]
)
def test_check_number_accepts_python_and_numpy_numbers(value):
    out = check_number(value, "alpha", Bounds(0, 1))
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (True, {}, ParameterTypeError, r"p must be a finite number, got True \(bool\)"),
        (np.bool_(False), {}, ParameterTypeError, r"p must be a finite number, got"),
        ("0.5", {}, ParameterTypeError, r"p must be a finite number, got '0.5' \(str\)"),
        ("abc", {"strings": True}, ValueError, r"p must be a finite number, got 'abc'"),
        (None, {}, ParameterTypeError, r"got None \(NoneType\)"),
        ([0.5], {}, ParameterTypeError, r"got \[0.5\] \(list\)"),
        (torch.tensor(0.5), {}, ParameterTypeError, r"tensor of shape \(\).*\.item\(\)"),
        (math.nan, {}, ValueError, "p must be a finite number, not NaN"),
        (math.inf, {}, ValueError, "p must be a finite number, got inf"),
        (-math.inf, {"bounds": Bounds(minimum=0)}, ValueError, "p must be a finite number >= 0, got -inf"),
        (10**400, {}, ValueError, "p must be a finite number, got a 401-digit number"),
        (0, {"bounds": Bounds(minimum=0, min_inclusive=False)}, ValueError, "p must be a number > 0, got 0"),
        (1, {"bounds": Bounds(maximum=1, max_inclusive=False)}, ValueError, "p must be a number < 1, got 1"),
        (2, {"bounds": Bounds(0, 1)}, ValueError, r"p must be a number in \[0, 1\], got 2"),
        (0, {"bounds": Bounds(0, 1, min_inclusive=False)}, ValueError, r"in \(0, 1\]"),
        (1e308, {"bounds": Bounds(-1, 255)}, ValueError, r"in \[-1, 255\], got 1e\+308"),
        (-2, {"bounds": Bounds(minimum=-1), "hint": "negative darkens"}, ValueError, r">= -1, got -2; negative dark"),
        (0.5, {"bounds": 0.0}, ParameterTypeError, r"bounds of p must be a propgrad.core.validation.Bounds, got 0.0"),
    ],
)
def test_check_number_bad_values(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_number(value, "p", **kwargs)


def test_check_number_nan_when_allowed_and_text():
    assert math.isnan(check_number(math.nan, "p", Bounds(minimum=0), allow_nan=True))
    assert check_number(" 1e-3 ", "p", strings=True) == 0.001
    with pytest.raises(ValueError, match="not NaN"):
        check_number("nan", "p", strings=True)


def test_bounds_refuse_an_empty_interval():
    assert Bounds(1, 1).excludes(1.0) is False
    assert Bounds(1, 1, min_inclusive=False).excludes(1.0) is True
    with pytest.raises(InvalidParameterError, match="bounds need minimum <= maximum, got minimum=2 and maximum=1"):
        Bounds(2, 1)


def test_probability_and_alpha():
    assert check_probability(np.float32(1.0), "q") == 1.0
    assert check_probability(0, "q") == 0.0
    with pytest.raises(ValueError, match=r"q must be a number in \[0, 1\], got 1.5"):
        check_probability(1.5, "q")
    assert check_alpha(np.float64(0.01)) == 0.01
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\).*significance level"):
            check_alpha(bad)


def test_check_bool():
    assert check_bool(True, "flag") is True and check_bool(np.bool_(False), "flag") is False
    for bad in (1, 0, "yes", None, 1.0):
        with pytest.raises(ParameterTypeError, match=f"flag must be True or False, got {bad!r}"):
            check_bool(bad, "flag")
    assert check_bool(" Yes", "flag", strings=True) is True
    assert check_bool("OFF", "flag", strings=True) is False
    with pytest.raises(ValueError, match="flag must be True or False .*true/false.*, got 'maybe'"):
        check_bool("maybe", "flag", strings=True)
    with pytest.raises(ParameterTypeError, match="got 1 \\(int\\)"):
        check_bool(1, "flag", strings=True)


def test_check_choice():
    methods = ("gausslegendre", "riemann_left")
    assert check_choice("riemann_left", "method", methods) == "riemann_left"
    assert type(check_choice(np.str_("gausslegendre"), "method", methods)) is str
    assert check_choice(np.int64(2), "order", (1, 2)) == 2
    with pytest.raises(ValueError, match="method must be one of 'gausslegendre', 'riemann_left', got 'gauss'"):
        check_choice("gauss", "method", methods)
    with pytest.raises(ParameterTypeError, match=r"method must be one of .*, got 3 \(int\)"):
        check_choice(3, "method", methods)
    with pytest.raises(ParameterTypeError, match=r"order must be one of 1, 2, got True \(bool\)"):
        check_choice(True, "order", (1, 2))  # True == 1, but it is not the choice 1
    with pytest.raises(ParameterTypeError, match="got"):
        check_choice(np.array([1, 2]), "order", (1, 2))


@pytest.mark.parametrize("value", [0, 7, np.int64(7), np.uint32(7), 2**63 - 1])
def test_check_seed_accepts_integers(value):
    assert check_seed(value) == int(value) and type(check_seed(value)) is int


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (1.5, ParameterTypeError, r"seed must be an integer in \[0, 2\*\*63 - 1\], got 1.5 \(float\); .*not rounded"),
        (2.0, ParameterTypeError, "got 2.0 \\(float\\)"),
        (np.float32(3), ParameterTypeError, "not rounded"),
        (None, ParameterTypeError, r"got None \(NoneType\)$"),
        ("3", ParameterTypeError, r"got '3' \(str\)$"),
        (True, ParameterTypeError, r"got True \(bool\)"),
        (-1, ValueError, "not negative.*got -1"),
        (2**63, ValueError, "signed 64-bit integer.*got 9223372036854775808"),
    ],
)
def test_check_seed_refuses_non_integers_and_out_of_range(value, error, match):
    with pytest.raises(error, match=match):
        check_seed(value)
    with pytest.raises(error, match="my_seed must be"):
        check_seed(value, "my_seed")


def test_check_steps_is_bounded_with_a_reason():
    assert check_steps(MAX_STEPS) == MAX_STEPS
    assert check_steps("5", strings=True) == 5
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, 10000\], got 1000000000; .*MAX_STEPS"):
        check_steps(10**9)
    with pytest.raises(ValueError, match="n_scales must be an integer in"):
        check_steps(1, "n_scales")


def test_check_sequence_size(monkeypatch):
    image = torch.zeros(3, 32, 32)
    assert check_sequence_size(10, image) == 10 * 3 * 32 * 32 * 4
    with pytest.raises(ValueError, match=r"steps = 1000000 would need 11.4 GiB .*\(3, 32, 32\).*limit of 4 GiB"):
        check_sequence_size(10**6, image)
    monkeypatch.setattr(validation, "MAX_SEQUENCE_BYTES", 1000)
    with pytest.raises(ValueError, match="MAX_SEQUENCE_BYTES"):
        check_sequence_size(1, image.double())


def test_check_values_refuses_text_and_lists_by_name():
    with pytest.raises(TypeError, match="values must be a torch.Tensor, got str"):
        check_values("0,1,2", 3, "values")
    with pytest.raises(TypeError, match="values must be a torch.Tensor, got list"):
        check_values([0.0, 1.0, 2.0], 3, "values")


@pytest.mark.parametrize(
    "call",
    [
        lambda: check_int(0, "n"),
        lambda: check_int("x", "n"),
        lambda: check_int("x", "n", strings=True),
        lambda: check_number(float("nan"), "p"),
        lambda: check_number(2.0, "p", Bounds(maximum=1)),
        lambda: check_number("x", "p", strings=True),
        lambda: check_probability(1.5, "p"),
        lambda: check_alpha(1.0),
        lambda: check_bool(1, "flag"),
        lambda: check_bool("maybe", "flag", strings=True),
        lambda: check_choice("z", "mode", ("a", "b")),
        lambda: check_choice(3, "mode", ("a", "b")),
        lambda: check_seed(-1),
        lambda: check_seed(1.5),
        lambda: check_steps(1),
        lambda: validation.check_device("bogus"),
        lambda: validation.check_device(7),
        lambda: validation.check_images([0.5], "image", batched=False),
        lambda: validation.check_images(torch.full((3, 4, 4), 2.0), "image", batched=False),
        lambda: check_values(torch.tensor([0.0, 0.0]), 2, "values"),
        lambda: check_values([0.0, 1.0], 2, "values"),
        lambda: check_sequence_size(10**9, torch.zeros(3, 64, 64)),
    ],
)
def test_every_check_raises_an_invalid_parameter_error(call):
    """The CLI prints only propgrad's errors as one line: every check raises one (a ValueError and a TypeError)."""
    with pytest.raises(InvalidParameterError) as caught:
        call()
    assert isinstance(caught.value, PropgradError)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, TypeError)


def test_parameter_type_error_is_an_invalid_parameter_error():
    assert ParameterTypeError is errors.ParameterTypeError
    assert issubclass(ParameterTypeError, InvalidParameterError) and issubclass(InvalidParameterError, PropgradError)


def test_checks_read_inputs_that_require_grad_without_warning():
    """Converting a tensor that requires grad to a number warns in torch; the checks read detached values."""
    image = torch.rand(3, 8, 8, requires_grad=True)
    values = torch.linspace(0, 1, 5).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert validation.check_images(image, "image", batched=False) is image
        assert validation.check_images(image[None], "images", batched=True).shape == (1, 3, 8, 8)
        assert check_values(values, 5, "values") is values
        with pytest.raises(ValueError, match=r"step 2 \(0\.25\) does not exceed step 1 \(0\.25\)"):
            check_values(torch.tensor([0.0, 0.25, 0.25], requires_grad=True), 3, "values")
        with pytest.raises(ValueError, match=r"got range \[2, 2\]"):
            validation.check_images(torch.full((3, 4, 4), 2.0, requires_grad=True), "image", batched=False)
