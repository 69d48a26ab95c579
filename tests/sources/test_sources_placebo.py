"""Placebo sequences (propgrad.sources.placebo_sequences): seeding, devices, shapes, matched per-step change, values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from propgrad.sources.base import InterventionSequence
from propgrad.sources.gaussian_vignette import GaussianVignetteSource
from propgrad.sources.placebo_sequences import (
    PlaceboPool,
    changed_region,
    draw_compiled,
    draw_torch,
    placebo_draw,
    placebo_images,
    placebo_sequences,
    reflect_unit,
    smooth_direction,
    step_changes,
    with_first,
)
from propgrad.stats import strategy

H = W = 16
RTOL = 1e-4  # placebo_images' default: every step's change within RTOL * d + eps of the real one


def _image(seed: int = 0, bright: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, H, W, generator=g)
    return (0.75 + 0.25 * image) if bright else image


def _patch_sequence(steps: int = 8, alpha_max: float = 0.9, image: torch.Tensor | None = None) -> InterventionSequence:
    """A white 4x4 patch blended into the centre of an image with a rising alpha."""
    image = _image() if image is None else image
    mask = torch.zeros(H, W)
    mask[6:10, 6:10] = 1
    alphas = torch.linspace(0, alpha_max, steps)
    images = image * (1 - alphas[:, None, None, None] * mask) + alphas[:, None, None, None] * mask
    return InterventionSequence(images=images, values=alphas, property_name="alpha", unit="fraction")


def _vignette(steps: int = 8, image: torch.Tensor | None = None, **kwargs) -> InterventionSequence:
    return GaussianVignetteSource(steps=steps, **kwargs).generate(_image() if image is None else image)


def _assert_matched(placebos: torch.Tensor, real: InterventionSequence, rtol: float = RTOL) -> None:
    want = step_changes(real.images)
    eps = torch.finfo(real.images.dtype).eps
    for j, placebo in enumerate(placebos):
        got = step_changes(placebo)
        err = (got - want).abs()
        assert bool((err <= rtol * want + eps).all()), f"placebo {j}: step changes {got} vs real {want}"


def test_step_changes_is_mean_absolute_pixel_difference() -> None:
    images = torch.zeros(3, 3, 2, 2)
    images[1, 0, 0, 0] = 0.6  # one of 12 values changes by 0.6
    images[2] = 0.5
    got = step_changes(images)
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx([0.6 / 12, (11 * 0.5 + 0.1) / 12])
    with pytest.raises(ValueError, match="images must be a float tensor"):
        step_changes(torch.zeros(3, 2, 2))


def test_reflect_unit_folds_into_unit_interval() -> None:
    x = torch.tensor([0.0, 0.25, 1.0, 1.25, 2.0, 2.5, -0.25, -1.5, 1e-8], dtype=torch.float64)
    assert reflect_unit(x).tolist() == pytest.approx([0.0, 0.25, 1.0, 0.75, 0.0, 0.5, 0.25, 0.5, 1e-8], abs=1e-12)
    inside = torch.rand(1000, dtype=torch.float64)
    assert torch.equal(reflect_unit(inside), inside)  # exactly the identity on [0, 1]


def test_smooth_direction_is_normalised_smooth_and_seeded() -> None:
    d = smooth_direction(H, W, torch.Generator().manual_seed(3), grid=4)
    assert d.shape == (3, H, W) and d.dtype == torch.float64
    assert float(d.abs().mean()) == pytest.approx(1.0)
    # smooth: neighbouring pixels differ far less than in white noise of the same scale (about 1.13)
    assert float((d[:, 1:] - d[:, :-1]).abs().mean()) < 0.5
    batch = smooth_direction(H, W, torch.Generator().manual_seed(3), grid=4, count=3)
    assert batch.shape == (3, 3, H, W) and torch.equal(batch[0], d)
    constant = smooth_direction(H, W, torch.Generator().manual_seed(3), grid=1)
    assert torch.equal(constant, constant[:, :1, :1].expand(3, H, W))


@pytest.mark.parametrize("variant", ["smooth_direction", "region"])
def test_shapes_first_image_range_and_values(variant: str) -> None:
    real = _patch_sequence()
    out = placebo_images(real, 5, seed=1, variant=variant)
    assert out.shape == (5, 8, 3, H, W) and out.dtype == real.images.dtype
    assert torch.equal(out[:, 0], real.images[0].expand(5, 3, H, W))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    seqs = placebo_sequences(real, 5, seed=1, variant=variant)
    assert len(seqs) == 5
    for j, seq in enumerate(seqs):
        assert torch.equal(seq.images, out[j])
        assert torch.equal(seq.values, real.values) and seq.values is not real.values
        assert seq.property_name == real.property_name and seq.unit == real.unit and not seq.periodic
        assert seq.metadata["placebo"] == variant and seq.metadata["placebo_index"] == j
        assert seq.metadata["seed"] == 1 and seq.metadata["n_placebos"] == 5


@pytest.mark.parametrize("variant", ["smooth_direction", "region"])
@pytest.mark.parametrize("kind", ["patch", "vignette", "bright_brightening"])
def test_per_step_change_matches_the_real_sequence(variant: str, kind: str) -> None:
    if kind == "patch":
        real = _patch_sequence()
    elif kind == "vignette":
        real = _vignette()
    else:  # a bright image brightened hard: the placebo directions leave [0, 1] all the time
        real = _vignette(image=_image(bright=True), max_strength=3.0)
    out = placebo_images(real, 12, seed=7, variant=variant)
    assert bool(step_changes(real.images).min() > 1e-4)
    _assert_matched(out, real)


def test_clipping_is_exercised_and_still_matched() -> None:
    real = _vignette(image=_image(bright=True), max_strength=3.0)
    out = placebo_images(real, 12, seed=7)
    # the unclipped path I_0 + s D leaves [0, 1]: the reflected images differ from a plain rescaled direction
    # (a placebo that only rescaled D would have constant (I_i - I_0) / |I_i - I_0| ratios)
    delta = out[:, -1] - out[:, 0]
    first = out[:, 1] - out[:, 0]
    direction_changed = ((torch.sign(delta) != torch.sign(first)) & (first.abs() > 1e-6)).any()
    assert bool(direction_changed), "no pixel was reflected: the test does not exercise clipping"
    _assert_matched(out, real)
    # a looser tolerance is honoured too (and still holds)
    _assert_matched(placebo_images(real, 4, seed=7, rtol=1e-2), real, rtol=1e-2)


def test_non_uniform_steps_and_a_step_without_change() -> None:
    base = _patch_sequence(steps=6)
    images = base.images.clone()
    images[3] = images[2]  # step 3 changes nothing
    alphas = torch.tensor([0.0, 0.01, 0.1, 0.2, 0.5, 1.0])
    mask = torch.zeros(H, W)
    mask[6:10, 6:10] = 1
    images = _image() * (1 - alphas[:, None, None, None] * mask) + alphas[:, None, None, None] * mask
    images[3] = images[2]
    real = InterventionSequence(images=images, values=torch.arange(6.0), property_name="alpha", unit="fraction")
    out = placebo_images(real, 6, seed=2)
    _assert_matched(out, real)
    assert torch.equal(out[:, 3], out[:, 2])


def test_same_seed_same_placebos_and_prefix_stable() -> None:
    real = _vignette()
    a = placebo_images(real, 6, seed=11)
    b = placebo_images(real, 6, seed=11)
    assert torch.equal(a, b)
    assert not torch.equal(a, placebo_images(real, 6, seed=12))
    assert torch.equal(placebo_images(real, 3, seed=11), a[:3])  # placebo m does not depend on M
    r1 = placebo_images(real, 4, seed=11, variant="region")
    assert torch.equal(r1, placebo_images(real, 4, seed=11, variant="region"))
    assert torch.equal(placebo_images(real, 2, seed=11, variant="region"), r1[:2])
    assert not torch.equal(a[:4], r1)
    # placebos differ from each other
    assert not torch.equal(a[0], a[1])


def test_region_variant_changes_a_shifted_region_of_the_same_area() -> None:
    real = _patch_sequence()
    area = int(changed_region(real.images).sum())
    assert area == 16
    out = placebo_images(real, 8, seed=5, variant="region")
    positions = set()
    for placebo in out:
        changed = changed_region(placebo, 0.0)
        assert int(changed.sum()) == area  # the 4x4 block, shifted cyclically
        rows, cols = torch.nonzero(changed, as_tuple=True)
        positions.add((int(rows.min()), int(cols.min())))
    assert len(positions) > 1  # random placement
    _assert_matched(out, real)


def test_float64_images_stay_float64() -> None:
    real = _vignette(image=_image().double())
    out = placebo_images(real, 3, seed=0)
    assert out.dtype == torch.float64
    _assert_matched(out, real)


def test_device_follows_the_image() -> None:
    real = _vignette()
    cpu = placebo_images(real, 3, seed=4)
    assert cpu.device == real.images.device
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device to check that the placebos follow the image's device")
    gpu_real = InterventionSequence(
        images=real.images.cuda(), values=real.values.cuda(), property_name=real.property_name, unit=real.unit
    )
    gpu = placebo_images(gpu_real, 3, seed=4)
    assert gpu.device == gpu_real.images.device
    _assert_matched(gpu, gpu_real)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)  # same directions (drawn on the CPU) on every device


def test_bad_inputs() -> None:
    real = _vignette()
    with pytest.raises(TypeError, match="sequence must be an InterventionSequence"):
        placebo_images(real.images, 3)
    with pytest.raises(ValueError, match="n_placebos"):
        placebo_images(real, 0)
    with pytest.raises(ValueError, match="variant must be one of"):
        placebo_images(real, 3, variant="noise")
    with pytest.raises(ValueError, match="seed"):
        placebo_images(real, 3, seed=-1)
    with pytest.raises(ValueError, match="rtol"):
        placebo_images(real, 3, rtol=0.5)
    periodic = InterventionSequence(
        images=real.images, values=real.values, property_name="angle", unit="degree", periodic=True
    )
    with pytest.raises(ValueError, match="periodic"):
        placebo_images(periodic, 3)
    # black to white in one step: no placebo direction changes every pixel by 1
    jump = InterventionSequence(
        images=torch.stack([torch.zeros(3, H, W), torch.ones(3, H, W)]),
        values=torch.tensor([0.0, 1.0]),
        property_name="cut",
        unit="step",
    )
    with pytest.raises(ValueError, match="step 1 of the sequence changes the image by 1"):
        placebo_images(jump, 2)


def test_unchanged_sequence_gives_constant_placebos() -> None:
    image = _image()
    real = InterventionSequence(
        images=image.expand(4, 3, H, W).clone(), values=torch.arange(4.0), property_name="none", unit="step"
    )
    for variant in ("smooth_direction", "region"):
        out = placebo_images(real, 3, variant=variant)
        assert torch.equal(out, image.expand(3, 4, 3, H, W))
    assert math.isclose(float(step_changes(real.images).abs().sum()), 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["patch", "vignette", "bright_brightening"])
def test_compiled_kernel_and_torch_path_agree(kind: str, dtype: torch.dtype) -> None:
    """The CPU kernel runs the torch path's search: both match every step, and their images agree to the tolerance."""
    if kind == "patch":
        real = _patch_sequence()
    elif kind == "vignette":
        real = _vignette()
    else:
        real = _vignette(image=_image(bright=True), max_strength=3.0)
    real = InterventionSequence(real.images.to(dtype), real.values, real.property_name, real.unit)
    directions = smooth_direction(H, W, torch.Generator().manual_seed(5), count=9).to(dtype)
    targets = step_changes(real.images).tolist()
    compiled = with_first(real.images[0], draw_compiled(real.images, directions, targets, RTOL))
    reference = with_first(real.images[0], draw_torch(real.images, directions, targets, RTOL))
    assert compiled.dtype == reference.dtype == dtype
    _assert_matched(compiled, real)
    _assert_matched(reference, real)
    # each step's size is found within RTOL of the same root, so the pixels differ by about RTOL * step or less
    assert float((compiled - reference).abs().max()) <= 10 * RTOL * max(targets)


