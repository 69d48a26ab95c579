"""propgrad-rendered-rotation: a 3D mesh rendered as it rotates, as an intervention source.

Registers the ``rendered_rotation`` source with propgrad (entry point group ``propgrad``) and
ships procedural toy objects (:mod:`propgrad_rendered_rotation.meshes`). Importing this package
imports neither pyrender nor trimesh; they load when a mesh is built or a frame rendered.
"""

from __future__ import annotations

from propgrad_rendered_rotation.meshes import (
    ASYMMETRIC_MESHES,
    MESH_FORMATS,
    MESH_NAMES,
    build_mesh,
    load_mesh,
    mesh_names,
    write_mesh,
)
from propgrad_rendered_rotation.renderer import CameraFit, Lighting, RenderingError, RotationRenderer, rotation_matrix
from propgrad_rendered_rotation.source import RenderedRotationSource, Rendering

__version__ = "0.1.0"

__all__ = [
    "ASYMMETRIC_MESHES",
    "MESH_FORMATS",
    "MESH_NAMES",
    "CameraFit",
    "Lighting",
    "RenderedRotationSource",
    "Rendering",
    "RenderingError",
    "RotationRenderer",
    "build_mesh",
    "load_mesh",
    "mesh_names",
    "rotation_matrix",
    "write_mesh",
]
