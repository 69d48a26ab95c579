"""The ``orientation`` suite: its scenes, poses, intervention, realisations, checks, and a run end to end."""

from __future__ import annotations

import colorsys
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import kstest

from propgrad.suites.training import TrainingConfig
from propgrad_rendered_rotation.orientation_scenes import (
    CLASS_MESHES,
    UP,
    horizontal_axis,
    hsv_colours,
    tilt_poses,
    uniform_rotations,
    white,
)
from propgrad_rendered_rotation.orientation_suite import LEVEL_PROPERTY, OrientationSuite
from propgrad_rendered_rotation.orientation_validity import main, orientation_checks, orientation_lines

E_UP = np.array(UP)


class TinySuite(OrientationSuite):
    """The orientation suite with tiny sizes and a tiny model (seconds, not minutes)."""

    def settings(self) -> dict:
        s = super().settings()
        s.update(image_size=16, train_per_class=8, test_per_class=3, eval_per_class=2, level_per_class=1)
        return s

    def training_config(self) -> TrainingConfig:
        return TrainingConfig(epochs=1, batch_size=8, dim=8, depth=1, kernel_size=3, patch_size=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinySuite:
    suite = TinySuite(seed=0, cache_dir=tmp_path_factory.mktemp("cache"))
    yield suite
    suite.close()


def tilt_of(rotation: np.ndarray) -> float:
    """Degrees between the object's up axis after ``rotation`` and the world's up axis."""
    return math.degrees(math.acos(float(np.clip((rotation @ E_UP) @ E_UP, -1.0, 1.0))))


# ---- pieces -------------------------------------------------------------------------------------
def test_the_suite_is_registered() -> None:
    from propgrad.plugins import get_suite

    assert get_suite("orientation") is OrientationSuite
    assert OrientationSuite.class_names == ("animal", "mug", "chair")
    assert OrientationSuite.training_splits == ("upright", "all_orientations")


def test_colours_match_colorsys_and_their_ranges() -> None:
    gen = torch.Generator().manual_seed(3)
    u = torch.rand(500, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rgb = hsv_colours(500, gen, (0.5, 1.0), (0.6, 1.0))
    for (h, a, b), got in zip(u.tolist(), rgb.tolist()):
        assert got == pytest.approx(colorsys.hsv_to_rgb(h, 0.5 + 0.5 * a, 0.6 + 0.4 * b), abs=1e-12)
    hsv = np.array([colorsys.rgb_to_hsv(*c) for c in rgb.tolist()])
    assert hsv[:, 1].min() >= 0.5 - 1e-12 and hsv[:, 2].min() >= 0.6 - 1e-12


def test_uniform_rotations_are_rotations_with_a_uniform_up_axis() -> None:
    rotations = uniform_rotations(2000, torch.Generator().manual_seed(0))
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rotations), 1.0)
    # Haar measure: the image of any unit vector is uniform on the sphere, so each coordinate is U(-1, 1).
    ups = rotations @ E_UP
    for k in range(3):
        assert kstest(ups[:, k], "uniform", args=(-1, 2)).pvalue > 0.01


def test_tilt_poses_tip_the_up_axis_by_the_angle_about_any_horizontal_axis() -> None:
    angles = np.linspace(0, 180, 21)
    for axis in ((1.0, 0.0, 0.0), horizontal_axis(23.0), horizontal_axis(-17.0)):
        poses = tilt_poses(77.0, angles, axis)
        assert [tilt_of(r) for r in poses] == pytest.approx(angles.tolist(), abs=1e-6)
        assert np.allclose(poses[-1] @ E_UP, -E_UP)  # upside down
        assert np.array_equal(poses[0], tilt_poses(77.0, [0.0])[0])  # the identity tilt: the same pose
    assert horizontal_axis(0.0) == (1.0, 0.0, 0.0)
    assert np.allclose(horizontal_axis(90.0), (0.0, 0.0, -1.0))