@pytest.mark.parametrize("threads", [2, 3])
def test_compiled_placebos_do_not_depend_on_the_threads_drawing_them(threads: int, monkeypatch) -> None:
    real = _vignette()
    directions = smooth_direction(H, W, torch.Generator().manual_seed(5), count=7)
    targets = step_changes(real.images).tolist()
    monkeypatch.setattr(strategy, "threads_available", lambda: 1)
    alone = with_first(real.images[0], draw_compiled(real.images, directions, targets, RTOL))
    monkeypatch.setattr(strategy, "threads_available", lambda: threads)
    split = with_first(real.images[0], draw_compiled(real.images, directions, targets, RTOL))  # 7 over 2 or 3 threads
    assert torch.equal(alone, split)
    _assert_matched(split, real)


def test_compiled_kernel_refuses_a_step_no_direction_reaches() -> None:
    jump = torch.stack([torch.zeros(3, H, W), torch.ones(3, H, W)])
    directions = smooth_direction(H, W, torch.Generator().manual_seed(0), count=2).float()
    for draw in (draw_compiled, draw_torch):
        with pytest.raises(ValueError, match=r"changes the image by 1 \(.*\), more than a placebo"):
            draw(jump, directions, [1.0], RTOL)


def test_pool_chunks_give_the_placebos_of_one_draw() -> None:
    """Drawing on demand in rounds (as the sequential test does) and asking across rounds gives the same images."""
    real = _vignette()
    whole = placebo_images(real, 20, seed=4)
    pool = PlaceboPool(real, placebo_draw(20, seed=4))
    assert torch.equal(pool.images(0, 4), whole[:4])
    assert torch.equal(pool.images(4, 20), whole[4:20])
    assert pool.n_drawn == 20
    assert torch.equal(pool.images(2, 9), whole[2:9])  # spans both rounds
    assert torch.equal(pool.images(0, 20), whole)
    steps = pool.steps(4, 20)  # what the placebo test runs: the steps after the real first image
    assert torch.equal(steps, whole[4:20, 1:])
    assert steps.is_contiguous() and steps.data_ptr() == pool.steps(4, 20).data_ptr()  # the round's block, not a copy


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pixels", [7, 48])
def test_compiled_change_is_its_documented_arithmetic_bit_for_bit(dtype: torch.dtype, pixels: int) -> None:
    """The kernel's candidate and mean change, against the arithmetic its docstring states, written out pixel by
    pixel: ``start + t * D`` in float64 rounded once, the reflection, the change in the pixel dtype, added in
    float64 with the even pixels in one sum and the odd in another. Candidates outside [0, 1] on both sides
    and an odd pixel count are in the cases, so a kernel that reorders the sums or skips a reflection differs."""
    from propgrad.sources import placebo_kernel

    g = torch.Generator().manual_seed(3)
    start = torch.rand(pixels, generator=g, dtype=torch.float64).to(dtype).numpy()
    direction = torch.randn(pixels, generator=g, dtype=torch.float64).to(dtype).numpy()
    prev = torch.rand(pixels, generator=g, dtype=torch.float64).to(dtype).numpy()
    kind = np.float32 if dtype == torch.float32 else np.float64
    for t in (0.0, 0.013, 0.7, 3.1):
        candidate, scratch = np.empty(pixels, dtype=kind), np.empty(pixels)
        got = placebo_kernel._change(start, direction, prev, t, candidate, scratch)
        tp = float(kind(t))
        want_pixels, sums = [], [0.0, 0.0]
        for p in range(pixels):
            y = kind(float(start[p]) + tp * float(direction[p]))
            if y < 0 or y > 1:
                y = kind(y - kind(2) * np.trunc(y / kind(2)))
                y = kind(y + 2) if y < 0 else y
                y = kind(2 - y) if y > 1 else y
            want_pixels.append(y)
            sums[p & 1] += abs(float(kind(y - prev[p])))
        want = (sums[0] + sums[1]) / pixels
        assert got == want, (t, got, want)
        assert candidate.tobytes() == np.array(want_pixels, dtype=kind).tobytes()
        if t == 3.1:
            assert (start + t * direction < 0).any() and (start + t * direction > 1).any(), "no reflection exercised"


def test_a_pool_that_keeps_nothing_draws_the_same_placebos_into_a_reused_buffer() -> None:
    """PlaceboPool(keep=False) with ``into``: the steps of a keeping pool, drawn into one buffer's memory round after
    round (no fresh pages to fault in); a larger round grows the buffer, a smaller one reuses it."""
    from propgrad.sources.placebo_sequences import StepsBuffer

    real = _vignette()
    keeping = PlaceboPool(real, placebo_draw(20, seed=4))
    once = PlaceboPool(real, placebo_draw(20, seed=4), keep=False)
    buffer = StepsBuffer()
    first = once.steps(0, 4, into=buffer)
    assert torch.equal(first, keeping.steps(0, 4))
    second = once.steps(4, 20, into=buffer)  # larger: the buffer grows
    assert torch.equal(second, keeping.steps(4, 20))
    grown = second.data_ptr()
    again = PlaceboPool(real, placebo_draw(20, seed=5), keep=False).steps(0, 4, into=buffer)  # smaller: same memory
    assert again.data_ptr() == grown and torch.equal(again, PlaceboPool(real, placebo_draw(20, seed=5)).steps(0, 4))
