"""Input checks shared by the scorer, the sources, the baselines and the API.

Each check raises ``ValueError`` naming the argument, what was expected and what was received, so
that bad input never fails deep inside torch. A value of the wrong type raises
:class:`ParameterTypeError`, which is both a ``TypeError`` and a ``ValueError`` (as numpy's
``AxisError`` is both a ``ValueError`` and an ``IndexError``), so callers catching either see it.

Numbers may be Python or numpy scalars (``np.float32(0.05)``, ``np.int64(3)``); bools are never
numbers. Checks that take ``strings=True`` also parse text, for values typed on a command line or
read from a config file; by default text is refused.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable, TypeVar

import numpy as np
import torch

T = TypeVar("T")

MAX_STEPS = 10_000
"""Most steps a sequence may have: about a hundred times the paper's longest sweep (92 guidance
scales). More steps do not make the finite differences better, and the permutation test holds
``n_permutations x steps`` indices (10,000 x 10,000 int64 is 800 MB) while a 224 x 224 float32
sequence of 10,000 images takes 6 GB."""

MAX_SEQUENCE_BYTES = 4 * 2**30
"""Largest intervened sequence (its images alone) a source builds, in bytes (4 GiB); generating
it briefly needs a few times as much. Raise it (``propgrad.validation.MAX_SEQUENCE_BYTES = ...``)
on a machine with more memory."""

SEED_MAX = 2**63 - 1
"""Largest seed: seeds must fit a signed 64-bit integer (``torch.Generator.manual_seed``)."""

_TRUE_TEXT = ("true", "yes", "on", "1")
_FALSE_TEXT = ("false", "no", "off", "0")


class ParameterTypeError(TypeError, ValueError):
    """A parameter of the wrong type (a ``TypeError`` that is also a ``ValueError``)."""


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
        raise ValueError(f"{name} must be {expected}, got {value!r}{_suffix(hint)}") from None


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
        ValueError: If it lies outside [``minimum``, ``maximum``].
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
        raise ValueError(f"{name} must be {expected}, got {value!r}{_suffix(hint)}")
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
        "(propgrad.validation.MAX_STEPS)",
    )


def check_number(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    allow_nan: bool = False,
    strings: bool = False,
    hint: str = "",
) -> float:
    """Check a finite real number (Python or numpy, ints included; bools are refused).

    Args:
        value: The value to check.
        name: Argument name used in error messages.
        minimum: Lower bound (None: none).
        maximum: Upper bound (None: none).
        min_inclusive: Whether ``minimum`` itself is allowed (False: the value must exceed it).
        max_inclusive: Whether ``maximum`` itself is allowed.
        allow_nan: Let NaN through (bounds do not apply to it). Infinities are always refused.
        strings: Also accept the number written as text (``"0.5"``).
        hint: Appended to the error message, e.g. what the number means.

    Returns:
        The value as a ``float``.

    Raises:
        ParameterTypeError: If ``value`` is not a real number.
        ValueError: If it is NaN, infinite, or outside the bounds.
    """
    if minimum is not None and maximum is not None:
        left, right = "[" if min_inclusive else "(", "]" if max_inclusive else ")"
        expected = f"a number in {left}{_fmt(minimum)}, {_fmt(maximum)}{right}"
    elif minimum is not None:
        expected = f"a number {'>=' if min_inclusive else '>'} {_fmt(minimum)}"
    elif maximum is not None:
        expected = f"a number {'<=' if max_inclusive else '<'} {_fmt(maximum)}"
    else:
        expected = "a finite number"
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
        raise ValueError(f"{name} must be {expected}, not NaN{_suffix(hint)}")
    too_low = minimum is not None and (number < minimum if min_inclusive else number <= minimum)
    too_high = maximum is not None and (number > maximum if max_inclusive else number >= maximum)
    if math.isinf(number) or too_low or too_high:
        if math.isinf(number):
            expected = expected.replace("a number", "a finite number", 1)
        shown = repr(value) if len(repr(value)) <= 80 else f"a {len(str(abs(int(value))))}-digit number"
        raise ValueError(f"{name} must be {expected}, got {shown}{_suffix(hint)}")
    return number


def check_probability(value: Any, name: str, *, strings: bool = False) -> float:
    """Check a probability or fraction: a number in [0, 1]."""
    return check_number(value, name, minimum=0.0, maximum=1.0, strings=strings)


def check_alpha(value: Any, name: str = "alpha", *, strings: bool = False) -> float:
    """Check a significance level: a number in (0, 1), ends excluded."""
    return check_number(
        value,
        name,
        minimum=0.0,
        maximum=1.0,
        min_inclusive=False,
        max_inclusive=False,
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
            raise ValueError(f"{name} must be {expected}, got {value!r}{_suffix(hint)}")
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
        ValueError: If it has the right type but is not one of them; the message lists them all.
    """
    options = tuple(choices)
    for choice in options:
        if _same_choice(value, choice):
            return choice
    listed = ", ".join(repr(c) for c in options)
    if not any(isinstance(value, type(c)) and _is_bool(value) == _is_bool(c) for c in options):
        raise ParameterTypeError(f"{name} must be one of {listed}, got {_received(value)}")
    raise ValueError(f"{name} must be one of {listed}, got {value!r}")


