"""An ordered sequence captured for real (a turntable, a camera sweep), read from image files.

The property values come from a sidecar file (``values.csv`` with columns ``file,value`` or
``file,angle``, or ``values.json`` mapping file name -> value), else from the file names (the last
number in the stem: ``duck_045.png`` -> 45.0), else from the frame order. Frames are sorted by
value. Angles in degrees that cover one full turn make a periodic sequence of period 360 (a
turntable); unevenly spaced values are kept as they are, a non-uniform grid, which the scores per
unit (``per="unit"``) use. See ``docs/turntable.md``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from propgrad.core.images import load_image, resize
from propgrad.core.progress import progress
from propgrad.core.validation import ParameterTypeError
from propgrad.errors import InputFileError, InvalidParameterError, PropgradWarning
from propgrad.hookspecs import hookimpl
from propgrad.plugins.parameters import Parameters, parameter
from propgrad.sources.base import InterventionSequence, InterventionSource

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SIDECAR_NAMES: tuple[str, ...] = ("values.csv", "values.json")
VALUE_COLUMNS: tuple[str, ...] = ("value", "angle")
"""Names a sidecar CSV's value column may have (beside ``file``)."""
FULL_TURN_DEGREES = 360.0
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _as_path(value: Any, name: str, expected: str) -> Path:
    """``value`` as an expanded ``Path``; anything but a str or ``os.PathLike`` is refused by name."""
    if not isinstance(value, (str, os.PathLike)):
        raise ParameterTypeError(f"{name} must be {expected} (str or Path), got {type(value).__name__} {value!r}")
    return Path(value).expanduser()


def number_in_name(path: Path) -> float | None:
    """The last number in the file's stem (``turn_12.5.png`` -> 12.5), or None."""
    numbers = _NUMBER.findall(path.stem)
    return float(numbers[-1]) if numbers else None


def read_sidecar(sidecar: Path) -> dict[str, float]:
    """Read ``file -> value`` from a CSV (columns ``file,value`` or ``file,angle``) or JSON (object) file."""
    try:
        if sidecar.suffix.lower() == ".json":
            data = json.loads(sidecar.read_text())
            if not isinstance(data, dict):
                raise InvalidParameterError(
                    f"sidecar {sidecar} must hold a JSON object mapping file name -> value, got {type(data).__name__}"
                )
            items = list(data.items())
        else:
            with sidecar.open(newline="") as handle:
                reader = csv.DictReader(handle)
                fields = [f.strip() for f in reader.fieldnames or []]
                column = next((c for c in VALUE_COLUMNS if c in fields), None)
                if "file" not in fields or column is None:
                    raise InvalidParameterError(
                        f"sidecar {sidecar} must have the CSV columns 'file,value' (or 'file,angle'), "
                        f"got {reader.fieldnames}"
                    )
                reader.fieldnames = fields
                items = [(row["file"], row[column]) for row in reader]
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        raise InvalidParameterError(f"could not parse sidecar {sidecar}: {err}") from err
    values: dict[str, float] = {}
    for name, value in items:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise InvalidParameterError(f"sidecar {sidecar}: value for {name!r} must be a finite number, got {value!r}")
        values[str(name).strip()] = number
    return values


