"""Loading a model from a command-line spec: ``module:callable`` or a TorchScript file."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn


def load_model(
    spec: str, weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> Callable[..., torch.Tensor]:
    """Resolve a model spec into an eval-mode callable on ``device``.

    Args:
        spec: ``package.module:attribute`` (an ``nn.Module`` instance, or a class/factory called
            without arguments) or the path of a TorchScript file (``torch.jit.save``).
        weights: Optional state-dict checkpoint, loaded with ``weights_only=True`` (no code runs).
        device: Where the model runs.

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: if a path in ``spec`` or ``weights`` does not exist.
        ValueError: if ``spec`` cannot be resolved or does not give a callable.
    """
    path = Path(spec)
    if ":" not in spec or path.suffix in (".pt", ".pth", ".ts", ".jit"):
        if not path.exists():
            raise FileNotFoundError(
                f"--model {spec!r}: no such TorchScript file; expected 'package.module:callable' or a file "
                "written by torch.jit.save"
            )
        try:
            model: Any = torch.jit.load(str(path), map_location=device)
        except RuntimeError as exc:
            raise ValueError(
                f"--model {spec!r} is not a TorchScript file ({exc.__class__.__name__}); "
                "plain state dicts go in --weights together with a 'module:callable' model"
            ) from exc
    else:
        module_name, _, attr = spec.partition(":")
        try:
            module = import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"--model {spec!r}: cannot import module {module_name!r}: {exc}") from exc
        if not hasattr(module, attr):
            raise ValueError(f"--model {spec!r}: module {module_name!r} has no attribute {attr!r}")
        model = getattr(module, attr)
        if not isinstance(model, nn.Module):
            if not callable(model):
                raise ValueError(f"--model {spec!r} is a {type(model).__name__}, not a model or a factory")
            model = model()
    if weights is not None:
        model = _load_weights(model, Path(weights))
    if isinstance(model, nn.Module):
        model = model.to(device).eval()
    if not callable(model):
        raise ValueError(f"--model {spec!r} gave a {type(model).__name__}, which is not callable")
    return model


def _load_weights(model: Any, path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"--weights {str(path)!r}: no such file")
    if not isinstance(model, nn.Module):
        raise ValueError("--weights needs a model that is an nn.Module")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"--weights {str(path)!r} does not fit the model: {exc}") from exc
    return model
