"""The ``rendered_rotation`` intervention source: a 3D object rendered as it turns about an axis.

Following the paper's Sec. 4.4 and Appx. E, one image per degree of a full turn (the default),
about the x, y or z axis or any axis vector. The property values are the angles in degrees; a
full turn is periodic (period 360). All frames come from one scene and one off-screen renderer
(see :mod:`propgrad_rendered_rotation.renderer`); the frames of a size are rendered once per
source and reused.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from propgrad.core.progress import progress
from propgrad.core.validation import check_sequence_size
from propgrad.errors import InvalidParameterError
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad_rendered_rotation import meshes as mesh_module
from propgrad_rendered_rotation.params import FULL_TURN, RenderedRotationParams, angle_grid, as_image_size
from propgrad_rendered_rotation.renderer import CameraFit, Lighting, RotationRenderer


@dataclasses.dataclass(frozen=True)
class Rendering:
    """The rendered frames of one size.

    Attributes:
        frames: uint8 (N, H, W, 3) RGB frames, one per angle.
        masks: bool (N, H, W), True on the object's pixels (depth > 0).
        camera: Where the camera was.
    """

    frames: np.ndarray
    masks: np.ndarray
    camera: CameraFit

    def images(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The frames as float (N, 3, H, W) in [0, 1] (``uint8 / 255``)."""
        return torch.from_numpy(self.frames).permute(0, 3, 1, 2).to(device=device, dtype=dtype) / 255


def _resolve_mesh(mesh: Any) -> tuple[list[Any], str]:
    """The meshes to render and how to describe them in metadata."""
    if isinstance(mesh, (str, os.PathLike)):
        text = os.fspath(mesh)
        if isinstance(mesh, str) and Path(text).suffix.lower() not in mesh_module.MESH_FORMATS:
            if text.strip().lower() in mesh_module.MESH_NAMES:
                return [mesh_module.build_mesh(text)], text.strip().lower()
            raise InvalidParameterError(
                f"mesh must be a mesh file ({', '.join(mesh_module.MESH_FORMATS)}) or one of the procedural "
                f"objects {', '.join(map(repr, mesh_module.MESH_NAMES))}, got {text!r}"
            )
        return mesh_module.load_mesh(text, "mesh"), str(Path(text).expanduser().resolve())
    import trimesh

    if isinstance(mesh, trimesh.Scene):
        return mesh_module.check_meshes(list(mesh.dump(concatenate=False)) if mesh.geometry else [], "mesh"), "scene"
    if isinstance(mesh, trimesh.Trimesh):
        return mesh_module.check_meshes([mesh], "mesh"), "trimesh"
    if isinstance(mesh, (list, tuple)) and mesh and all(isinstance(m, trimesh.Trimesh) for m in mesh):
        return mesh_module.check_meshes(list(mesh), "mesh"), "trimesh"
    raise InvalidParameterError(
        f"mesh must be a procedural object's name, a mesh file path, or a trimesh Trimesh/Scene, "
        f"got {type(mesh).__name__} {mesh!r:.80}"
    )


