"""Versions of everything that can change benchmark results, for ``results.json``."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def collect_versions() -> dict[str, Any]:
    """Versions of Python, propgrad, torch, numpy, captum and of every loaded plugin, and torch's threads.

    Returns:
        ``{"python": ..., "propgrad": ..., "torch": ..., "numpy": ..., "captum": ...,
        "torch_threads": <torch.get_num_threads()>, "plugins": <propgrad.plugins.describe_plugins()
        or an error string>}``.
    """
    import torch

    import propgrad

    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "propgrad": propgrad.__version__,
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "captum": _version("captum"),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        from propgrad.plugins import describe_plugins

        versions["plugins"] = describe_plugins()
    except Exception as exc:  # the plugin listing must never take the benchmark down
        versions["plugins"] = f"unavailable: {type(exc).__name__}: {exc}"
    return versions
