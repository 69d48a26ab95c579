"""Bad parameters raise errors that name the parameter and say what was expected."""

from __future__ import annotations

import pytest
import torch

from propgrad_rendered_rotation import RenderedRotationSource, build_mesh, load_mesh, write_mesh


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"axis": "w"}, ValueError, r"axis must be 'x', 'y', 'z' or a non-zero 3-vector"),
        ({"axis": (0, 0, 0)}, ValueError, r"axis must be a non-zero 3-vector"),
        ({"axis": "0,0,0"}, ValueError, r"axis must be a non-zero 3-vector"),
        ({"axis": (1, 0)}, ValueError, r"axis must be .* got 2 components"),
        ({"axis": 3}, TypeError, r"axis must be"),
        ({"image_size": 0}, ValueError, r"image_size must be .* got height 0"),
        ({"image_size": (32, 0)}, ValueError, r"image_size must be .* got width 0"),
        ({"image_size": 2.5}, TypeError, r"image_size must be"),
        ({"step": 0}, ValueError, r"step must be a positive number of degrees"),
        ({"step": -1}, ValueError, r"step must be a positive number"),
        ({"start": 90, "stop": 10}, ValueError, r"stop must exceed start"),
        ({"start": 0, "stop": 720}, ValueError, r"stop - start must be at most one full turn"),
        ({"start": 0, "stop": 1, "step": 5}, ValueError, r"step: a rotation needs at least 2 frames"),
        ({"angles": [0, 10, 10]}, ValueError, r"angles must increase strictly, but angles\[2\]"),
        ({"angles": [0, 400]}, ValueError, r"angles must span less than one full turn"),
        ({"angles": [0, 10], "step": 5}, ValueError, r"give either angles or start/stop/step"),
        ({"angles": [0, "x"]}, ValueError, r"angles\[1\] must be"),
        ({"background": (1, 0)}, ValueError, r"background must be"),
        ({"background": (2, 0, 0)}, ValueError, r"background\[0\] must be a number in \[0, 1\]"),
        ({"lighting": "disco"}, ValueError, r"lighting must be one of 'headlight', 'studio', 'flat'"),
        ({"fov": 0}, ValueError, r"fov must be a number in \(0, 179\], got 0"),
        ({"light_intensity": -1}, ValueError, r"light_intensity must be"),
        ({"margin": 1}, ValueError, r"margin must be a number in \[0, 1\)"),
        ({"mesh": "unicorn"}, ValueError, r"mesh must be a mesh file .* or one of the procedural objects 'animal'"),
        ({"mesh": 3}, ValueError, r"mesh must be a procedural object's name"),
        ({"mesh": "missing.obj"}, FileNotFoundError, r"mesh: mesh file not found"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, error, match):
    with pytest.raises(error, match=match):
        RenderedRotationSource(**kwargs)


def test_cli_strings_are_accepted():
    source = RenderedRotationSource("sphere", axis="1,0,1", start="0", stop="90", step="45", image_size="16,24")
    assert source.angles == [0.0, 45.0, 90.0] and source.image_size == (16, 24)
    assert source.axis == pytest.approx((2**-0.5, 0.0, 2**-0.5))
    assert RenderedRotationSource("sphere", background="0.5").background == (0.5, 0.5, 0.5)


def test_empty_unreadable_and_faceless_mesh_files(tmp_path):
    empty = tmp_path / "empty.obj"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"mesh .*empty\.obj.* holds no geometry|mesh .*empty\.obj.* has no faces"):
        RenderedRotationSource(empty)
    garbage = tmp_path / "garbage.glb"
    garbage.write_bytes(b"\x00not a glb file at all")
    with pytest.raises(ValueError, match=r"mesh: cannot read .*garbage\.glb as a mesh"):
        RenderedRotationSource(garbage)
    points = tmp_path / "points.ply"
    points.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n0 0 0\n1 0 0\n0 1 0\n"
    )
    with pytest.raises(ValueError, match=r"mesh .*points\.ply.* has no faces"):
        RenderedRotationSource(points)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match=r"mesh: .*notes\.txt is not a mesh file"):
        load_mesh(notes)


def test_a_degenerate_mesh_and_a_camera_inside_the_object():
    import trimesh

    flat = trimesh.Trimesh(vertices=[[0, 0, 0]] * 3, faces=[[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match=r"mesh is degenerate"):
        RenderedRotationSource(flat, image_size=8).render()
    with pytest.raises(ValueError, match=r"distance must exceed the object's bounding radius"):
        RenderedRotationSource("sphere", distance=0.5, image_size=8).render()


def test_mesh_builder_and_writer_errors(tmp_path):
    with pytest.raises(ValueError, match=r"mesh name must be one of 'animal', 'mug', 'chair', 'sphere', 'cylinder'"):
        build_mesh("dragon")
    with pytest.raises(ValueError, match=r"path must end in one of"):
        write_mesh("mug", tmp_path / "mug.xyz")


def test_generate_checks_the_image():
    with pytest.raises(ValueError, match=r"image must have shape \(3, H, W\)"):
        RenderedRotationSource("sphere", step=90).generate(torch.zeros(1, 8, 8))


def test_an_obj_with_two_component_vertices_is_refused_naming_the_file(tmp_path):
    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0\nv 1 0\nv 0 1\nf 1 2 3\n")
    with pytest.raises(ValueError, match=r"mesh \(.*flat\.obj\) has vertices with 2 coordinates, but a mesh needs 3"):
        RenderedRotationSource(flat, image_size=8, step=90)


def test_a_face_coloured_trimesh_renders_with_smooth_shading_in_its_colours():
    import numpy as np
    import trimesh

    box = trimesh.creation.box()
    box.visual.face_colors = np.tile([255, 0, 0, 255], (len(box.faces), 1))
    frames = RenderedRotationSource(box, image_size=16, step=90, lighting="flat", ambient=1.0).render().frames
    centre = frames[0, 8, 8].astype(int)
    assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60  # red, as its faces
    assert box.visual.kind == "face"  # the caller's mesh is left as it was


def test_command_line_text_is_parsed_by_the_declaration():
    from propgrad.plugins.parameters import parse_cli_params

    params = parse_cli_params(
        RenderedRotationSource, ["axis=1,0,1", "image_size=16x24", "step=45", "stop=90", "smooth=no", "fov=None"]
    )
    source = RenderedRotationSource("sphere", **params)
    assert source.image_size == (16, 24) and source.angles == [0.0, 45.0, 90.0] and source.smooth is False
    with pytest.raises(ValueError, match=r"--param margin=1: margin must be a number in \[0, 1\), got 1.0"):
        parse_cli_params(RenderedRotationSource, ["margin=1"])


def test_the_renderer_takes_its_lights_as_one_lighting():
    from propgrad_rendered_rotation import Lighting, RotationRenderer

    with pytest.raises(ValueError, match=r"lighting must be one of 'headlight', 'studio', 'flat', got 'disco'"):
        Lighting("disco")
    with pytest.raises(ValueError, match=r"lighting must be a propgrad_rendered_rotation.renderer.Lighting, got str"):
        RotationRenderer([build_mesh("sphere")], size=(8, 8), lighting="studio")
