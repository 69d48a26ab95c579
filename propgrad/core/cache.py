"""On-disk cache: where it lives, content-addressed keys, and tensor entries.

Everything expensive (trained models, generated data sets, diffusion sweeps) is cached under a
key derived from everything that determines it, and written atomically
(:mod:`propgrad.core.atomic_files`), so an interrupted run never leaves a half-written entry. A
tensor entry ``x.pt`` has its SHA-256 beside it in ``x.pt.sha256`` (``sha256sum -c`` format),
so a file truncated or damaged later is noticed and rebuilt, with a :class:`CacheRebuildWarning`
saying why, instead of silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from propgrad.core.atomic_files import atomic_write
from propgrad.errors import InvalidParameterError, PropgradWarning

ENV_CACHE_DIR = "PROPGRAD_CACHE_DIR"
HASH_SUFFIX = ".sha256"


class CacheRebuildWarning(PropgradWarning):
    """A cached entry exists but cannot be used (damaged, or its content hash differs), so it is rebuilt."""


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
        raise InvalidParameterError(f"cache_key cannot encode {type(obj).__name__}")

    blob = json.dumps(parts, sort_keys=True, default=encode).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_path(path: Path) -> Path:
    """Where the content hash of the cache file ``path`` is kept (``<name>.sha256`` beside it)."""
    path = Path(path)
    return path.with_name(path.name + HASH_SUFFIX)


def write_hash(path: Path) -> Path:
    """Write ``path``'s SHA-256 beside it, atomically (``<digest>  <name>``, as ``sha256sum`` does)."""
    line = f"{file_sha256(path)}  {Path(path).name}\n"
    return atomic_write(hash_path(path), lambda tmp: tmp.write_text(line, encoding="utf-8"))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Save a dict of tensors atomically (loadable with ``weights_only=True``), with its content hash."""
    path = atomic_write(path, lambda tmp: torch.save({k: v.detach().cpu() for k, v in tensors.items()}, tmp))
    write_hash(path)
    return path


class LoadedTensors(NamedTuple):
    """What :func:`load_tensors_checked` found: the tensors, or why an existing entry is unusable."""

    tensors: dict[str, torch.Tensor] | None
    problem: str | None
    """None when the entry was loaded or does not exist; else why it must be rebuilt."""


def load_tensors_checked(path: Path) -> LoadedTensors:
    """Load what :func:`save_tensors` wrote, verifying its content hash first.

    An entry without a hash file (written by an older propgrad) is accepted if it loads, and its
    hash is written then, so later damage is noticed.
    """
    path = Path(path)
    if not path.exists():
        return LoadedTensors(None, None)
    stored = None
    try:
        stored = hash_path(path).read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        pass
    if stored is not None and stored != file_sha256(path):
        return LoadedTensors(None, f"its content hash differs from {hash_path(path).name} (truncated or damaged)")
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is rebuilt
        return LoadedTensors(None, f"it cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    if not isinstance(tensors, dict):
        return LoadedTensors(None, f"it holds a {type(tensors).__name__}, not a dict of tensors")
    if stored is None:
        try:
            write_hash(path)
        except OSError:
            pass  # a read-only cache still works, unverified
    return LoadedTensors(tensors, None)


def load_tensors(path: Path) -> dict[str, torch.Tensor] | None:
    """Load what :func:`save_tensors` wrote; None if missing, unreadable or its hash differs (a corrupt entry)."""
    return load_tensors_checked(path).tensors
