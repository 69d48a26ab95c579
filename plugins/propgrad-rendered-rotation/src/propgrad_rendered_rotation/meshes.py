"""Procedural toy objects with vertex colours, and loading meshes from files.

Meshes cannot be downloaded here, so tests, examples and the orientation suite use small objects
built from primitives: asymmetric ones whose orientation a model can see (``animal``: a
four-legged animal with head, ears and tail; ``mug``: a mug with a handle; ``chair``: a chair with
a backrest) and rotationally symmetric ones for checks (``sphere``; ``cylinder``, symmetric about
its own axis, the y axis). Every object is deterministic (no randomness), y is up, the animal
faces +x, and each is centred on the middle of its bounding box.

trimesh is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from propgrad.core.validation import ParameterTypeError
from propgrad.errors import InputFileError, InvalidParameterError

if TYPE_CHECKING:
    import trimesh

MESH_FORMATS: tuple[str, ...] = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")
"""File extensions :func:`load_mesh` reads and :func:`write_mesh` writes (trimesh's formats)."""

Colour = tuple[int, int, int]


def _coloured(mesh: trimesh.Trimesh, colour: Colour, *, flat: bool = False) -> trimesh.Trimesh:
    """``mesh`` with every vertex in ``colour`` (RGB 0-255).

    Vertices are unshared across sharp edges (the rims of cylinders; with ``flat``, every face:
    the faces of boxes), so that smooth shading keeps those edges sharp.
    """
    import trimesh

    if flat:
        mesh = mesh.copy()
        mesh.unmerge_vertices()
    else:
        mesh = trimesh.graph.smooth_shade(mesh, angle=math.radians(40), facet_minarea=None)
    rgba = np.array([*colour, 255], dtype=np.uint8)
    mesh.visual.vertex_colors = np.tile(rgba, (len(mesh.vertices), 1))
    return mesh


def _box(extents: tuple[float, float, float], centre: tuple[float, float, float], colour: Colour) -> trimesh.Trimesh:
    import trimesh

    return _coloured(trimesh.creation.box(extents=extents, transform=_translation(centre)), colour, flat=True)


def _translation(offset: tuple[float, float, float]) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def _rod(
    start: tuple[float, float, float], end: tuple[float, float, float], radius: float, colour: Colour
) -> trimesh.Trimesh:
    """A cylinder of ``radius`` from ``start`` to ``end``."""
    import trimesh

    return _coloured(trimesh.creation.cylinder(radius=radius, segment=[start, end], sections=24), colour)


def _ball(centre: tuple[float, float, float], radius: float, colour: Colour) -> trimesh.Trimesh:
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    ball.apply_translation(centre)
    return _coloured(ball, colour)


def _cone(base: tuple[float, float, float], radius: float, height: float, colour: Colour) -> trimesh.Trimesh:
    """A cone standing on ``base``, pointing up (+y)."""
    import trimesh

    up = trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0])  # z (trimesh's cone axis) -> y
    cone = trimesh.creation.cone(radius=radius, height=height, sections=24, transform=up)
    cone.apply_translation(base)
    return _coloured(cone, colour)


