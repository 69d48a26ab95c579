"""The flux_kontext adapter: per-sample distilled guidance, equal to the stock pipeline, warm and cached."""

from __future__ import annotations

import json

import pytest
import torch

from propgrad_diffusion_edit import FluxKontextSource, clear_pipeline_cache, pipeline_cache_info, save_filmstrip
from propgrad_diffusion_edit.flux_kontext import FLUX_KONTEXT, sweep_flux_kontext
from propgrad_diffusion_edit.model_loading import load_pipeline
from propgrad_diffusion_edit.sampler import Denoising

SCALES = [1.0, 3.0, 6.0]


def _source(model, tmp_path, **overrides):
    kwargs = dict(
        instruction="make the fur black",
        guidance_scales=SCALES,
        num_inference_steps=2,
        max_sequence_length=16,
        model=model,
        cache_dir=tmp_path / "cache",
    )
    return FluxKontextSource(**{**kwargs, **overrides})


def test_batched_sweep_equals_stock_pipeline_called_per_scale(tiny_flux, image):
    pipe = load_pipeline(str(tiny_flux), "cpu", family=FLUX_KONTEXT)
    ours = sweep_flux_kontext(pipe, image[None], "make the fur black", SCALES, Denoising(3, 2), batch_size=2)
    looped = sweep_flux_kontext(pipe, image[None], "make the fur black", SCALES, Denoising(3, 2), batch_size=1)
    stock = torch.cat(
        [
            pipe(
                image=image[None],
                prompt="make the fur black",
                height=32,
                width=32,
                max_area=32 * 32,
                _auto_resize=False,
                guidance_scale=g,
                num_inference_steps=2,
                generator=torch.Generator().manual_seed(3),
                output_type="pt",
            ).images
            for g in SCALES
        ]
    )
    assert ours.shape == (3, 3, 32, 32)
    assert (ours - stock).abs().max() < 1e-4
    assert (ours - looped).abs().max() < 1e-4
    # the guidance is applied per sample: every scale gives a different edit
    assert ((ours[1:] - ours[:-1]).flatten(1).abs().amax(1) > 1e-3).all()


def test_sequence_values_fidelity_determinism_and_filmstrip(tiny_flux, image, tmp_path):
    import matplotlib.image

    seq = _source(tiny_flux, tmp_path, use_cache=False).generate(image, seed=0)
    assert seq.images.shape == (3, 3, 32, 32) and seq.images.dtype == torch.float32
    assert torch.allclose(seq.values, torch.tensor(SCALES))
    assert seq.property_name == "guidance scale"
    fid = seq.metadata["fidelity"]
    assert len(fid["ssim"]) == len(fid["psnr"]) == 3 and all(p < 100 for p in fid["psnr"])
    json.dumps(seq.metadata)
    again = _source(tiny_flux, tmp_path, use_cache=False).generate(image, seed=0)
    other = _source(tiny_flux, tmp_path, use_cache=False).generate(image, seed=1)
    assert torch.equal(seq.images, again.images) and not torch.equal(seq.images, other.images)
    strip = matplotlib.image.imread(save_filmstrip(seq, tmp_path / "flux.png"))
    assert strip.shape[1] > strip.shape[0]  # a row of thumbnails


def test_pipeline_is_loaded_once_and_a_cache_hit_loads_nothing(tiny_flux, image, tmp_path):
    clear_pipeline_cache()
    start = pipeline_cache_info()
    first = _source(tiny_flux, tmp_path).generate(image, seed=2)
    _source(tiny_flux, tmp_path, guidance_scales=[2.0, 4.0], use_cache=False).generate(image.flip(-1), seed=2)
    info = pipeline_cache_info()
    assert info["loads"] - start["loads"] == 1 and info["hits"] - start["hits"] == 1
    clear_pipeline_cache()
    hit = _source(tiny_flux, tmp_path).generate(image, seed=2)
    assert hit.metadata["cache_hit"] is True and torch.equal(hit.images, first.images)
    assert pipeline_cache_info()["loads"] == info["loads"]  # nothing loaded on the hit


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"instruction": " "}, "instruction must be a non-empty string"),
        ({"guidance_scales": [3.0, 2.0]}, "guidance_scales must be strictly increasing"),
        ({"guidance_scales": [0.0, 2.0]}, r"guidance_scales\[0\] must be a number > 0"),
        ({"guidance_scales": [1.0, 2.0], "num_scales": 5}, "either guidance_scales or num_scales"),
        ({"guidance_start": 4.0, "guidance_stop": 2.0}, "guidance_stop"),
        ({"image_size": 24}, "multiples of 16, got side 24"),
        ({"max_sequence_length": 1000}, r"max_sequence_length must be an integer in \[1, 512\]"),
        ({"text_guidance_scales": [1.0, 2.0]}, "text_guidance_scales"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FluxKontextSource(**{"instruction": "make it black", **kwargs})


def test_defaults():
    source = FluxKontextSource("make it black")
    assert source.model == "black-forest-labs/FLUX.1-Kontext-dev"
    assert len(source.guidance_scales) == 21 and source.guidance_scales[0] == 1.0 and source.guidance_scales[-1] == 6.0
    assert source.num_inference_steps == 28
