"""One pyrender scene and one off-screen renderer for a whole rotation sequence.

The object's meshes hang under one node; each frame only sets that node's pose and renders, so
there is no per-frame set-up. Off-screen renderers (OpenGL contexts) are pooled per frame size
for the whole process. Rendering is headless: unless ``PYOPENGL_PLATFORM`` is already set
(or PyOpenGL already imported), it is set to ``egl`` before OpenGL is first imported, which works
on a machine without a display through Mesa's EGL (what CI uses). ``osmesa`` works where
libOSMesa is installed; set ``PYOPENGL_PLATFORM=osmesa`` before starting Python to use it.

Camera: a perspective camera on the +z axis looking at the object's centre, y up. The object is
rotated about its centre (the middle of its bounding box), so it stays inside the sphere of
radius ``R`` (the farthest vertex from the centre) in every orientation; the distance (or the
field of view) is chosen so that sphere's silhouette fits the frame with a margin.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from propgrad.errors import InvalidParameterError, PropgradError
from propgrad_rendered_rotation import params

if TYPE_CHECKING:
    import trimesh

DEFAULT_PLATFORM = "egl"
DEFAULT_FOV_DEGREES = 30.0


class RenderingError(PropgradError, RuntimeError):
    """The off-screen renderer could not start (no EGL/OSMesa) or failed to render."""


def configure_platform() -> str | None:
    """Set ``PYOPENGL_PLATFORM=egl`` unless the user chose a platform or OpenGL is already imported.

    Returns:
        The platform in force (None when PyOpenGL was imported before without one).
    """
    if "PYOPENGL_PLATFORM" not in os.environ and "OpenGL" not in sys.modules:
        os.environ["PYOPENGL_PLATFORM"] = DEFAULT_PLATFORM
    return os.environ.get("PYOPENGL_PLATFORM")


def _pyrender() -> Any:
    configure_platform()
    import pyrender

    return pyrender


_OFFSCREEN: dict[tuple[int, int], Any] = {}


def _offscreen(width: int, height: int) -> Any:
    """The process's off-screen renderer of this size, created on first use.

    Renderers are pooled and never deleted one by one: pyrender's EGL back end terminates the
    shared EGL display when one renderer is deleted, which breaks every other live renderer.
    """
    key = (width, height)
    if key not in _OFFSCREEN:
        pyrender = _pyrender()
        try:
            _OFFSCREEN[key] = pyrender.OffscreenRenderer(viewport_width=width, viewport_height=height)
        except Exception as err:  # noqa: BLE001 - EGL/OSMesa/GLX fail with many types
            platform = os.environ.get("PYOPENGL_PLATFORM")
            raise RenderingError(
                f"cannot create an off-screen OpenGL context (PYOPENGL_PLATFORM={platform!r}): "
                f"{type(err).__name__}: {err}. Headless rendering needs Mesa's EGL (libEGL, the default here) "
                "or OSMesa (set PYOPENGL_PLATFORM=osmesa before starting Python)"
            ) from err
    return _OFFSCREEN[key]


def pooled_renderers() -> list[tuple[int, int]]:
    """(width, height) of the off-screen renderers kept in this process (one OpenGL context each)."""
    return list(_OFFSCREEN)


def rotation_matrix(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """The 3x3 rotation by ``degrees`` about the unit vector ``axis`` (right-hand rule, Rodrigues).

    Seen from the tip of the axis looking back at the origin, positive angles turn counter-clockwise:
    about ``z`` (towards the camera) the object turns counter-clockwise in the image.
    """
    x, y, z = axis
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) * c + s * k + (1 - c) * np.outer(axis, axis)


def bounding_sphere(meshes: list[trimesh.Trimesh]) -> tuple[np.ndarray, float]:
    """Centre (the middle of the bounding box of all vertices) and radius (farthest vertex from it).

    Raises:
        ValueError: If every vertex is at one point (nothing to see).
    """
    vertices = np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes])
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    radius = float(np.sqrt(((vertices - centre) ** 2).sum(axis=1)).max())
    if not radius > 0:
        raise InvalidParameterError("mesh is degenerate: all its vertices are at one point")
    return centre, radius


@dataclass(frozen=True)
class CameraFit:
    """Where the camera is and what it sees.

    Attributes:
        distance: From the camera to the object's centre (the object's units).
        fov_degrees: Vertical field of view.
        radius: Radius of the object's bounding sphere about its centre.
        centre: The object's centre in the mesh's coordinates (the rotation centre).
        margin: Fraction of the half-frame left free around the sphere's silhouette (at least 2 pixels).
    """

    distance: float
    fov_degrees: float
    radius: float
    centre: tuple[float, float, float]
    margin: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {
            "distance": self.distance,
            "fov_degrees": self.fov_degrees,
            "radius": self.radius,
            "centre": list(self.centre),
            "margin": self.margin,
        }


def fit_camera(
    radius: float,
    centre: np.ndarray,
    size: tuple[int, int],
    *,
    fov_degrees: float | None = None,
    distance: float | None = None,
    margin: float = 0.05,
) -> CameraFit:
    """Choose the camera distance (or field of view) so the bounding sphere fits every frame.

    The silhouette of a sphere of radius ``R`` seen from distance ``d`` on the optical axis is a
    circle of half-angle ``asin(R / d)``; it must lie within ``1 - margin`` of the narrower
    half-frame. Given the field of view (default 30 degrees) the distance follows; given the
    distance, the field of view; given both, they are used as they are.

    Raises:
        ValueError: For a distance not beyond the sphere (the camera inside the object).
    """
    height, width = size
    margin = max(margin, 4.0 / min(height, width))  # at least 2 pixels free on each side
    aspect = width / height
    if distance is not None and not distance > radius:
        raise InvalidParameterError(
            f"distance must exceed the object's bounding radius {radius:.4g} (the camera would be inside it), "
            f"got {distance:g}"
        )
    if distance is None:
        fov = DEFAULT_FOV_DEGREES if fov_degrees is None else fov_degrees
        narrow = math.tan(math.radians(fov) / 2) * min(1.0, aspect)  # tangent of the narrower half-angle
        distance = radius / math.sin(math.atan((1 - margin) * narrow))
    elif fov_degrees is None:
        needed = math.tan(math.asin(radius / distance)) / (1 - margin)
        fov = math.degrees(2 * math.atan(needed / min(1.0, aspect)))
        if fov >= 179.0:
            raise InvalidParameterError(f"distance {distance:g} is too close to the object to fit it in the frame")
    else:
        fov = fov_degrees
    return CameraFit(float(distance), float(fov), float(radius), tuple(float(c) for c in centre), float(margin))


@dataclass(frozen=True)
class Lighting:
    """The lights of a scene.

    Attributes:
        style: ``"headlight"`` (a directional light from the camera, plus ambient light),
            ``"studio"`` (a key light from the upper left front, a weaker fill from the right,
            plus ambient), or ``"flat"`` (no shading: the colours as they are).
        intensity: Strength of the directional light(s).
        ambient: Ambient light level in [0, 1].

    Raises:
        InvalidParameterError: An unknown ``style``.
    """

    style: str = "headlight"
    intensity: float = 3.0
    ambient: float = 0.3

    def __post_init__(self) -> None:
        if self.style not in params.LIGHTINGS:
            raise InvalidParameterError(
                f"lighting must be one of {', '.join(map(repr, params.LIGHTINGS))}, got {self.style!r}"
            )


def _look_from(position: np.ndarray) -> np.ndarray:
    """A 4x4 pose at ``position`` whose -z axis points at the origin (pyrender's cameras and lights)."""
    forward = position / np.linalg.norm(position)  # the pose's +z axis
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(up, forward)
    if np.linalg.norm(right) < 1e-9:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(forward, right), forward, position
    return pose


class RotationRenderer:
    """Render one object in any orientation with one scene and one off-screen renderer.

    Use it as a context manager (or call :meth:`close`) when done. The off-screen renderer (one
    OpenGL context) is shared by every ``RotationRenderer`` of the same size in the process and
    kept for the next one, so building many of them costs no new contexts.

    Args:
        meshes: The object's triangle meshes (from :func:`propgrad_rendered_rotation.meshes.load_mesh`
            or a procedural object); vertex colours, materials and textures are used.
        size: (height, width) of the frames in pixels.
        background: RGB background in [0, 1].
        lighting: The lights (:class:`Lighting`; default: a headlight of intensity 3 and ambient 0.3).
        fov_degrees: Vertical field of view; None chooses it (see :func:`fit_camera`).
        distance: Camera distance; None chooses it so the object fits every frame.
        margin: Fraction of the half-frame left free around the object's bounding sphere.
        smooth: Smooth shading with vertex normals (False: one normal per face).

    Raises:
        RenderingError: If no off-screen OpenGL context can be created (message says what to set).
    """

    def __init__(
        self,
        meshes: list[trimesh.Trimesh],
        *,
        size: tuple[int, int],
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
        lighting: Lighting = Lighting(),
        fov_degrees: float | None = None,
        distance: float | None = None,
        margin: float = 0.05,
        smooth: bool = True,
    ) -> None:
        if not isinstance(lighting, Lighting):
            raise InvalidParameterError(
                f"lighting must be a propgrad_rendered_rotation.renderer.Lighting, got {type(lighting).__name__}"
            )
        pyrender = _pyrender()
        self.size = (int(size[0]), int(size[1]))
        centre, radius = bounding_sphere(meshes)
        self.camera = fit_camera(radius, centre, self.size, fov_degrees=fov_degrees, distance=distance, margin=margin)
        self._flags = pyrender.RenderFlags.FLAT if lighting.style == "flat" else pyrender.RenderFlags.NONE
        scene = pyrender.Scene(bg_color=[*background, 1.0], ambient_light=[lighting.ambient] * 3)
        self._object = pyrender.Node(name="object", matrix=np.eye(4))
        scene.add_node(self._object)
        to_centre = np.eye(4)
        to_centre[:3, 3] = -centre
        for i, mesh in enumerate(meshes):
            part = pyrender.Mesh.from_trimesh(mesh, smooth=smooth)
            scene.add(part, name=f"part{i}", pose=to_centre, parent_node=self._object)
        d = self.camera.distance
        height, width = self.size
        camera = pyrender.PerspectiveCamera(
            yfov=math.radians(self.camera.fov_degrees),
            znear=max(1e-3 * radius, 0.5 * (d - radius)),
            zfar=d + 2 * radius,
            aspectRatio=width / height,
        )
        scene.add(camera, pose=_look_from(np.array([0.0, 0.0, d])))
        intensity = lighting.intensity
        if lighting.style == "headlight":
            scene.add(pyrender.DirectionalLight(intensity=intensity), pose=_look_from(np.array([0.0, 0.0, d])))
        elif lighting.style == "studio":
            scene.add(pyrender.DirectionalLight(intensity=intensity), pose=_look_from(np.array([-1.0, 1.5, 2.0])))
            scene.add(pyrender.DirectionalLight(intensity=0.4 * intensity), pose=_look_from(np.array([2.0, 0.2, 1.0])))
        self._scene = scene
        self._renderer: Any = _offscreen(width, height)
        away = np.eye(4)
        away[2, 3] = 10 * d  # behind the camera: a frame of background only
        self._scene.set_pose(self._object, away)
        self._background = self._renderer.render(self._scene, flags=self._flags)[0][0, 0, :3].copy()

    def render(self, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render the object turned by ``rotation`` (3x3) about its centre.

        Returns:
            ``(colour, mask)``: uint8 (H, W, 3) RGB and bool (H, W), True on the object's pixels:
            where its depth is set or the colour differs from the background (anti-aliased edges).
        """
        if self._renderer is None:
            raise RenderingError("this RotationRenderer is closed")
        pose = np.eye(4)
        pose[:3, :3] = rotation
        self._scene.set_pose(self._object, pose)
        colour, depth = self._renderer.render(self._scene, flags=self._flags)
        colour = np.ascontiguousarray(colour[..., :3])
        return colour, (depth > 0) | (colour != self._background).any(axis=-1)

    def render_angle(self, axis: tuple[float, float, float], degrees: float) -> tuple[np.ndarray, np.ndarray]:
        """Render the object turned by ``degrees`` about the unit vector ``axis`` (see :func:`rotation_matrix`)."""
        return self.render(rotation_matrix(axis, degrees))

    def close(self) -> None:
        """Let go of the scene (safe to call twice); the off-screen context stays pooled for reuse."""
        self._renderer = None

    def __enter__(self) -> RotationRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