def test_labels_are_balanced_and_each_class_is_its_mesh_rendered_by_the_source(tiny: TinySuite) -> None:
    images, labels = tiny.test_set()
    assert images.shape == (9, 3, 16, 16) and labels.bincount().tolist() == [3, 3, 3]
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    angles = [0.0, 90.0, 180.0]
    for label, name in enumerate(CLASS_MESHES):
        from propgrad_rendered_rotation.meshes import build_mesh
        from propgrad_rendered_rotation.source import RenderedRotationSource

        source = RenderedRotationSource(
            white(build_mesh(name)),
            axis="x",
            angles=angles,
            image_size=16,
            background=(0.5, 0.5, 0.5),
            lighting="studio",
            light_intensity=3.0,
            ambient=0.3,
        )
        expected = source.render().frames  # the source's own renderer, built anew
        got = np.stack([tiny.scenes.render(label, (1.0, 1.0, 1.0), r) for r in tilt_poses(0.0, angles)])
        assert np.array_equal(got, expected), name


def test_colour_changes_the_object_only(tiny: TinySuite) -> None:
    red = tiny.scenes.render(0, (1.0, 0.0, 0.0), np.eye(3)).astype(int)
    blue = tiny.scenes.render(0, (0.0, 0.0, 1.0), np.eye(3)).astype(int)
    background = (red == blue).all(axis=2)
    assert background.any() and not background.all()
    obj = ~background
    assert (red[obj, 0] >= red[obj, 2]).all() and (blue[obj, 2] >= blue[obj, 0]).all()
    assert (red[background] == 128).all()  # the grey background, 0.5 * 255 rounded


def test_same_seed_same_scenes_other_seed_other_scenes(tiny: TinySuite, tmp_path: Path) -> None:
    again = TinySuite(seed=0, cache_dir=tmp_path / "a")
    other = TinySuite(seed=1, cache_dir=tmp_path / "b")
    try:
        for key in ("labels", "colours", "yaws", "images"):
            assert torch.equal(again.test_data()[key], tiny.test_data()[key]), key
        x0, y0 = tiny.training_data("all_orientations")
        x1, y1 = again.training_data("all_orientations")
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
        assert not torch.equal(other.test_data()["colours"], tiny.test_data()["colours"])
        assert not torch.equal(other.test_data()["yaws"], tiny.test_data()["yaws"])
    finally:
        again.close()
        other.close()


def test_upright_training_views_have_no_roll_or_pitch(tiny: TinySuite) -> None:
    scenes = tiny.draw(100, "train/upright", "upright")
    rotations = scenes["rotations"]
    assert np.allclose(rotations @ E_UP, E_UP, atol=1e-12)  # the up axis stays up
    assert np.allclose(rotations[:, 1, :], E_UP, atol=1e-12)  # no component moves into or out of it
    yaws = np.degrees(np.arctan2(rotations[:, 0, 2], rotations[:, 0, 0])) % 360
    assert np.allclose(yaws, scenes["yaws"].numpy() % 360, atol=1e-9)
    assert kstest(yaws, "uniform", args=(0, 360)).pvalue > 0.01
    # ... and they are what the upright model is trained on
    images, labels = tiny.training_data("upright")
    first = tiny.draw(tiny.settings()["train_per_class"], "train/upright", "upright")
    assert torch.equal(labels, first["labels"])
    assert torch.equal(images, tiny.scenes.images(first["labels"], first["colours"], first["rotations"]))
    every = tiny.draw(100, "train/all_orientations", "all_orientations")["rotations"]
    tilts = np.array([tilt_of(r) for r in every])
    assert tilts.max() > 150 and (tilts > 90).mean() == pytest.approx(0.5, abs=0.15)


def test_intervention_tilts_the_test_object_about_x_from_upright_to_upside_down(tiny: TinySuite) -> None:
    images, labels = tiny.test_set()
    data = tiny.test_data()
    for index in (0, 4):
        seq = tiny.intervene("tilt", index)
        assert seq.values.tolist() == pytest.approx([9.0 * k for k in range(21)])
        assert (seq.property_name, seq.unit, seq.periodic) == ("tilt", "degree", False)
        assert torch.equal(seq.images[0], images[index])  # step 0 is the test image, bit for bit
        poses = tilt_poses(float(data["yaws"][index]), seq.values.tolist(), (1.0, 0.0, 0.0))
        label = int(labels[index])
        expected = tiny.scenes.images(torch.full((21,), label), data["colours"][index].expand(21, 3), poses)
        assert torch.equal(seq.images, expected)
        assert seq.metadata["axis"] == [1.0, 0.0, 0.0] and seq.metadata["object"] == CLASS_MESHES[label]
        assert (seq.images[-1] != seq.images[0]).any()
    with pytest.raises(ValueError, match="intervention must be one of"):
        tiny.intervene("roll", 0)
    with pytest.raises(ValueError, match="index must be an integer"):
        tiny.intervene("tilt", 9)


