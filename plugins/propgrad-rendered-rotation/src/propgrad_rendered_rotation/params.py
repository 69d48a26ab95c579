"""The rendered_rotation parameters, declared once: types, defaults, bounds and help.

propgrad reads the declaration for the constructor's checks, ``propgrad explain --param key=value``
and ``propgrad plugins``. The parsers below read what a type cannot say: an axis named ``"x"``, a
colour named ``"white"``, a square image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from propgrad.core.validation import Bounds, check_choice, check_number
from propgrad.errors import InvalidParameterError
from propgrad.plugins.parameters import Parameters, as_numbers, as_size, parameter
from propgrad_rendered_rotation.angles import FULL_TURN, angle_grid

__all__ = ["AXES", "FULL_TURN", "LIGHTINGS", "MAX_IMAGE_SIDE", "RenderedRotationParams", "as_image_size"]

AXES: dict[str, tuple[float, float, float]] = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
"""Named rotation axes: x (pitch: the top tips towards the camera), y (yaw: a turntable), z (roll: in the image)."""

LIGHTINGS: tuple[str, ...] = ("headlight", "studio", "flat")
MAX_IMAGE_SIDE = 4096
_GREYS = {"black": 0.0, "white": 1.0, "grey": 0.5, "gray": 0.5}


def as_axis(value: Any, name: str = "axis") -> tuple[float, float, float]:
    """The rotation axis as a unit 3-vector: ``"x"``, ``"y"``, ``"z"`` or any non-zero 3-vector."""
    expected = "'x', 'y', 'z' or a non-zero 3-vector such as (1, 0, 1)"
    if isinstance(value, str) and value.strip().lower() in AXES:
        return AXES[value.strip().lower()]
    if isinstance(value, str) and "," not in value:
        raise InvalidParameterError(f"{name} must be {expected}, got {value!r}")
    vector = as_numbers(value, name, length=3, expected=expected)
    norm = math.sqrt(sum(v * v for v in vector))
    if not norm > 1e-12:
        raise InvalidParameterError(f"{name} must be a non-zero 3-vector (a rotation needs a direction), got {vector}")
    return (vector[0] / norm, vector[1] / norm, vector[2] / norm)


def as_image_size(value: Any, name: str = "image_size") -> tuple[int, int] | None:
    """None (the reference image's size), an int (a square side) or (height, width), each 1..4096."""
    if value is not None and not isinstance(value, (str, list, tuple)):
        value = (value, value)
    size = as_size(value, name, maximum=MAX_IMAGE_SIDE)
    return (size, size) if isinstance(size, int) else size


def as_colour(value: Any, name: str = "background") -> tuple[float, float, float]:
    """An RGB colour in [0, 1]: a grey level, three numbers, or the names black, white, grey/gray."""
    expected = "a grey level in [0, 1], (r, g, b) in [0, 1], or one of black, white, grey"
    if isinstance(value, str) and value.strip().lower() in _GREYS:
        return (_GREYS[value.strip().lower()],) * 3  # type: ignore[return-value]
    grey = isinstance(value, (int, float, np.number)) or (isinstance(value, str) and "," not in value)
    channels = [value] * 3 if grey else as_numbers(value, name, length=3, expected=expected)
    rgb = [check_number(c, f"{name}[{i}]", Bounds(0.0, 1.0), strings=True) for i, c in enumerate(channels)]
    return rgb[0], rgb[1], rgb[2]


def as_lighting(value: Any, name: str = "lighting") -> str:
    """One of :data:`LIGHTINGS`, in any case."""
    return check_choice(value.strip().lower() if isinstance(value, str) else value, name, LIGHTINGS)


@dataclass(frozen=True)
class RenderedRotationParams(Parameters):
    """The parameters of :class:`~propgrad_rendered_rotation.RenderedRotationSource` (see its docstring)."""

    lenient = True  # numbers, flags and vectors may be given as text, as in a config file

    mesh: Any = parameter(
        "animal", "a procedural object's name, a mesh file (OBJ, PLY, STL, GLB, GLTF, OFF) or a trimesh"
    )
    axis: tuple[float, float, float] = parameter("y", "'x' (pitch), 'y' (yaw), 'z' (roll) or a 3-vector", parse=as_axis)
    start: float | None = parameter(None, "first angle in degrees (None: 0)")
    stop: float | None = parameter(None, "last angle in degrees (None: 360, a full turn without the repeated view)")
    step: float | None = parameter(None, "degrees between frames (None: 1)")
    angles: list[float] | None = parameter(None, "explicit strictly increasing angles instead of start/stop/step")
    image_size: tuple[int, int] | None = parameter(
        None, "None: the reference image's size; an int for a square, or (height, width)", parse=as_image_size
    )
    background: tuple[float, float, float] = parameter(
        "white", "RGB in [0, 1], a grey level, or black/white/grey", parse=as_colour
    )
    lighting: str = parameter("headlight", "one of " + ", ".join(LIGHTINGS), parse=as_lighting)
    light_intensity: float = parameter(3.0, "strength of the directional light(s)", bounds="(0, inf)")
    ambient: float = parameter(0.3, "ambient light level", bounds="[0, 1]")
    fov: float | None = parameter(
        None, "vertical field of view in degrees; None: 30 unless distance is given", bounds="(0, 179]"
    )
    distance: float | None = parameter(None, "camera distance; None: fit the object in every frame", bounds="(0, inf)")
    margin: float = parameter(0.05, "fraction of the half-frame left free around the object", bounds="[0, 1)")
    smooth: bool = parameter(True, "smooth shading (a mesh with face colours is rendered flat)")
    periodic: bool | None = parameter(None, "whether the rotation wraps around; None: detect a full turn")

    def check(self) -> None:
        """The angles: start/stop/step or explicit angles, increasing, at most one turn."""
        angle_grid(self.start, self.stop, self.step, self.angles)
