"""Forward passes: batching, device and dtype, eval mode, output checks and output transforms."""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from propgrad.core.progress import progress_bar
from propgrad.core.validation import check_bool, check_device, check_int
from propgrad.errors import InvalidParameterError, ModelOutputError

OutputTransform = str | Callable[[torch.Tensor], torch.Tensor]
OUTPUT_TRANSFORMS = ("softmax", "sigmoid", "none")


def check_output_transform(transform: Any) -> OutputTransform:
    """Check an output transform without running it: one of :data:`OUTPUT_TRANSFORMS` or a callable."""
    if not callable(transform) and transform not in OUTPUT_TRANSFORMS:
        raise InvalidParameterError(
            f"output_transform must be one of {OUTPUT_TRANSFORMS} or a callable, got {transform!r}"
        )
    return transform


def transform_outputs(outputs: torch.Tensor, transform: OutputTransform) -> torch.Tensor:
    """Apply the output transform to raw outputs (N, C) and check what a callable returned.

    ``"softmax"`` is over the classes; a single column is one binary logit, so it gets the sigmoid
    (a softmax over one column would be the constant 1). ``"sigmoid"`` is elementwise, ``"none"``
    keeps the outputs, and a callable must return finite values of shape (N, C') or (N,).

    Raises:
        TypeError: a callable returned something other than a real tensor.
        ValueError: an unknown transform name; a callable returned the wrong shape, or NaN/Inf.
    """
    return apply_output_transform(outputs, check_output_transform(transform))


def apply_output_transform(outputs: torch.Tensor, transform: OutputTransform) -> torch.Tensor:
    """:func:`transform_outputs` with a transform already checked (e.g. by :func:`run_settings`).

    Raises:
        TypeError, ValueError: a callable returned something other than finite (N, C) or (N,) values.
    """
    if not callable(transform):
        if transform == "softmax":
            return outputs.softmax(dim=-1) if outputs.shape[-1] > 1 else outputs.sigmoid()
        return outputs.sigmoid() if transform == "sigmoid" else outputs
    name = getattr(transform, "__name__", type(transform).__name__)
    result = transform(outputs)
    if not isinstance(result, torch.Tensor) or result.is_complex():
        got = f"dtype {result.dtype}" if isinstance(result, torch.Tensor) else type(result).__name__
        raise InvalidParameterError(f"output_transform {name!r} must return a real tensor of shape (N, C), got {got}")
    if result.dim() == 1:
        result = result[:, None]
    n = outputs.shape[0]
    if result.dim() != 2 or result.shape[0] != n or result.shape[1] == 0:
        raise InvalidParameterError(
            f"output_transform {name!r} must return shape ({n}, C) or ({n},) for outputs of shape "
            f"{tuple(outputs.shape)}, got {tuple(result.shape)}"
        )
    if not result.is_floating_point():
        result = result.float()
    if not torch.isfinite(result).all():
        i, c = (int(v) for v in torch.nonzero(~torch.isfinite(result))[0])
        raise ModelOutputError(
            f"output_transform {name!r} returned NaN or Inf at step {i}, column {c}; the model's outputs "
            "it was given are finite"
        )
    return result


def model_device(forward_func: Any, fallback: torch.device | str | None = None) -> torch.device | None:
    """The device of a module's first parameter or buffer, else ``fallback`` (None: unknown)."""
    if isinstance(forward_func, nn.Module):
        for tensor in itertools.chain(forward_func.parameters(), forward_func.buffers()):  # stops at the first
            return tensor.device
    return torch.device(fallback) if fallback is not None else None


def model_dtype(forward_func: Any) -> torch.dtype | None:
    """The floating dtype of a module's first floating parameter, or None (not a module, none)."""
    if isinstance(forward_func, nn.Module):
        for tensor in forward_func.parameters():
            if tensor.is_floating_point():
                return tensor.dtype
    return None


@contextmanager
def evaluation_mode(forward_func: Any) -> Iterator[None]:
    """Run ``forward_func`` without gradients and, for an ``nn.Module``, in eval mode.

    A module in train mode (a Hugging Face model built from a config starts that way) gives
    batch-dependent outputs and updates its BatchNorm statistics, which would change the user's
    model. Its own mode, and that of each submodule, is restored on exit.
    """
    modes = [(m, m.training) for m in forward_func.modules()] if isinstance(forward_func, nn.Module) else []
    changed = any(training for _, training in modes)  # a module already in eval mode is left alone
    if changed:
        forward_func.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if changed:
            for module, training in modes:
                module.training = training


