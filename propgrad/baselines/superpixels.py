"""SLIC superpixels as LIME / Kernel SHAP features, with fallbacks for degenerate images.

The paper uses SLIC with 100 segments and compactness 1. On noisy or synthetic images SLIC in
Lab space with such a low compactness can return a single segment (connectivity enforcement
merges the noise-shaped fragments), and Captum's Kernel SHAP then divides by zero. So the
segmentation is tried in order until it has at least ``min_segments`` segments:

1. ``slic_lab``: SLIC in Lab space with the requested compactness (the paper's setting);
2. ``slic_rgb``: SLIC on the RGB values (``convert2lab=False``), same compactness;
3. ``slic_rgb_compact``: SLIC on RGB with ``max(10 * compactness, 10)``;
4. ``grid``: a regular grid of about ``n_segments`` rectangular cells.

The strategy used is reported in the returned info dictionary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from propgrad.errors import InvalidParameterError


def grid_segments(height: int, width: int, n_segments: int) -> np.ndarray:
    """Label map (height, width) of a regular grid with about ``n_segments`` cells."""
    rows = min(height, max(1, round(math.sqrt(n_segments * height / width))))
    cols = min(width, max(1, round(n_segments / rows)))
    row_of = (np.arange(height) * rows) // height
    col_of = (np.arange(width) * cols) // width
    return row_of[:, None] * cols + col_of[None, :]


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered to 0 .. k-1 in order of first appearance of sorted values."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape)


def superpixel_segments(
    image: torch.Tensor,
    *,
    n_segments: int = 100,
    compactness: float = 1.0,
    min_segments: int = 4,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Superpixel labels of one image, falling back as described in the module docstring.

    Args:
        image: Float tensor (3, H, W) in [0, 1] (any device).
        n_segments: Approximate number of segments (SLIC's ``n_segments``).
        compactness: SLIC compactness (the paper uses 1).
        min_segments: Fewest segments accepted before trying the next strategy.

    Returns:
        ``(labels, info)``: a long tensor (H, W) on ``image.device`` with labels 0 .. k-1, and a
        dict with ``strategy``, ``n_segments`` (k), ``compactness`` and ``convert2lab``.

    Raises:
        ValueError: If even the grid fallback gives fewer than two segments (a tiny image or
            ``n_segments`` below 2).
    """
    from skimage.segmentation import slic  # imported here: listing the baselines stays cheap

    pixels = image.detach().permute(1, 2, 0).to("cpu", torch.float64).numpy()
    height, width = pixels.shape[:2]
    attempts = [
        ("slic_lab", True, compactness),
        ("slic_rgb", False, compactness),
        ("slic_rgb_compact", False, max(10.0 * compactness, 10.0)),
    ]
    labels: np.ndarray | None = None
    info: dict[str, Any] = {}
    for strategy, lab, comp in attempts:
        labels = _relabel(
            slic(pixels, n_segments=n_segments, compactness=comp, convert2lab=lab, start_label=0, channel_axis=-1)
        )
        info = {"strategy": strategy, "compactness": comp, "convert2lab": lab}
        if labels.max() + 1 >= min_segments:
            break
    else:
        labels = grid_segments(height, width, n_segments)
        info = {"strategy": "grid", "compactness": None, "convert2lab": None}
    assert labels is not None
    count = int(labels.max()) + 1
    info["n_segments"] = count
    if count < 2:
        raise InvalidParameterError(
            f"could not split the image ({height}x{width} pixels) into at least 2 superpixels "
            f"(n_segments={n_segments}); LIME and Kernel SHAP need two or more features"
        )
    return torch.from_numpy(np.ascontiguousarray(labels)).long().to(image.device), info
