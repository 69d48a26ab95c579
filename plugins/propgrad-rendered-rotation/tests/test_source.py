"""The rendered frames: a full turn, the camera's fit, symmetric objects, scores and mesh files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import propgrad
from propgrad_rendered_rotation import (
    MESH_NAMES,
    RenderedRotationSource,
    RotationRenderer,
    build_mesh,
    rotation_matrix,
    write_mesh,
)


def test_a_full_turn_gives_back_the_first_frame():
    source = RenderedRotationSource("animal", axis=(1.0, 2.0, 0.5))
    with source.renderer((32, 32)) as renderer:
        first, first_mask = renderer.render_angle(source.axis, 0.0)
        turned, turned_mask = renderer.render_angle(source.axis, 360.0)
        half, _ = renderer.render_angle(source.axis, 180.0)
    assert np.abs(first.astype(int) - turned.astype(int)).max() <= 1
    assert np.array_equal(first_mask, turned_mask)
    assert np.abs(first.astype(int) - half.astype(int)).max() > 50  # half a turn is another view


def test_default_grid_is_one_frame_per_degree_of_a_full_turn():
    source = RenderedRotationSource("sphere")
    assert source.angles == [float(a) for a in range(360)] and source.periodic
    half = RenderedRotationSource("sphere", start=0, stop=180, step=1)
    assert len(half.angles) == 181 and half.angles[-1] == 180.0 and not half.periodic


def test_rotation_matrix_matches_scipy():
    from scipy.spatial.transform import Rotation

    axis = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    for degrees in (0.0, 37.0, 180.0, 301.5):
        expected = Rotation.from_rotvec(np.radians(degrees) * axis).as_matrix()
        np.testing.assert_allclose(rotation_matrix(tuple(axis), degrees), expected, atol=1e-12)


@pytest.mark.parametrize("name", MESH_NAMES)
@pytest.mark.parametrize("axis", ["x", "y", "z", (1, 1, 1)])
def test_the_camera_fits_the_object_in_every_frame(name, axis):
    rendering = RenderedRotationSource(name, axis=axis, step=15, image_size=(24, 40)).render()
    masks = rendering.masks
    assert masks.any(axis=(1, 2)).all()  # the object is seen in every frame
    border = masks[:, [0, -1], :].any() or masks[:, :, [0, -1]].any()
    assert not border, "an object pixel touches the border"
    # the bounding sphere's silhouette is no bigger than (1 - margin) of the narrower half-frame
    assert masks.any(axis=0).any(axis=1).sum() < 24


def test_camera_from_a_given_distance_chooses_the_field_of_view():
    mesh = [build_mesh("chair")]
    with RotationRenderer(mesh, size=(32, 32), distance=10.0) as far, RotationRenderer(mesh, size=(32, 32)) as near:
        assert far.camera.distance == 10.0 and far.camera.fov_degrees < near.camera.fov_degrees == 30.0
        a, mask_far = far.render(np.eye(3))
        b, mask_near = near.render(np.eye(3))
    assert abs(int(mask_far.sum()) - int(mask_near.sum())) < 0.15 * mask_near.sum()  # same apparent size


@pytest.mark.parametrize(("name", "axis", "lighting"), [("cylinder", "y", "headlight"), ("sphere", "x", "flat")])
def test_symmetric_objects_score_near_zero_and_not_significant(name, axis, lighting, top_minus_bottom, blank):
    source = RenderedRotationSource(name, axis=axis, step=5, lighting=lighting)
    seq = source.generate(blank)
    frames = seq.images
    assert float((frames - frames[:1]).abs().max()) <= 2 / 255  # the same picture up to rasterisation
    explanation = propgrad.PropertyGradient(top_minus_bottom).attribute(
        source.reference_image(24), source=source, n_permutations=500
    )
    assert explanation.sequence.periodic
    assert float(explanation.score.max()) < 1e-3
    assert not bool(explanation.significant.any())


def test_an_asymmetric_object_gives_a_significant_periodic_response(top_minus_bottom, blank):
    source = RenderedRotationSource("animal", axis="z", step=5)
    explanation = propgrad.PropertyGradient(top_minus_bottom).attribute(
        source.reference_image(24), source=source, n_permutations=500
    )
    outputs = explanation.outputs[:, 0]
    assert explanation.sequence.periodic and bool(explanation.significant.all())
    # upright (legs at the bottom) the top is brighter than upside down (legs on top): white background
    assert float(outputs[0]) > float(outputs[36]) + 0.02  # 0 vs 180 degrees
    # the score is the periodic expected gradient of the outputs, recomputed with numpy
    y = outputs.double().numpy()
    expected = np.abs((np.roll(y, -1) - np.roll(y, 1)) / 2).mean()
    assert float(explanation.score[0]) == pytest.approx(expected, rel=1e-9)


def test_generate_uses_the_reference_size_device_dtype_and_caches(blank):
    source = RenderedRotationSource("mug", axis="x", step=90)
    seq = source.generate(blank.double())
    assert seq.images.shape == (4, 3, 24, 24) and seq.images.dtype == torch.float64
    assert seq.values.tolist() == [0.0, 90.0, 180.0, 270.0] and (seq.property_name, seq.unit) == ("angle", "degree")
    assert torch.equal(source.generate(blank).images, seq.images.float())  # rendered once, reused
    assert len(source._renderings) == 1
    frames = source.render((24, 24)).frames
    assert torch.equal(seq.images.float(), torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
    masks = source.render((24, 24)).masks
    assert seq.metadata["object_pixels"] == masks.reshape(4, -1).sum(1).tolist()
    # the mask is the non-background pixels (white background)
    assert np.array_equal(masks, (frames != 255).any(axis=-1)) and masks.any(axis=(1, 2)).all()
    assert torch.equal(seq.region, torch.from_numpy(masks.any(axis=0)))  # where the rotation changes the image
    changed = (seq.images != seq.images[:1]).any(dim=1).any(dim=0)
    assert bool(seq.region[changed].all()) and not bool(changed[~seq.region].any())


def test_non_uniform_angles_and_background():
    source = RenderedRotationSource("chair", angles=[0, 10, 35, 90, 200], image_size=16, background=(0, 0, 1))
    rendering = source.render()
    assert rendering.frames.shape == (5, 16, 16, 3) and not source.periodic
    assert (rendering.frames[~rendering.masks] == [0, 0, 255]).all()
    assert RenderedRotationSource("chair", angles=range(0, 360, 45)).periodic


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb", ".stl"])
def test_mesh_files_written_to_disk_render_like_the_procedural_object(tmp_path, suffix):
    path = write_mesh("mug", tmp_path / f"mug{suffix}")
    procedural = RenderedRotationSource("mug", axis="x", step=120, image_size=24).render()
    loaded = RenderedRotationSource(path, axis="x", step=120, image_size=24).render()
    assert np.array_equal(loaded.masks, procedural.masks) or (loaded.masks != procedural.masks).mean() < 0.01
    diff = np.abs(loaded.frames.astype(int) - procedural.frames.astype(int))
    if suffix == ".stl":  # STL holds no colours: same silhouette, other colours
        assert diff.max() > 20
    else:  # colours kept
        assert np.mean(diff) < 1.0, f"{suffix}: mean difference {np.mean(diff):.3g}"