def check_seed(value: Any, name: str = "seed") -> int:
    """Check a random seed: an integer (Python or numpy) in [0, 2**63 - 1].

    Floats are refused rather than rounded (``seed=1.5`` is not silently seed 1), and so are
    None, strings and bools.

    Returns:
        The seed as an ``int``.

    Raises:
        ParameterTypeError: If ``value`` is not an integer.
        ValueError: If it is negative or does not fit a signed 64-bit integer.
    """
    expected = "an integer in [0, 2**63 - 1]"
    if _is_bool(value) or not isinstance(value, Integral):
        hint = "; seeds are not rounded, pass a whole number" if isinstance(value, Real) else ""
        raise ParameterTypeError(f"{name} must be {expected}, got {_received(value)}{hint}")
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"{name} must be {expected} (a signed 64-bit integer, not negative), got {value!r}")
    return int(value)


def available_devices() -> list[str]:
    """The devices this process can run on: ``cpu``, then CUDA, MPS and XPU devices that are present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        devices += ["xpu"] + [f"xpu:{i}" for i in range(xpu.device_count())]
    return devices


def check_device(value: Any, name: str = "device") -> torch.device:
    """Check a device (a ``torch.device`` or its name) that exists in this process.

    ``"bogus"``, or ``"cuda"`` on a CPU-only build or a machine without a GPU, fail here with the
    list of available devices instead of deep inside torch when a tensor is first moved.

    Returns:
        The ``torch.device``.

    Raises:
        ParameterTypeError: If ``value`` is neither a string nor a ``torch.device``.
        ValueError: If it names no device, or one that is not available here.
    """
    available = available_devices()
    listed = ", ".join(repr(d) for d in available)
    if not isinstance(value, (str, torch.device)):
        raise ParameterTypeError(f"{name} must be a device name such as {listed}, got {_received(value)}")
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name} must be one of the available devices ({listed}), got {value!r}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda" and torch.version.cuda is None and torch.version.hip is None:
        reason = "this PyTorch build has no CUDA support"
    else:
        reason = "no such device is present"
    kind = [d for d in available if d.split(":")[0] == device.type]
    if not kind or (device.index is not None and str(device) not in available):
        raise ValueError(f"{name} {str(value)!r} is not available: {reason}; available devices: {listed}")
    return device


def check_sequence_size(steps: int, image: torch.Tensor, *, name: str = "steps") -> int:
    """Refuse a sequence of ``steps`` images shaped like ``image`` that would exceed the memory limit.

    Args:
        steps: Number of images in the sequence.
        image: One image (any shape); the sequence has its shape and dtype.
        name: Argument name used in error messages.

    Returns:
        The number of bytes the sequence's images take.

    Raises:
        ValueError: If that exceeds :data:`MAX_SEQUENCE_BYTES` (read at call time).
    """
    nbytes = int(steps) * image.numel() * image.element_size()
    limit = MAX_SEQUENCE_BYTES
    if nbytes > limit:
        raise ValueError(
            f"{name} = {steps} would need {nbytes / 2**30:.3g} GiB for {steps} images of shape "
            f"{tuple(image.shape)} ({image.dtype}), more than the limit of {limit / 2**30:.3g} GiB "
            "(propgrad.validation.MAX_SEQUENCE_BYTES); use fewer steps or a smaller image"
        )
    return nbytes


def check_images(images: Any, name: str, *, batched: bool) -> torch.Tensor:
    """Check a float RGB image tensor in [0, 1]: (3, H, W), or (N, 3, H, W) when ``batched``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(images)}")
    want = "(N, 3, H, W)" if batched else "(3, H, W)"
    if images.dim() != (4 if batched else 3) or images.shape[-3] != 3:
        raise ValueError(f"{name} must have shape {want} (RGB), got {_describe(images)}")
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor in [0, 1], got {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )
    if images.numel() == 0:
        raise ValueError(f"{name} is empty: {_describe(images)}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise ValueError(
            f"{name} must hold values in [0, 1], got range [{lo:.3g}, {hi:.3g}]; "
            "pass unnormalised images and do normalisation in `preprocess`"
        )
    return images


def check_values(values: Any, n: int, name: str) -> torch.Tensor:
    """Check property values: a finite 1-D float tensor of length ``n``, strictly increasing."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(values)}")
    if values.dim() != 1 or values.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), one value per step, got {_describe(values)}")
    if not values.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {values.dtype}")
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    steps = values[1:] - values[:-1]
    if (steps <= 0).any():
        i = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(
            f"{name} must be strictly increasing (no repeated values), but step {i + 1} "
            f"({float(values[i + 1]):.6g}) does not exceed step {i} ({float(values[i]):.6g})"
        )
    return values