def test_held_out_realisation_keeps_the_path_and_turns_the_axis(tiny: TinySuite) -> None:
    for index in range(9):
        seq, held = tiny.intervene("tilt", index), tiny.held_out_realisation("tilt", index)
        assert torch.equal(held.images[0], seq.images[0]) and torch.equal(held.values, seq.values)
        assert (held.property_name, held.unit, len(held)) == (seq.property_name, seq.unit, len(seq))
        azimuth = held.metadata["axis_azimuth"]
        assert 15.0 <= abs(azimuth) <= 30.0
        assert held.metadata["axis"] == pytest.approx(list(horizontal_axis(azimuth)))
        assert torch.equal(tiny.held_out_realisation("tilt", index).images, held.images)  # deterministic
        assert not torch.equal(held.images, seq.images)
        other = tiny.realisation("tilt", index, 1)
        assert other.metadata["axis_azimuth"] != azimuth and torch.equal(other.images[0], seq.images[0])
        assert torch.equal(tiny.realisation("tilt", index, 0).images, seq.images)
    signs = {math.copysign(1, tiny.held_out_azimuth(i)) for i in range(40)}
    assert signs == {1.0, -1.0}


def test_level_data_tilts_fresh_objects_by_every_level(tiny: TinySuite) -> None:
    ((prop, (levels, images, labels, groups)),) = tiny.level_data().items()
    assert prop == LEVEL_PROPERTY and levels == [f"{18 * k}°" for k in range(11)]
    assert images.shape[0] == labels.shape[0] == groups.shape[0] == 33
    assert labels.bincount().tolist() == [11, 11, 11]
    n = labels.shape[0]
    tilts = torch.tensor([18.0 * k for k in range(11)], dtype=torch.float64)[torch.arange(n) % 11]
    scenes = tiny.draw(11, "levels/tilt", "tilted", tilts)
    assert [tilt_of(r) for r in scenes["rotations"]] == pytest.approx(tilts.tolist(), abs=1e-6)
    assert torch.equal(images, tiny.scenes.images(scenes["labels"], scenes["colours"], scenes["rotations"]))
    assert not torch.equal(scenes["colours"], tiny.draw(11, "test", "tilted", tilts)["colours"])


def test_settings_key_the_cache() -> None:
    quick, full = OrientationSuite(quick=True), OrientationSuite(quick=False)
    assert quick.settings()["image_size"] == 32 and full.settings()["image_size"] == 64
    assert quick.cache_key != full.cache_key != OrientationSuite(quick=True, seed=1).cache_key
    assert quick.cache_key == OrientationSuite(quick=True).cache_key
    json.dumps(quick.settings())  # JSON-serialisable


# ---- validity checks on results whose answers are known ----------------------------------------
def fake_results(up_scores: list[float], any_scores: list[float], up_flips: int, any_flips: int) -> dict:
    """A results dict with the fields the checks read."""

    def records(model: str, scores: list[float], flips: int) -> list[dict]:
        return [
            {
                "kind": "property",
                "key": ["property", "orientation", "tilt", model, i],
                "score": s,
                "flipped_anywhere": i < flips,
                "final_differs": i < flips,
                "flipped_second_half": i < flips,
                "heldout_flipped": i < flips,
            }
            for i, s in enumerate(scores)
        ]

    def block(scores: list[float], flips: int) -> dict:
        n = len(scores)
        return {"score_mean": float(np.mean(scores)), "n_images": n, "n_flipped_anywhere": flips,
                "n_flipped_final": flips}  # fmt: skip

    row = {"property_score": {"available": True, "accuracy_mean": 0.8},
           "occlusion": {"available": True, "accuracy_mean": 0.7}}  # fmt: skip
    return {
        "settings": {"quick": True, "seed": 0},
        "summary": {
            "orientation": {
                "tilt": {
                    "scores": {"upright": block(up_scores, up_flips), "all_orientations": block(any_scores, any_flips)},
                    "flip_prediction": {"anywhere": {"upright": row, "all_orientations": row}},
                }
            }
        },
        "suites": {
            "orientation": {
                "level_accuracy": {
                    LEVEL_PROPERTY: {
                        "levels": ["0°", "90°", "180°"],
                        "accuracy": {"upright": [0.95, 0.5, 0.3], "all_orientations": [0.9, 0.9, 0.9]},
                    }
                }
            }
        },
        "records": records("upright", up_scores, up_flips) + records("all_orientations", any_scores, any_flips),
    }


