"""Checks of the rendered_rotation parameters, each raising an error that names the parameter.

Values may arrive as strings from ``propgrad explain --param key=value``, so numbers in strings
and comma-separated vectors (``axis=1,0,1``, ``background=0.5,0.5,0.5``) are accepted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from propgrad.core.validation import MAX_STEPS, ParameterTypeError, check_number

AXES: dict[str, tuple[float, float, float]] = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
"""Named rotation axes: x (pitch: the top tips towards the camera), y (yaw: a turntable), z (roll: in the image)."""

FULL_TURN = 360.0
LIGHTINGS: tuple[str, ...] = ("headlight", "studio", "flat")
MAX_IMAGE_SIDE = 4096
_TOLERANCE = 1e-9


def _numbers(value: Any, name: str, expected: str) -> list[Any]:
    """A list of numbers from a list, tuple, array, tensor or comma-separated string."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
        return [check_number(p, f"{name}[{i}]", strings=True) for i, p in enumerate(parts)]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().flatten().tolist()
    if isinstance(value, np.ndarray):
        value = value.ravel().tolist()
    if not isinstance(value, (list, tuple, range)):
        shown = repr(value) if len(repr(value)) <= 80 else type(value).__name__
        raise ParameterTypeError(f"{name} must be {expected}, got {shown} ({type(value).__name__})")
    return list(value)


def axis(value: Any) -> tuple[float, float, float]:
    """The rotation axis as a unit 3-vector: ``"x"``, ``"y"``, ``"z"`` or any non-zero 3-vector."""
    expected = "'x', 'y', 'z' or a non-zero 3-vector such as (1, 0, 1)"
    if isinstance(value, str) and value.strip().lower() in AXES:
        return AXES[value.strip().lower()]
    if isinstance(value, str) and "," not in value:
        raise ValueError(f"axis must be {expected}, got {value!r}")
    vector = [check_number(v, f"axis[{i}]", strings=True) for i, v in enumerate(_numbers(value, "axis", expected))]
    if len(vector) != 3:
        raise ValueError(f"axis must be {expected}, got {len(vector)} components: {vector}")
    norm = math.sqrt(sum(v * v for v in vector))
    if not norm > 1e-12:
        raise ValueError(f"axis must be a non-zero 3-vector (a rotation needs a direction), got {vector}")
    return (vector[0] / norm, vector[1] / norm, vector[2] / norm)


def angle_grid(start: Any, stop: Any, step: Any, angles: Any) -> tuple[list[float], bool]:
    """The rendered angles in degrees and whether they make one full turn.

    With ``angles=None``: ``start, start + step, ...`` up to ``stop``; a span of exactly 360
    degrees is a full turn, whose last angle (``stop``, the same view as ``start``) is left out,
    so the default 0, 360, 1 gives 0, 1, ..., 359 (360 frames). Any other span keeps ``stop``
    when the steps reach it (0, 180, 1 gives 181 frames, 180 included). Explicit ``angles`` must
    increase strictly and span less than one turn; they are a full turn when the gap from the last
    back to the first (one turn on) is no larger than their median step.

    Raises:
        ValueError: Naming the parameter, for angles that do not increase, a span beyond one full
            turn, fewer than 2 or more than ``MAX_STEPS`` frames.
    """
    if angles is not None:
        if start is not None or stop is not None or step is not None:
            raise ValueError(
                f"give either angles or start/stop/step, not both (got angles and start={start!r}, "
                f"stop={stop!r}, step={step!r})"
            )
        values = [
            check_number(v, f"angles[{i}]", strings=True)
            for i, v in enumerate(_numbers(angles, "angles", "a list of angles in degrees"))
        ]
        _check_count(len(values), "angles")
        for i in range(1, len(values)):
            if values[i] <= values[i - 1]:
                raise ValueError(
                    f"angles must increase strictly, but angles[{i}] = {values[i]:g} does not exceed "
                    f"angles[{i - 1}] = {values[i - 1]:g}"
                )
        if values[-1] - values[0] >= FULL_TURN:
            raise ValueError(
                f"angles must span less than one full turn ({FULL_TURN:g} degrees: the last would repeat the "
                f"first view), got {values[0]:g} to {values[-1]:g}"
            )
        from propgrad.sources.frames import looks_periodic

        return values, looks_periodic(values, "degree")
    start = 0.0 if start is None else check_number(start, "start", strings=True)
    stop = FULL_TURN if stop is None else check_number(stop, "stop", strings=True)
    step = 1.0 if step is None else check_number(step, "step", strings=True)
    if not step > 0:
        raise ValueError(f"step must be a positive number of degrees (angles must increase), got {step:g}")
    if not stop > start:
        raise ValueError(f"stop must exceed start (angles must increase), got start={start:g}, stop={stop:g}")
    span = stop - start
    if span > FULL_TURN + _TOLERANCE:
        raise ValueError(
            f"stop - start must be at most one full turn ({FULL_TURN:g} degrees), got {span:g} "
            f"(start={start:g}, stop={stop:g}); more would render the same views twice"
        )
    full_turn = abs(span - FULL_TURN) <= _TOLERANCE
    count = math.floor(span / step + 1e-9) + 1  # start, start + step, ... <= stop
    values = [start + k * step for k in range(count)]
    if full_turn and abs(values[-1] - stop) <= 1e-9 * max(1.0, abs(stop)):
        values.pop()  # stop is start one turn on: the same view
    _check_count(len(values), "step")
    return values, full_turn