def _join(parts: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """One mesh of ``parts`` (vertex colours kept), centred on its bounding box's middle."""
    import trimesh

    mesh = trimesh.util.concatenate(parts)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


def animal() -> trimesh.Trimesh:
    """A four-legged animal facing +x: body, four legs, head with snout and two ears, a raised tail."""
    body, leg, head, dark = (176, 112, 58), (112, 70, 38), (214, 166, 112), (58, 38, 28)
    parts = [_box((1.6, 0.55, 0.6), (0.0, 0.75, 0.0), body)]
    parts += [_rod((x, 0.0, z), (x, 0.5, z), 0.09, leg) for x in (-0.62, 0.62) for z in (-0.2, 0.2)]
    parts += [
        _box((0.3, 0.4, 0.28), (0.82, 1.05, 0.0), body),  # neck
        _ball((1.0, 1.28, 0.0), 0.28, head),
        _box((0.26, 0.16, 0.2), (1.3, 1.2, 0.0), dark),  # snout
        _cone((0.95, 1.48, 0.13), 0.08, 0.22, dark),
        _cone((0.95, 1.48, -0.13), 0.08, 0.22, dark),
        _rod((-0.78, 0.9, 0.0), (-1.2, 1.35, 0.0), 0.05, dark),  # tail
    ]
    return _join(parts)


def mug() -> trimesh.Trimesh:
    """A mug with a handle on its +x side, coffee in it (a dark disc on top) and a lighter foot."""
    import trimesh

    upright = trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0])  # z -> y
    body = _coloured(trimesh.creation.cylinder(radius=0.5, height=1.0, sections=48, transform=upright), (66, 126, 200))
    coffee = trimesh.creation.cylinder(radius=0.42, height=0.04, sections=48, transform=upright)
    coffee.apply_translation((0.0, 0.5, 0.0))
    foot = trimesh.creation.cylinder(radius=0.52, height=0.1, sections=48, transform=upright)
    foot.apply_translation((0.0, -0.47, 0.0))
    handle = trimesh.creation.torus(major_radius=0.28, minor_radius=0.07, major_sections=32, minor_sections=12)
    handle.apply_translation((0.55, 0.05, 0.0))  # a ring in the xy plane, half inside the body
    return _join(
        [
            body,
            _coloured(coffee, (70, 40, 22)),
            _coloured(foot, (228, 228, 220)),
            _coloured(handle, (214, 58, 46)),
        ]
    )


def chair() -> trimesh.Trimesh:
    """A chair: red seat, four brown legs and a blue backrest at the back (-z)."""
    seat, legs, back = (190, 44, 44), (96, 62, 30), (44, 92, 170)
    parts = [_box((1.0, 0.1, 1.0), (0.0, 0.0, 0.0), seat)]
    parts += [_box((0.08, 0.9, 0.08), (x, -0.5, z), legs) for x in (-0.42, 0.42) for z in (-0.42, 0.42)]
    parts += [_box((0.08, 0.9, 0.08), (x, 0.5, -0.46), legs) for x in (-0.42, 0.42)]  # the backrest's posts
    parts.append(_box((1.0, 0.45, 0.08), (0.0, 0.75, -0.46), back))
    return _join(parts)


def sphere() -> trimesh.Trimesh:
    """A uniformly coloured sphere of radius 1 (symmetric under every rotation about its centre)."""
    import trimesh

    return _coloured(trimesh.creation.icosphere(subdivisions=4, radius=1.0), (200, 170, 90))


def cylinder() -> trimesh.Trimesh:
    """A uniformly coloured cylinder along y (symmetric under rotations about the y axis)."""
    import trimesh

    upright = trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0])  # z -> y
    return _coloured(trimesh.creation.cylinder(radius=0.6, height=1.2, sections=128, transform=upright), (90, 160, 120))


_BUILDERS: dict[str, Callable[[], Any]] = {
    "animal": animal,
    "mug": mug,
    "chair": chair,
    "sphere": sphere,
    "cylinder": cylinder,
}

MESH_NAMES: tuple[str, ...] = tuple(_BUILDERS)
"""Names of the procedural objects: asymmetric ``animal``, ``mug``, ``chair``; symmetric ``sphere``, ``cylinder``."""

ASYMMETRIC_MESHES: tuple[str, ...] = ("animal", "mug", "chair")
"""The procedural objects whose orientation shows (for classes of a rotation benchmark)."""


def mesh_names() -> tuple[str, ...]:
    """Names :func:`build_mesh` accepts (:data:`MESH_NAMES`)."""
    return MESH_NAMES


