"""On-disk cache: where it lives, content-addressed keys, and tensor entries.

Everything expensive (trained models, generated data sets, diffusion sweeps) is cached under a
key derived from everything that determines it, and written atomically
(:mod:`propgrad.atomic_files`), so an interrupted run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from propgrad.atomic_files import atomic_write, write_json  # noqa: F401 (old import path)

ENV_CACHE_DIR = "PROPGRAD_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$PROPGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/propgrad``, else ``~/.cache/propgrad``."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "propgrad"


def cache_key(*parts: Any) -> str:
    """A stable hex digest of JSON-serialisable parts (dict keys sorted); tensors hash by content."""

    def encode(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            return {
                "tensor": hashlib.sha256(t.numpy().tobytes()).hexdigest(),
                "shape": list(t.shape),
                "dtype": str(t.dtype),
            }
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cache_key cannot encode {type(obj).__name__}")

    blob = json.dumps(parts, sort_keys=True, default=encode).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Save a dict of tensors atomically (loadable with ``weights_only=True``)."""
    return atomic_write(path, lambda tmp: torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp))


def load_tensors(path: Path) -> dict[str, torch.Tensor] | None:
    """Load what :func:`save_tensors` wrote; None if missing or unreadable (a corrupt entry)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
