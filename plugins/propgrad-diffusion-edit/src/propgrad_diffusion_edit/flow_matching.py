"""What the flow-matching editors (FLUX.1 Kontext, Qwen-Image-Edit) share: timesteps, chunks, memory.

Both pipelines denoise packed latent tokens next to the input image's tokens with a
``FlowMatchEulerDiscreteScheduler`` whose timesteps are shifted by the image's token count. The
scheduler is deterministic: a sample's randomness is its initial noise only, drawn from its own
``torch.Generator`` seeded with the seed, so a batched sweep equals the stock pipeline called once
per scale with ``generator=torch.Generator().manual_seed(seed)``.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch


def flow_timesteps(pipe: Any, num_inference_steps: int, image_seq_len: int, device: torch.device) -> tuple[Any, Any]:
    """A fresh scheduler (schedulers keep a step index) and its timesteps, as the stock pipelines set them."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    config = scheduler.config
    mu = calculate_shift(
        image_seq_len,
        config.get("base_image_seq_len", 256),
        config.get("max_image_seq_len", 4096),
        config.get("base_shift", 0.5),
        config.get("max_shift", 1.15),
    )
    sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
    timesteps, _ = retrieve_timesteps(scheduler, num_inference_steps, device, sigmas=sigmas, mu=mu)
    scheduler.set_begin_index(0)
    return scheduler, timesteps


def seeded_generators(seed: int, n: int) -> list[torch.Generator]:
    """One CPU generator per sample, all seeded with ``seed`` (every sample starts from the same noise)."""
    return [torch.Generator("cpu").manual_seed(int(seed)) for _ in range(n)]


def chunks(values: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of ``values`` of at most ``size`` items."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def estimate_token_memory_mb(transformer_config: Any, tokens: int, branches: int, dtype: torch.dtype) -> float:
    """A rough peak activation memory (MB) of one sample of a joint-attention transformer.

    Counts ~16 activations of width ``num_attention_heads * attention_head_dim`` (from the
    transformer's config) per token plus one attention score matrix per head, times the guidance
    branches (1, or 2 with true CFG). Good to a factor of ~2; it is meant for choosing a batch
    size, not for guarantees.
    """
    heads = transformer_config.num_attention_heads
    elements = 16 * tokens * heads * transformer_config.attention_head_dim + heads * tokens * tokens
    return branches * elements * (torch.finfo(dtype).bits // 8) / 2**20
