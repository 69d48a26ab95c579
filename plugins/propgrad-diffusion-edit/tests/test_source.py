"""The instruct_pix2pix source: sequences, caching, warm pipelines, the 2-D grid."""

from __future__ import annotations

import json

import pytest
import torch

import propgrad_diffusion_edit.source as source_module
from propgrad_diffusion_edit import clear_pipeline_cache, pipeline_cache_info
from propgrad_diffusion_edit.model_loading import model_identity


def test_sequence_shapes_ranges_values_and_fidelity(make_source, image):
    seq = make_source(batch_size=2).generate(image, seed=0)
    assert seq.images.shape == (5, 3, 32, 32) and seq.images.dtype == torch.float32
    assert 0 <= float(seq.images.min()) and float(seq.images.max()) <= 1
    assert torch.allclose(seq.values, torch.tensor([1.05, 3.0, 5.0, 7.5, 10.0]))
    assert seq.property_name == "text guidance scale" and not seq.periodic
    fid = seq.metadata["fidelity"]
    assert len(fid["ssim"]) == len(fid["psnr"]) == 5
    assert all(-1 <= s < 1 for s in fid["ssim"]) and all(0 < p < 100 for p in fid["psnr"])
    json.dumps(seq.metadata)  # JSON-serialisable
    assert seq.metadata["instruction"] == "change the fur color to black"


def test_odd_sized_input_is_edited_at_a_multiple_of_8_and_returned_at_its_size(make_source, image):
    odd = torch.nn.functional.interpolate(image[None], size=(30, 37), mode="bilinear")[0].clamp(0, 1)
    seq = make_source(use_cache=False).generate(odd)
    assert seq.images.shape == (5, 3, 30, 37)
    assert seq.metadata["image_size"] == [32, 40]


def test_same_seed_same_sequence(make_source, image):
    a = make_source(use_cache=False).generate(image, seed=4)
    b = make_source(use_cache=False).generate(image, seed=4)
    c = make_source(use_cache=False).generate(image, seed=5)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_batch_size_does_not_change_the_sequence(make_source, image):
    looped = make_source(batch_size=1, use_cache=False).generate(image, seed=1)
    batched = make_source(batch_size=5, use_cache=False).generate(image, seed=1)
    assert (looped.images - batched.images).abs().max() <= 1 / 255 + 1e-6
    small = make_source(max_batch_memory_mb=1e-6, use_cache=False).generate(image, seed=1)
    assert small.metadata["batch_size"] == 1


def test_cache_hit_does_not_load_the_pipeline(make_source, image, monkeypatch):
    first = make_source().generate(image, seed=2)
    assert first.metadata["cache_hit"] is False
    clear_pipeline_cache()
    loads = pipeline_cache_info()["loads"]

    def no_loading(*args, **kwargs):
        raise AssertionError("the pipeline was loaded on a cache hit")

    monkeypatch.setattr(source_module, "load_pipeline", no_loading)
    again = make_source().generate(image, seed=2)
    assert again.metadata["cache_hit"] is True
    assert pipeline_cache_info()["loads"] == loads
    assert torch.equal(first.images, again.images)
    assert again.metadata["fidelity"] == first.metadata["fidelity"]
    with pytest.raises(AssertionError, match="cache hit"):  # any changed parameter is a miss
        make_source(instruction="make it blue").generate(image, seed=2)
    with pytest.raises(AssertionError, match="cache hit"):
        make_source().generate(image.flip(-1), seed=2)


def test_model_identity_follows_the_folder_contents(tiny_model, tmp_path):
    import shutil

    copy = shutil.copytree(tiny_model, tmp_path / "copy")
    before = model_identity(str(copy))
    assert before["path"] == str(copy.resolve())
    config = copy / "unet" / "config.json"
    config.write_text(config.read_text().replace('"layers_per_block": 1', '"layers_per_block": 1 '))
    assert model_identity(str(copy))["fingerprint"] != before["fingerprint"]
    assert model_identity("timbrooks/instruct-pix2pix") == {"hub_id": "timbrooks/instruct-pix2pix"}


def test_pipeline_is_loaded_once_and_kept_warm(make_source, image):
    clear_pipeline_cache()
    start = pipeline_cache_info()
    make_source(use_cache=False).generate(image, seed=0)
    make_source(use_cache=False, text_guidance_scales=[2.0, 4.0]).generate(image.flip(-2), seed=1)
    info = pipeline_cache_info()
    assert info["loads"] - start["loads"] == 1
    assert info["hits"] - start["hits"] == 1


def test_grid_sweep_rows_match_fixed_image_scale_sweeps(make_source, image):
    source = make_source(text_guidance_scales=[1.5, 4.0, 8.0], batch_size=4, use_cache=False)
    grid = source.sweep_grid(image, [1.0, 2.5], seed=3)
    assert grid.shape == (2, 3, 3, 32, 32)
    for row, s in enumerate([1.0, 2.5]):
        seq = make_source(text_guidance_scales=[1.5, 4.0, 8.0], image_guidance_scale=s, use_cache=False).generate(
            image, seed=3
        )
        assert (grid[row] - seq.images).abs().max() <= 1 / 255 + 1e-6
    assert (grid[0] - grid[1]).abs().max() > 1e-2
