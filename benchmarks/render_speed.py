"""Speed of the ``rendered_rotation`` source: per-frame time of a 360-frame turn, set-up apart.

The source renders every frame of a sequence with one pyrender scene and one off-screen renderer,
changing only the object node's pose. The reference, measured in the same run on a few frames,
is the naive way: a new scene and a new off-screen renderer (OpenGL context) for every frame.
For each image size the script prints the set-up time (scene, camera, lights and the context,
plus the first frame, which compiles the shaders), the per-frame time over the whole turn, the
whole source's time for the sequence (``RenderedRotationSource.render``: scene set-up, frames and
the copy into one array; it reuses the process's pooled OpenGL context of that size), the naive
per-frame time and the ratio of the two per-frame times.

The naive reference runs first: pyrender's EGL back end terminates the shared EGL display when a
renderer is deleted, which would break renderers that are still alive.

Run: ``python benchmarks/render_speed.py [--mesh animal] [--sizes 128 224] [--frames 360] [--naive-frames 10]``
(needs the plugin: ``pip install -e plugins/propgrad-rendered-rotation``). Headless through EGL
unless ``PYOPENGL_PLATFORM`` says otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np


def naive_per_frame(meshes: list, size: int, angles: list[float], axis: tuple[float, float, float]) -> float:
    """Seconds per frame with a new scene and a new off-screen renderer for every frame."""
    from propgrad_rendered_rotation.renderer import _look_from, _pyrender, bounding_sphere, fit_camera, rotation_matrix

    pyrender = _pyrender()
    centre, radius = bounding_sphere(meshes)
    camera_fit = fit_camera(radius, centre, (size, size))
    start = time.perf_counter()
    for angle in angles:
        pose = np.eye(4)
        pose[:3, :3] = rotation_matrix(axis, angle)
        pose[:3, 3] = -pose[:3, :3] @ centre
        scene = pyrender.Scene(bg_color=[1.0, 1.0, 1.0, 1.0], ambient_light=[0.3] * 3)
        for mesh in meshes:
            scene.add(pyrender.Mesh.from_trimesh(mesh), pose=pose)
        eye = _look_from(np.array([0.0, 0.0, camera_fit.distance]))
        scene.add(pyrender.PerspectiveCamera(yfov=math.radians(camera_fit.fov_degrees), aspectRatio=1.0), pose=eye)
        scene.add(pyrender.DirectionalLight(intensity=3.0), pose=eye)
        renderer = pyrender.OffscreenRenderer(size, size)
        renderer.render(scene)
        renderer.delete()
    return (time.perf_counter() - start) / len(angles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", default="animal", help="procedural object or mesh file (default animal)")
    parser.add_argument("--axis", default="y", help="rotation axis (default y)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224], help="square image sides")
    parser.add_argument("--frames", type=int, default=360, help="frames of the turn (default 360: 1 degree apart)")
    parser.add_argument("--naive-frames", type=int, default=10, help="frames of the naive reference")
    args = parser.parse_args(argv)

    from propgrad_rendered_rotation import RenderedRotationSource, RotationRenderer

    step = 360.0 / args.frames
    source = RenderedRotationSource(args.mesh, axis=args.axis, step=step)
    angles = source.angles
    naive = {
        size: naive_per_frame(source.meshes, size, angles[: args.naive_frames], source.axis) for size in args.sizes
    }

    print(f"rendered_rotation: {args.mesh!r} about {args.axis}, {len(angles)} frames, platform {_platform()}")
    print(
        f"{'size':>9} | {'set-up s':>9} | {'per frame ms':>12} | {'source s':>9} | "
        f"{'naive per frame ms':>18} | {'naive / ours':>12}"
    )
    for size in args.sizes:
        start = time.perf_counter()
        renderer = RotationRenderer(source.meshes, size=(size, size))
        renderer.render_angle(source.axis, angles[0])  # the first frame compiles the shaders
        setup = time.perf_counter() - start
        start = time.perf_counter()
        for angle in angles:
            renderer.render_angle(source.axis, angle)
        per_frame = (time.perf_counter() - start) / len(angles)
        renderer.close()
        start = time.perf_counter()
        RenderedRotationSource(args.mesh, axis=args.axis, step=step).render((size, size))
        whole = time.perf_counter() - start
        print(
            f"{size:>4}x{size:<4} | {setup:>9.3f} | {1000 * per_frame:>12.2f} | {whole:>9.2f} | "
            f"{1000 * naive[size]:>18.2f} | {naive[size] / per_frame:>11.1f}x"
        )
    return 0


def _platform() -> str:
    return os.environ.get("PYOPENGL_PLATFORM", "default")


if __name__ == "__main__":
    raise SystemExit(main())
