"""The ``qwen_image_edit`` source: Qwen-Image-Edit edits swept over the true CFG scale.

Qwen-Image-Edit is not guidance-distilled: its pipeline runs the transformer twice per step, with
the instruction and with a negative prompt, combines them with the true classifier-free guidance
scale and rescales the result to the conditional prediction's norm (per token). The instruction is
read by Qwen2.5-VL together with the input image. The stock ``QwenImageEditPipeline`` takes one
float, so this module runs its components (``encode_prompt``, ``prepare_latents``, the VAE)
itself and denoises several scales per batch with one scale per sample. As in the pipeline, the
conditioning image is resized to about ``condition_area`` pixels (1 MP by default) whatever the
output size, and the input passes through 8-bit RGB (the pipeline's processor reads PIL images).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from propgrad_diffusion_edit.flow_matching import chunks, estimate_token_memory_mb, flow_timesteps, seeded_generators
from propgrad_diffusion_edit.model_loading import PipelineFamily
from propgrad_diffusion_edit.params import QwenImageEditParams
from propgrad_diffusion_edit.sampler import Denoising, resolve_batch_size
from propgrad_diffusion_edit.source import DiffusionEditSource

QWEN_IMAGE_EDIT = PipelineFamily(
    "Qwen-Image-Edit", "QwenImageEditPipeline", cuda_dtype=torch.bfloat16, frozen=("transformer", "vae", "text_encoder")
)


def condition_size(height: int, width: int, area: int) -> tuple[int, int]:
    """The conditioning image's (H, W): about ``area`` pixels, the input's aspect, multiples of 32 (the pipeline's)."""
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit import calculate_dimensions

    cond_width, cond_height, _ = calculate_dimensions(area, width / height)
    return int(cond_height), int(cond_width)


def to_pil(image: torch.Tensor) -> Any:
    """An 8-bit PIL RGB image of a (3, H, W) tensor in [0, 1]."""
    from PIL import Image

    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels, mode="RGB")


