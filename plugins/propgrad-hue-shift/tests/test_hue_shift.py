"""Tests of the hue_shift source, using propgrad's helpers for plugin authors."""

from __future__ import annotations

import colorsys

import pytest
import torch

import propgrad_hue_shift
from propgrad.testing import check_source, collect_registrations, sample_image
from propgrad_hue_shift import HueShiftSource, hsv_to_rgb, rgb_to_hsv, rotate_hue


def test_plugin_registers_the_source():
    found = collect_registrations(propgrad_hue_shift)
    assert found == {"sources": [HueShiftSource], "baselines": [], "suites": []}


@pytest.mark.parametrize("params", [{}, {"max_degrees": 90, "steps": 5}, {"steps": "3", "max_degrees": "180"}])
def test_source_contract(params):
    seq = check_source(HueShiftSource, first_is_original=True, **params)
    assert len(seq) == int(params.get("steps", 16))


def test_full_turn_is_periodic_and_excludes_360():
    seq = HueShiftSource(steps=4).generate(sample_image())
    assert seq.periodic is True
    assert seq.values.tolist() == [0.0, 90.0, 180.0, 270.0]
    partial = HueShiftSource(max_degrees=180, steps=3).generate(sample_image())
    assert partial.periodic is False
    assert partial.values.tolist() == [0.0, 90.0, 180.0]


def test_primary_colours_rotate_by_thirds():
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    seq = HueShiftSource(steps=3).generate(red)  # 0, 120, 240 degrees
    assert torch.allclose(seq.images[1], torch.roll(red, 1, dims=0), atol=1e-6)  # green
    assert torch.allclose(seq.images[2], torch.roll(red, 2, dims=0), atol=1e-6)  # blue


def test_matches_colorsys_reference():
    gen = torch.Generator().manual_seed(1)
    rgb = torch.rand(3, 4, 5, generator=gen, dtype=torch.float64)
    ref = torch.tensor(
        [[colorsys.rgb_to_hsv(*rgb[:, i, j].tolist()) for j in range(5)] for i in range(4)], dtype=torch.float64
    ).permute(2, 0, 1)
    assert torch.allclose(rgb_to_hsv(rgb), ref, atol=1e-12)
    assert torch.allclose(hsv_to_rgb(ref), rgb, atol=1e-12)
    rotated = rotate_hue(rgb, 77.0)
    for i, j in [(0, 0), (3, 4), (2, 1)]:
        h, s, v = colorsys.rgb_to_hsv(*rgb[:, i, j].tolist())
        want = colorsys.hsv_to_rgb((h + 77.0 / 360.0) % 1.0, s, v)
        assert torch.allclose(rotated[:, i, j], torch.tensor(want, dtype=torch.float64), atol=1e-12)


def test_grey_pixels_and_saturation_value_are_preserved():
    image = sample_image()
    image[:, :4, :4] = 0.5  # a grey corner
    seq = HueShiftSource(steps=6).generate(image)
    assert torch.allclose(seq.images[:, :, :4, :4], image[:, :4, :4].expand(6, 3, 4, 4), atol=1e-6)
    hsv = rgb_to_hsv(seq.images)
    assert torch.allclose(hsv[:, 1:], rgb_to_hsv(image)[1:].expand(6, 2, *image.shape[1:]), atol=1e-5)


def test_mask_limits_the_change_to_the_object():
    image = sample_image()
    mask = torch.zeros(image.shape[1:])
    mask[6:12, 6:12] = 1.0
    seq = check_source(HueShiftSource, image, mask=mask, steps=4)
    outside = mask == 0
    assert torch.equal(seq.images[:, :, outside], image[:, outside].expand(4, 3, -1))
    assert float((seq.images[2, :, 6:12, 6:12] - image[:, 6:12, 6:12]).abs().max()) > 0.1
    bool_mask = HueShiftSource(mask=(mask > 0)[None], steps=4).generate(image)
    assert torch.allclose(bool_mask.images, seq.images)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"max_degrees": 0}, ValueError, r"max_degrees must be a number in \(0, 360\]"),
        ({"max_degrees": 400}, ValueError, r"max_degrees must be a number in \(0, 360\]"),
        ({"steps": 1}, ValueError, r"steps must be an integer in \[2, "),
        ({"steps": 2.5}, ValueError, "steps must be an integer"),
        ({"steps": True}, TypeError, "steps must be an integer"),
        ({"max_degrees": "lots"}, ValueError, "max_degrees must be a number"),
        ({"mask": [[1.0]]}, TypeError, "mask must be a torch.Tensor"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    with pytest.raises(error, match=match):
        HueShiftSource(**params)


def test_bad_mask_and_image_are_named():
    with pytest.raises(ValueError, match=r"mask must have shape \(24, 24\)"):
        HueShiftSource(mask=torch.ones(5, 5)).generate(sample_image())
    with pytest.raises(ValueError, match=r"mask must hold finite values in \[0, 1\]"):
        HueShiftSource(mask=torch.full((24, 24), 2.0)).generate(sample_image())
    with pytest.raises(ValueError, match="image must have shape"):
        HueShiftSource().generate(torch.rand(4, 8, 8))