@dataclass(frozen=True)
class RunSettings:
    """How a model runs on images: everything of a forward pass but the model and the images.

    Checked once at a door (:func:`run_settings`, which ``PropertyGradient``, :func:`run_model`
    and the benchmark's runner call) and trusted below it: :func:`forward_batches` and the scoring
    functions (:mod:`propgrad.explain.scoring`) take it as one value and check nothing again.

    Attributes:
        preprocess: Map from [0, 1] images to what the model eats, or None.
        output_transform: ``"softmax"``, ``"sigmoid"``, ``"none"`` or a callable (applied by the
            scoring functions; :func:`forward_batches` returns raw outputs).
        batch_size: Images per forward pass.
        device: Where the model runs; None: the module's own device, else the images'.
        show_progress: Show a progress counter over batches.
        additional_forward_args: Extra positional model arguments, passed after the images (Captum's
            ``additional_forward_args``).
        per_image_args: One flag per extra argument: True for a tensor with one row per image, sliced
            with each batch by :func:`forward_batches` (the scoring functions first expand a row per
            original image to that image's steps).
    """

    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None
    output_transform: OutputTransform = "softmax"
    batch_size: int = 32
    device: torch.device | None = None
    show_progress: bool = False
    additional_forward_args: tuple[Any, ...] = ()
    per_image_args: tuple[bool, ...] = ()


def run_settings(
    *,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    output_transform: OutputTransform = "softmax",
    batch_size: int = 32,
    device: torch.device | str | None = None,
    show_progress: bool = False,
    additional_forward_args: Sequence[Any] = (),
    per_image_args: Sequence[bool] | None = None,
) -> RunSettings:
    """The door of :class:`RunSettings`: check every setting once and return them frozen.

    Args:
        preprocess: Optional map from [0, 1] images to what the model eats.
        output_transform: ``"softmax"``, ``"sigmoid"``, ``"none"`` or a callable.
        batch_size: Images per forward pass (a positive integer).
        device: Where to run (default: the module's device, else the images'); it must exist here
            (:func:`propgrad.core.validation.check_device`).
        show_progress: Show a progress counter over batches.
        additional_forward_args: Extra positional model arguments, passed after the images.
        per_image_args: One flag per extra argument (see :class:`RunSettings`); None: all False.

    Returns:
        The checked, frozen :class:`RunSettings` (numpy integers become ``int``, a device name a
        ``torch.device``).

    Raises:
        TypeError, ValueError: a non-callable ``preprocess`` or unknown ``output_transform``, a
            ``batch_size`` that is not a positive integer, an unknown or absent ``device``, a
            non-bool ``show_progress``, or not one flag per extra argument.
    """
    if preprocess is not None and not callable(preprocess):
        raise InvalidParameterError(f"preprocess must be callable or None, got {type(preprocess).__name__}")
    check_output_transform(output_transform)
    batch_size = check_int(batch_size, "batch_size")
    checked_device = None if device is None else check_device(device)
    show_progress = check_bool(show_progress, "show_progress")
    extra = tuple(additional_forward_args)
    flags = (False,) * len(extra) if per_image_args is None else tuple(per_image_args)
    if len(flags) != len(extra):
        raise InvalidParameterError(f"row_aligned has {len(flags)} flags for {len(extra)} additional_forward_args")
    for flag in flags:
        check_bool(flag, "a row_aligned flag")
    return RunSettings(
        preprocess=preprocess,
        output_transform=output_transform,
        batch_size=batch_size,
        device=checked_device,
        show_progress=show_progress,
        additional_forward_args=extra,
        per_image_args=tuple(bool(flag) for flag in flags),
    )


