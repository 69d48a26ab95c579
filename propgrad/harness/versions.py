"""Versions of everything that can change benchmark results, for ``results.json``."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> dict[str, Any] | None:
    """The git commit of the checkout propgrad runs from (and whether it has local changes), or None.

    None when propgrad is installed from a wheel, git is missing or the folder is not a checkout.
    """
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())} if commit else None


def collect_versions(
    *, device: str | None = None, slic_fallbacks: Mapping[str, Mapping[str, int]] | None = None
) -> dict[str, Any]:
    """Versions of Python, propgrad, torch, numpy, captum, scikit-image and of every loaded plugin,
    torch's threads, the git commit of a checkout, and (when given) the device and SLIC fallbacks.

    Args:
        device: Where the models ran (``"cpu"``, ``"cuda:0"`` ...).
        slic_fallbacks: Per superpixel baseline, how many images each SLIC strategy segmented
            (:mod:`propgrad.baselines.superpixels`: ``slic_lab`` is the paper's, the others fallbacks).

    Returns:
        ``{"python": ..., "propgrad": ..., "torch": ..., "numpy": ..., "captum": ...,
        "scikit-image": ..., "torch_threads": <torch.get_num_threads()>, "git": <git_commit()>,
        "plugins": <propgrad.plugins.describe_plugins() or an error string>, ...}``.
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
        "scikit-image": _version("scikit-image"),
        "matplotlib": _version("matplotlib"),
        "pillow": _version("pillow"),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "git": git_commit(),
    }
    if device is not None:
        versions["device"] = str(device)
    if slic_fallbacks is not None:
        versions["slic_fallbacks"] = {k: dict(v) for k, v in slic_fallbacks.items()}
    try:
        from propgrad.plugins import describe_plugins

        versions["plugins"] = describe_plugins()
    except Exception as exc:  # the plugin listing must never take the benchmark down
        versions["plugins"] = f"unavailable: {type(exc).__name__}: {exc}"
    return versions
