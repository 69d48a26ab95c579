"""Loading editing pipelines once and keeping them warm, one :class:`PipelineFamily` per editor.

A pipeline is loaded with ``from_pretrained`` from a Hugging Face hub id or a local folder, in the
family's CUDA dtype (float16 for Stable Diffusion editors, bfloat16 for FLUX and Qwen) and float32
elsewhere, and kept in a module-level cache keyed by (family, model, device, dtype), so sweeping
many scales, images or sources never reloads it.
The model's *identity* (hub id, or resolved local path plus a fingerprint of its files) is
computed without loading anything, for cache keys of generated sequences.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from propgrad.errors import InvalidParameterError

DEFAULT_MODEL = "timbrooks/instruct-pix2pix"


@dataclass(frozen=True)
class PipelineFamily:
    """How one editor's pipelines are loaded.

    Attributes:
        label: The editor's name in messages (``"InstructPix2Pix"``).
        class_name: The diffusers pipeline class (``"StableDiffusionInstructPix2PixPipeline"``).
        cuda_dtype: Weight dtype on CUDA (float32 elsewhere).
        load_kwargs: Extra ``from_pretrained`` keyword arguments (no safety checker ...).
        frozen: The components put in eval mode without gradients.
    """

    label: str
    class_name: str
    cuda_dtype: torch.dtype = torch.float16
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    frozen: tuple[str, ...] = ("unet", "vae", "text_encoder")


NO_SAFETY_CHECKER = {"safety_checker": None, "requires_safety_checker": False}
PIX2PIX = PipelineFamily("InstructPix2Pix", "StableDiffusionInstructPix2PixPipeline", load_kwargs=NO_SAFETY_CHECKER)

_PIPELINES: dict[tuple[str, str, str, str], Any] = {}
_STATS = {"loads": 0, "hits": 0}


def looks_like_path(model: str) -> bool:
    """True if ``model`` is meant as a local folder rather than a hub id ("owner/name")."""
    return (
        model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1 or Path(model).expanduser().exists()
    )


def check_model(model: Any) -> str:
    """Check the ``model`` parameter: a hub id or an existing local folder.

    Raises:
        TypeError: If ``model`` is not a string or path.
        ValueError: If it names a local folder that does not exist or is not a pipeline folder.
    """
    if isinstance(model, Path):
        model = str(model)
    if not isinstance(model, str) or not model.strip():
        raise InvalidParameterError(f"model must be a hub id or a local folder path (str), got {model!r}")
    if looks_like_path(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise InvalidParameterError(f"model: the local folder {str(folder)!r} does not exist")
        if not (folder / "model_index.json").is_file():
            raise InvalidParameterError(
                f"model: the folder {str(folder)!r} holds no model_index.json; expected a folder "
                "written by a diffusers pipeline's save_pretrained"
            )
    return model


def model_identity(model: str) -> dict[str, str]:
    """What identifies the weights: the hub id, or the resolved folder and a fingerprint.

    The fingerprint hashes the contents of every ``*.json`` file (configs, tokenizer) and the
    relative path, size and modification time of every other file, so retraining or editing the
    model in place changes it without hashing gigabytes of weights.
    """
    if not looks_like_path(model):
        return {"hub_id": model}
    folder = Path(model).expanduser().resolve()
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        digest.update(rel.encode())
        if path.suffix == ".json":
            digest.update(path.read_bytes())
        else:
            stat = path.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return {"path": str(folder), "fingerprint": digest.hexdigest()[:24]}


def default_dtype(device: torch.device | str, family: PipelineFamily = PIX2PIX) -> torch.dtype:
    """The family's CUDA dtype (float16 for Stable Diffusion, bfloat16 for FLUX/Qwen) on CUDA, float32 elsewhere."""
    return family.cuda_dtype if torch.device(device).type == "cuda" else torch.float32


def load_pipeline(
    model: str, device: torch.device | str, dtype: torch.dtype | None = None, family: PipelineFamily = PIX2PIX
) -> Any:
    """Return the warm pipeline for (family, model, device, dtype), loading it on first use.

    Args:
        model: Hub id or local folder.
        device: Device to run on.
        dtype: Weight dtype; None picks :func:`default_dtype`.
        family: Which editor (its diffusers class and loading options); InstructPix2Pix by default.

    Returns:
        The family's pipeline (e.g. ``StableDiffusionInstructPix2PixPipeline``) in eval mode on ``device``.

    Raises:
        ValueError: Naming ``model`` if the weights cannot be found locally or downloaded.
    """
    device = torch.device(device)
    dtype = dtype or default_dtype(device, family)
    resolved = str(Path(model).expanduser().resolve()) if looks_like_path(model) else model
    key = (family.class_name, resolved, str(device), str(dtype))
    if key in _PIPELINES:
        _STATS["hits"] += 1
        return _PIPELINES[key]
    import diffusers

    pipeline_class = getattr(diffusers, family.class_name)
    try:
        pipe = pipeline_class.from_pretrained(resolved, dtype=dtype, **family.load_kwargs)
    except (OSError, ValueError) as err:
        hint = (
            "it is not a pipeline folder"
            if looks_like_path(model)
            else "it is not in the local Hugging Face cache and weights cannot be downloaded offline; "
            "download it once where there is internet (or copy a folder written by save_pretrained) "
            "and pass that local folder as model="
        )
        raise InvalidParameterError(
            f"model: cannot load the {family.label} pipeline {model!r}: {hint} ({err})"
        ) from err
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    for name in family.frozen:
        getattr(pipe, name).eval().requires_grad_(False)
    _STATS["loads"] += 1
    _PIPELINES[key] = pipe
    return pipe


def pipeline_cache_info() -> dict[str, int]:
    """How many pipelines were loaded and how often a warm one was reused."""
    return {**_STATS, "warm": len(_PIPELINES)}


def clear_pipeline_cache() -> None:
    """Forget every warm pipeline (frees their memory once nothing else refers to them)."""
    _PIPELINES.clear()
