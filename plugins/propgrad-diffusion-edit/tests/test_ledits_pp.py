"""The ledits_pp adapter: one inversion per sweep, reused for every edit guidance scale."""

from __future__ import annotations

import pytest
import torch

from propgrad_diffusion_edit import LEditsPPSource, clear_pipeline_cache, pipeline_cache_info
from propgrad_diffusion_edit.ledits_pp import LEDITS_PP, LEditsSettings, sweep_ledits_pp
from propgrad_diffusion_edit.model_loading import load_pipeline
from propgrad_diffusion_edit.sampler import Denoising


def _source(model, tmp_path, **overrides):
    kwargs = dict(
        instruction="black fur",
        guidance_scales=[0.0, 4.0, 8.0],
        num_inference_steps=2,
        skip=0.0,
        model=model,
        cache_dir=tmp_path / "cache",
    )
    return LEditsPPSource(**{**kwargs, **overrides})


def test_one_inversion_serves_the_whole_sweep(tiny_ledits, image64, monkeypatch):
    pipe = load_pipeline(str(tiny_ledits), "cpu", family=LEDITS_PP)
    calls = []
    invert = pipe.invert
    monkeypatch.setattr(pipe, "invert", lambda *a, **k: calls.append(1) or invert(*a, **k))
    settings = LEditsSettings("black fur", skip=0.0)
    swept = sweep_ledits_pp(pipe, image64[None], settings, [0.0, 4.0, 8.0], Denoising(5, 2))
    assert len(calls) == 1
    # reusing the inversion gives what inverting afresh for each scale gives
    alone = [sweep_ledits_pp(pipe, image64[None], settings, [s], Denoising(5, 2)) for s in (0.0, 8.0)]
    assert len(calls) == 3
    assert (swept[0] - alone[0][0]).abs().max() < 1e-5 and (swept[2] - alone[1][0]).abs().max() < 1e-5
    assert swept.shape == (3, 3, 64, 64)
    # scale 0 is the identity of the sweep: the pipeline's unedited reconstruction from the same inversion
    sweep_ledits_pp(pipe, image64[None], settings, [4.0], Denoising(5, 2))
    unedited = pipe(editing_prompt=None, generator=torch.Generator().manual_seed(5), output_type="pt").images
    assert (swept[0] - unedited[0]).abs().max() < 1e-4
    assert (swept[1] - unedited[0]).abs().max() > 1e-3
    # the edit guidance matters: every scale gives a different image
    assert ((swept[1:] - swept[:-1]).flatten(1).abs().amax(1) > 1e-3).all()


def test_source_sequence_is_deterministic_warm_and_cached(tiny_ledits, image64, tmp_path):
    clear_pipeline_cache()
    start = pipeline_cache_info()
    seq = _source(tiny_ledits, tmp_path).generate(image64, seed=1)
    assert seq.images.shape == (3, 3, 64, 64) and seq.images.dtype == torch.float32
    assert torch.allclose(seq.values, torch.tensor([0.0, 4.0, 8.0]))
    assert seq.property_name == "edit guidance scale"
    assert len(seq.metadata["fidelity"]["ssim"]) == 3
    again = _source(tiny_ledits, tmp_path, use_cache=False).generate(image64, seed=1)
    assert (seq.images - again.images).abs().max() <= 1 / 255 + 1e-6
    info = pipeline_cache_info()
    assert info["loads"] - start["loads"] == 1 and info["hits"] - start["hits"] == 1
    hit = _source(tiny_ledits, tmp_path).generate(image64, seed=1)
    assert hit.metadata["cache_hit"] is True and torch.equal(hit.images, seq.images)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"guidance_scales": [-1.0, 2.0]}, r"guidance_scales\[0\] must be a number >= 0"),
        ({"edit_threshold": 1.0}, r"edit_threshold must be a number in \[0, 1\)"),
        ({"skip": -0.1}, "skip must be a number"),
        ({"image_size": 48}, "multiples of 32, got side 48"),
        ({"source_prompt": 3}, "source_prompt must be a string"),
        ({"batch_size": 2}, "batch_size"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LEditsPPSource(**{"instruction": "black fur", **kwargs})


def test_defaults_start_at_zero_edit():
    source = LEditsPPSource("black fur")
    assert source.guidance_scales[0] == 0.0 and source.guidance_scales[-1] == 10.0 and len(source.guidance_scales) == 21
    assert source.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
