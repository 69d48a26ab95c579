"""The scenes of the ``orientation`` suite: random colours and poses, rendered by the source's renderer.

An image is one procedural object of its class (:data:`CLASS_MESHES`), in one colour, in one pose
(a 3x3 rotation about the object's centre), rendered by the ``rendered_rotation`` source's
:class:`~propgrad_rendered_rotation.renderer.RotationRenderer` (:class:`SceneRenderer` keeps one per
class for all of a suite's images). Poses are built from the renderer's own
:func:`~propgrad_rendered_rotation.renderer.rotation_matrix`; y is up, the camera looks along -z.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from propgrad.core.progress import progress
from propgrad.errors import InvalidParameterError
from propgrad_rendered_rotation.renderer import rotation_matrix

CLASS_MESHES: tuple[str, ...] = ("animal", "mug", "chair")
"""The procedural objects of the suite's classes, in class order (the asymmetric ones of ``meshes.py``)."""

UP = (0.0, 1.0, 0.0)
"""The objects' vertical axis (``meshes.py``: y is up)."""

TILT_AXIS = (1.0, 0.0, 0.0)
"""The axis of the ``tilt`` intervention: x, horizontal in the image (the top tips towards the camera)."""


def hsv_colours(
    n: int,
    generator: torch.Generator,
    saturation: Sequence[float] = (0.5, 1.0),
    value: Sequence[float] = (0.6, 1.0),
) -> torch.Tensor:
    """``n`` random RGB colours (n, 3) in [0, 1], float64.

    Hue is uniform on [0, 1), saturation and value uniform on their ranges; HSV -> RGB by the
    formula of ``colorsys.hsv_to_rgb``.
    """
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    h = u[:, 0]
    s = saturation[0] + (saturation[1] - saturation[0]) * u[:, 1]
    v = value[0] + (value[1] - value[0]) * u[:, 2]
    sector = torch.floor(h * 6.0)
    f = h * 6.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack(
        [
            torch.stack([v, t, p], 1),
            torch.stack([q, v, p], 1),
            torch.stack([p, v, t], 1),
            torch.stack([p, q, v], 1),
            torch.stack([t, p, v], 1),
            torch.stack([v, p, q], 1),
        ],
        1,
    )
    return table[torch.arange(n), sector.long() % 6]


def uniform_rotations(n: int, generator: torch.Generator) -> np.ndarray:
    """``n`` rotation matrices (n, 3, 3) drawn uniformly from SO(3): normalised Gaussian quaternions."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    matrices = torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], 1),
            torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], 1),
            torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1),
        ],
        1,
    )
    return matrices.numpy()


def yaw_rotations(yaws: torch.Tensor) -> np.ndarray:
    """Rotations (n, 3, 3) by ``yaws`` degrees about the vertical axis (no roll, no pitch)."""
    return np.stack([rotation_matrix(UP, float(a)) for a in yaws.tolist()]) if len(yaws) else np.zeros((0, 3, 3))


def horizontal_axis(azimuth: float) -> tuple[float, float, float]:
    """The horizontal unit axis at ``azimuth`` degrees from x, turned about the vertical (x for 0)."""
    a = math.radians(azimuth)
    return (math.cos(a), 0.0, -math.sin(a))


def tilt_poses(yaw: float, angles: Sequence[float], axis: Sequence[float] = TILT_AXIS) -> np.ndarray:
    """The poses (n, 3, 3) of an upright object with ``yaw`` tilted by ``angles`` degrees about ``axis``:
    ``R_axis(angle) @ R_up(yaw)``."""
    base = rotation_matrix(UP, float(yaw))
    unit = tuple(float(c) for c in axis)
    return np.stack([rotation_matrix(unit, float(a)) @ base for a in angles])  # type: ignore[arg-type]


def white(mesh: Any) -> Any:
    """A copy of ``mesh`` with every vertex white, so the material's base colour alone sets its colour."""
    out = mesh.copy()
    out.visual.vertex_colors = np.tile(np.array([255, 255, 255, 255], dtype=np.uint8), (len(out.vertices), 1))
    return out


