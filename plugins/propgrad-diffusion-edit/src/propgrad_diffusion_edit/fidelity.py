"""How much of the original image survives each edit step: SSIM and PSNR.

Editing failures (the paper's Fig. 10: the editor changes the subject instead of the property)
show up as a collapse of similarity to the original, so every instruct_pix2pix sequence carries
these numbers in ``metadata["fidelity"]``.
"""

from __future__ import annotations

import math

import torch

from propgrad.errors import InvalidParameterError

PSNR_CAP_DB = 100.0


def psnr(images: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """Peak signal-to-noise ratio (dB, data range 1) of each image (N, 3, H, W) to ``reference``.

    Identical images get :data:`PSNR_CAP_DB` instead of infinity, so the values stay JSON-safe.
    """
    mse = ((images.float() - reference.float()[None]) ** 2).flatten(1).mean(1)
    return [PSNR_CAP_DB if m <= 10 ** (-PSNR_CAP_DB / 10) else -10.0 * math.log10(m) for m in mse.tolist()]


def ssim(images: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """Structural similarity (scikit-image, data range 1, channels averaged) of each image.

    The window is 7 pixels, or the largest odd size that fits smaller images.
    """
    from skimage.metrics import structural_similarity

    ref = reference.detach().float().cpu().numpy()
    side = min(ref.shape[-2:])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise InvalidParameterError(f"images must be at least 3x3 pixels for SSIM, got {tuple(ref.shape[-2:])}")
    return [
        float(structural_similarity(img, ref, channel_axis=0, data_range=1.0, win_size=win))
        for img in images.detach().float().cpu().numpy()
    ]


def fidelity(images: torch.Tensor, reference: torch.Tensor) -> dict[str, list[float]]:
    """``{"ssim": [...], "psnr": [...]}``, one value per step, each step against ``reference``."""
    return {"ssim": ssim(images, reference), "psnr": psnr(images, reference)}
