"""The editing sources' shared machinery, and the ``instruct_pix2pix`` source.

:class:`DiffusionEditSource` is what every editor family shares: the working size, the on-disk
cache of sweeps (a hit neither loads the pipeline nor imports diffusers), the warm pipeline
(:mod:`propgrad_diffusion_edit.model_loading`), the batch size under a memory budget, the progress
bar, the 8-bit outputs and the fidelity numbers. A family (an *adapter*) says how its pipeline
edits one image at many guidance scales (:meth:`DiffusionEditSource._sweep`).

Following the paper (Sec. 3.3, Appx. A.2 and B.3), ``instruct_pix2pix`` applies one instruction
("change the fur color to black") with a fixed image guidance scale while the text guidance scale
is swept (1.05 to 14.7 in steps of 0.15 by default), so the edit grows gradually. Sweeps are
batched (see :mod:`propgrad_diffusion_edit.sampler`).
"""

from __future__ import annotations

from abc import abstractmethod
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, ClassVar, Sequence

import torch

from propgrad.core.cache import cache_key, default_cache_dir, load_tensors, save_tensors
from propgrad.core.images import resize
from propgrad.core.progress import progress_bar
from propgrad.core.validation import check_images, check_seed, check_sequence_size
from propgrad.errors import InvalidParameterError
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad_diffusion_edit.fidelity import fidelity
from propgrad_diffusion_edit.guidance import as_scale_list
from propgrad_diffusion_edit.model_loading import PIX2PIX, PipelineFamily, default_dtype, load_pipeline, model_identity
from propgrad_diffusion_edit.params import InstructPix2PixParams
from propgrad_diffusion_edit.sampler import (
    Denoising,
    estimate_sample_memory_mb,
    resolve_batch_size,
    sweep_guidance,
)

CACHE_FORMAT = 2
#: Parameters that do not change the edits (or enter the cache key otherwise), left out of the key.
_NOT_IN_KEY = frozenset(
    {"batch_size", "max_batch_memory_mb", "device", "cache_dir", "use_cache", "model", "image_size"}
)


def _diffusers_version() -> str:
    try:
        return version("diffusers")
    except PackageNotFoundError:
        return "unknown"


def working_size(
    requested: int | tuple[int, int] | None, height: int, width: int, multiple: int = 8
) -> tuple[int, int]:
    """The (H, W) the editor runs at: multiples of ``multiple``, keeping the aspect ratio for a short side."""
    if isinstance(requested, tuple):
        return requested
    if requested is None:
        h, w = height, width
    else:
        scale = requested / min(height, width)
        h, w = height * scale, width * scale
    return max(multiple, int(round(h / multiple)) * multiple), max(multiple, int(round(w / multiple)) * multiple)


