"""Bad (and unusual but valid) parameters of the built-in sources: each gets a clear, named error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from propgrad.core import validation
from propgrad.core.images import save_image
from propgrad.core.validation import MAX_STEPS
from propgrad.sources.alpha_patch import AlphaPatchSource
from propgrad.sources.frames import FramesSource
from propgrad.sources.gaussian_vignette import GaussianVignetteSource


@pytest.fixture
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 0.3 + 0.4 * torch.rand(3, 32, 32, generator=g)


@pytest.fixture
def frames_folder(tmp_path):
    folder = tmp_path / "turn"
    folder.mkdir()
    for k, angle in enumerate((0, 90, 180)):
        save_image(folder / f"f_{angle}.png", torch.full((3, 8, 8), 0.2 + 0.3 * k))
    return folder


# numpy scalars are numbers ------------------------------------------------------------------


def test_numpy_scalars_give_the_same_sequences_as_python_numbers(image):
    plain = AlphaPatchSource(scale=0.25, steps=5, position=(2, 3)).generate(image, seed=4)
    numpy = AlphaPatchSource(scale=np.float32(0.25), steps=np.int64(5), position=(np.int64(2), np.int32(3)))
    assert torch.equal(numpy.generate(image, seed=np.int64(4)).images, plain.images)
    assert type(numpy.scale) is float and numpy.position == (2, 3)
    plain = GaussianVignetteSource(max_strength=-0.5, sigma=0.25, steps=4, center=(0.5, 0.25)).generate(image)
    numpy = GaussianVignetteSource(
        max_strength=np.float32(-0.5), sigma=np.float64(0.25), steps=np.int32(4), center=(np.float32(0.5), 0.25)
    )
    assert torch.equal(numpy.generate(image, seed=np.uint8(3)).images, plain.images)
    assert GaussianVignetteSource(max_strength=np.float32(0.05)).max_strength == pytest.approx(0.05)
    assert GaussianVignetteSource(max_strength=np.int64(2)).max_strength == 2.0


def test_hue_shift_plugin_takes_numpy_scalars_and_text(image):
    hue = pytest.importorskip("propgrad_hue_shift")
    plain = hue.HueShiftSource(max_degrees=90.0, steps=4).generate(image)
    for kwargs in ({"max_degrees": np.float32(90), "steps": np.int64(4)}, {"max_degrees": "90", "steps": "4"}):
        assert torch.equal(hue.HueShiftSource(**kwargs).generate(image, seed=np.int64(1)).images, plain.images)
    assert hue.HueShiftSource(steps=4.0).steps == 4  # a whole float, as before
    with pytest.raises(ValueError, match=r"max_degrees must be a number in \(0, 360\], got 1e\+308"):
        hue.HueShiftSource(max_degrees=1e308)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, 10000\], got 1000000000"):
        hue.HueShiftSource(steps=10**9)
    with pytest.raises(ValueError, match="seed must be an integer .*got 1.5"):
        hue.HueShiftSource().generate(image, seed=1.5)


# the table of bad parameters ----------------------------------------------------------------

BAD_PARAMETERS = [
    # strings where numbers are expected
    (AlphaPatchSource, {"steps": "21"}, r"steps must be an integer in \[2, 10000\], got '21' \(str\)"),
    (AlphaPatchSource, {"scale": "0.5"}, r"scale must be a number in \(0, 1\], got '0.5' \(str\)"),
    (AlphaPatchSource, {"position": "0,0"}, r"position must be None or \(top, left\)"),
    (AlphaPatchSource, {"position": (0, "4")}, r"position\[1\] \(left\) must be an integer >= 0, got '4' \(str\)"),
    (GaussianVignetteSource, {"max_strength": "-1"}, r"max_strength must be a number in \[-1, 255\], got '-1'"),
    (GaussianVignetteSource, {"sigma": "wide"}, r"sigma must be a number in \[0.001, 1000\], got 'wide' \(str\)"),
    (GaussianVignetteSource, {"center": "0.5,0.5"}, r"center must be None or \(y, x\) fractions"),
    (GaussianVignetteSource, {"center": (0.5, "0.5")}, r"center\[1\] \(x\) must be a number in \[0, 1\], got '0.5'"),
    # other wrong types: bools, None, lists and dicts where numbers, pairs or tensors are expected
    (AlphaPatchSource, {"steps": True}, r"steps must be an integer .*got True \(bool\)"),
    (AlphaPatchSource, {"steps": None}, r"steps must be an integer .*got None \(NoneType\)"),
    (AlphaPatchSource, {"steps": 21.0}, r"steps must be an integer .*got 21.0 \(float\)"),
    (AlphaPatchSource, {"scale": [0.5]}, r"scale must be a number in \(0, 1\], got \[0.5\] \(list\)"),
    (AlphaPatchSource, {"position": {"top": 0, "left": 0}}, r"position must be None or \(top, left\)"),
    (AlphaPatchSource, {"position": (1.5, 0)}, r"position\[0\] \(top\) must be an integer >= 0, got 1.5 \(float\)"),
    (AlphaPatchSource, {"patch": [[1.0, 0.0]]}, "patch must be None, a path or a tensor"),
    (AlphaPatchSource, {"avoid": [[True]]}, r"avoid must be a torch.Tensor \(H, W\) or a path, got list"),
    (GaussianVignetteSource, {"max_strength": None}, r"max_strength must be a number .*got None"),
    (GaussianVignetteSource, {"sigma": {"y": 0.3}}, r"sigma must be a number .*\(dict\)"),
    (GaussianVignetteSource, {"center": {"y": 0.5, "x": 0.5}}, r"center must be None or \(y, x\) fractions"),
    (GaussianVignetteSource, {"mask": [[0.0, 1.0]]}, "mask must be a torch.Tensor"),
    # numbers out of range, including the huge ones
    (GaussianVignetteSource, {"max_strength": 1e308}, r"max_strength must be a number in \[-1, 255\], got 1e\+308"),
    (GaussianVignetteSource, {"max_strength": -1e308}, r"max_strength must be a number in \[-1, 255\]"),
    (GaussianVignetteSource, {"max_strength": float("inf")}, r"max_strength must be a finite number in \[-1, 255\]"),
    (GaussianVignetteSource, {"max_strength": float("nan")}, "max_strength must be a number .*not NaN"),
    (GaussianVignetteSource, {"max_strength": 0.0}, "max_strength must not be 0"),
    (GaussianVignetteSource, {"sigma": 1e-30}, r"sigma must be a number in \[0.001, 1000\], got 1e-30"),
    (GaussianVignetteSource, {"sigma": 1e200}, r"sigma must be a number in \[0.001, 1000\], got 1e\+200"),
    (GaussianVignetteSource, {"center": (0.5, 2)}, r"center\[1\] \(x\) must be a number in \[0, 1\], got 2"),
    (AlphaPatchSource, {"scale": 0}, r"scale must be a number in \(0, 1\], got 0"),
    (AlphaPatchSource, {"steps": 10**9}, r"steps must be an integer in \[2, 10000\], got 1000000000; .*MAX_STEPS"),
    (GaussianVignetteSource, {"steps": 10**9}, r"steps must be an integer in \[2, 10000\], got 1000000000"),
    (GaussianVignetteSource, {"steps": 10**100}, r"steps must be an integer in \[2, 10000\]"),
]


@pytest.mark.parametrize(("cls", "kwargs", "match"), BAD_PARAMETERS)
def test_bad_parameters_are_refused_by_name(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resize": "yes"}, r"resize must be True or False, got 'yes' \(str\)"),
        ({"resize": 1}, r"resize must be True or False, got 1 \(int\)"),
        ({"periodic": "true"}, r"periodic must be True or False, got 'true' \(str\); or None"),
        ({"periodic": 0}, r"periodic must be True or False, got 0 \(int\)"),
        ({"sidecar": 5}, r"sidecar must be a path to a CSV or JSON file \(str or Path\), got int 5"),
        ({"sidecar": ["values.csv"]}, "sidecar must be a path"),
        ({"property_name": 3}, "property_name must be a non-empty string"),
        ({"unit": ""}, "unit must be a non-empty string"),
    ],
)
def test_frames_bad_parameters_are_refused_by_name(frames_folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FramesSource(path=frames_folder, **kwargs)


def test_frames_bad_paths_are_refused_by_name(frames_folder):
    with pytest.raises(ValueError, match=r"path must be a folder path \(str or Path\), got int 7"):
        FramesSource(path=7)
    with pytest.raises(ValueError, match=r"paths\[1\] must be an image file path \(str or Path\), got int 3"):
        FramesSource(paths=[frames_folder / "f_0.png", 3])
    with pytest.raises(ValueError, match="paths must be a list of image files"):
        FramesSource(paths=str(frames_folder / "f_0.png"))


def test_frames_sidecar_values_given_as_text(frames_folder, image):
    (frames_folder / "values.json").write_text('{"f_0.png": "0", "f_90.png": "ninety", "f_180.png": 2}')
    with pytest.raises(ValueError, match="value for 'f_90.png' must be a finite number, got 'ninety'"):
        FramesSource(path=frames_folder)
    (frames_folder / "values.json").write_text('{"f_0.png": 0, "f_90.png": "nan", "f_180.png": 2}')
    with pytest.raises(ValueError, match="value for 'f_90.png' must be a finite number"):
        FramesSource(path=frames_folder)


# seeds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1.5, 2.0, "3", None, True, -1, 2**63])
def test_every_source_refuses_bad_seeds(seed, image, frames_folder):
    sources = [AlphaPatchSource(), GaussianVignetteSource(), FramesSource(path=frames_folder, resize=True)]
    for source in sources:
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
            source.generate(image, seed=seed)


def test_vignette_records_the_seed_it_was_given(image):
    assert GaussianVignetteSource().generate(image, seed=np.int64(9)).metadata["seed"] == 9


# memory: steps x image size ------------------------------------------------------------------


def test_sequences_too_large_for_memory_are_refused_before_allocating(image, monkeypatch):
    big = torch.rand(3, 2048, 2048)  # 48 MiB per float32 image: 10,000 steps would be 469 GiB
    for source in (AlphaPatchSource(steps=MAX_STEPS), GaussianVignetteSource(steps=MAX_STEPS)):
        with pytest.raises(ValueError, match=r"steps = 10000 would need 469 GiB .*\(3, 2048, 2048\).*4 GiB"):
            source.generate(big)
    monkeypatch.setattr(validation, "MAX_SEQUENCE_BYTES", 20 * 3 * 32 * 32 * 4)  # room for 20 steps of `image`
    assert len(AlphaPatchSource(steps=20).generate(image)) == 20
    with pytest.raises(ValueError, match="steps = 21 would need .*MAX_SEQUENCE_BYTES"):
        GaussianVignetteSource(steps=21).generate(image)