def run_model(
    forward_func: Callable[..., Any],
    images: torch.Tensor,
    *,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    additional_forward_args: tuple[Any, ...] = (),
    row_aligned: Sequence[bool] | None = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    show_progress: bool = False,
) -> torch.Tensor:
    """Run ``forward_func`` on every image in batches and return its raw outputs (N, C).

    The one forward pass of the project: the API, the benchmark, the suites' accuracy checks
    and the baselines' input checks all reach :func:`forward_batches`, directly or through this
    door, which checks the settings once (:func:`run_settings`). Modules run in eval mode without
    gradients (:func:`evaluation_mode`); images are moved to the model's device and cast to its
    floating dtype after ``preprocess``.

    Args:
        forward_func: Any callable mapping a batch of (preprocessed) images to (B, C) or (B,)
            outputs, or to an object whose ``.logits`` is such a tensor (Hugging Face
            ``*ForImageClassification`` models).
        images: Float tensor (N, 3, H, W) in [0, 1].
        preprocess: Optional map from [0, 1] images to what the model eats.
        additional_forward_args: Extra positional arguments passed after the images, as in Captum.
        row_aligned: One flag per extra argument: True for a tensor with one row per image in
            ``images``, sliced with each batch; False (the default for all) passes it unchanged.
        batch_size: Images per forward pass.
        device: Where to run (default: the module's device, else the images'); it must exist
            here (:func:`propgrad.core.validation.check_device`).
        show_progress: Show a progress counter over batches.

    Returns:
        Tensor (N, C) of detached outputs on the model's device, float32 (float64 kept); a model
        returning (B,) gives C = 1.

    Raises:
        ValueError: ``batch_size`` < 1, an unknown or absent ``device``, ``preprocess`` returning
            another number of rows than images, or the model returns the wrong shape, no columns,
            a non-tensor, or NaN/Inf values.
        TypeError: ``preprocess`` returns a non-tensor, or the model returns complex values.
    """
    run = run_settings(
        preprocess=preprocess,
        batch_size=batch_size,
        device=device,
        show_progress=show_progress,
        additional_forward_args=additional_forward_args,
        per_image_args=row_aligned,
    )
    for arg, row in zip(run.additional_forward_args, run.per_image_args):
        if row and (not isinstance(arg, torch.Tensor) or arg.dim() == 0 or arg.shape[0] != images.shape[0]):
            got = f"shape {tuple(arg.shape)}" if isinstance(arg, torch.Tensor) else type(arg).__name__
            raise InvalidParameterError(
                f"a row-aligned extra argument must have one row per image ({images.shape[0]}), got {got}"
            )
    return forward_batches(forward_func, images, run)