def _check_count(count: int, name: str) -> None:
    if count < 2:
        raise ValueError(f"{name}: a rotation needs at least 2 frames, got {count}")
    if count > MAX_STEPS:
        raise ValueError(
            f"{name}: {count} frames is more than {MAX_STEPS} (propgrad.core.validation.MAX_STEPS); use a larger step"
        )


def image_size(value: Any) -> tuple[int, int] | None:
    """None (the reference image's size), an int (a square side) or (height, width), each 1..4096."""
    if value is None:
        return None
    expected = f"None, a positive integer or (height, width) of positive integers up to {MAX_IMAGE_SIDE}"
    if isinstance(value, str):
        value = _numbers(value, "image_size", expected)
        value = value[0] if len(value) == 1 else value
    sides = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(sides) != 2:
        raise ValueError(f"image_size must be {expected}, got {value!r}")
    checked = []
    for label, side in zip(("height", "width"), sides):
        if isinstance(side, float) and side.is_integer():
            side = int(side)
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)):
            raise ParameterTypeError(f"image_size must be {expected}, got {value!r} ({type(side).__name__} {label})")
        if not 1 <= int(side) <= MAX_IMAGE_SIDE:
            raise ValueError(f"image_size must be {expected}, got {label} {int(side)}")
        checked.append(int(side))
    return checked[0], checked[1]


def colour(value: Any, name: str = "background") -> tuple[float, float, float]:
    """An RGB colour in [0, 1]: a grey level, three numbers, or the names black, white, grey/gray."""
    names = {"black": 0.0, "white": 1.0, "grey": 0.5, "gray": 0.5}
    expected = "a grey level in [0, 1], (r, g, b) in [0, 1], or one of black, white, grey"
    if isinstance(value, str) and value.strip().lower() in names:
        return (names[value.strip().lower()],) * 3  # type: ignore[return-value]
    if isinstance(value, str):
        value = _numbers(value, name, expected)
        value = value[0] if len(value) == 1 else value
    channels = _numbers(value, name, expected) if not isinstance(value, (int, float, np.number)) else [value] * 3
    if len(channels) != 3:
        raise ValueError(f"{name} must be {expected}, got {len(channels)} components: {channels}")
    rgb = [check_number(c, f"{name}[{i}]", minimum=0.0, maximum=1.0, strings=True) for i, c in enumerate(channels)]
    return rgb[0], rgb[1], rgb[2]


def positive(value: Any, name: str, *, maximum: float | None = None, inclusive: bool = True) -> float:
    """A finite number > 0 (and <= ``maximum``, or < it when not ``inclusive``)."""
    return check_number(
        value, name, minimum=0.0, min_inclusive=False, maximum=maximum, max_inclusive=inclusive, strings=True
    )


def fraction(value: Any, name: str, *, below_one: bool = False) -> float:
    """A number in [0, 1] (or [0, 1) with ``below_one``)."""
    return check_number(value, name, minimum=0.0, maximum=1.0, max_inclusive=not below_one, strings=True)
