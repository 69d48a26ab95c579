"""The ``orientation`` suite: rendered objects tilted from upright to upside down.

Three classes of procedural objects (``animal``, ``mug``, ``chair``), every image rendered by the
``rendered_rotation`` source's renderer (:mod:`propgrad_rendered_rotation.orientation_scenes`) with
a random colour and a random yaw. Two ConvMixers: ``upright`` (trained on views with random yaw
only, no roll or pitch) and ``all_orientations`` (trained on views in every orientation, uniform
over SO(3)). The ``tilt`` intervention rotates an upright test object about the x axis from 0 to
180 degrees (upside down); its held-out realisation tips it about another horizontal axis
(:meth:`OrientationSuite.held_out_realisation`). The level check gives every model's accuracy by
tilt angle on fresh objects. The validity checks are in
:mod:`propgrad_rendered_rotation.orientation_validity`; the design rules, fixed before any score was
looked at, in ``docs/orientation-suite-design.md``.
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

import numpy as np
import torch

from propgrad.core.validation import check_int
from propgrad.errors import InvalidParameterError
from propgrad.sources.base import InterventionSequence
from propgrad.suites.cached import CachedSuite
from propgrad.suites.fur import balanced_labels
from propgrad_rendered_rotation.orientation_scenes import (
    CLASS_MESHES,
    TILT_AXIS,
    SceneRenderer,
    horizontal_axis,
    hsv_colours,
    tilt_poses,
    uniform_rotations,
    yaw_rotations,
)

ORIENTATION_CODE_VERSION = "orientation-1"
"""Bumped whenever a change to the scenes or the rendering changes the cached data or models."""

HELD_OUT_AZIMUTH = (15.0, 30.0)
"""Range of |azimuth| (degrees from x, about the vertical) of the held-out realisations' tilt axis."""

LEVEL_PROPERTY = "tilt about x"
"""The property of :meth:`OrientationSuite.level_data`, as named in the level-accuracy tables."""


def _renderer_identity() -> dict[str, Any]:
    """What decides the rendered pixels beyond the suite's settings: pyrender's version and the GL platform."""
    from propgrad_rendered_rotation.renderer import configure_platform

    platform = configure_platform()
    try:
        version = metadata.version("pyrender-maintained")
    except metadata.PackageNotFoundError:
        try:
            version = metadata.version("pyrender")
        except metadata.PackageNotFoundError:
            version = None
    return {"pyrender": version, "platform": platform or os.environ.get("PYOPENGL_PLATFORM")}


