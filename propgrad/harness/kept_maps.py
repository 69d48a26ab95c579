"""Attribution maps and sequences the benchmark keeps for a few images, for figures drawn after the run.

The cell store holds only each baseline's change score. For the report's before/after figure and
filmstrips, the runner also keeps, for the first :data:`KEEP_PER_CLASS` pool images of every class
(the same images for every model), each baseline's map of the original and of the final image, and
a few frames of the image's intervention sequence. They are compressed ``.npz`` files under
``maps/`` in the output folder, each written atomically before its cell is stored, so an
interrupted run keeps the maps of its finished cells and a resumed run adds the rest::

    maps/<suite>/<intervention>/sequence_<image>.npz              frames, values, property, unit
    maps/<suite>/<intervention>/<model>/<baseline>_<image>.npz    before, after (the two maps)

A cell computed again (another plugin version or other weights) overwrites its file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np
import torch

from propgrad.core.atomic_files import atomic_write

KEEP_PER_CLASS = 2
"""Pool images per class whose maps and sequences are kept."""
FRAMES_KEPT = 8
"""Evenly spaced frames kept of each kept image's sequence (first and last included)."""
MAPS_DIR = "maps"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", str(name)) or "_"


def kept_images(pool: Sequence[int], labels: torch.Tensor, per_class: int = KEEP_PER_CLASS) -> list[int]:
    """The first ``per_class`` images of each class in ``pool`` (pool order), sorted."""
    labels_list = [int(v) for v in labels.detach().cpu().reshape(-1).tolist()]
    counts: dict[int, int] = {}
    kept = []
    for index in pool:
        cls = labels_list[index]
        if counts.get(cls, 0) < per_class:
            counts[cls] = counts.get(cls, 0) + 1
            kept.append(int(index))
    return sorted(kept)


class KeptSequence(NamedTuple):
    """A few frames of one image's intervention sequence."""

    image: int
    frames: np.ndarray
    """(F, 3, H, W) float32 in [0, 1]."""
    steps: np.ndarray
    """(F,) the frames' step indices in the full sequence."""
    values: np.ndarray
    """(F,) their property values."""
    property_name: str
    unit: str


class KeptMap(NamedTuple):
    """One baseline's maps of one image on one model: original and final image."""

    model: str
    baseline: str
    image: int
    before: np.ndarray
    after: np.ndarray


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, allow_pickle=False, **arrays)

    return atomic_write(path, write)


class KeptMaps:
    """The ``maps/`` folder of one benchmark output folder.

    Args:
        folder: The ``maps`` folder (created on the first write).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _dir(self, suite: str, intervention: str) -> Path:
        return self.folder / _safe(suite) / _safe(intervention)

    def save_sequence(self, suite: str, intervention: str, image: int, sequence: Any) -> Path:
        """Keep :data:`FRAMES_KEPT` evenly spaced frames of an :class:`~propgrad.sources.base.InterventionSequence`."""
        n = len(sequence)
        steps = np.unique(np.linspace(0, n - 1, min(FRAMES_KEPT, n)).round().astype(np.int64))
        frames = sequence.images[torch.as_tensor(steps)].detach().float().cpu().numpy().astype(np.float32)
        values = sequence.values.detach().double().cpu().numpy()[steps]
        arrays = {
            "frames": frames,
            "steps": steps,
            "values": values,
            "property_name": np.array(str(sequence.property_name)),
            "unit": np.array(str(sequence.unit)),
        }
        return _save_npz(self._dir(suite, intervention) / f"sequence_{int(image)}.npz", arrays)

    def save_maps(
        self, suite: str, intervention: str, model: str, baseline: str, image: int, before: Any, after: Any
    ) -> Path:
        """Keep one baseline's maps (tensors or arrays) of the original and the final image."""
        arrays = {
            "before": np.asarray(torch.as_tensor(before).detach().float().cpu().numpy(), dtype=np.float32),
            "after": np.asarray(torch.as_tensor(after).detach().float().cpu().numpy(), dtype=np.float32),
        }
        path = self._dir(suite, intervention) / _safe(model) / f"{_safe(baseline)}_{int(image)}.npz"
        return _save_npz(path, arrays)

    def sequences(self, suite: str, intervention: str) -> list[KeptSequence]:
        """The kept sequences of one intervention, by image index."""
        out = []
        for path in sorted(self._dir(suite, intervention).glob("sequence_*.npz"), key=_image_of):
            with np.load(path) as data:
                out.append(
                    KeptSequence(
                        _image_of(path),
                        data["frames"],
                        data["steps"],
                        data["values"],
                        str(data["property_name"]),
                        str(data["unit"]),
                    )
                )
        return out

    def maps(self, suite: str, intervention: str, models: Iterable[str], baselines: Iterable[str]) -> list[KeptMap]:
        """The kept maps of one intervention, in model, baseline, image order (missing ones skipped)."""
        out = []
        for model in models:
            for baseline in baselines:
                folder = self._dir(suite, intervention) / _safe(model)
                for path in sorted(folder.glob(f"{_safe(baseline)}_*.npz"), key=_image_of):
                    if path.stem.rsplit("_", 1)[0] != _safe(baseline):
                        continue  # another baseline whose name starts with this one's
                    with np.load(path) as data:
                        out.append(KeptMap(model, baseline, _image_of(path), data["before"], data["after"]))
        return out


def _image_of(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])