def looks_periodic(values: list[float], unit: str) -> bool:
    """True if ``values`` in degrees cover one full turn: the wrap-around gap from the last value
    back to ``first + 360`` is no larger than the typical (median) step."""
    if unit != "degree" or len(values) < 3:
        return False
    steps = sorted(b - a for a, b in zip(values, values[1:]))
    step = steps[len(steps) // 2]
    span = values[-1] - values[0]
    return span < 360 and values[-1] + step >= values[0] + 360 - 0.1 * step - 1e-6


@dataclass(frozen=True)
class FramesParams(Parameters):
    """The parameters of :class:`FramesSource` (see its docstring)."""

    path: Any = parameter(None, "a folder of frames (not recursive); a values.csv or values.json in it is the sidecar")
    paths: Any = parameter(None, "a list of frame files instead of `path`")
    sidecar: Any = parameter(None, "a CSV (file,value) or JSON ({file: value}) file of the frames' values")
    resize: bool = parameter(False, "resize every frame to the reference image's size")
    periodic: bool | None = parameter(
        None,
        "whether the sequence wraps around; None: detect a full turn in degrees",
        hint="or None to detect a full turn in degrees",
    )
    property_name: str | None = parameter(None, 'name of the property; None: "angle", or "frame" for frame indices')
    unit: str | None = parameter(None, 'unit of the values; None: "degree", or "index" for frame indices')

    def check(self) -> None:
        """Exactly one of ``path`` and ``paths``."""
        if (self.path is None) == (self.paths is None):
            raise InvalidParameterError(
                "pass exactly one of path (a folder of frames) or paths (a list of "
                f"image files), got path={self.path!r} and paths={self.paths!r}"
            )


class FramesSource(InterventionSource):
    """Read an ordered, captured sequence of frames from image files.

    The ``image`` passed to :meth:`generate` stands for the reference (first) frame: its pixels
    are ignored, but the sequence is put on its device and dtype and, with ``resize=True``,
    resized to its height and width.

    Args:
        path: A folder of frames (files with one of :data:`IMAGE_EXTENSIONS`, not recursive). A
            ``values.csv`` or ``values.json`` in it is used as the sidecar.
        paths: An explicit list of frame files (instead of ``path``); without values in a sidecar
            or the file names, the list order is the frame order.
        sidecar: Explicit sidecar file (CSV ``file,value`` or JSON ``{file: value}``); entries are
            matched by file name (or stem).
        resize: Resize every frame to the reference image's size; otherwise frames must all share
            one size.
        periodic: Whether the sequence wraps around; None detects a full turn in degrees (angles
            whose gap from the last back to the first, one turn on, is no larger than their median
            step; then the metadata hold ``period`` 360). Frames at both 0 and 360 degrees show one
            view twice: a warning says to leave one out.
        property_name: Name of the property; default "angle" for values from a sidecar or the
            file names, "frame" for frame indices.
        unit: Unit of the values; default "degree" (sidecar, file names) or "index".
    """

    name = "frames"
    description = "An ordered captured sequence (turntable, camera sweep) read from image files."
    property_name = "angle"
    unit = "degree"

    Params = FramesParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        path, paths, sidecar = self.params.path, self.params.paths, self.params.sidecar
        property_name, unit, periodic = self.params.property_name, self.params.unit, self.params.periodic
        files, folder = self._find_files(path, paths)
        sidecar_path = self._find_sidecar(sidecar, folder)
        values, source = self._values(files, sidecar_path)
        order = sorted(range(len(files)), key=lambda i: values[i])
        self.files = [files[i] for i in order]
        self.values = [values[i] for i in order]
        self._frames: list[torch.Tensor] | None = None
        for a, b, fa, fb in zip(self.values, self.values[1:], self.files, self.files[1:]):
            if a == b:
                raise InvalidParameterError(
                    f"frames must have distinct values, but {fa.name} and {fb.name} both have {a:g} (from {source})"
                )
        self.value_source = source
        default_name, default_unit = ("frame", "index") if source == "index" else ("angle", "degree")
        self.property_name = property_name or default_name
        self.unit = unit or default_unit
        if periodic is None and self.unit == "degree" and self.values[-1] - self.values[0] == FULL_TURN_DEGREES:
            warnings.warn(
                f"frames {self.files[0].name} and {self.files[-1].name} are {FULL_TURN_DEGREES:g} degrees apart, "
                "the same view: leave out the last one to score the full turn as periodic (period 360)",
                PropgradWarning,
                stacklevel=2,
            )
        self.periodic = looks_periodic(self.values, self.unit) if periodic is None else periodic

    @staticmethod
    def _find_files(path: Any, paths: Any) -> tuple[list[Path], Path | None]:
        if path is not None:
            folder = _as_path(path, "path", "a folder path")
            if not folder.exists():
                raise InputFileError(f"path: frames folder not found: {folder}")
            if not folder.is_dir():
                raise InvalidParameterError(
                    f"path must be a folder of frames, got the file {folder}; use paths=[...] for a list of files"
                )
            files = sorted(
                (f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key
            )
            if not files:
                raise InvalidParameterError(
                    f"path: no images found in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})"
                )
            if len(files) < 2:
                raise InvalidParameterError(
                    f"path: {folder} holds one frame ({files[0].name}); a sequence needs at least 2 frames"
                )
            return files, folder
        if isinstance(paths, (str, Path)) or not isinstance(paths, (list, tuple)):
            raise InvalidParameterError(f"paths must be a list of image files, got {paths!r}")
        if len(paths) < 2:
            raise InvalidParameterError(f"paths must list at least 2 frames, got {len(paths)}")
        files = [_as_path(p, f"paths[{i}]", "an image file path") for i, p in enumerate(paths)]
        for file in files:
            if not file.is_file():
                raise InputFileError(f"paths: frame file not found: {file}")
        if len(set(f.resolve() for f in files)) != len(files):
            raise InvalidParameterError("paths lists the same file more than once")
        folders = {f.parent for f in files}
        return files, folders.pop() if len(folders) == 1 else None

    @staticmethod
    def _find_sidecar(sidecar: Any, folder: Path | None) -> Path | None:
        if sidecar is not None:
            sidecar = _as_path(sidecar, "sidecar", "a path to a CSV or JSON file")
            if not sidecar.is_file():
                raise InputFileError(f"sidecar: file not found: {sidecar}")
            return sidecar
        if folder is None:
            return None
        found = [folder / n for n in SIDECAR_NAMES if (folder / n).is_file()]
        if len(found) > 1:
            raise InvalidParameterError(f"found both {found[0]} and {found[1]}; keep one or pass sidecar=")
        return found[0] if found else None

    @staticmethod
    def _values(files: list[Path], sidecar: Path | None) -> tuple[list[float], str]:
        if sidecar is not None:
            table = read_sidecar(sidecar)
            values = []
            for file in files:
                value = table.get(file.name, table.get(file.stem))
                if value is None:
                    raise InvalidParameterError(
                        f"sidecar {sidecar} has no entry for frame {file.name!r} (match by file name or stem)"
                    )
                values.append(value)
            return values, f"sidecar {sidecar}"
        from_names = [number_in_name(f) for f in files]
        if all(v is not None for v in from_names):
            return [float(v) for v in from_names], "file names"  # type: ignore[arg-type]
        return [float(i) for i in range(len(files))], "index"

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """The frames (sorted by value, read from disk on the first call) on ``image``'s device."""
        size = tuple(image.shape[1:])
        if self._frames is None:  # read once; every later image reuses the frames
            self._frames = [load_image(f) for f in progress(self.files, "frames", enabled=show_progress)]
        frames = [resize(frame, size) for frame in self._frames] if self.resize else self._frames
        shapes = {tuple(f.shape[1:]) for f in frames}
        if len(shapes) > 1:
            first = tuple(frames[0].shape[1:])
            odd = next(i for i, f in enumerate(frames) if tuple(f.shape[1:]) != first)
            raise InvalidParameterError(
                f"frames have different sizes: {self.files[0].name} is {first}, "
                f"{self.files[odd].name} is {tuple(frames[odd].shape[1:])}; pass "
                "resize=True to resize them to the image's size"
            )
        images = torch.stack(frames).to(device=image.device, dtype=image.dtype)
        values = torch.tensor(self.values, dtype=image.dtype, device=image.device)
        return InterventionSequence(
            images=images,
            values=values,
            property_name=self.property_name,
            unit=self.unit,
            periodic=self.periodic,
            metadata=self._metadata(),
        )

    def _metadata(self) -> dict[str, Any]:
        """Files, where the values came from, the grid's spacing and (periodic, in degrees) the period."""
        steps = [b - a for a, b in zip(self.values, self.values[1:])]
        metadata: dict[str, Any] = {
            "files": [str(f) for f in self.files],
            "value_source": self.value_source,
            "resized": self.resize,
            "uniform_spacing": max(steps) - min(steps) <= 1e-9 * max(1.0, max(abs(v) for v in self.values)),
        }
        if self.periodic and self.unit == "degree":
            metadata["period"] = FULL_TURN_DEGREES
        return metadata


@hookimpl
def register_sources(register: Any) -> None:
    """Register :class:`FramesSource`."""
    register(FramesSource)
