"""The batched denoising loop: per-sample guidance, equal to the looped and the stock pipeline."""

from __future__ import annotations

import torch

from propgrad_diffusion_edit.model_loading import load_pipeline
from propgrad_diffusion_edit.sampler import Denoising, estimate_sample_memory_mb, resolve_batch_size, sweep_guidance

TEXT = [1.05, 2.5, 4.0, 6.0, 9.0]


def _sweep(pipe, image, batch_size, text=TEXT, image_scales=None, seed=7):
    image_scales = image_scales or [1.5] * len(text)
    return sweep_guidance(
        pipe, image[None], "make it red", text, image_scales, Denoising(seed, 4), batch_size=batch_size
    )


def test_batched_sweep_equals_looped_sweep(tiny_model, image):
    pipe = load_pipeline(str(tiny_model), "cpu")
    batched = _sweep(pipe, image, batch_size=5)
    uneven = _sweep(pipe, image, batch_size=2)  # batches of 2, 2, 1
    looped = _sweep(pipe, image, batch_size=1)
    assert batched.shape == (5, 3, 32, 32)
    assert (batched - looped).abs().max() < 1e-4
    assert (uneven - looped).abs().max() < 1e-4
    # the guidance scale is applied per sample: neighbouring scales give different edits
    assert ((looped[1:] - looped[:-1]).flatten(1).abs().amax(1) > 1e-3).all()


def test_batched_sweep_equals_stock_pipeline_called_per_scale(tiny_model, image):
    pipe = load_pipeline(str(tiny_model), "cpu")
    ours = _sweep(pipe, image, batch_size=2, text=[2.0, 8.0], image_scales=[1.2, 2.0], seed=3)
    stock = torch.cat(
        [
            pipe(
                "make it red",
                image=image[None],
                num_inference_steps=4,
                guidance_scale=t,
                image_guidance_scale=s,
                generator=torch.Generator().manual_seed(3),
                output_type="pt",
            ).images
            for t, s in [(2.0, 1.2), (8.0, 2.0)]
        ]
    )
    assert (ours - stock).abs().max() < 1e-4


def test_same_seed_same_sweep_other_seed_other_sweep(tiny_model, image):
    pipe = load_pipeline(str(tiny_model), "cpu")
    a, b, c = _sweep(pipe, image, 5, seed=1), _sweep(pipe, image, 5, seed=1), _sweep(pipe, image, 5, seed=2)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_memory_budget_bounds_the_batch_size(tiny_model):
    pipe = load_pipeline(str(tiny_model), "cpu")
    small = estimate_sample_memory_mb(pipe.unet.config, 256, 256, 4)
    large = estimate_sample_memory_mb(pipe.unet.config, 512, 512, 4)
    assert 0 < small < large
    assert resolve_batch_size(8, None, small) == 8
    assert resolve_batch_size(8, 3.5 * small, small) == 3
    assert resolve_batch_size(8, 0.1 * small, small) == 1
    assert resolve_batch_size(2, 100 * small, small) == 2
