"""The ``ledits_pp`` source: LEdits++ edits swept over the edit guidance scale.

LEdits++ (Brack et al., CVPR 2024) first *inverts* the image: an edit-friendly DDPM inversion
stores, for every denoising step, the noise that makes the sampler reproduce the input exactly.
An edit then denoises from those stored noises with semantic guidance toward (or away from) an
editing concept, masked to where the concept lives. The inversion does not depend on the edit
guidance scale, so a sweep inverts once and reuses the inversion for every scale; at scale 0 the
edit is the VAE's reconstruction of the input (the identity of the sweep).

The stock ``LEditsPPPipelineStableDiffusion`` keeps the inversion on the pipeline object and edits
one guidance scale per call (its per-step attention masks are per image), so the sweep calls it
once per scale after one ``invert``. The warm pipeline is shared: every sweep inverts its own image
first, so sweeps must not run concurrently on one pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from propgrad_diffusion_edit.model_loading import NO_SAFETY_CHECKER, PipelineFamily
from propgrad_diffusion_edit.params import LEditsPPParams
from propgrad_diffusion_edit.sampler import Denoising
from propgrad_diffusion_edit.source import DiffusionEditSource

LEDITS_PP = PipelineFamily("LEdits++", "LEditsPPPipelineStableDiffusion", load_kwargs=NO_SAFETY_CHECKER)


@dataclass(frozen=True)
class LEditsSettings:
    """What an LEdits++ sweep keeps fixed (see :class:`LEditsPPSource` for each field)."""

    editing_prompt: str
    reverse_editing_direction: bool = False
    edit_threshold: float = 0.9
    edit_warmup_steps: int = 0
    source_prompt: str = ""
    source_guidance_scale: float = 3.5
    skip: float = 0.15


@torch.no_grad()
def sweep_ledits_pp(
    pipe: Any,
    image: torch.Tensor,
    settings: LEditsSettings,
    edit_guidance_scales: Sequence[float],
    denoising: Denoising,
    *,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Invert ``image`` once, then edit it once per edit guidance scale.

    Args:
        pipe: A loaded ``LEditsPPPipelineStableDiffusion``.
        image: (1, 3, H, W) in [0, 1], H and W multiples of 32.
        settings: The editing concept and the fixed LEdits++ settings.
        edit_guidance_scales: (N,) edit guidance scales (0 reproduces the VAE reconstruction).
        denoising: Seed of the inversion's noise and the number of inversion (= editing) steps.
        on_step: Called after the inversion's steps and after every editing step.

    Returns:
        (N, 3, H, W) float32 in [0, 1] on the pipeline's device.
    """
    height, width = image.shape[-2:]
    steps = denoising.num_inference_steps
    pipe.invert(
        image=image.to(pipe.device),
        source_prompt=settings.source_prompt,
        source_guidance_scale=settings.source_guidance_scale,
        num_inversion_steps=steps,
        skip=settings.skip,
        generator=torch.Generator("cpu").manual_seed(int(denoising.seed)),
        height=height,
        width=width,
    )
    for _ in range(steps):
        if on_step is not None:
            on_step()

    def tick(_pipe: Any, _i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if on_step is not None:
            on_step()
        return {}

    edits = [
        pipe(
            editing_prompt=[settings.editing_prompt],
            edit_guidance_scale=float(scale),
            reverse_editing_direction=settings.reverse_editing_direction,
            edit_threshold=settings.edit_threshold,
            edit_warmup_steps=settings.edit_warmup_steps,
            generator=torch.Generator("cpu").manual_seed(int(denoising.seed)),
            output_type="pt",
            callback_on_step_end=tick,
        ).images
        for scale in edit_guidance_scales
    ]
    return torch.cat(edits).float().clamp(0, 1)


class LEditsPPSource(DiffusionEditSource):
    """Edit an image with LEdits++ on Stable Diffusion, sweeping the edit guidance scale.

    Args:
        instruction: The editing concept (LEdits++'s ``editing_prompt``), e.g. ``"black fur"``;
            it is added, or removed with ``reverse_editing_direction=True``.
        guidance_scales: Explicit, strictly increasing edit guidance scales (0 allowed: no edit);
            or leave None and set ``guidance_start``/``guidance_stop``/``num_scales`` (defaults
            0, 10, 21; the pipeline's default scale is 5).
        guidance_start: First edit guidance scale.
        guidance_stop: Last edit guidance scale.
        num_scales: Number of evenly spaced scales (at least 2).
        reverse_editing_direction: Remove the concept instead of adding it.
        edit_threshold: Quantile of LEdits++'s edit mask (0.9: the edit touches ~10% of latents).
        edit_warmup_steps: Steps before the edit guidance starts.
        source_prompt: A caption of the input guiding the inversion ('' for none).
        source_guidance_scale: Guidance of the inversion by ``source_prompt``.
        skip: Fraction of the inversion's first steps skipped (more keeps more of the input).
        num_inference_steps: Inversion steps, also the editing steps (50).
        image_size: None for the input's size rounded to a multiple of 32, an int for the short
            side, or (height, width); SD 1.5 works best at 512.
        model: Hub id or local folder of a Stable Diffusion 1.x/2.x pipeline (LEdits++ needs no
            fine-tuned weights); loaded as ``LEditsPPPipelineStableDiffusion``.
        device: Device; None uses the image's. float16 on CUDA, float32 elsewhere.
        cache_dir: Folder of cached sweeps; None uses ``propgrad``'s cache folder.
        use_cache: Read and write the on-disk cache.
    """

    name = "ledits_pp"
    description = "LEdits++ edit (Stable Diffusion) swept over its edit guidance scale, inverted once"
    property_name = "edit guidance scale"
    unit = "guidance scale"

    Params = LEditsPPParams
    family = LEDITS_PP
    size_multiple = 32

    def _size_factor(self, pipe: Any) -> int:
        return 32  # LEditsPPPipelineStableDiffusion.encode_image's requirement

    def _progress_total(self, n: int, batch_size: int) -> int:
        return (n + 1) * self.num_inference_steps  # the inversion, then every scale

    def _sweep(
        self,
        pipe: Any,
        image: torch.Tensor,
        settings: list[Any],
        denoising: Denoising,
        batch_size: int,
        on_step: Callable[[], None],
    ) -> torch.Tensor:
        fixed = LEditsSettings(
            editing_prompt=self.instruction,
            reverse_editing_direction=self.reverse_editing_direction,
            edit_threshold=self.edit_threshold,
            edit_warmup_steps=self.edit_warmup_steps,
            source_prompt=self.source_prompt,
            source_guidance_scale=self.source_guidance_scale,
            skip=self.skip,
        )
        return sweep_ledits_pp(pipe, image, fixed, settings, denoising, on_step=on_step)