def test_checks_pass_when_the_expected_result_comes_out_and_fail_otherwise(tmp_path: Path) -> None:
    good = fake_results([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.1, 0.2], 3, 1)
    assert [c.passed for c in orientation_checks(good)] == [True, True, True, True]
    swapped = fake_results([0.1, 0.2, 0.1, 0.2], [0.5, 0.6, 0.7, 0.8], 1, 3)
    assert [c.passed for c in orientation_checks(swapped)] == [False, False, False, True]
    equal = fake_results([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.1, 0.2], 2, 2)  # ties are not "more often"
    assert [c.passed for c in orientation_checks(equal)] == [True, False, False, True]
    low = copy.deepcopy(good)
    low["suites"]["orientation"]["level_accuracy"][LEVEL_PROPERTY]["accuracy"]["upright"][0] = 0.85
    checks = orientation_checks(low)
    assert not checks[3].passed and "85.0%" in checks[3].detail
    lines = orientation_lines(good)
    assert any("p = 0.0625" in line for line in lines)  # 4 positive differences: exact p = 1/16
    assert any("upright flips: anywhere 3/4, final 3/4" in line for line in lines)
    assert any("upright 80.0 vs 70.0 (occlusion)" in line for line in lines)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(good))
    assert main([str(path)]) == 0
    path.write_text(json.dumps(swapped))
    assert main([str(path)]) == 1
    with pytest.raises(ValueError, match="no 'orientation' / 'tilt' block"):
        orientation_checks({"summary": {}})


# ---- end to end (slow) ---------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_orientation_suite_through_the_harness(tmp_path: Path) -> None:
    from dataclasses import replace

    from propgrad.harness import preset, run_benchmark
    from propgrad.plugins import get_baseline

    suite = TinySuite(seed=0, cache_dir=tmp_path / "cache")
    names = ("occlusion",)
    settings = replace(
        preset(
            quick=True,
            suites=("orientation",),
            baselines=names,
            baseline_classes={n: get_baseline(n) for n in names},
            n_permutations=100,
        ),
        pool_per_class=2,
    )
    try:
        results = run_benchmark(settings, tmp_path / "out", suites={"orientation": suite}, plots=False)
    finally:
        suite.close()
    block = results["summary"]["orientation"]["tilt"]
    assert list(block["flip_prediction"]) == ["anywhere", "final", "extrapolation", "held_out"]
    assert set(block["scores"]) == {"upright", "all_orientations"}
    for rows in block["flip_prediction"].values():
        for row in rows.values():
            assert set(row) == {"property_score", "output_reference", "occlusion"}
    info = results["suites"]["orientation"]
    assert set(info["accuracy_table"]) == {"upright", "all_orientations"}
    assert set(info["accuracy_table"]["upright"]) == {"upright", "all_orientations", "upside_down"}
    assert info["level_accuracy"][LEVEL_PROPERTY]["levels"][0] == "0°"
    props = [r for r in results["records"] if r["kind"] == "property"]
    assert len(props) == 2 * 6 and all(r["unit"] == "degree" and not r["periodic"] for r in props)
    assert all(r["heldout_flipped"] is not None for r in props)
    assert len(orientation_checks(results)) == 4 and orientation_lines(results)
    assert main([str(tmp_path / "out" / "results.json")]) in (0, 1)  # readable: checks ran, pass or fail
    # a second suite on the same cache trains nothing
    again = TinySuite(seed=0, cache_dir=tmp_path / "cache")
    try:
        again.models()
        assert again.training_seconds == {}
    finally:
        again.close()