class SceneRenderer:
    """One off-screen renderer per class, built on first use and reused for every image of the suite.

    Each class's renderer is the ``rendered_rotation`` source's own
    (:meth:`RenderedRotationSource.renderer`), for that class's procedural object with white
    vertex colours, the suite's background, lighting and size; an image's colour is the base
    colour of the object's material, set before its frame is rendered (no new mesh, no upload).

    Args:
        size: Side of the square frames in pixels.
        background: RGB background in [0, 1].
        lighting: The source's lighting (``headlight``, ``studio`` or ``flat``).
        light_intensity: Strength of the directional light(s).
        ambient: Ambient light level in [0, 1].
    """

    def __init__(
        self,
        size: int,
        *,
        background: Sequence[float],
        lighting: str,
        light_intensity: float,
        ambient: float,
    ) -> None:
        self.size = int(size)
        self.options = {
            "background": tuple(float(c) for c in background),
            "lighting": lighting,
            "light_intensity": float(light_intensity),
            "ambient": float(ambient),
        }
        self._renderers: dict[int, Any] = {}
        self._materials: dict[int, list[Any]] = {}

    def source(self, label: int, angles: Sequence[float] = (0.0, 180.0), axis: Any = TILT_AXIS) -> Any:
        """The ``rendered_rotation`` source of class ``label``'s white object with the suite's settings."""
        from propgrad_rendered_rotation.meshes import build_mesh
        from propgrad_rendered_rotation.source import RenderedRotationSource

        return RenderedRotationSource(
            white(build_mesh(CLASS_MESHES[label])),
            axis=axis,
            angles=list(angles),
            image_size=self.size,
            **self.options,
        )

    def _renderer(self, label: int) -> Any:
        if label not in self._renderers:
            renderer = self.source(label).renderer((self.size, self.size))
            self._renderers[label] = renderer
            # The materials of the renderer's scene: the one thing the renderer has no public way to
            # change. Their base colour is a uniform read at every draw, so setting it recolours
            # the object without rebuilding anything.
            self._materials[label] = [p.material for mesh in renderer._scene.meshes for p in mesh.primitives]
        return self._renderers[label]

    def render(self, label: int, colour: Sequence[float], rotation: np.ndarray) -> np.ndarray:
        """One uint8 (H, W, 3) frame of class ``label``'s object in ``colour`` (RGB in [0, 1]) and pose ``rotation``."""
        if not 0 <= int(label) < len(CLASS_MESHES):
            raise InvalidParameterError(f"label must be a class index in [0, {len(CLASS_MESHES)}), got {label!r}")
        renderer = self._renderer(int(label))
        for material in self._materials[int(label)]:
            material.baseColorFactor = np.array([*(float(c) for c in colour), 1.0])
        frame, _mask = renderer.render(np.asarray(rotation, dtype=np.float64))
        return frame

    def images(
        self,
        labels: torch.Tensor,
        colours: torch.Tensor,
        rotations: np.ndarray,
        *,
        show_progress: bool = False,
        desc: str = "rendering",
    ) -> torch.Tensor:
        """Float images (N, 3, H, W) in [0, 1] (``uint8 / 255``, as the source's) of N objects.

        Args:
            labels: Class of every image (N,).
            colours: RGB colour of every image (N, 3) in [0, 1].
            rotations: Pose of every image (N, 3, 3).
            show_progress: Show a progress bar.
            desc: Label of the progress bar.
        """
        n = int(labels.shape[0])
        if colours.shape != (n, 3) or rotations.shape != (n, 3, 3):
            raise InvalidParameterError(
                f"labels (N,), colours (N, 3) and rotations (N, 3, 3) must describe the same N images, got "
                f"{tuple(labels.shape)}, {tuple(colours.shape)}, {tuple(rotations.shape)}"
            )
        frames = np.empty((n, self.size, self.size, 3), dtype=np.uint8)
        for i in progress(range(n), desc, enabled=show_progress, leave=False):
            frames[i] = self.render(int(labels[i]), colours[i].tolist(), rotations[i])
        return torch.from_numpy(frames).permute(0, 3, 1, 2).to(torch.float32) / 255

    def close(self) -> None:
        """Free every renderer's OpenGL context (rendering again builds them anew)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._materials.clear()
