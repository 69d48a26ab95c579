"""The angles a rotation renders: start/stop/step or explicit angles, at most one turn."""

from __future__ import annotations

import math
from typing import Any

from propgrad.core.validation import MAX_STEPS, check_number
from propgrad.errors import InvalidParameterError
from propgrad.plugins.parameters import as_numbers

FULL_TURN = 360.0
_TOLERANCE = 1e-9


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
            raise InvalidParameterError(
                f"give either angles or start/stop/step, not both (got angles and start={start!r}, "
                f"stop={stop!r}, step={step!r})"
            )
        values = as_numbers(angles, "angles", expected="a list of angles in degrees")
        _check_count(len(values), "angles")
        for i in range(1, len(values)):
            if values[i] <= values[i - 1]:
                raise InvalidParameterError(
                    f"angles must increase strictly, but angles[{i}] = {values[i]:g} does not exceed "
                    f"angles[{i - 1}] = {values[i - 1]:g}"
                )
        if values[-1] - values[0] >= FULL_TURN:
            raise InvalidParameterError(
                f"angles must span less than one full turn ({FULL_TURN:g} degrees: the last would repeat the "
                f"first view), got {values[0]:g} to {values[-1]:g}"
            )
        from propgrad.sources.frames import looks_periodic

        return values, looks_periodic(values, "degree")
    start = 0.0 if start is None else check_number(start, "start", strings=True)
    stop = FULL_TURN if stop is None else check_number(stop, "stop", strings=True)
    step = 1.0 if step is None else check_number(step, "step", strings=True)
    if not step > 0:
        raise InvalidParameterError(f"step must be a positive number of degrees (angles must increase), got {step:g}")
    if not stop > start:
        raise InvalidParameterError(
            f"stop must exceed start (angles must increase), got start={start:g}, stop={stop:g}"
        )
    span = stop - start
    if span > FULL_TURN + _TOLERANCE:
        raise InvalidParameterError(
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
        raise InvalidParameterError(f"{name}: a rotation needs at least 2 frames, got {count}")
    if count > MAX_STEPS:
        raise InvalidParameterError(
            f"{name}: {count} frames is more than {MAX_STEPS} (propgrad.core.validation.MAX_STEPS); use a larger step"
        )
