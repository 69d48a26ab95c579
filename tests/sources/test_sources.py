"""Built-in intervention sources: alpha_patch, gaussian_vignette, frames."""

from __future__ import annotations

import json

import pytest
import torch

from propgrad.core.images import save_image
from propgrad.sources.alpha_patch import AlphaPatchSource
from propgrad.sources.frames import FramesSource
from propgrad.sources.gaussian_vignette import GaussianVignetteSource


@pytest.fixture
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 0.3 + 0.4 * torch.rand(3, 32, 32, generator=g)


def rgba_patch(h: int = 8, w: int = 8) -> torch.Tensor:
    patch = torch.zeros(4, h, w)
    patch[0] = 1.0  # pure red
    patch[3, 2:6, 2:6] = 1.0  # square alpha inside a transparent border
    return patch


# alpha_patch -------------------------------------------------------------------------------


def test_alpha_patch_blends_from_the_image_to_the_patch(image):
    seq = AlphaPatchSource(patch=rgba_patch(), position=(4, 10), scale=None, steps=11).generate(image)
    assert seq.images.shape == (11, 3, 32, 32) and seq.values.shape == (11,)
    assert torch.allclose(seq.values, torch.linspace(0, 1, 11))
    assert torch.equal(seq.images[0], image)
    inside = seq.images[-1][:, 4 + 2 : 4 + 6, 10 + 2 : 10 + 6]
    assert torch.allclose(inside, torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand_as(inside))
    # outside the alpha mask nothing changes at any step
    changed = (seq.images - image[None]).abs().amax(dim=(0, 1)) > 0
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[6:10, 12:16] = True
    assert torch.equal(changed, expected)
    # half-way is half-way
    mid = seq.images[5][:, 7, 13]
    assert torch.allclose(mid, 0.5 * image[:, 7, 13] + 0.5 * torch.tensor([1.0, 0.0, 0.0]))
    assert seq.metadata["position"] == [4, 10]


def test_alpha_patch_rgb_plus_mask_equals_rgba(image):
    rgba = rgba_patch()
    a = AlphaPatchSource(patch=rgba, position=(0, 0), scale=None).generate(image)
    b = AlphaPatchSource(patch=rgba[:3], mask=rgba[3], position=(0, 0), scale=None).generate(image)
    assert torch.allclose(a.images, b.images)


def test_alpha_patch_random_position_is_seeded(image):
    source = AlphaPatchSource(scale=0.25)
    a, b = source.generate(image, seed=0), source.generate(image, seed=0)
    assert torch.equal(a.images, b.images) and a.metadata["position"] == b.metadata["position"]
    assert a.images.min() >= 0 and a.images.max() <= 1
    # the position itself varies with the seed (an 8x8 patch has 25 x 25 places in a 32x32 image)
    fixed = AlphaPatchSource(patch=rgba_patch(), scale=None)
    positions = {tuple(fixed.generate(image, seed=seed).metadata["position"]) for seed in range(12)}
    assert len(positions) >= 6
    assert len({top for top, _ in positions}) > 1 and len({left for _, left in positions}) > 1
    for seed in (0, 5):  # and the recorded position is where the patch really went
        seq = fixed.generate(image, seed=seed)
        top, left = seq.metadata["position"]
        changed = torch.nonzero((seq.images[-1] - image).abs().amax(dim=0) > 0)
        assert changed.min(dim=0).values.tolist() == [top + 2, left + 2]


