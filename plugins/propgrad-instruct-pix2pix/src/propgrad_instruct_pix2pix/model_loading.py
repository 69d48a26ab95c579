"""Loading InstructPix2Pix pipelines once and keeping them warm.

A pipeline is loaded with ``from_pretrained`` from a Hugging Face hub id or a local folder, in
float16 on CUDA and float32 elsewhere, and kept in a module-level cache keyed by
(model, device, dtype), so sweeping many scales, images or sources never reloads it.
The model's *identity* (hub id, or resolved local path plus a fingerprint of its files) is
computed without loading anything, for cache keys of generated sequences.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from propgrad.errors import InvalidParameterError

DEFAULT_MODEL = "timbrooks/instruct-pix2pix"

_PIPELINES: dict[tuple[str, str, str], Any] = {}
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


def default_dtype(device: torch.device | str) -> torch.dtype:
    """float16 on CUDA (the usual way to run Stable Diffusion), float32 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def load_pipeline(model: str, device: torch.device | str, dtype: torch.dtype | None = None) -> Any:
    """Return the warm pipeline for (model, device, dtype), loading it on first use.

    Args:
        model: Hub id or local folder.
        device: Device to run on.
        dtype: Weight dtype; None picks :func:`default_dtype`.

    Returns:
        A ``StableDiffusionInstructPix2PixPipeline`` in eval mode on ``device``.

    Raises:
        ValueError: Naming ``model`` if the weights cannot be found locally or downloaded.
    """
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    resolved = str(Path(model).expanduser().resolve()) if looks_like_path(model) else model
    key = (resolved, str(device), str(dtype))
    if key in _PIPELINES:
        _STATS["hits"] += 1
        return _PIPELINES[key]
    from diffusers import StableDiffusionInstructPix2PixPipeline

    try:
        pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            resolved, dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError) as err:
        hint = (
            "it is not a pipeline folder"
            if looks_like_path(model)
            else "it is not in the local Hugging Face cache and weights cannot be downloaded offline; "
            "download it once where there is internet (or copy a folder written by save_pretrained) "
            "and pass that local folder as model="
        )
        raise InvalidParameterError(
            f"model: cannot load the InstructPix2Pix pipeline {model!r}: {hint} ({err})"
        ) from err
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        part.eval().requires_grad_(False)
    _STATS["loads"] += 1
    _PIPELINES[key] = pipe
    return pipe


def pipeline_cache_info() -> dict[str, int]:
    """How many pipelines were loaded and how often a warm one was reused."""
    return {**_STATS, "warm": len(_PIPELINES)}


def clear_pipeline_cache() -> None:
    """Forget every warm pipeline (frees their memory once nothing else refers to them)."""
    _PIPELINES.clear()