def forward_batches(
    forward_func: Callable[..., Any], images: torch.Tensor | Sequence[torch.Tensor], run: RunSettings
) -> torch.Tensor:
    """Raw outputs (N, C) of ``forward_func`` on ``images`` in batches, with settings checked at a door.

    The work of :func:`run_model` (see there for what happens to the model and the images); the
    settings are trusted, and an extra argument flagged in ``run.per_image_args`` must have one row
    per image of ``images``.

    Args:
        forward_func: The model.
        images: Float tensor (N, 3, H, W), or pieces (N_i, 3, H, W) on one device that stand for
            their concatenation: the batches take their rows from the pieces, copied a few MiB at a
            time (:data:`SLAB_BYTES`), so N images are never copied into one tensor; the batches, and
            so the outputs, are those of the concatenation.
        run: How the model runs, checked by :func:`run_settings`.

    Raises:
        ValueError, TypeError: ``preprocess`` or the model returning the wrong thing (see :func:`run_model`).
    """
    pieces = [images] if isinstance(images, torch.Tensor) else list(images)
    batch_size = run.batch_size
    target = model_device(forward_func) if run.device is None else run.device
    dtype = model_dtype(forward_func)
    chunks: list[torch.Tensor] = []
    n = sum(piece.shape[0] for piece in pieces)
    bar = progress_bar((n + batch_size - 1) // batch_size, "inference", enabled=run.show_progress, leave=False)
    with evaluation_mode(forward_func), bar:
        for start, batch in _batches(pieces, batch_size):
            size = batch.shape[0]
            if target is not None:
                batch = batch.to(target)
            if run.preprocess is not None:
                batch = _check_preprocessed(run.preprocess(batch), batch.shape, run.preprocess)
            if dtype is not None and isinstance(batch, torch.Tensor) and batch.is_floating_point():
                batch = batch.to(dtype)
            extra = tuple(
                arg[start : start + batch_size] if row else arg
                for arg, row in zip(run.additional_forward_args, run.per_image_args)
            )
            out = _check_batch_output(forward_func(batch, *extra), size, start)
            if chunks and out.shape[1] != chunks[0].shape[1]:
                raise ModelOutputError(
                    f"the model returned {chunks[0].shape[1]} outputs per image for the first batch "
                    f"but {out.shape[1]} for the batch starting at step {start}"
                )
            chunks.append(out)
            bar.update(1)
    outputs = torch.cat(chunks)
    return outputs if outputs.dtype == torch.float64 else outputs.float()


SLAB_BYTES = 16 << 20
"""Most bytes of images :func:`forward_batches` copies from pieces at once (whole batches; at least one):
half the mmap threshold :func:`propgrad.core.allocator.tune_allocator` sets, so a slab is reused from the heap."""


def _batches(pieces: Sequence[torch.Tensor], batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, images) of each batch of ``batch_size`` rows of the pieces' concatenation, in order.

    A single piece gives views of itself, as slicing it would. Otherwise the rows are copied in slabs
    of whole batches of at most :data:`SLAB_BYTES` (one ``torch.cat`` of the parts in a slab, or a view
    when they lie in one contiguous piece) and each batch is a view of its slab: the values, and the
    memory layout a concatenation of contiguous pieces has, of the same rows of the whole
    concatenation. Pieces that fit in one slab are one slab, concatenated at once. A slab is reused from the
    heap, where one copy of every image (50 MiB for 32 explanations of 64-px images) came from a fresh
    ``mmap`` whose pages were faulted in on each call.
    """
    if len(pieces) == 1:
        whole = pieces[0]
        for start in range(0, whole.shape[0], batch_size):
            yield start, whole[start : start + batch_size]
        return
    row_bytes = math.prod(pieces[0].shape[1:]) * pieces[0].element_size()
    slab_rows = batch_size * max(1, SLAB_BYTES // max(1, batch_size * row_bytes))
    for first, slab in _slabs(pieces, slab_rows):
        for offset in range(0, slab.shape[0], batch_size):
            yield first + offset, slab[offset : offset + batch_size]


def _slabs(pieces: Sequence[torch.Tensor], rows: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, images) of each run of ``rows`` rows of the pieces' concatenation (the last one shorter)."""
    parts: list[torch.Tensor] = []
    held, start = 0, 0
    for piece in pieces:
        offset = 0
        while offset < piece.shape[0]:
            take = min(rows - held, piece.shape[0] - offset)
            parts.append(piece[offset : offset + take])
            held, offset = held + take, offset + take
            if held == rows:
                yield start, _joined(parts)
                parts, held, start = [], 0, start + rows
    if parts:
        yield start, _joined(parts)


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    """The rows of ``parts`` as one tensor: the part itself when it is one contiguous view, else their copy."""
    if len(parts) == 1 and parts[0].is_contiguous():
        return parts[0]
    return torch.cat(parts)


def _check_preprocessed(out: Any, shape: torch.Size, preprocess: Callable[..., Any]) -> torch.Tensor:
    """What ``preprocess`` returned for a batch of ``shape``: a real tensor with one row per image."""
    name = getattr(preprocess, "__name__", type(preprocess).__name__)
    if not isinstance(out, torch.Tensor):
        raise InvalidParameterError(
            f"preprocess {name!r} must return a tensor with one row per image, (B, ...) = ({shape[0]}, ...) for "
            f"images of shape {tuple(shape)}, got {type(out).__name__}"
        )
    if out.dim() == 0 or out.shape[0] != shape[0]:
        raise InvalidParameterError(
            f"preprocess {name!r} must return a tensor with one row per image, (B, ...) = ({shape[0]}, ...) for "
            f"images of shape {tuple(shape)}, got shape {tuple(out.shape)}"
        )
    if out.is_complex() or out.dtype == torch.bool:
        raise InvalidParameterError(f"preprocess {name!r} must return real numbers, got a tensor of dtype {out.dtype}")
    return out


def _check_batch_output(out: Any, expected: int, start: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) and isinstance(getattr(out, "logits", None), torch.Tensor):
        out = out.logits  # a Hugging Face ModelOutput
    if isinstance(out, (tuple, list)) or not isinstance(out, torch.Tensor):
        raise ModelOutputError(
            f"the model must return a tensor of shape (batch, n_outputs) or (batch,), got {type(out).__name__}; "
            "wrap models with several outputs in a function returning the one to explain (for a Hugging Face "
            "model, its output's .logits)"
        )
    if out.is_complex():
        raise ModelOutputError(
            f"the model returned complex outputs ({out.dtype}); return real values, e.g. their .abs()"
        )
    if not (out.is_floating_point() or out.dtype in _INTEGER_DTYPES):
        raise ModelOutputError(f"the model must return numbers, got a tensor of dtype {out.dtype}")
    if out.dim() == 1:
        out = out[:, None]
    if out.dim() != 2 or out.shape[0] != expected or out.shape[1] == 0:
        raise ModelOutputError(
            f"the model must return shape ({expected}, n_outputs) with n_outputs >= 1 for a batch of {expected} "
            f"images, got {tuple(out.shape)}"
        )
    out = out.detach()
    if not out.is_floating_point():
        out = out.float()
    if not torch.isfinite(out).all():
        bad = torch.nonzero(~torch.isfinite(out))[0]
        raise ModelOutputError(
            f"the model returned NaN or Inf at step {start + int(bad[0])}, output column {int(bad[1])}"
        )
    return out


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
