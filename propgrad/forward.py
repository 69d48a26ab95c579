"""Running a model over an intervention sequence: batching, preprocessing and output checks."""

from __future__ import annotations

from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from propgrad.validation import check_int

OutputTransform = str | Callable[[torch.Tensor], torch.Tensor]
OUTPUT_TRANSFORMS = ("softmax", "sigmoid", "none")


def check_output_transform(transform: Any) -> OutputTransform:
    """Check an output transform without running it: one of :data:`OUTPUT_TRANSFORMS` or a callable."""
    if not callable(transform) and transform not in OUTPUT_TRANSFORMS:
        raise ValueError(f"output_transform must be one of {OUTPUT_TRANSFORMS} or a callable, got {transform!r}")
    return transform


def transform_outputs(outputs: torch.Tensor, transform: OutputTransform) -> torch.Tensor:
    """Apply the output transform: ``"softmax"`` over classes, ``"sigmoid"``, ``"none"`` or a callable."""
    check_output_transform(transform)
    if callable(transform):
        return transform(outputs)
    if transform == "softmax":
        return outputs.softmax(dim=-1) if outputs.shape[-1] > 1 else outputs.sigmoid()
    if transform == "sigmoid":
        return outputs.sigmoid()
    return outputs  # "none"


def run_model(
    forward_func: Callable[..., torch.Tensor],
    images: torch.Tensor,
    *,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    additional_forward_args: tuple[Any, ...] = (),
    batch_size: int = 32,
    show_progress: bool = False,
    description: str = "inference",
) -> torch.Tensor:
    """Run ``forward_func`` on every image in batches and return its raw outputs (N, C).

    Args:
        forward_func: Any callable mapping a batch of (preprocessed) images to (B, C) or (B,).
        images: Float tensor (N, 3, H, W) in [0, 1].
        preprocess: Optional map from [0, 1] images to what the model eats.
        additional_forward_args: Extra positional arguments passed after the images, as in Captum.
        batch_size: Images per forward pass.
        show_progress: Show a progress bar over batches.
        description: Label of the progress bar.

    Returns:
        Float tensor (N, C) of detached outputs; a model returning (B,) gives C = 1.

    Raises:
        ValueError: if ``batch_size`` < 1 or the model returns the wrong shape, a non-tensor, or
            NaN/Inf values.
    """
    check_int(batch_size, "batch_size")
    chunks = []
    n = images.shape[0]
    with torch.no_grad():
        for start in tqdm(range(0, n, batch_size), desc=description, disable=not show_progress, leave=False):
            batch = images[start : start + batch_size]
            if preprocess is not None:
                batch = preprocess(batch)
            out = forward_func(batch, *additional_forward_args)
            out = _check_batch_output(out, batch.shape[0], start)
            if chunks and out.shape[1] != chunks[0].shape[1]:
                raise ValueError(
                    f"the model returned {chunks[0].shape[1]} outputs per image for the first batch "
                    f"but {out.shape[1]} for the batch starting at step {start}"
                )
            chunks.append(out)
    return torch.cat(chunks).float()


def _check_batch_output(out: Any, expected: int, start: int) -> torch.Tensor:
    if isinstance(out, (tuple, list)) or not isinstance(out, torch.Tensor):
        raise ValueError(
            f"the model must return a tensor of shape (batch, n_outputs) or (batch,), got {type(out).__name__}; "
            "wrap models with several outputs in a function returning the one to explain"
        )
    if out.dim() == 1:
        out = out[:, None]
    if out.dim() != 2 or out.shape[0] != expected:
        raise ValueError(
            f"the model must return shape ({expected}, n_outputs) for a batch of {expected} images, "
            f"got {tuple(out.shape)}"
        )
    if not torch.isfinite(out).all():
        bad = torch.nonzero(~torch.isfinite(out))[0]
        raise ValueError(f"the model returned NaN or Inf at step {start + int(bad[0])}, output column {int(bad[1])}")
    return out.detach()