@torch.no_grad()
def sweep_qwen_image_edit(
    pipe: Any,
    image: torch.Tensor,
    prompts: tuple[str, str],
    true_cfg_scales: Sequence[float],
    denoising: Denoising,
    *,
    batch_size: int,
    condition_area: int = 1024 * 1024,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Edit ``image`` once per true CFG scale, ``batch_size`` scales per batch.

    Args:
        pipe: A loaded ``QwenImageEditPipeline``.
        image: (1, 3, H, W) in [0, 1], H and W multiples of twice the VAE's scale factor.
        prompts: The edit instruction, and the negative prompt: what the guidance pushes away from (the
            pipeline's example uses ``" "``).
        true_cfg_scales: (N,) scales, each at least 1 (1: the conditional prediction alone).
        denoising: Seed of every sample's initial noise and the number of steps.
        batch_size: Scales per batch; the result does not depend on it beyond float rounding.
        condition_area: Pixels of the conditioning image (the pipeline: 1024 * 1024).
        on_step: Called after every denoising step of every batch.

    Returns:
        (N, 3, H, W) float32 in [0, 1] on the pipeline's device.
    """
    instruction, negative_prompt = prompts
    device = pipe.transformer.device
    height, width = image.shape[-2:]
    cond_height, cond_width = condition_size(height, width, condition_area)
    prompt_image = pipe.image_processor.resize(to_pil(image[0]), cond_height, cond_width)
    pixels = pipe.image_processor.preprocess(prompt_image, cond_height, cond_width).unsqueeze(2)
    cond, cond_mask = pipe.encode_prompt(image=prompt_image, prompt=instruction, device=device)
    neg, neg_mask = pipe.encode_prompt(image=prompt_image, prompt=negative_prompt, device=device)
    channels = pipe.transformer.config.in_channels // 4
    factor = pipe.vae_scale_factor * 2
    shapes = [(1, height // factor, width // factor), (1, cond_height // factor, cond_width // factor)]
    edits = []
    for chunk in chunks(list(true_cfg_scales), batch_size):
        b = len(chunk)
        latents, image_latents = pipe.prepare_latents(
            pixels, b, channels, height, width, cond.dtype, device, seeded_generators(denoising.seed, b)
        )
        scheduler, timesteps = flow_timesteps(pipe, denoising.num_inference_steps, latents.shape[1], device)
        scale = torch.tensor(chunk, device=device, dtype=latents.dtype).view(b, 1, 1)
        branches = [
            (embeds.expand(b, -1, -1), None if mask is None else mask.expand(b, -1))
            for embeds, mask in ((cond, cond_mask), (neg, neg_mask))
        ]
        for t in timesteps:
            model_input = torch.cat([latents, image_latents], dim=1)
            timestep = t.expand(b).to(latents.dtype) / 1000
            e_cond, e_neg = (
                pipe.transformer(
                    hidden_states=model_input,
                    timestep=timestep,
                    guidance=None,
                    encoder_hidden_states_mask=mask,
                    encoder_hidden_states=embeds,
                    img_shapes=[shapes] * b,
                    return_dict=False,
                )[0][:, : latents.size(1)]
                for embeds, mask in branches
            )
            combined = e_neg + scale * (e_cond - e_neg)
            rescale = torch.norm(e_cond, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True)
            velocity = combined * rescale  # the pipeline keeps the conditional prediction's norm per token
            latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
            if on_step is not None:
                on_step()
        unpacked = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor).to(pipe.vae.dtype)
        config = pipe.vae.config
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1).to(unpacked.device, unpacked.dtype)
        std = torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1).to(unpacked.device, unpacked.dtype)
        decoded = pipe.vae.decode(unpacked * std + mean, return_dict=False)[0][:, :, 0]
        edits.append((decoded.float() / 2 + 0.5).clamp(0, 1))
    return torch.cat(edits)


class QwenImageEditSource(DiffusionEditSource):
    """Edit an image with Qwen-Image-Edit, sweeping the true classifier-free guidance scale.

    Args:
        instruction: The edit instruction, e.g. ``"make the fur black"``.
        guidance_scales: Explicit, strictly increasing true CFG scales, each at least 1; or leave
            None and set ``guidance_start``/``guidance_stop``/``num_scales`` (defaults 1, 8, 15;
            the pipeline's default is 4).
        guidance_start: First scale.
        guidance_stop: Last scale.
        num_scales: Number of evenly spaced scales (at least 2).
        negative_prompt: What the guidance pushes away from (``" "``, as the pipeline's example).
        condition_area: Pixels of the conditioning image (1024 * 1024, the pipeline's fixed rule).
        num_inference_steps: Denoising steps per edit (50, the pipeline's default).
        batch_size: Most scales denoised in one batch (not part of the cache key).
        max_batch_memory_mb: Optional memory budget; lowers the batch size (a rough estimate).
        image_size: None for the input's size rounded to a multiple of 16, an int for the short side,
            or (height, width) of the output; the model was trained around 1 MP.
        model: Hub id or local folder of a ``QwenImageEditPipeline``.
        device: Device; None uses the image's. bfloat16 on CUDA, float32 elsewhere.
        cache_dir: Folder of cached sweeps; None uses ``propgrad``'s cache folder.
        use_cache: Read and write the on-disk cache.
    """

    name = "qwen_image_edit"
    description = "Qwen-Image-Edit edit swept over its true classifier-free guidance scale"
    property_name = "true CFG scale"
    unit = "guidance scale"

    Params = QwenImageEditParams
    family = QWEN_IMAGE_EDIT
    size_multiple = 16

    def _size_factor(self, pipe: Any) -> int:
        return 2 * int(pipe.vae_scale_factor)  # latents are packed in 2x2 patches

    def _batch_size(self, pipe: Any, size: tuple[int, int], dtype: torch.dtype) -> int:
        factor = self._size_factor(pipe)
        cond_height, cond_width = condition_size(size[0], size[1], self.condition_area)
        tokens = (size[0] // factor) * (size[1] // factor) + (cond_height // factor) * (cond_width // factor)
        sample_mb = estimate_token_memory_mb(pipe.transformer.config, tokens, 2, dtype)
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
        return sweep_qwen_image_edit(
            pipe,
            image,
            (self.instruction, self.negative_prompt),
            settings,
            denoising,
            batch_size=batch_size,
            condition_area=self.condition_area,
            on_step=on_step,
        )
