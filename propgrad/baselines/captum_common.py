"""Input checks and output handling shared by the Captum baselines."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from numbers import Integral
from typing import Any, Callable

import torch
from torch import nn

from propgrad.core.forward import model_dtype, run_model
from propgrad.core.validation import check_images, check_int
from propgrad.errors import InvalidParameterError, ModelOutputError, ParameterTypeError

_CAPTUM_NOISE = (
    r"Setting (forward, )?backward hooks",
    r"Input Tensor \d+ did not already require gradients",
    r"Objective did not converge",
)


_ANY_RANGE: ContextVar[bool] = ContextVar("propgrad_baselines_any_range", default=False)


@contextmanager
def images_outside_unit_range() -> Iterator[None]:
    """Within this block the baselines accept finite images outside [0, 1].

    Evaluation metrics explain perturbed copies of an image (Quantus's MaxSensitivity adds
    uniform noise), which leave [0, 1]; the model still sees them unchanged, and LIME and Kernel
    SHAP segment the image clipped to [0, 1] (SLIC's Lab conversion needs the range). Outside the
    block an out-of-range batch is refused, because it is almost always a normalised image passed
    where the baselines expect raw [0, 1] pixels. Used by :mod:`propgrad.explain.quantus`; thread- and
    task-local (a context variable).
    """
    token = _ANY_RANGE.set(True)
    try:
        yield
    finally:
        _ANY_RANGE.reset(token)


def prepare_inputs(
    model: nn.Module, images: torch.Tensor, target: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the arguments of ``attribute`` and return ``(images, target)`` ready for Captum.

    Args:
        model: Module mapping (B, 3, H, W) images in [0, 1] to logits (B, K).
        images: Float tensor (B, 3, H, W) in [0, 1] (any finite values inside
            :func:`images_outside_unit_range`).
        target: Class index per image, a long tensor (B,) or one int for all images.

    Returns:
        Detached images, converted to the dtype of the model's parameters (a float64, float16 or
        bfloat16 batch for a float32 model becomes float32, so the maps are in the model's
        dtype), and a long target tensor (B,) on ``images.device``.

    Raises:
        TypeError: For a model that is not an ``nn.Module`` or a non-integer target.
        ValueError: For bad images, a model on another device or with outputs not (B, K), or a
            target of the wrong shape or out of range.
    """
    if not isinstance(model, nn.Module):
        raise ParameterTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if _ANY_RANGE.get() and isinstance(images, torch.Tensor) and images.is_floating_point():
        check_images(images.clamp(0.0, 1.0), "images", batched=True)  # shape, dtype, NaN/Inf; any range
        images = images.detach()
    else:
        images = check_images(images, "images", batched=True).detach()
    dtype = model_dtype(model)
    if dtype is not None and images.dtype != dtype:
        images = images.to(dtype)
    batch = images.shape[0]
    for parameter in model.parameters():
        if parameter.device != images.device:
            raise InvalidParameterError(
                f"model is on {parameter.device} but images are on {images.device}; move them to the same device"
            )
        break
    if isinstance(target, Integral) and not isinstance(target, bool):
        target = torch.full((batch,), check_int(target, "target", minimum=None), dtype=torch.long)
    if not isinstance(target, torch.Tensor):
        raise ParameterTypeError(
            f"target must be an int or a long tensor of shape ({batch},), got {type(target).__name__}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ParameterTypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.dim() == 0:
        target = target.expand(batch)
    if target.shape != (batch,):
        raise InvalidParameterError(
            f"target must have shape ({batch},), one class per image, got {tuple(target.shape)}"
        )
    target = target.to(images.device, torch.long)
    n_classes = run_model(model, images, batch_size=batch).shape[1]
    if bool(((target < 0) | (target >= n_classes)).any()):
        raise InvalidParameterError(
            f"target must hold class indices in [0, {n_classes - 1}] (the model has "
            f"{n_classes} outputs), got {target.tolist()}"
        )
    return images, target


def finish(maps: Any, images: torch.Tensor, method: str) -> torch.Tensor:
    """Detach the maps, move them to the images' device and insist they are finite."""
    if not isinstance(maps, torch.Tensor):
        raise InvalidParameterError(f"{method}: Captum returned no attribution map ({type(maps).__name__})")
    maps = maps.detach().to(images.device)
    if not torch.isfinite(maps).all():
        raise ModelOutputError(
            f"{method} returned NaN or Inf attributions; check the model outputs "
            "and the images (degenerate superpixels or a diverging model)"
        )
    return maps


def run_quietly(call: Callable[[], Any]) -> Any:
    """Run a Captum call with its per-call chatter (hook notices) silenced."""
    with warnings.catch_warnings():
        for pattern in _CAPTUM_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
        return call()