class DiffusionEditSource(InterventionSource):
    """Base of the editing sources: one pipeline family, one swept guidance scale.

    A subclass sets ``Params`` (an :class:`~propgrad_diffusion_edit.params.EditParams` dataclass),
    ``family``, ``size_multiple`` and the source's metadata, and writes :meth:`_sweep`; it may
    override :meth:`_batch_size` (default: the ``batch_size`` parameter, if declared, else 1) and
    :meth:`_progress_total`.

    Attributes:
        guidance_scales: The swept scales, checked (the sequence's values).
        cache_dir: Folder of cached sweeps.
    """

    family: ClassVar[PipelineFamily] = PIX2PIX
    size_multiple: ClassVar[int] = 8

    def __init__(self, *args: Any, **params: Any) -> None:
        super().__init__(*args, **params)
        self.guidance_scales = self.params.scales()
        cache_dir = self.params.cache_dir
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir() / self.name

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """Edit ``image`` once per guidance scale."""
        scales = self.guidance_scales
        edits, meta = self._edit(image, list(scales), seed, show_progress)
        return InterventionSequence(
            images=edits,
            values=torch.tensor(scales, dtype=torch.float32, device=image.device),
            property_name=self.property_name,
            unit=self.unit,
            metadata=meta,
        )

    # what a family writes ----------------------------------------------------------------------

    @abstractmethod
    def _sweep(
        self,
        pipe: Any,
        image: torch.Tensor,
        settings: list[Any],
        denoising: Denoising,
        batch_size: int,
        on_step: Callable[[], None],
    ) -> torch.Tensor:
        """Edit ``image`` (1, 3, h, w) at the working size once per setting; (N, 3, h, w) in [0, 1]."""

    def _batch_size(self, pipe: Any, size: tuple[int, int], dtype: torch.dtype) -> int:
        """Settings per batch: the ``batch_size`` parameter (1 for a family that edits one at a time)."""
        return getattr(self.params, "batch_size", 1)

    def _progress_total(self, n: int, batch_size: int) -> int:
        """Progress-bar ticks of a sweep of ``n`` settings: denoising steps of every batch."""
        return -(-n // batch_size) * self.num_inference_steps

    def _size_factor(self, pipe: Any) -> int:
        """What the working size must be a multiple of for this pipeline."""
        return int(pipe.vae_scale_factor)

    # shared -------------------------------------------------------------------------------------

    def _edit(
        self, image: torch.Tensor, settings: list[Any], seed: int, show_progress: bool
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Edit ``image`` (checked) once per setting (a scale, or a tuple of scales), through the on-disk cache."""
        edited = torch.empty(image.shape, dtype=torch.float32, device="meta")  # the edits' shape, not allocated
        check_sequence_size(len(settings), edited, name="number of edits")
        device = self.device or image.device
        dtype = default_dtype(device, self.family)
        height, width = image.shape[-2:]
        size = working_size(self.image_size, height, width, self.size_multiple)
        identity = model_identity(self.model)
        output_params = {k: v for k, v in self.params.as_dict().items() if k not in _NOT_IN_KEY}
        key = cache_key(
            {"source": self.name, "format": CACHE_FORMAT, "diffusers": _diffusers_version()},
            image.detach().float(),
            output_params,
            settings,
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
        if cached is not None and cached["images"].shape[0] == len(settings):
            meta.update(cache_hit=True, fidelity={"ssim": cached["ssim"].tolist(), "psnr": cached["psnr"].tolist()})
            return cached["images"].to(image.device).float() / 255, meta

        pipe = load_pipeline(self.model, device, dtype, self.family)
        factor = self._size_factor(pipe)
        if size[0] % factor or size[1] % factor:
            raise InvalidParameterError(
                f"image_size must be a multiple of the model's size factor {factor}, got {size}"
            )
        batch = self._batch_size(pipe, size, dtype)
        with progress_bar(self._progress_total(len(settings), batch), self.name, enabled=show_progress) as bar:
            edits = self._sweep(
                pipe,
                resize(image[None].float().to(device), size),
                settings,
                Denoising(seed, self.num_inference_steps),
                batch,
                bar.update,
            )
        edits = resize(edits.to(image.device).float(), (height, width))
        as_bytes = (edits * 255).round().clamp(0, 255).to(torch.uint8)
        edits = as_bytes.float() / 255
        scores = fidelity(edits, image)
        if self.use_cache:
            stored = {name: torch.tensor(scores[name], dtype=torch.float64) for name in ("ssim", "psnr")}
            save_tensors(path, {"images": as_bytes, **stored})
        meta.update(cache_hit=False, fidelity=scores, batch_size=batch)
        return edits, meta


class InstructPix2PixSource(DiffusionEditSource):
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
    family = PIX2PIX

    def __init__(self, *args: Any, **params: Any) -> None:
        super().__init__(*args, **params)
        self.text_guidance_scales = self.guidance_scales

    def _generate(self, image: torch.Tensor, *, seed: int, show_progress: bool) -> InterventionSequence:
        """Edit ``image`` once per text guidance scale (see the class docstring)."""
        text = self.text_guidance_scales
        edits, meta = self._edit(image, [[t, self.image_guidance_scale] for t in text], seed, show_progress)
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
        pairs = [[t, s] for s in image_scales for t in text]
        edits, _ = self._edit(image, pairs, seed, show_progress)
        return edits.view(len(image_scales), len(text), *edits.shape[1:])

    def _batch_size(self, pipe: Any, size: tuple[int, int], dtype: torch.dtype) -> int:
        dtype_bytes = torch.finfo(dtype).bits // 8
        sample_mb = estimate_sample_memory_mb(pipe.unet.config, size[0], size[1], dtype_bytes, pipe.vae_scale_factor)
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
        text, image_scales = [s[0] for s in settings], [s[1] for s in settings]
        return sweep_guidance(
            pipe, image, self.instruction, text, image_scales, denoising, batch_size=batch_size, on_step=on_step
        )