def test_alpha_patch_avoid_keeps_the_patch_centre_off_the_mask(image):
    avoid = torch.ones(32, 32, dtype=torch.bool)
    avoid[:, 24:] = False  # only the right-hand strip is allowed
    for seed in range(5):
        seq = AlphaPatchSource(patch=rgba_patch(), scale=None, avoid=avoid).generate(image, seed=seed)
        top, left = seq.metadata["position"]
        assert not avoid[top + 4, left + 4]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 1}, "steps"),
        ({"scale": 1.5}, "scale"),
        ({"position": (-1, 0)}, "position"),
        ({"patch": torch.rand(3, 8, 8)}, "mask"),
        ({"patch": torch.rand(2, 8, 8)}, "patch"),
        ({"patch": "/no/such/patch.png"}, "patch"),
    ],
)
def test_alpha_patch_bad_parameters_are_named(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        AlphaPatchSource(**kwargs)


def test_alpha_patch_outside_the_image_is_an_error(image):
    with pytest.raises(ValueError, match="position"):
        AlphaPatchSource(patch=rgba_patch(), position=(30, 30), scale=None).generate(image)


# gaussian_vignette -------------------------------------------------------------------------


def test_vignette_darkens_edges_more_than_the_centre_and_monotonically(image):
    seq = GaussianVignetteSource(max_strength=-1.0, sigma=0.3, steps=9).generate(image)
    assert seq.images.shape == (9, 3, 32, 32)
    assert torch.equal(seq.images[0], image)
    corner = seq.images[:, :, 0, 0].mean(1)
    centre = seq.images[:, :, 16, 16].mean(1)
    assert torch.all(corner[1:] < corner[:-1])  # the corner darkens at every step
    assert float(corner[-1]) < 0.1 * float(image[:, 0, 0].mean())  # g(corner) = exp(-2.6) ~ 0.07
    assert float((centre[0] - centre[-1]).abs()) < 0.05 * float(centre[0])
    assert torch.all(seq.values[1:] > seq.values[:-1])


def test_vignette_brightens_with_positive_strength(image):
    seq = GaussianVignetteSource(max_strength=0.8, steps=5).generate(image)
    assert float(seq.images[-1, :, 0, 0].mean()) > float(image[:, 0, 0].mean())
    assert seq.images.max() <= 1.0


def test_vignette_leaves_protected_pixels_untouched(image):
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[:8, :8] = True  # protect a corner, where the vignette acts most
    seq = GaussianVignetteSource(mask=mask).generate(image)
    assert torch.equal(seq.images[:, :, :8, :8], image[None, :, :8, :8].expand(len(seq), -1, -1, -1))
    assert not torch.equal(seq.images[-1, :, 24:, 24:], image[:, 24:, 24:])


@pytest.mark.parametrize("kwargs", [{"max_strength": 0}, {"max_strength": -2}, {"sigma": 0}, {"steps": 1}])
def test_vignette_bad_parameters(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        GaussianVignetteSource(**kwargs)


def test_sources_keep_the_dtype_and_reject_bad_images(image):
    for source in (AlphaPatchSource(), GaussianVignetteSource()):
        assert source.generate(image.double()).images.dtype == torch.float64
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            source.generate(image * 3)
        with pytest.raises(ValueError, match="shape"):
            source.generate(image[None])


# frames ------------------------------------------------------------------------------------


def write_frames(folder, names, size=8):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        save_image(folder / name, torch.full((3, size, size), k / max(1, len(names) - 1)))
    return folder


def test_frames_values_from_file_names_sorted_and_periodic(tmp_path, image):
    names = [f"duck_{a:03d}.png" for a in range(0, 360, 30)]
    folder = write_frames(tmp_path / "turntable", list(reversed(names)))
    source = FramesSource(path=folder)
    seq = source.generate(image[:, :8, :8])
    assert seq.values.tolist() == [float(a) for a in range(0, 360, 30)]
    assert seq.periodic and seq.unit == "degree"
    # sorted by value: brightness follows the order the files were written in reverse
    assert seq.images[0].mean() > seq.images[-1].mean()


def test_frames_half_turn_is_not_periodic(tmp_path, image):
    folder = write_frames(tmp_path / "half", [f"f_{a}.png" for a in range(0, 180, 30)])
    assert not FramesSource(path=folder).generate(image[:, :8, :8]).periodic


def test_frames_values_from_csv_and_json_sidecars(tmp_path, image):
    folder = write_frames(tmp_path / "csv", ["a.png", "b.png", "c.png"])
    (folder / "values.csv").write_text("file,value\na.png,0.5\nb.png,0.1\nc.png,2.0\n")
    seq = FramesSource(path=folder, property_name="zoom", unit="x").generate(image[:, :8, :8])
    assert seq.values.tolist() == pytest.approx([0.1, 0.5, 2.0])
    assert seq.property_name == "zoom"
    side = tmp_path / "values.json"
    side.write_text(json.dumps({"a.png": 3, "b.png": 1, "c.png": 2}))
    seq = FramesSource(paths=[folder / "a.png", folder / "b.png", folder / "c.png"], sidecar=side).generate(
        image[:, :8, :8]
    )
    assert seq.values.tolist() == [1.0, 2.0, 3.0]


def test_frames_resize_to_the_reference_image(tmp_path, image):
    folder = write_frames(tmp_path / "r", ["x1.png", "x2.png", "x3.png"], size=12)
    seq = FramesSource(path=folder, resize=True).generate(image)
    assert seq.images.shape == (3, 3, 32, 32)


def test_frames_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        FramesSource(path=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images found.*\.png"):
        FramesSource(path=tmp_path / "empty")
    folder = write_frames(tmp_path / "dup", ["a_1.png", "b_1.png", "c_2.png"])
    with pytest.raises(ValueError, match="distinct values"):
        FramesSource(path=folder)
    folder = write_frames(tmp_path / "side", ["a.png", "b.png"])
    (folder / "values.csv").write_text("file,value\na.png,1\n")
    with pytest.raises(ValueError, match="no entry for frame 'b.png'"):
        FramesSource(path=folder)
    with pytest.raises(ValueError, match="exactly one of path"):
        FramesSource()


# further coverage ---------------------------------------------------------------------------


def test_default_patch_is_fully_present_at_alpha_one_and_seeded(image):
    from propgrad.sources.alpha_patch import sticker_patch

    seq = AlphaPatchSource(position=(3, 5), scale=0.5).generate(image, seed=2)
    assert seq.metadata["patch_size"] == [16, 16] and seq.metadata["patch"] == "procedural"
    sticker = sticker_patch(16, torch.Generator().manual_seed(2))
    opaque = sticker[3] == 1
    region = seq.images[-1][:, 3:19, 5:21]
    assert opaque.sum() > 50 and torch.equal(region[:, opaque], sticker[:3][:, opaque])
    other = AlphaPatchSource(position=(3, 5), scale=0.5).generate(image, seed=3)
    assert not torch.equal(seq.images[-1], other.images[-1])  # another sticker for another seed
    assert seq.images.device == image.device and torch.all(seq.values[1:] > seq.values[:-1])


def test_alpha_patch_scales_patch_files_and_keeps_aspect(tmp_path, image):
    patch = torch.ones(4, 10, 20)
    save_image(tmp_path / "p.png", patch)
    seq = AlphaPatchSource(patch=str(tmp_path / "p.png"), scale=0.5, position=(0, 0)).generate(image)
    assert seq.metadata["patch_size"] == [8, 16]
    assert torch.equal(seq.images[-1][:, :8, :16], torch.ones(3, 8, 16))
    assert torch.equal(seq.images[-1][:, 8:, :], image[:, 8:, :])


def test_alpha_patch_more_errors(image):
    with pytest.raises(ValueError, match="larger than the image"):
        AlphaPatchSource(patch=torch.rand(4, 40, 8), scale=None).generate(image)
    with pytest.raises(ValueError, match="avoid"):
        AlphaPatchSource(position=(0, 0), avoid=torch.zeros(32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="avoid covers every"):
        AlphaPatchSource(avoid=torch.ones(32, 32, dtype=torch.bool)).generate(image)
    with pytest.raises(ValueError, match="avoid must match"):
        AlphaPatchSource(avoid=torch.zeros(16, 16, dtype=torch.bool)).generate(image)
    with pytest.raises(ValueError, match="mask must not be given"):
        AlphaPatchSource(patch=torch.rand(4, 8, 8), mask=torch.ones(8, 8))
    with pytest.raises(ValueError, match="mask must match"):
        AlphaPatchSource(patch=torch.rand(3, 8, 8), mask=torch.ones(7, 8))
    with pytest.raises(ValueError, match="patch must be a float"):
        AlphaPatchSource(patch=torch.zeros(4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="patch must hold values"):
        AlphaPatchSource(patch=torch.full((4, 8, 8), 2.0))
    with pytest.raises(ValueError, match="steps"):
        AlphaPatchSource(steps=2.5)


def test_vignette_factor_map_and_centre(image):
    from propgrad.sources.gaussian_vignette import gaussian_map, vignette_factor

    g = gaussian_map(31, 31, 0.3)
    assert float(g.max()) == pytest.approx(1.0) and int(g.argmax()) == 15 * 31 + 15
    factors = vignette_factor(g, torch.tensor([0.0, -1.0]))
    assert torch.equal(factors[0], torch.ones(31, 31)) and torch.allclose(factors[1], g)  # s=-1: g
    seq = GaussianVignetteSource(center=(0.0, 0.0), steps=3).generate(image)
    assert torch.allclose(seq.images[-1][:, 0, 0], image[:, 0, 0], rtol=0.01)  # peak sits there
    assert float(seq.images[-1][:, 31, 31].mean()) < 0.1
    assert seq.metadata["direction"] == "darken" and seq.metadata["strengths"][-1] == -1.0
    with pytest.raises(ValueError, match="center"):
        GaussianVignetteSource(center=(0.5, 2))
    with pytest.raises(ValueError, match="mask must match"):
        GaussianVignetteSource(mask=torch.ones(8, 8)).generate(image)


def test_frames_full_turn_in_tens_index_fallback_and_override(tmp_path, image):
    folder = write_frames(tmp_path / "t", [f"view{a}.png" for a in range(0, 360, 10)], size=4)
    source = FramesSource(path=folder)
    assert source.periodic and len(source.values) == 36
    assert not FramesSource(path=folder, periodic=False).periodic
    files = [write_frames(tmp_path / "i", [n], size=4) / n for n in ("c.png", "a.png", "b.png")]
    seq = FramesSource(paths=files).generate(image)
    assert (seq.property_name, seq.unit, seq.periodic) == ("frame", "index", False)
    assert seq.values.tolist() == [0.0, 1.0, 2.0]
    assert [p.rsplit("/", 1)[-1] for p in seq.metadata["files"]] == ["c.png", "a.png", "b.png"]


def test_frames_uneven_turn_from_an_angle_column_has_period_360(tmp_path, image):
    folder = write_frames(tmp_path / "u", ["p.png", "q.png", "r.png", "s.png"], size=4)
    (folder / "values.csv").write_text("file,angle\np.png,0\nq.png,80\nr.png,200\ns.png,290\n")
    seq = FramesSource(path=folder).generate(image[:, :4, :4])
    assert seq.values.tolist() == [0.0, 80.0, 200.0, 290.0] and seq.periodic  # gap 70 <= median step 90
    assert seq.metadata["period"] == 360.0 and not seq.metadata["uniform_spacing"]
    even = FramesSource(path=write_frames(tmp_path / "e", ["a_0.png", "a_90.png", "a_180.png"], size=4))
    meta = even.generate(image[:, :4, :4]).metadata
    assert meta["uniform_spacing"] and "period" not in meta  # half a turn is not periodic


def test_frames_more_errors(tmp_path, image):
    folder = write_frames(tmp_path / "sizes", ["a_1.png"], size=4)
    save_image(folder / "b_2.png", torch.rand(3, 6, 6))
    with pytest.raises(ValueError, match="different sizes.*resize=True"):
        FramesSource(path=folder).generate(image)
    assert FramesSource(path=folder, resize=True).generate(image).images.shape == (2, 3, 32, 32)
    (folder / "c_3.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not read image .*c_3.png"):
        FramesSource(path=folder, resize=True).generate(image)
    with pytest.raises(FileNotFoundError, match="sidecar"):
        FramesSource(path=folder, sidecar=tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="paths"):
        FramesSource(paths=[folder / "a_1.png", folder / "zzz.png"])
    both = write_frames(tmp_path / "both", ["a.png", "b.png"], size=4)
    (both / "values.csv").write_text("file,value\na.png,1\nb.png,2\n")
    (both / "values.json").write_text("{}")
    with pytest.raises(ValueError, match="values.csv and .*values.json"):
        FramesSource(path=both)
    (both / "values.json").unlink()
    (both / "values.csv").write_text("name,angle\na.png,1\n")
    with pytest.raises(ValueError, match="file,value"):
        FramesSource(path=both)
    with pytest.raises(ValueError, match="resize"):
        FramesSource(path=both, resize="yes")


def test_modules_register_their_source_class():
    from propgrad.sources import alpha_patch, frames, gaussian_vignette

    for module, cls in (
        (alpha_patch, AlphaPatchSource),
        (frames, FramesSource),
        (gaussian_vignette, GaussianVignetteSource),
    ):
        got: list[type] = []
        module.register_sources(got.append)
        assert got == [cls] and cls.name == module.__name__.rsplit(".", 1)[-1]


def test_pixel_change_is_the_largest_departure_from_the_first_image() -> None:
    from propgrad.sources.base import InterventionSequence

    images = torch.zeros(3, 3, 2, 2)
    images[1, 0] = 0.6  # one channel of four pixels: mean change 0.6 / 3 = 0.2
    images[2, 0, 0, 0] = 0.4  # a single value: mean change 0.4 / 12
    seq = InterventionSequence(images, torch.arange(3.0), "p", "step")
    assert seq.pixel_change() == pytest.approx(0.2)  # the middle step, not the final one
    still = InterventionSequence(torch.full((2, 3, 2, 2), 0.5), torch.arange(2.0), "p", "step")
    assert still.pixel_change() == 0.0


def test_blend_sequence_equals_the_blend_over_the_whole_image_bit_for_bit():
    from propgrad.sources.alpha_patch import blend_sequence

    generator = torch.Generator().manual_seed(3)
    for dtype, alphas in [
        (torch.float32, torch.linspace(0, 1, 7)),
        (torch.float64, torch.linspace(0, 1, 4, dtype=torch.float64)),
        (torch.float32, torch.tensor([0.5], dtype=torch.float64)),  # wider alphas widen the result
    ]:
        image = torch.rand(3, 20, 24, generator=generator).to(dtype)
        canvas = torch.zeros(4, 20, 24, dtype=dtype)
        canvas[:, 5:12, 3:17] = torch.rand(4, 7, 14, generator=generator).to(dtype)
        canvas[3, 5, 3:17] = 0  # a soft edge of zeros inside the patch's box
        weight = alphas[:, None, None, None] * canvas[3][None, None]
        whole = ((1 - weight) * image[None] + weight * canvas[:3][None]).clamp(0, 1)
        blended = blend_sequence(image, canvas[:3], canvas[3], alphas)
        assert blended.dtype == whole.dtype and blended.is_contiguous()
        assert torch.equal(blended, whole) and torch.equal(blended.signbit(), whole.signbit())
    empty = blend_sequence(image, canvas[:3], torch.zeros(20, 24, dtype=dtype), alphas)
    assert torch.equal(empty, image.clamp(0, 1)[None].to(empty.dtype).expand_as(empty))


def test_alpha_patch_memoised_sticker_gives_the_sequence_a_fresh_source_draws():
    images = torch.rand(3, 3, 40, 48, generator=torch.Generator().manual_seed(4))
    source = AlphaPatchSource(steps=5)
    for image, seed in [(images[0], 7), (images[1], 7), (images[2], 8), (images[0], 7), (images[0][:, :32], 7)]:
        again = source.generate(image, seed=seed)
        fresh = AlphaPatchSource(steps=5).generate(image, seed=seed)
        assert torch.equal(again.images, fresh.images)
        assert again.metadata["position"] == fresh.metadata["position"]  # drawn after the sticker, from the same state
    assert len(source._stickers) == 3  # (side, seed): (10, 7), (10, 8), (8, 7)
