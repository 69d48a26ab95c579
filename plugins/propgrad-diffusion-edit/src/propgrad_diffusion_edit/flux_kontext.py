"""The ``flux_kontext`` source: FLUX.1 Kontext edits swept over the distilled guidance scale.

FLUX.1 Kontext [dev] is guidance-distilled: the guidance scale is an input of the transformer (an
embedding, like the timestep), not a second model pass. The stock ``FluxKontextPipeline`` takes one
float, so this module runs the pipeline's components itself (its ``encode_prompt``,
``prepare_latents`` and VAE) and denoises several scales per batch with one guidance value per
sample. Image tokens of the input are concatenated to the noisy tokens, as in the pipeline.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from propgrad.errors import InvalidParameterError
from propgrad_diffusion_edit.flow_matching import chunks, estimate_token_memory_mb, flow_timesteps, seeded_generators
from propgrad_diffusion_edit.model_loading import PipelineFamily
from propgrad_diffusion_edit.params import FluxKontextParams
from propgrad_diffusion_edit.sampler import Denoising, resolve_batch_size
from propgrad_diffusion_edit.source import DiffusionEditSource

FLUX_KONTEXT = PipelineFamily(
    "FLUX.1 Kontext",
    "FluxKontextPipeline",
    cuda_dtype=torch.bfloat16,
    frozen=("transformer", "vae", "text_encoder", "text_encoder_2"),
)


@torch.no_grad()
def sweep_flux_kontext(
    pipe: Any,
    image: torch.Tensor,
    instruction: str,
    guidance_scales: Sequence[float],
    denoising: Denoising,
    *,
    batch_size: int,
    max_sequence_length: int = 512,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Edit ``image`` once per guidance scale, ``batch_size`` scales per batch.

    Args:
        pipe: A loaded ``FluxKontextPipeline`` with a guidance embedding (FLUX.1 Kontext [dev]).
        image: (1, 3, H, W) in [0, 1], H and W multiples of twice the VAE's scale factor.
        instruction: The edit instruction.
        guidance_scales: (N,) distilled guidance scales.
        denoising: Seed of every sample's initial noise and the number of steps.
        batch_size: Scales per batch; the result does not depend on it beyond float rounding.
        max_sequence_length: T5 tokens of the instruction.
        on_step: Called after every denoising step of every batch.

    Returns:
        (N, 3, H, W) float32 in [0, 1] on the pipeline's device.
    """
    if not pipe.transformer.config.guidance_embeds:
        raise InvalidParameterError(
            "model: this FLUX transformer has no guidance embedding (guidance_embeds is false), so its guidance "
            "scale changes nothing; flux_kontext sweeps the distilled guidance of FLUX.1 Kontext [dev]"
        )
    device = pipe.transformer.device
    height, width = image.shape[-2:]
    prompt_embeds, pooled, text_ids = pipe.encode_prompt(
        prompt=instruction,
        prompt_2=None,
        device=device,
        num_images_per_prompt=1,
        max_sequence_length=max_sequence_length,
    )
    pixels = pipe.image_processor.preprocess(image.to(device), height, width)
    channels = pipe.transformer.config.in_channels // 4
    edits = []
    for chunk in chunks(list(guidance_scales), batch_size):
        b = len(chunk)
        latents, image_latents, latent_ids, image_ids = pipe.prepare_latents(
            pixels, b, channels, height, width, prompt_embeds.dtype, device, seeded_generators(denoising.seed, b)
        )
        ids = torch.cat([latent_ids, image_ids], dim=0)
        scheduler, timesteps = flow_timesteps(pipe, denoising.num_inference_steps, latents.shape[1], device)
        guidance = torch.tensor(chunk, device=device, dtype=torch.float32)
        embeds, pooled_b = prompt_embeds.expand(b, -1, -1), pooled.expand(b, -1)
        for t in timesteps:
            velocity = pipe.transformer(
                hidden_states=torch.cat([latents, image_latents], dim=1),
                timestep=t.expand(b).to(latents.dtype) / 1000,
                guidance=guidance,
                pooled_projections=pooled_b,
                encoder_hidden_states=embeds,
                txt_ids=text_ids,
                img_ids=ids,
                return_dict=False,
            )[0][:, : latents.size(1)]
            latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
            if on_step is not None:
                on_step()
        unpacked = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        unpacked = unpacked / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        decoded = pipe.vae.decode(unpacked.to(pipe.vae.dtype), return_dict=False)[0]
        edits.append((decoded.float() / 2 + 0.5).clamp(0, 1))
    return torch.cat(edits)


class FluxKontextSource(DiffusionEditSource):
    """Edit an image with FLUX.1 Kontext [dev], sweeping its distilled guidance scale.

    Args:
        instruction: The edit instruction, e.g. ``"make the fur black"``.
        guidance_scales: Explicit, strictly increasing guidance scales; or leave None and set
            ``guidance_start``/``guidance_stop``/``num_scales`` (defaults 1.0, 6.0, 21; the
            pipeline's default is 3.5, Black Forest Labs' examples use 2.5).
        guidance_start: First guidance scale.
        guidance_stop: Last guidance scale.
        num_scales: Number of evenly spaced scales (at least 2).
        max_sequence_length: T5 tokens of the instruction (512, the pipeline's default).
        num_inference_steps: Denoising steps per edit (28, the pipeline's default).
        batch_size: Most scales denoised in one batch (not part of the cache key).
        max_batch_memory_mb: Optional memory budget; lowers the batch size (a rough estimate).
        image_size: None for the input's size rounded to a multiple of 16, an int for the short side,
            or (height, width). Kontext was trained around 1 MP (e.g. ``image_size=1024``).
        model: Hub id or local folder of a ``FluxKontextPipeline``.
        device: Device; None uses the image's. bfloat16 on CUDA, float32 elsewhere.
        cache_dir: Folder of cached sweeps; None uses ``propgrad``'s cache folder.
        use_cache: Read and write the on-disk cache.
    """

    name = "flux_kontext"
    description = "FLUX.1 Kontext edit swept over its distilled guidance scale"
    property_name = "guidance scale"
    unit = "guidance scale"

    Params = FluxKontextParams
    family = FLUX_KONTEXT
    size_multiple = 16

    def _size_factor(self, pipe: Any) -> int:
        return 2 * int(pipe.vae_scale_factor)  # latents are packed in 2x2 patches

    def _batch_size(self, pipe: Any, size: tuple[int, int], dtype: torch.dtype) -> int:
        factor = self._size_factor(pipe)
        tokens = 2 * (size[0] // factor) * (size[1] // factor) + self.max_sequence_length
        sample_mb = estimate_token_memory_mb(pipe.transformer.config, tokens, 1, dtype)
        return resolve_batch_size(self.batch_size, self.max_batch_memory_mb, sample_mb)

    def _sweep(
        self,
        pipe: Any,
        image: torch.Tensor,
        settings: list[Any],
        denoising: Denoising,
        batch_size: int,
        on_step: Callable[[], None],
    ) -> torch.Tensor:
        return sweep_flux_kontext(
            pipe,
            image,
            self.instruction,
            settings,
            denoising,
            batch_size=batch_size,
            max_sequence_length=self.max_sequence_length,
            on_step=on_step,
        )