class OrientationSuite(CachedSuite):
    """Rendered animals, mugs and chairs; one model trained upright only, one in every orientation.

    Args:
        quick: 32 px images and the core's quick models (minutes on 2 CPU cores); False: 64 px,
            more training images, the core's full models, 150 test images per class.
        seed: Seed of the scenes, training and realisations.
        cache_dir: Cache root (None: ``propgrad.core.cache.default_cache_dir()``).
        show_progress: Progress bars for rendering and training.
    """

    name = "orientation"
    description = (
        "Rendered procedural animals, mugs and chairs (random colour and yaw); models trained on upright "
        "views only and on every orientation; tilt about x from upright to upside down (rendered_rotation)."
    )
    class_names = CLASS_MESHES
    interventions = ("tilt",)
    training_splits = ("upright", "all_orientations")
    evaluation_splits = ("upright", "all_orientations", "upside_down")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scenes: SceneRenderer | None = None
        self._rendered_test: torch.Tensor | None = None

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Every setting that determines the data and the models."""
        sizes = (
            dict(image_size=32, train_per_class=1000, test_per_class=50, eval_per_class=100, level_per_class=40)
            if self.quick
            else dict(image_size=64, train_per_class=2700, test_per_class=150, eval_per_class=300, level_per_class=100)
        )
        return {
            **self.settings_base(),
            **sizes,
            "classes": list(CLASS_MESHES),
            "background": [0.5, 0.5, 0.5],
            "lighting": "studio",
            "light_intensity": 3.0,
            "ambient": 0.3,
            "saturation": [0.5, 1.0],
            "value": [0.6, 1.0],
            "tilt_axis": list(TILT_AXIS),
            "tilt_stop": 180.0,
            "steps": 21,
            "level_angles": [18.0 * k for k in range(11)],
            "held_out_azimuth": list(HELD_OUT_AZIMUTH),
            "code_version": ORIENTATION_CODE_VERSION,
            "renderer": _renderer_identity(),
        }

    def images_per_class(self) -> int:
        """Every test image of a class in each resample: ``test_per_class`` (50 quick, 150 full)."""
        return int(self.settings()["test_per_class"])

    validity_thresholds = {"min_accuracy": 0.9}

    @classmethod
    def _validity_checks(cls, results: Any, thresholds: Any) -> list[Any]:
        """The orientation suite's checks (:mod:`propgrad_rendered_rotation.orientation_validity`)."""
        from propgrad_rendered_rotation.orientation_validity import orientation_checks

        return orientation_checks(results, suite=cls.name, **thresholds)

    @classmethod
    def validity_notes(cls, results: Any) -> list[str]:
        """The in-distribution table, the Wilcoxon test, flips and flip prediction, no pass/fail."""
        from propgrad_rendered_rotation.orientation_validity import orientation_lines

        return orientation_lines(results, suite=cls.name)

    def angles(self) -> list[float]:
        """The tilt angles of the intervention in degrees: 0 to ``tilt_stop`` in ``steps`` steps."""
        s = self.settings()
        return np.linspace(0.0, s["tilt_stop"], s["steps"]).tolist()

    # -- rendering -----------------------------------------------------------------------------
    @property
    def scenes(self) -> SceneRenderer:
        """The suite's renderer (one per class, built on first use, reused for every image)."""
        if self._scenes is None:
            s = self.settings()
            self._scenes = SceneRenderer(
                s["image_size"],
                background=s["background"],
                lighting=s["lighting"],
                light_intensity=s["light_intensity"],
                ambient=s["ambient"],
            )
        return self._scenes

    def close(self) -> None:
        """Free the renderers' OpenGL contexts."""
        if self._scenes is not None:
            self._scenes.close()

    def draw(self, per_class: int, purpose: str, pose: str, tilt: torch.Tensor | None = None) -> dict[str, Any]:
        """Scene parameters of ``per_class`` objects of every class, from the random streams of ``purpose``.

        Args:
            per_class: Objects per class.
            purpose: Names the random streams (different purposes draw different scenes).
            pose: ``upright`` (random yaw), ``all_orientations`` (a uniform rotation after the yaw),
                or ``tilted`` (random yaw, then ``tilt`` degrees about x).
            tilt: Tilt of every object (``tilted`` only), degrees.

        Returns:
            ``labels`` (N,), ``colours`` (N, 3), ``yaws`` (N,) degrees and ``rotations`` (N, 3, 3).
        """
        s = self.settings()
        labels = balanced_labels(per_class, self.generator(f"labels/{purpose}"), len(CLASS_MESHES))
        n = int(labels.shape[0])
        colours = hsv_colours(n, self.generator(f"colours/{purpose}"), s["saturation"], s["value"])
        yaws = 360.0 * torch.rand(n, generator=self.generator(f"yaws/{purpose}"), dtype=torch.float64)
        rotations = yaw_rotations(yaws)
        if pose == "all_orientations":
            rotations = uniform_rotations(n, self.generator(f"orientations/{purpose}")) @ rotations
        elif pose == "tilted":
            if tilt is None or tilt.shape != (n,):
                raise InvalidParameterError(f"tilt must be a tensor ({n},) of angles for pose 'tilted'")
            rotations = np.stack(
                [tilt_poses(float(y), [float(t)], s["tilt_axis"])[0] for y, t in zip(yaws.tolist(), tilt.tolist())]
            )
        elif pose != "upright":
            raise InvalidParameterError(f"pose must be 'upright', 'all_orientations' or 'tilted', got {pose!r}")
        return {"labels": labels, "colours": colours, "yaws": yaws, "rotations": rotations}

    def render(self, scenes: dict[str, Any], desc: str) -> torch.Tensor:
        """The images (N, 3, H, W) of scene parameters from :meth:`draw`."""
        return self.scenes.images(
            scenes["labels"],
            scenes["colours"],
            scenes["rotations"],
            show_progress=self.show_progress,
            desc=f"{self.name}: rendering {desc}",
        )

    # -- data ----------------------------------------------------------------------------------
    def training_data(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Training images and labels of ``upright`` or ``all_orientations``."""
        if split not in self.training_splits:
            raise InvalidParameterError(f"split must be one of {list(self.training_splits)}, got {split!r}")
        scenes = self.draw(self.settings()["train_per_class"], f"train/{split}", split)
        return self.render(scenes, f"train/{split}"), scenes["labels"]

    def make_test_data(self) -> dict[str, torch.Tensor]:
        """Upright objects (random yaw and colour), class-balanced: their labels, colours and yaws.

        The images are rendered from these by :meth:`test_data`, with the renderer that renders
        the interventions, so each is step 0 of its sequences bit for bit.
        """
        scenes = self.draw(self.settings()["test_per_class"], "test", "upright")
        return {"labels": scenes["labels"], "colours": scenes["colours"], "yaws": scenes["yaws"]}

    def test_data(self) -> dict[str, torch.Tensor]:
        """The cached test scenes with their ``images`` rendered (once per suite instance)."""
        data = super().test_data()
        if self._rendered_test is None:
            rotations = yaw_rotations(data["yaws"])
            self._rendered_test = self.scenes.images(
                data["labels"], data["colours"], rotations, show_progress=self.show_progress, desc="rendering test"
            )
        return {**data, "images": self._rendered_test}

    def evaluation_data(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``upright`` (random yaw), ``all_orientations`` (uniform over SO(3)), ``upside_down`` (180 about x)."""
        per_class = self.settings()["eval_per_class"]
        out = {}
        for split in self.evaluation_splits:
            purpose = f"eval/{split}"
            if split == "upside_down":
                n = per_class * len(CLASS_MESHES)
                scenes = self.draw(per_class, purpose, "tilted", torch.full((n,), 180.0, dtype=torch.float64))
            else:
                scenes = self.draw(per_class, purpose, split)
            out[split] = (self.render(scenes, purpose), scenes["labels"])
        return out

    def level_data(self) -> dict[str, tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Fresh objects (random yaw and colour) tilted about x by each of ``level_angles``, for the
        in-distribution check: ``level_per_class`` objects per class and angle."""
        s = self.settings()
        levels = s["level_angles"]
        n_levels = len(levels)
        per_class = s["level_per_class"] * n_levels
        n = per_class * len(CLASS_MESHES)
        which = torch.arange(n) % n_levels
        scenes = self.draw(per_class, "levels/tilt", "tilted", torch.tensor(levels, dtype=torch.float64)[which])
        images = self.render(scenes, "levels/tilt")
        return {LEVEL_PROPERTY: ([f"{a:g}°" for a in levels], images, scenes["labels"], which)}

    # -- interventions -------------------------------------------------------------------------
    def intervene(self, intervention: str, index: int) -> InterventionSequence:
        """The upright test object ``index`` tilted about the x axis, 0 to 180 degrees (upside down)."""
        self._check_index(intervention, index)
        return self._tilt(index, self.settings()["tilt_axis"], None)

    def held_out_realisation(self, intervention: str, index: int) -> InterventionSequence:
        """Another realisation of the tilt of test image ``index``: the same angles about another
        horizontal axis.

        The axis is horizontal at azimuth ``phi`` from x (about the vertical axis), ``|phi|``
        uniform on :data:`HELD_OUT_AZIMUTH` (15 to 30 degrees) with a random sign, drawn from the
        random stream ``held_out/tilt/<index>`` that :meth:`intervene` never uses. A rotation by
        ``theta`` about any horizontal axis tilts the object's up axis by exactly ``theta``, so
        every step has the tilt of :meth:`intervene`'s step (180 is upside down either way); step 0
        is the identity, the original test image exactly. What differs is which way the object
        tips: equivalently, the x tilt of the same object at yaw ``yaw - phi``, turned by ``phi``
        about the vertical afterwards, another draw of the yaw the scenes draw at random anyway.
        """
        return self._redrawn(intervention, index, "held_out")

    def realisation(self, intervention: str, index: int, number: int) -> InterventionSequence:
        """Realisation ``number`` of the tilt of test image ``index``: 0 is :meth:`intervene`'s;
        1, 2, ... tilt about another horizontal axis as :meth:`held_out_realisation` does, drawn
        from the random streams ``realisation/<number>/tilt/<index>``."""
        if number == 0:
            return self.intervene(intervention, index)
        return self._redrawn(intervention, index, f"realisation/{check_int(number, 'number')}")

    def held_out_azimuth(self, index: int, stream: str = "held_out") -> float:
        """The azimuth (degrees from x) of the tilt axis of test image ``index``'s realisation ``stream``."""
        low, high = self.settings()["held_out_azimuth"]
        u, sign = torch.rand(2, generator=self.generator(f"{stream}/tilt/{index}"), dtype=torch.float64).tolist()
        return (low + (high - low) * u) * (1.0 if sign < 0.5 else -1.0)

    def _redrawn(self, intervention: str, index: int, stream: str) -> InterventionSequence:
        self._check_index(intervention, index)
        azimuth = self.held_out_azimuth(index, stream)
        sequence = self._tilt(index, horizontal_axis(azimuth), azimuth)
        sequence.metadata["realisation"] = f"{stream}: tilt axis turned {azimuth:.2f} degrees about the vertical"
        return sequence

    def _tilt(self, index: int, axis: Any, azimuth: float | None) -> InterventionSequence:
        """Test object ``index`` tilted about ``axis`` by every angle of :meth:`angles`."""
        data = self.test_data()
        angles = self.angles()
        yaw = float(data["yaws"][index])
        label = int(data["labels"][index])
        n = len(angles)
        images = self.scenes.images(
            torch.full((n,), label),
            data["colours"][index].expand(n, 3),
            tilt_poses(yaw, angles, axis),
        )
        return InterventionSequence(
            images=images,
            values=torch.tensor(angles, dtype=torch.float32),
            property_name="tilt",
            unit="degree",
            metadata={
                "object": CLASS_MESHES[label],
                "yaw": yaw,
                "axis": [float(c) for c in axis],
                "axis_azimuth": 0.0 if azimuth is None else azimuth,
                "renderer": "rendered_rotation",
            },
        )
