"""The ``instruct_pix2pix`` intervention source: an edit that grows with the text guidance scale.

Following the paper (Sec. 3.3, Appx. A.2 and B.3), one instruction ("change the fur color to
black") is applied with a fixed image guidance scale while the text guidance scale is swept
(1.05 to 14.7 in steps of 0.15 by default), so the edit grows gradually. Sweeps are batched
(see :mod:`propgrad_instruct_pix2pix.sampler`) and cached on disk; a cache hit does not load
the pipeline.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Sequence

import torch

from propgrad.core.cache import cache_key, default_cache_dir, load_tensors, save_tensors
from propgrad.core.images import resize
from propgrad.core.progress import progress_bar
from propgrad.core.validation import check_images, check_seed, check_sequence_size
from propgrad.errors import InvalidParameterError
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad_instruct_pix2pix.fidelity import fidelity
from propgrad_instruct_pix2pix.guidance import as_scale_list, text_scales
from propgrad_instruct_pix2pix.model_loading import default_dtype, load_pipeline, model_identity
from propgrad_instruct_pix2pix.params import InstructPix2PixParams
from propgrad_instruct_pix2pix.sampler import (
    Denoising,
    estimate_sample_memory_mb,
    resolve_batch_size,
    sweep_guidance,
)

CACHE_FORMAT = 1


def _diffusers_version() -> str:
    try:
        return version("diffusers")
    except PackageNotFoundError:
        return "unknown"


def working_size(requested: int | tuple[int, int] | None, height: int, width: int) -> tuple[int, int]:
    """The (H, W) the editor runs at: multiples of 8, keeping the aspect ratio for a short side."""
    if isinstance(requested, tuple):
        return requested
    if requested is None:
        h, w = height, width
    else:
        scale = requested / min(height, width)
        h, w = height * scale, width * scale
    return max(8, int(round(h / 8)) * 8), max(8, int(round(w / 8)) * 8)


class InstructPix2PixSource(InterventionSource):
    """Edit an image with InstructPix2Pix, sweeping the text guidance scale.

    Args:
        instruction: The edit instruction, e.g. ``"change the fur color to black"``.
        text_guidance_scales: Explicit, strictly increasing text guidance scales; or leave None
            and set ``text_guidance_start``/``text_guidance_stop``/``num_text_scales``
            (defaults 1.05, 14.7, 92: the paper's sweep in steps of 0.15).
        text_guidance_start: First text guidance scale.
        text_guidance_stop: Last text guidance scale.
        num_text_scales: Number of evenly spaced scales (at least 2).
        image_guidance_scale: Fixed image guidance scale (the paper uses 2.0 to 2.9 by task).
        num_inference_steps: Denoising steps per edit.
        batch_size: Most scales denoised in one batch (the result does not depend on it beyond
            float rounding, so it is not part of the cache key).
        max_batch_memory_mb: Optional memory budget; lowers the batch size using a rough
            per-sample estimate.
        image_size: None to edit at the input's size (rounded to a multiple of 8), an int for
            the short side, or (height, width). Edits are resized back to the input's size.
        model: Hugging Face hub id or local folder of an InstructPix2Pix pipeline.
        device: Device to run the editor on; None uses the image's device. float16 on CUDA,
            float32 elsewhere.
        cache_dir: Folder of cached sweeps; None uses ``propgrad``'s cache folder.
        use_cache: Read and write the on-disk cache.

    Raises:
        ValueError: Naming the parameter, for an empty instruction, scales that do not increase,
            a local model folder that does not exist, and other invalid values.
    """

    name = "instruct_pix2pix"
    description = "InstructPix2Pix edit swept over the text guidance scale (the paper's main source)"
    property_name = "text guidance scale"
    unit = "guidance scale"

    Params = InstructPix2PixParams

    def __init__(self, *args: Any, **params: Any) -> None:
        super().__init__(*args, **params)
        declared = self.params
        self.text_guidance_scales = text_scales(
            declared.text_guidance_scales,
            declared.text_guidance_start,
            declared.text_guidance_stop,
            declared.num_text_scales,
        )
        self.cache_dir = declared.cache_dir if declared.cache_dir is not None else default_cache_dir() / self.name

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """Edit ``image`` once per text guidance scale (see the class docstring)."""
        text = self.text_guidance_scales
        edits, meta = self._edit(image, text, [self.image_guidance_scale] * len(text), seed, show_progress)
        meta.update(image_guidance_scale=self.image_guidance_scale)
        return InterventionSequence(
            images=edits,
            values=torch.tensor(text, dtype=torch.float32, device=image.device),
            property_name=self.property_name,
            unit=self.unit,
            metadata=meta,
        )

    def sweep_grid(
        self, image: torch.Tensor, image_guidance_scales: Sequence[float], *, seed: int = 0, show_progress: bool = False
    ) -> torch.Tensor:
        """Sweep both guidance scales, as in the paper's ablation (Fig. 11).

        Args:
            image: Float tensor (3, H, W) in [0, 1].
            image_guidance_scales: Strictly increasing image guidance scales.
            seed: Seed of every edit.
            show_progress: Show a progress bar.

        Returns:
            Edits of shape (n_image_scales, n_text_scales, 3, H, W), rows by image guidance scale.
        """
        image = check_images(image, "image", batched=False)
        seed = check_seed(seed)
        image_scales = as_scale_list(image_guidance_scales, "image_guidance_scales")
        text = self.text_guidance_scales
        pairs_text = text * len(image_scales)
        pairs_image = [s for s in image_scales for _ in text]
        edits, _ = self._edit(image, pairs_text, pairs_image, seed, show_progress)
        return edits.view(len(image_scales), len(text), *edits.shape[1:])

    def _edit(
        self, image: torch.Tensor, text: list[float], image_scales: list[float], seed: int, show_progress: bool
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Edit ``image`` (checked) once per (text, image) guidance pair, through the on-disk cache."""
        edited = torch.empty(image.shape, dtype=torch.float32, device="meta")  # the edits' shape, not allocated
        check_sequence_size(len(text), edited, name="number of edits")
        device = self.device or image.device
        dtype = default_dtype(device)
        height, width = image.shape[-2:]
        size = working_size(self.image_size, height, width)
        identity = model_identity(self.model)
        key = cache_key(
            {"source": self.name, "format": CACHE_FORMAT, "diffusers": _diffusers_version()},
            image.detach().float(),
            self.instruction,
            text,
            image_scales,
            self.num_inference_steps,
            seed,
            list(size),
            identity,
            str(dtype),
            device.type,
        )
        meta: dict[str, Any] = {
            "instruction": self.instruction,
            "num_inference_steps": self.num_inference_steps,
            "seed": seed,
            "model": identity,
            "image_size": list(size),
            "cache_key": key,
        }
        path = self.cache_dir / f"{key}.pt"
        cached = load_tensors(path) if self.use_cache else None
        if cached is not None and cached["images"].shape[0] == len(text):
            meta.update(cache_hit=True, fidelity={"ssim": cached["ssim"].tolist(), "psnr": cached["psnr"].tolist()})
            return cached["images"].to(image.device).float() / 255, meta

        pipe = load_pipeline(self.model, device, dtype)
        factor = pipe.vae_scale_factor
        if size[0] % factor or size[1] % factor:
            raise InvalidParameterError(f"image_size must be a multiple of the model's VAE factor {factor}, got {size}")
        dtype_bytes = torch.finfo(dtype).bits // 8
        sample_mb = estimate_sample_memory_mb(pipe.unet.config, size[0], size[1], dtype_bytes, factor)
        batch = resolve_batch_size(self.batch_size, self.max_batch_memory_mb, sample_mb)
        n_batches = -(-len(text) // batch)
        with progress_bar(n_batches * self.num_inference_steps, self.name, enabled=show_progress) as bar:
            edits = sweep_guidance(
                pipe,
                resize(image[None].float().to(device), size),
                self.instruction,
                text,
                image_scales,
                Denoising(seed, self.num_inference_steps),
                batch_size=batch,
                on_step=bar.update,
            )
        edits = resize(edits.to(image.device), (height, width))
        as_bytes = (edits * 255).round().to(torch.uint8)
        edits = as_bytes.float() / 255
        scores = fidelity(edits, image)
        if self.use_cache:
            stored = {name: torch.tensor(scores[name], dtype=torch.float64) for name in ("ssim", "psnr")}
            save_tensors(path, {"images": as_bytes, **stored})
        meta.update(cache_hit=False, fidelity=scores, batch_size=batch)
        return edits, meta
