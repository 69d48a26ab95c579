"""A filmstrip of an edit sweep: one thumbnail per step, its guidance value and SSIM beneath."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from propgrad.core.plotting import save_filmstrip as _save_filmstrip
from propgrad.errors import InvalidParameterError


def save_filmstrip(sequence: Any, path: str | Path, *, max_frames: int = 12) -> Path:
    """Save a row of evenly spaced thumbnails of ``sequence`` to ``path``, atomically.

    Args:
        sequence: An ``InterventionSequence``; its ``metadata["fidelity"]["ssim"]`` (if present)
            is printed under each thumbnail with the property value, so a broken edit (the
            subject changes, not the property) stands out.
        path: Output file (PNG); parent folders are created.
        max_frames: Most thumbnails to draw (at least 2); the first and last step are always shown.

    Returns:
        The written path.
    """
    if max_frames < 2:
        raise InvalidParameterError(f"max_frames must be at least 2, got {max_frames}")
    ssim = (sequence.metadata.get("fidelity") or {}).get("ssim")
    captions = [f"SSIM {s:.2f}" for s in ssim] if ssim is not None else None
    return _save_filmstrip(
        Path(path),
        sequence.images,
        sequence.values,
        frames=max_frames,
        title=f"{sequence.property_name} ({sequence.unit})",
        captions=captions,
    )
