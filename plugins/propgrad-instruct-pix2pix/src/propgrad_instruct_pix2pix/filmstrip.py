"""A filmstrip of an edit sweep: one thumbnail per step, its guidance value and SSIM beneath."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_filmstrip(sequence: Any, path: str | Path, *, max_frames: int = 12, thumb_inches: float = 1.4) -> Path:
    """Save a row of thumbnails of ``sequence`` to ``path`` (any format matplotlib writes).

    Long sequences are thinned to ``max_frames`` evenly spaced steps, always keeping the first
    and the last one.

    Args:
        sequence: An ``InterventionSequence``; its ``metadata["fidelity"]["ssim"]`` (if present)
            is printed under each thumbnail with the property value.
        path: Output file; parent folders are created.
        max_frames: Most thumbnails to draw (at least 2).
        thumb_inches: Width of one thumbnail in inches.

    Returns:
        The written path.
    """
    from matplotlib.figure import Figure

    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2, got {max_frames}")
    n = len(sequence)
    idx = torch.linspace(0, n - 1, min(n, max_frames)).round().long().unique().tolist()
    ssim = (sequence.metadata.get("fidelity") or {}).get("ssim")
    fig = Figure(figsize=(thumb_inches * len(idx), thumb_inches + 0.6))
    axes = fig.subplots(1, len(idx), squeeze=False)
    for ax, i in zip(axes[0], idx):
        ax.imshow(sequence.images[i].detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        label = f"{float(sequence.values[i]):.2f}"
        if ssim is not None:
            label += f"\nSSIM {ssim[i]:.2f}"
        ax.set_xlabel(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{sequence.property_name} ({sequence.unit})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