class RenderedRotationSource(InterventionSource):
    """Render a mesh turning about an axis, one frame per angle, headless (pyrender).

    The ``image`` given to :meth:`generate` only sets the frames' size (unless ``image_size`` is
    given), device and dtype; its pixels are not used. Pass :meth:`reference_image` (the first
    frame) as the image to explain so the model's decision on the "original" is the unrotated
    object's.

    Args:
        mesh: A procedural object's name (:data:`propgrad_rendered_rotation.meshes.MESH_NAMES`),
            a mesh file (OBJ, PLY, STL, GLB, GLTF, OFF; vertex colours and textures are used), or a
            trimesh ``Trimesh``/``Scene``.
        axis: ``"x"`` (pitch), ``"y"`` (yaw, a turntable), ``"z"`` (roll, in the image plane) or
            any non-zero 3-vector; the camera looks along -z with y up.
        start: First angle in degrees (default 0).
        stop: Last angle (default 360). A span of exactly 360 is a full turn without the repeated
            last view (0..359); otherwise ``stop`` is rendered when the steps reach it.
        step: Degrees between frames (default 1).
        angles: Explicit strictly increasing angles instead of start/stop/step (any spacing).
        image_size: None for the reference image's size, an int for a square, or (height, width).
        background: RGB in [0, 1], a grey level, or black/white/grey.
        lighting: ``"headlight"``, ``"studio"`` or ``"flat"`` (see :class:`RotationRenderer`).
        light_intensity: Strength of the directional light(s).
        ambient: Ambient light level in [0, 1].
        fov: Vertical field of view in degrees; None chooses it (30 unless ``distance`` is given).
        distance: Camera distance; None chooses it so the object fits every frame.
        margin: Fraction of the half-frame left free around the object's bounding sphere.
        smooth: Smooth shading.
        periodic: Override the full-turn detection (None: detect).

    Raises:
        ValueError: Naming the parameter: unknown axis or a zero axis vector, an unknown mesh
            name, an empty, unreadable or faceless mesh file, image size 0, angles that do not
            increase or span more than a turn, and other invalid values.
        FileNotFoundError: For a mesh file that does not exist.
    """

    name = "rendered_rotation"
    description = "A 3D mesh rendered as it rotates about an axis (pyrender, headless; angles in degrees)"
    property_name = "angle"
    unit = "degree"

    Params = RenderedRotationParams

    def __init__(self, *args: Any, **params: Any) -> None:
        super().__init__(*args, **params)
        declared = self.params
        self.angles, full_turn = angle_grid(declared.start, declared.stop, declared.step, declared.angles)
        self.periodic = full_turn if declared.periodic is None else declared.periodic
        self.meshes, self.mesh_label = _resolve_mesh(declared.mesh)
        self._renderings: dict[tuple[int, int], Rendering] = {}

    def _size(self, image: torch.Tensor | None) -> tuple[int, int]:
        if self.image_size is not None:
            return self.image_size
        if image is None:
            raise InvalidParameterError("image_size: give the frames' size (image_size=...) or a reference image")
        return int(image.shape[-2]), int(image.shape[-1])

    def renderer(self, size: tuple[int, int]) -> RotationRenderer:
        """A :class:`RotationRenderer` of this source's object, camera and lights at ``size`` (close it after use)."""
        return RotationRenderer(
            self.meshes,
            size=size,
            background=self.background,
            lighting=Lighting(self.lighting, self.light_intensity, self.ambient),
            fov_degrees=self.fov,
            distance=self.distance,
            margin=self.margin,
            smooth=self.smooth,
        )

    def render(self, size: tuple[int, int] | None = None, *, show_progress: bool = False) -> Rendering:
        """Render every angle at ``size`` (default ``image_size``) with one renderer; cached per size."""
        size = self._size(None) if size is None else as_image_size(size)
        assert size is not None
        if size not in self._renderings:
            check_sequence_size(len(self.angles), torch.empty((3, *size), device="meta"), name="number of angles")
            frames = np.empty((len(self.angles), size[0], size[1], 3), dtype=np.uint8)
            masks = np.empty((len(self.angles), size[0], size[1]), dtype=bool)
            with self.renderer(size) as renderer:
                for i, angle in enumerate(progress(self.angles, "rendering", enabled=show_progress)):
                    frames[i], masks[i] = renderer.render_angle(self.axis, angle)
                camera = renderer.camera
            self._renderings[size] = Rendering(frames, masks, camera)
        return self._renderings[size]

    def reference_image(self, size: int | tuple[int, int] | None = None) -> torch.Tensor:
        """The first frame (the object at the first angle) as a float (3, H, W) image in [0, 1]."""
        return self.render(None if size is None else as_image_size(size)).images()[0]

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """The rendered frames on ``image``'s device (the rendering does not depend on ``seed``).

        The sequence's ``region`` is where the object is in any frame (the pixels the rotation
        changes); the object's mask per frame is in :meth:`render`'s result.
        """
        rendering = self.render(self._size(image), show_progress=show_progress)
        dtype = image.dtype
        images = rendering.images(image.device, dtype)
        metadata = {
            "mesh": self.mesh_label,
            "axis": list(self.axis),
            "image_size": list(images.shape[-2:]),
            "background": list(self.background),
            "lighting": self.lighting,
            "light_intensity": self.light_intensity,
            "ambient": self.ambient,
            "camera": rendering.camera.as_dict(),
            "object_pixels": rendering.masks.reshape(len(self.angles), -1).sum(axis=1).tolist(),
            "renderer": "pyrender",
            "platform": os.environ.get("PYOPENGL_PLATFORM"),
        }
        if self.periodic:
            metadata["period"] = FULL_TURN
        return InterventionSequence(
            images=images,
            values=torch.tensor(self.angles, dtype=dtype, device=image.device),
            property_name=self.property_name,
            unit=self.unit,
            periodic=self.periodic,
            metadata=metadata,
            region=torch.from_numpy(rendering.masks.any(axis=0)).to(image.device),
        )
