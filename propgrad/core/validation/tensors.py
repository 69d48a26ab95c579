"""Checks of tensors and devices: images, property values, sequence sizes and devices.

Each check raises :class:`~propgrad.errors.InvalidParameterError` (or its subclass
:class:`~propgrad.errors.ParameterTypeError` for a wrong type) naming the argument, what was
expected and what was received. Reading a tensor that requires grad does not warn: the checks
read its values detached.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from propgrad.core.validation.parameters import ParameterTypeError, _describe, _received
from propgrad.errors import InvalidParameterError


def available_devices() -> list[str]:
    """The devices this process can run on: ``cpu``, then CUDA, MPS and XPU devices that are present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        devices += ["xpu"] + [f"xpu:{i}" for i in range(xpu.device_count())]
    return devices


def check_device(value: Any, name: str = "device") -> torch.device:
    """Check a device (a ``torch.device`` or its name) that exists in this process.

    ``"bogus"``, or ``"cuda"`` on a CPU-only build or a machine without a GPU, fail here with the
    list of available devices instead of deep inside torch when a tensor is first moved.

    Returns:
        The ``torch.device``.

    Raises:
        ParameterTypeError: If ``value`` is neither a string nor a ``torch.device``.
        InvalidParameterError: If it names no device, or one that is not available here.
    """
    available = available_devices()
    listed = ", ".join(repr(d) for d in available)
    if not isinstance(value, (str, torch.device)):
        raise ParameterTypeError(f"{name} must be a device name such as {listed}, got {_received(value)}")
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise InvalidParameterError(f"{name} must be one of the available devices ({listed}), got {value!r}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda" and torch.version.cuda is None and torch.version.hip is None:
        reason = "this PyTorch build has no CUDA support"
    else:
        reason = "no such device is present"
    kind = [d for d in available if d.split(":")[0] == device.type]
    if not kind or (device.index is not None and str(device) not in available):
        raise InvalidParameterError(f"{name} {str(value)!r} is not available: {reason}; available devices: {listed}")
    return device


def check_sequence_size(steps: int, image: torch.Tensor, *, name: str = "steps") -> int:
    """Refuse a sequence of ``steps`` images shaped like ``image`` that would exceed the memory limit.

    Args:
        steps: Number of images in the sequence.
        image: One image (any shape); the sequence has its shape and dtype.
        name: Argument name used in error messages.

    Returns:
        The number of bytes the sequence's images take.

    Raises:
        InvalidParameterError: If that exceeds :data:`propgrad.core.validation.MAX_SEQUENCE_BYTES` (read at call time).
    """
    nbytes = int(steps) * image.numel() * image.element_size()
    from propgrad.core import validation  # the limit is a knob of the package, read at call time

    limit = validation.MAX_SEQUENCE_BYTES
    if nbytes > limit:
        raise InvalidParameterError(
            f"{name} = {steps} would need {nbytes / 2**30:.3g} GiB for {steps} images of shape "
            f"{tuple(image.shape)} ({image.dtype}), more than the limit of {limit / 2**30:.3g} GiB "
            "(propgrad.core.validation.MAX_SEQUENCE_BYTES); use fewer steps or a smaller image"
        )
    return nbytes


def check_images(images: Any, name: str, *, batched: bool) -> torch.Tensor:
    """Check a float RGB image tensor in [0, 1]: (3, H, W), or (N, 3, H, W) when ``batched``."""
    if not isinstance(images, torch.Tensor):
        raise ParameterTypeError(f"{name} must be a torch.Tensor, got {_describe(images)}")
    want = "(N, 3, H, W)" if batched else "(3, H, W)"
    if images.dim() != (4 if batched else 3) or images.shape[-3] != 3:
        raise InvalidParameterError(f"{name} must have shape {want} (RGB), got {_describe(images)}")
    if not images.is_floating_point():
        raise InvalidParameterError(
            f"{name} must be a float tensor in [0, 1], got {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )
    if images.numel() == 0:
        raise InvalidParameterError(f"{name} is empty: {_describe(images)}")
    low, high = torch.aminmax(images.detach())  # one pass (NaN propagates); reading must not warn on grad
    lo, hi = float(low), float(high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidParameterError(f"{name} contains NaN or Inf values")
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise InvalidParameterError(
            f"{name} must hold values in [0, 1], got range [{lo:.3g}, {hi:.3g}]; "
            "pass unnormalised images and do normalisation in `preprocess`"
        )
    return images


def check_values(values: Any, n: int, name: str) -> torch.Tensor:
    """Check property values: a finite 1-D float tensor of length ``n``, strictly increasing."""
    if not isinstance(values, torch.Tensor):
        raise ParameterTypeError(f"{name} must be a torch.Tensor, got {_describe(values)}")
    if values.dim() != 1 or values.shape[0] != n:
        raise InvalidParameterError(f"{name} must have shape ({n},), one value per step, got {_describe(values)}")
    if not values.is_floating_point():
        raise InvalidParameterError(f"{name} must be a float tensor, got {values.dtype}")
    values_read = values.detach()  # reading values that require grad must not warn
    if not torch.isfinite(values_read).all():
        raise InvalidParameterError(f"{name} contains NaN or Inf values")
    steps = values_read[1:] - values_read[:-1]
    if (steps <= 0).any():
        i = int(torch.nonzero(steps <= 0)[0])
        raise InvalidParameterError(
            f"{name} must be strictly increasing (no repeated values), but step {i + 1} "
            f"({float(values_read[i + 1]):.6g}) does not exceed step {i} ({float(values_read[i]):.6g})"
        )
    return values
