"""A batched InstructPix2Pix denoising loop with one guidance pair per sample.

The stock ``StableDiffusionInstructPix2PixPipeline`` takes a single float for each guidance
scale, so a sweep over the text guidance scale costs one pipeline call per scale. This loop
runs the pipeline's components (tokenizer, text encoder, VAE, UNet, scheduler) directly and
denoises several scales in one batch, with guidance scale tensors of shape (B, 1, 1, 1).

Every sample gets its own ``torch.Generator`` seeded with the same seed, used for its initial
noise and for any noise the scheduler injects (EulerAncestral, the model's usual scheduler,
injects noise every step), and every batch gets a fresh scheduler (schedulers keep a step
index), so a batched sweep equals the same sweep run one scale at a time, and equals the stock
pipeline called once per scale with ``generator=torch.Generator().manual_seed(seed)``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch


@dataclass(frozen=True)
class Denoising:
    """How every sample is denoised: the seed of its noise and the number of steps.

    Attributes:
        seed: Seed of every sample's generator (each sample starts from the same noise).
        num_inference_steps: Denoising steps.
    """

    seed: int
    num_inference_steps: int


@torch.no_grad()
def encode_instruction(pipe: Any, instruction: str) -> torch.Tensor:
    """Text embeddings (3, L, D): instruction, empty prompt, empty prompt (the pipeline's order)."""
    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    device = pipe.unet.device
    tokens = tokenizer(
        [instruction, ""],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    mask = tokens.attention_mask.to(device) if getattr(encoder.config, "use_attention_mask", False) else None
    embeds = encoder(tokens.input_ids.to(device), attention_mask=mask)[0].to(pipe.unet.dtype)
    return torch.stack([embeds[0], embeds[1], embeds[1]])


@torch.no_grad()
def encode_image(pipe: Any, image: torch.Tensor) -> torch.Tensor:
    """The VAE latents' mode (1, C, h, w) of one image (1, 3, H, W) in [0, 1]."""
    pixels = (image * 2 - 1).to(device=pipe.unet.device, dtype=pipe.vae.dtype)
    return pipe.vae.encode(pixels).latent_dist.mode().to(pipe.unet.dtype)


@torch.no_grad()
def denoise_batch(
    pipe: Any,
    prompt_embeds: torch.Tensor,
    image_latents: torch.Tensor,
    text_scales: torch.Tensor,
    image_scales: torch.Tensor,
    denoising: Denoising,
    *,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Edit one image with B guidance pairs at once.

    Args:
        pipe: A loaded InstructPix2Pix pipeline (its components are used, not its ``__call__``).
        prompt_embeds: (3, L, D) from :func:`encode_instruction`.
        image_latents: (1, C, h, w) from :func:`encode_image`.
        text_scales: (B,) text guidance scales.
        image_scales: (B,) image guidance scales.
        denoising: Seed of every sample's generator and the number of denoising steps.
        on_step: Called after every denoising step (progress bars).

    Returns:
        The edited images (B, 3, H, W), float32 in [0, 1], on the pipeline's device.
    """
    unet, device, dtype = pipe.unet, pipe.unet.device, pipe.unet.dtype
    b = int(text_scales.shape[0])
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(denoising.num_inference_steps, device=device)
    generators = [torch.Generator("cpu").manual_seed(int(denoising.seed)) for _ in range(b)]
    from diffusers.utils.torch_utils import randn_tensor

    shape = (b, pipe.vae.config.latent_channels, *image_latents.shape[-2:])
    latents = randn_tensor(shape, generator=generators, device=device, dtype=dtype) * scheduler.init_noise_sigma

    step_params = set(inspect.signature(scheduler.step).parameters)
    step_kwargs: dict[str, Any] = {}
    if "eta" in step_params:
        step_kwargs["eta"] = 0.0
    if "generator" in step_params:
        step_kwargs["generator"] = generators
    hidden = prompt_embeds.repeat_interleave(b, dim=0)
    img = image_latents.expand(b, -1, -1, -1)
    cond_images = torch.cat([img, img, torch.zeros_like(img)])
    s_text = text_scales.to(device=device, dtype=dtype).view(b, 1, 1, 1)
    s_image = image_scales.to(device=device, dtype=dtype).view(b, 1, 1, 1)

    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(torch.cat([latents] * 3), t)
        model_input = torch.cat([model_input, cond_images], dim=1)
        noise = unet(model_input, t, encoder_hidden_states=hidden, return_dict=False)[0]
        e_text, e_image, e_uncond = noise.chunk(3)
        guided = e_uncond + s_text * (e_text - e_image) + s_image * (e_image - e_uncond)
        latents = scheduler.step(guided, t, latents, **step_kwargs, return_dict=False)[0]
        if on_step is not None:
            on_step()
    decoded = pipe.vae.decode(latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return (decoded.float() / 2 + 0.5).clamp(0, 1)


def sweep_guidance(
    pipe: Any,
    image: torch.Tensor,
    instruction: str,
    text_scales: Sequence[float] | torch.Tensor,
    image_scales: Sequence[float] | torch.Tensor,
    denoising: Denoising,
    *,
    batch_size: int,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Edit ``image`` once per (text, image) guidance pair, ``batch_size`` pairs per batch.

    Args:
        pipe: A loaded InstructPix2Pix pipeline.
        image: (1, 3, H, W) in [0, 1], H and W multiples of the VAE's scale factor.
        instruction: The edit instruction.
        text_scales: (N,) text guidance scales.
        image_scales: (N,) image guidance scales, paired with ``text_scales``.
        denoising: Seed of every sample (each sample starts from the same noise) and denoising steps.
        batch_size: Pairs per batch; 1 reproduces the one-call-per-scale loop.
        on_step: Called after every denoising step of every batch.

    Returns:
        (N, 3, H, W) float32 in [0, 1] on the pipeline's device.
    """
    text = torch.as_tensor(text_scales, dtype=torch.float64).flatten()
    img = torch.as_tensor(image_scales, dtype=torch.float64).flatten()
    embeds = encode_instruction(pipe, instruction)
    latents = encode_image(pipe, image)
    chunks = [
        denoise_batch(
            pipe,
            embeds,
            latents,
            text[i : i + batch_size],
            img[i : i + batch_size],
            denoising,
            on_step=on_step,
        )
        for i in range(0, text.shape[0], batch_size)
    ]
    return torch.cat(chunks)


def estimate_sample_memory_mb(unet_config: Any, height: int, width: int, dtype_bytes: int, vae_scale: int = 8) -> float:
    """A rough peak activation memory (MB) of one sample: three guidance branches of the UNet.

    Counts ~16 feature maps of the widest level at the latent resolution plus the attention
    scores of the first attention level, times three branches. Good to a factor of ~2; it is
    meant for choosing a batch size, not for guarantees.
    """
    area = (height // vae_scale) * (width // vae_scale)
    channels = max(unet_config.block_out_channels)
    heads = unet_config.attention_head_dim
    heads = max(heads) if isinstance(heads, (list, tuple)) else heads
    elements = 16 * area * channels + area * area * heads
    return 3 * elements * dtype_bytes / 2**20


def resolve_batch_size(batch_size: int, max_batch_memory_mb: float | None, sample_mb: float) -> int:
    """``batch_size``, lowered so that the estimated batch memory fits ``max_batch_memory_mb``."""
    if max_batch_memory_mb is None:
        return batch_size
    return max(1, min(batch_size, int(max_batch_memory_mb // max(sample_mb, 1e-9))))
