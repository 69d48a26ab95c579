"""Reading installed entry points when some distribution's ``entry_points.txt`` is broken.

``importlib.metadata.entry_points()`` parses the entry points of every installed distribution and
raises on the first line without ``=`` (``TypeError: Pair.__new__() missing 1 required positional
argument``), whatever the line's group. torch calls it while it is imported (to autoload device
backends) and numba when it first compiles (to load its extensions), so one broken line in any
distribution broke every propgrad command: torch was left half-imported and the process could
crash at exit (a segmentation fault).

:func:`repair_entry_points` finds such lines once per process, reading each distribution on its
own, and puts a copy of each affected distribution first on ``sys.meta_path`` whose
``entry_points.txt`` lacks the broken lines. ``importlib.metadata`` keeps the first distribution
of each name, so every library (torch, numba, propgrad) then reads the intact entry points. It
warns about broken lines outside the ``propgrad`` group once; those inside it are reported as
plugin load failures (:mod:`propgrad.plugins`).
"""

from __future__ import annotations

import re
import sys
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from propgrad.hookspecs import ENTRY_POINT_GROUP
from propgrad.plugins.errors import PropgradPluginWarning

__all__ = ["BrokenEntryPoint", "FoundEntryPoint", "read_entry_points", "repair_entry_points"]

ENTRY_POINTS_FILE = "entry_points.txt"


@dataclass(frozen=True)
class FoundEntryPoint:
    """One readable entry point and the distribution that declares it (None if unknown)."""

    entry_point: metadata.EntryPoint
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class BrokenEntryPoint:
    """A line of a distribution's ``entry_points.txt`` that is not ``name = value`` (it is skipped)."""

    distribution: str | None
    version: str | None
    path: str
    line_number: int
    line: str
    group: str

    def __str__(self) -> str:
        owner = f"{self.distribution or 'a distribution without a name'} {self.version or '?'}"
        return (
            f"{owner}: line {self.line_number} of {self.path} in group [{self.group}], {self.line!r}, has no '=' "
            "(expected 'name = module:attribute'); the line is skipped"
        )


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name_of(dist: metadata.Distribution) -> str | None:
    meta = dist.metadata
    return meta["Name"] if meta is not None else None


def _folder_of(dist: metadata.Distribution) -> Path | None:
    folder = getattr(dist, "_path", None)  # PathDistribution keeps its *.dist-info folder here
    return Path(folder) if folder is not None else None


def _broken_lines(dist: metadata.Distribution) -> list[BrokenEntryPoint]:
    """The lines of one distribution's ``entry_points.txt`` that importlib cannot parse.

    Follows importlib's format: stripped lines, blank ones and ``#`` comments skipped, ``[group]``
    headers, lines before the first header ignored; every other line needs a ``=``.
    """
    name = _name_of(dist)
    version = dist.version if name else None
    folder = _folder_of(dist)
    where = str(folder / ENTRY_POINTS_FILE) if folder is not None else ENTRY_POINTS_FILE
    broken, group = [], None
    for number, raw in enumerate((dist.read_text(ENTRY_POINTS_FILE) or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line.strip("[]")
        elif group is not None and "=" not in line:
            broken.append(BrokenEntryPoint(name, version, where, number, line, group))
    return broken


class _RepairedDistribution(metadata.Distribution):
    """A distribution as installed, except that its ``entry_points.txt`` lacks the lines without ``=``."""

    def __init__(self, dist: metadata.Distribution, broken: list[BrokenEntryPoint]) -> None:
        self._dist = dist
        skipped = {b.line_number for b in broken}
        lines = (dist.read_text(ENTRY_POINTS_FILE) or "").splitlines()
        self._entry_points = "\n".join(
            f"# skipped by propgrad (no '='): {line}" if number in skipped else line
            for number, line in enumerate(lines, start=1)
        )

    def read_text(self, filename: str) -> str | None:
        return self._entry_points if filename == ENTRY_POINTS_FILE else self._dist.read_text(filename)

    def locate_file(self, path: Any) -> Any:
        return self._dist.locate_file(path)


class _RepairedFinder(metadata.DistributionFinder):
    """Finds the repaired distributions, ahead of the path finder that finds the broken originals."""

    def __init__(self) -> None:
        self.repaired: list[tuple[str, Path | None, _RepairedDistribution]] = []

    def find_spec(self, *args: Any, **kwargs: Any) -> None:
        return None  # finds no modules, only distributions

    def find_distributions(
        self, context: metadata.DistributionFinder.Context = metadata.DistributionFinder.Context()
    ) -> Iterator[metadata.Distribution]:
        wanted = _normalised(context.name) if context.name else None
        paths = {str(Path(p).resolve()) for p in context.path}
        for key, folder, dist in self.repaired:
            if (wanted is None or wanted == key) and (folder is None or str(folder.parent.resolve()) in paths):
                yield dist


_FINDER = _RepairedFinder()
_LOCK = threading.Lock()
_BROKEN: list[BrokenEntryPoint] | None = None


def repair_entry_points() -> list[BrokenEntryPoint]:
    """Hide the lines without ``=`` of every installed ``entry_points.txt`` from ``importlib.metadata``, once.

    When every file parses (the usual case) this only costs one read of the entry points. Otherwise
    each distribution with broken lines is replaced, for this process, by a copy without them (see
    the module docstring), and one :class:`~propgrad.plugins.PropgradPluginWarning` names the
    broken lines outside the ``propgrad`` group. Call it before torch or numba is imported.

    Returns:
        Every broken line found (empty when all files parse).
    """
    global _BROKEN
    with _LOCK:
        if _BROKEN is not None:
            return list(_BROKEN)
        try:
            metadata.entry_points()
            _BROKEN = []
            return []
        except Exception:  # noqa: BLE001 - exactly the failure every other reader would hit
            pass
        broken: list[BrokenEntryPoint] = []
        seen: set[str] = set()
        for dist in metadata.distributions():
            name = _name_of(dist)
            key = _normalised(name) if name else ""
            if key in seen:
                continue  # importlib.metadata reads the first distribution of a name only
            seen.add(key)
            lines = _broken_lines(dist)
            if lines:
                broken += lines
                _FINDER.repaired.append((key, _folder_of(dist), _RepairedDistribution(dist, lines)))
        if _FINDER.repaired and _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
        _BROKEN = broken
    others = [b for b in broken if b.group != ENTRY_POINT_GROUP]
    if others:
        warnings.warn(
            "cannot read the entry points of every installed package: "
            + "; ".join(str(b) for b in others)
            + ". Reinstall or uninstall the package named.",
            PropgradPluginWarning,
            stacklevel=2,
        )
    return list(broken)


def read_entry_points(group: str) -> tuple[list[FoundEntryPoint], list[BrokenEntryPoint]]:
    """The entry points of ``group`` of every installed distribution, and its lines without ``=``.

    Returns:
        The readable entry points (each with its distribution's name and version), and the
        broken lines of ``group`` (skipped; see :func:`repair_entry_points`).
    """
    broken = [b for b in repair_entry_points() if b.group == group]
    found = []
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        found.append(FoundEntryPoint(ep, getattr(dist, "name", None), getattr(dist, "version", None)))
    return found, broken
