"""Checks of scalar parameters: integers, numbers, bools, choices and seeds.

Each check raises :class:`~propgrad.errors.InvalidParameterError` (a ``ValueError`` and a
``TypeError``) naming the argument, what was expected and what was received, so that bad input
never fails deep inside torch; a value of the wrong type raises its subclass
:class:`~propgrad.errors.ParameterTypeError`. Callers catching ``ValueError`` or ``TypeError`` see both.

Numbers may be Python or numpy scalars (``np.float32(0.05)``, ``np.int64(3)``); bools are never
numbers. Checks that take ``strings=True`` also parse text, for values typed on a command line or
read from a config file; by default text is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Iterable, TypeVar

import numpy as np
import torch

from propgrad.errors import InvalidParameterError, ParameterTypeError

T = TypeVar("T")

MAX_STEPS = 10_000
"""Most steps a sequence may have: about a hundred times the paper's longest sweep (92 guidance
scales). More steps do not make the finite differences better, and the permutation test holds
``n_permutations x steps`` indices (10,000 x 10,000 int64 is 800 MB) while a 224 x 224 float32
sequence of 10,000 images takes 6 GB."""

SEED_MAX = 2**63 - 1
"""Largest seed: seeds must fit a signed 64-bit integer (``torch.Generator.manual_seed``)."""

_TRUE_TEXT = ("true", "yes", "on", "1")
_FALSE_TEXT = ("false", "no", "off", "0")


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _received(value: Any) -> str:
    """The value and its type, for an error message: ``'abc' (str)``."""
    if isinstance(value, torch.Tensor):
        hint = "; use .item() for a number" if value.numel() == 1 else ""
        return f"a {_describe(value)}{hint}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _suffix(hint: str) -> str:
    return f"; {hint}" if hint else ""


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _fmt(x: float) -> str:
    return f"{x:g}"


def _from_text(value: Any, parse: type, name: str, expected: str, hint: str) -> Any:
    """Parse ``value`` with ``parse`` (int or float) if it is a string, else return it as is."""
    if not isinstance(value, str):
        return value
    try:
        return parse(value.strip())
    except ValueError:
        raise InvalidParameterError(f"{name} must be {expected}, got {value!r}{_suffix(hint)}") from None


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = 1,
    maximum: int | None = None,
    strings: bool = False,
    hint: str = "",
) -> int:
    """Check an integer parameter (Python or numpy; bools and floats such as 2.0 are refused).

    Args:
        value: The value to check.
        name: Argument name used in error messages.
        minimum: Smallest allowed value (None: no lower bound).
        maximum: Largest allowed value (None: no upper bound).
        strings: Also accept the integer written as text (``"3"``).
        hint: Appended to the error message, e.g. why there is a maximum.

    Returns:
        The value as an ``int``.

    Raises:
        ParameterTypeError: If ``value`` is not an integer.
        InvalidParameterError: If it lies outside [``minimum``, ``maximum``].
    """
    if minimum is not None and maximum is not None:
        expected = f"an integer in [{minimum}, {maximum}]"
    elif minimum is not None:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    elif maximum is not None:
        expected = f"an integer <= {maximum}"
    else:
        expected = "an integer"
    if strings:
        value = _from_text(value, int, name, expected, hint)
    if _is_bool(value) or not isinstance(value, Integral):
        raise ParameterTypeError(f"{name} must be {expected}, got {_received(value)}{_suffix(hint)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidParameterError(f"{name} must be {expected}, got {value!r}{_suffix(hint)}")
    return int(value)


def check_steps(value: Any, name: str = "steps", *, minimum: int = 2, strings: bool = False) -> int:
    """Check a number of steps: an integer from ``minimum`` to :data:`MAX_STEPS`."""
    return check_int(
        value,
        name,
        minimum=minimum,
        maximum=MAX_STEPS,
        strings=strings,
        hint=f"more than {MAX_STEPS} steps would not fit the permutation test or memory "
        "(propgrad.core.validation.MAX_STEPS)",
    )


@dataclass(frozen=True)
class Bounds:
    """Where a number may lie: between ``minimum`` and ``maximum``, each end closed, open or absent.

    ``Bounds(0, 1)`` is [0, 1], ``Bounds(0, 1, min_inclusive=False, max_inclusive=False)`` is
    (0, 1), ``Bounds(minimum=0)`` is [0, inf) and ``Bounds()`` any finite number.

    Attributes:
        minimum: Lower end (None: none).
        maximum: Upper end (None: none).
        min_inclusive: Whether ``minimum`` itself is allowed (False: a value must exceed it).
        max_inclusive: Whether ``maximum`` itself is allowed.

    Raises:
        InvalidParameterError: ``minimum`` above ``maximum`` (no number would do).
    """

    minimum: float | None = None
    maximum: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    def __post_init__(self) -> None:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise InvalidParameterError(
                f"bounds need minimum <= maximum, got minimum={self.minimum!r} and maximum={self.maximum!r}"
            )

    def describe(self) -> str:
        """What a number within the bounds is, for an error message: ``"a number in (0, 1]"``."""
        if self.minimum is not None and self.maximum is not None:
            left, right = "[" if self.min_inclusive else "(", "]" if self.max_inclusive else ")"
            return f"a number in {left}{_fmt(self.minimum)}, {_fmt(self.maximum)}{right}"
        if self.minimum is not None:
            return f"a number {'>=' if self.min_inclusive else '>'} {_fmt(self.minimum)}"
        if self.maximum is not None:
            return f"a number {'<=' if self.max_inclusive else '<'} {_fmt(self.maximum)}"
        return "a finite number"

    def excludes(self, number: float) -> bool:
        """Whether the (not NaN) ``number`` lies outside the bounds."""
        minimum, maximum = self.minimum, self.maximum
        too_low = minimum is not None and (number < minimum if self.min_inclusive else number <= minimum)
        too_high = maximum is not None and (number > maximum if self.max_inclusive else number >= maximum)
        return too_low or too_high


UNBOUNDED = Bounds()
"""Any finite number."""


def check_number(
    value: Any,
    name: str,
    bounds: Bounds = UNBOUNDED,
    *,
    allow_nan: bool = False,
    strings: bool = False,
    hint: str = "",
) -> float:
    """Check a finite real number (Python or numpy, ints included; bools are refused).

    Args:
        value: The value to check.
        name: Argument name used in error messages.
        bounds: Where the number may lie (default: anywhere).
        allow_nan: Let NaN through (bounds do not apply to it). Infinities are always refused.
        strings: Also accept the number written as text (``"0.5"``).
        hint: Appended to the error message, e.g. what the number means.

    Returns:
        The value as a ``float``.

    Raises:
        ParameterTypeError: If ``value`` is not a real number, or ``bounds`` is not a :class:`Bounds`.
        InvalidParameterError: If it is NaN, infinite, or outside the bounds.
    """
    if not isinstance(bounds, Bounds):
        raise ParameterTypeError(f"bounds of {name} must be a propgrad.core.validation.Bounds, got {_received(bounds)}")
    expected = bounds.describe()
    if strings:
        value = _from_text(value, float, name, expected, hint)
    if _is_bool(value) or not isinstance(value, Real):
        raise ParameterTypeError(f"{name} must be {expected}, got {_received(value)}{_suffix(hint)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number):
        if allow_nan:
            return number
        raise InvalidParameterError(f"{name} must be {expected}, not NaN{_suffix(hint)}")
    if math.isinf(number) or bounds.excludes(number):
        if math.isinf(number):
            expected = expected.replace("a number", "a finite number", 1)
        shown = repr(value) if len(repr(value)) <= 80 else f"a {len(str(abs(int(value))))}-digit number"
        raise InvalidParameterError(f"{name} must be {expected}, got {shown}{_suffix(hint)}")
    return number


def check_probability(value: Any, name: str, *, strings: bool = False) -> float:
    """Check a probability or fraction: a number in [0, 1]."""
    return check_number(value, name, Bounds(0.0, 1.0), strings=strings)


def check_alpha(value: Any, name: str = "alpha", *, strings: bool = False) -> float:
    """Check a significance level: a number in (0, 1), ends excluded."""
    return check_number(
        value,
        name,
        Bounds(0.0, 1.0, min_inclusive=False, max_inclusive=False),
        strings=strings,
        hint="a significance level such as 0.01",
    )


def check_bool(value: Any, name: str, *, strings: bool = False, hint: str = "") -> bool:
    """Check a flag: ``True`` or ``False`` (numpy bools too). Ints such as 1 are refused.

    Args:
        value: The value to check.
        name: Argument name used in error messages.
        strings: Also accept the text true/false, yes/no, on/off, 1/0 (any case).
        hint: Appended to the error message.

    Returns:
        The value as a ``bool``.

    Raises:
        ParameterTypeError: For anything else.
    """
    if _is_bool(value):
        return bool(value)
    expected = "True or False"
    if strings:
        expected += " (or the text true/false, yes/no, on/off, 1/0)"
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE_TEXT:
                return True
            if text in _FALSE_TEXT:
                return False
            raise InvalidParameterError(f"{name} must be {expected}, got {value!r}{_suffix(hint)}")
    raise ParameterTypeError(f"{name} must be {expected}, got {_received(value)}{_suffix(hint)}")


def _same_choice(value: Any, choice: Any) -> bool:
    if _is_bool(value) != _is_bool(choice):  # True == 1, but True is not the choice 1
        return False
    try:
        return bool(value == choice)
    except (TypeError, ValueError):  # e.g. an array compared with a string
        return False


def check_choice(value: Any, name: str, choices: Iterable[T]) -> T:
    """Check that ``value`` is one of ``choices``.

    Args:
        value: The value to check.
        name: Argument name used in error messages.
        choices: The allowed values (strings, numbers ...).

    Returns:
        The matching choice itself (e.g. a plain ``str`` for a numpy string).

    Raises:
        ParameterTypeError: If ``value`` has none of the choices' types.
        InvalidParameterError: If it has the right type but is not one of them; the message lists them all.
    """
    options = tuple(choices)
    for choice in options:
        if _same_choice(value, choice):
            return choice
    listed = ", ".join(repr(c) for c in options)
    if not any(isinstance(value, type(c)) and _is_bool(value) == _is_bool(c) for c in options):
        raise ParameterTypeError(f"{name} must be one of {listed}, got {_received(value)}")
    raise InvalidParameterError(f"{name} must be one of {listed}, got {value!r}")


def check_seed(value: Any, name: str = "seed") -> int:
    """Check a random seed: an integer (Python or numpy) in [0, 2**63 - 1].

    Floats are refused rather than rounded (``seed=1.5`` is not silently seed 1), and so are
    None, strings and bools.

    Returns:
        The seed as an ``int``.

    Raises:
        ParameterTypeError: If ``value`` is not an integer.
        InvalidParameterError: If it is negative or does not fit a signed 64-bit integer.
    """
    expected = "an integer in [0, 2**63 - 1]"
    if _is_bool(value) or not isinstance(value, Integral):
        hint = "; seeds are not rounded, pass a whole number" if isinstance(value, Real) else ""
        raise ParameterTypeError(f"{name} must be {expected}, got {_received(value)}{hint}")
    if not 0 <= value <= SEED_MAX:
        raise InvalidParameterError(f"{name} must be {expected} (a signed 64-bit integer, not negative), got {value!r}")
    return int(value)