def build_mesh(name: str) -> trimesh.Trimesh:
    """Build the procedural object ``name`` (one of :data:`MESH_NAMES`), with vertex colours.

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    if not isinstance(name, str) or name.strip().lower() not in _BUILDERS:
        raise InvalidParameterError(f"mesh name must be one of {', '.join(map(repr, MESH_NAMES))}, got {name!r}")
    return _BUILDERS[name.strip().lower()]()


def write_mesh(mesh: str | trimesh.Trimesh, path: str | os.PathLike[str]) -> Path:
    """Write a procedural object (by name) or a trimesh mesh to ``path``; the format follows the extension.

    Vertex colours are kept by ``.ply``, ``.glb``/``.gltf`` and ``.obj`` (as ``v x y z r g b``
    lines); ``.stl`` holds no colours.

    Returns:
        The written path.

    Raises:
        ValueError: For an unknown name or an extension not in :data:`MESH_FORMATS`.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterTypeError(f"path must be a file path (str or Path), got {type(path).__name__} {path!r}")
    path = Path(path).expanduser()
    if path.suffix.lower() not in MESH_FORMATS:
        raise InvalidParameterError(f"path must end in one of {', '.join(MESH_FORMATS)}, got {str(path)!r}")
    built = build_mesh(mesh) if isinstance(mesh, str) else mesh
    path.parent.mkdir(parents=True, exist_ok=True)
    built.export(path)
    return path


def load_mesh(path: str | os.PathLike[str], name: str = "mesh") -> list[trimesh.Trimesh]:
    """Read a mesh file into its triangle meshes, each in the file's world frame, visuals kept.

    A GLB/GLTF scene's geometries keep their own materials and textures (they are not merged).

    Args:
        path: An OBJ, PLY, STL, GLB, GLTF or OFF file.
        name: Argument name used in error messages.

    Returns:
        One or more meshes with faces and finite vertices.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: Naming ``name``, for a file trimesh cannot read, one with no geometry, or a
            mesh with no faces (a point cloud) or non-finite vertices.
    """
    import trimesh

    if not isinstance(path, (str, os.PathLike)):
        raise ParameterTypeError(f"{name} must be a mesh file path (str or Path), got {type(path).__name__} {path!r}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputFileError(f"{name}: mesh file not found: {file}")
    if file.suffix.lower() not in MESH_FORMATS:
        raise InvalidParameterError(f"{name}: {file} is not a mesh file; expected one of {', '.join(MESH_FORMATS)}")
    try:
        loaded = trimesh.load(file, process=False)
    except Exception as err:  # noqa: BLE001 - trimesh raises many types for a broken file
        raise InvalidParameterError(f"{name}: cannot read {file} as a mesh ({type(err).__name__}: {err})") from err
    if isinstance(loaded, trimesh.Scene):
        geometries = list(loaded.dump(concatenate=False)) if loaded.geometry else []
    else:
        geometries = [loaded]
    return check_meshes(geometries, f"{name} ({file})")


def check_meshes(geometries: list[Any], name: str = "mesh") -> list[trimesh.Trimesh]:
    """The triangle meshes among ``geometries``, refusing none, faceless or non-finite ones.

    Raises:
        ValueError: Naming ``name``, when nothing with faces is left or vertices are not finite.
    """
    import trimesh

    if not geometries:
        raise InvalidParameterError(f"{name} holds no geometry (an empty file?)")
    meshes = [g for g in geometries if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not meshes:
        kinds = sorted({type(g).__name__ for g in geometries})
        raise InvalidParameterError(
            f"{name} has no faces (found {', '.join(kinds)} without triangles, e.g. a point cloud)"
        )
    for mesh in meshes:
        vertices = np.asarray(mesh.vertices)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            got = vertices.shape[1] if vertices.ndim == 2 else vertices.shape
            raise InvalidParameterError(
                f"{name} has vertices with {got} coordinates, but a mesh needs 3 (x, y, z) per vertex; "
                "the file is corrupt or not a 3D mesh"
            )
        if not np.isfinite(vertices).all():
            raise InvalidParameterError(f"{name} has vertices that are NaN or infinite")
    return [_vertex_coloured(mesh) for mesh in meshes]


def _vertex_coloured(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """``mesh``, or a copy whose face colours are vertex colours (pyrender cannot shade face colours smoothly).

    Each face gets vertices of its own (so colours do not blur across edges) carrying the face's
    colour; the faces then look flat whatever ``smooth`` says, as face colours mean. The caller's
    mesh is not changed.
    """
    if getattr(mesh.visual, "kind", None) != "face":
        return mesh
    colours = np.asarray(mesh.visual.face_colors)
    copy = mesh.copy()
    copy.unmerge_vertices()  # vertex 3 i + k is corner k of face i
    copy.visual.vertex_colors = np.repeat(colours, 3, axis=0)
    return copy
