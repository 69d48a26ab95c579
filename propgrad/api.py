"""The Captum-style entry point: ``PropertyGradient(model).attribute(inputs, source)``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from propgrad.forward import OutputTransform, check_output_transform
from propgrad.result import Explanation
from propgrad.sources.base import InterventionSource
from propgrad.validation import check_images

Target = int | Sequence[int] | torch.Tensor | None


class PropertyGradient:
    """Explain a model by gradual interventions on one property.

    Like a Captum attribution method, the model goes into the constructor and ``attribute`` does
    the work. Instead of a pixel map, the explanation is the expected property gradient magnitude
    of the model's outputs along an intervention sequence, with a permutation-test p-value.

    Args:
        forward_func: Any ``nn.Module`` or callable mapping a batch of images to outputs (B, C)
            or (B,).
        preprocess: Optional map from [0, 1] RGB images to what ``forward_func`` eats
            (normalisation, resizing). Sources always work on [0, 1] images.
        output_transform: ``"softmax"`` (default; probabilities, the paper's convention),
            ``"sigmoid"``, ``"none"`` (raw outputs, e.g. CLIP similarities) or a callable.

    Example:
        >>> pg = PropertyGradient(model, preprocess=normalise)
        >>> explanation = pg.attribute(image, source="alpha_patch", target=1)
        >>> explanation.score, explanation.p_value, explanation.significant
    """

    def __init__(
        self,
        forward_func: Callable[..., torch.Tensor],
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_transform: OutputTransform = "softmax",
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be an nn.Module or a callable, got {type(forward_func).__name__}")
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be callable or None, got {type(preprocess).__name__}")
        check_output_transform(output_transform)
        self.forward_func = forward_func
        self.preprocess = preprocess
        self.output_transform = output_transform

    def attribute(
        self,
        inputs: torch.Tensor,
        source: str | InterventionSource,
        target: Target = None,
        additional_forward_args: Any = None,
        *,
        source_params: dict[str, Any] | None = None,
        n_permutations: int = 10_000,
        alpha: float = 0.01,
        statistic: str | Callable[..., torch.Tensor] = "gradient",
        per: str = "step",
        batch_size: int = 32,
        seed: int = 0,
        show_progress: bool = False,
    ) -> Explanation | list[Explanation]:
        """Intervene on each input, run the model along the sequence and score the change.

        Args:
            inputs: One image (3, H, W) or a batch (B, 3, H, W), float in [0, 1].
            source: A registered source name (see ``propgrad.list_sources()``) or an instance.
            target: Output column to explain: an int for all inputs, one per input, or None to
                score every output column.
            additional_forward_args: Extra arguments for ``forward_func`` (a single value or a
                tuple), passed after the images, as in Captum.
            source_params: Parameters for the source when ``source`` is a name.
            n_permutations: Permutations of the significance test (the paper uses 10,000).
            alpha: Significance level.
            statistic: Test statistic: ``"gradient"`` (the paper's), ``"pearson"`` or a callable.
            per: ``"step"`` (default, the paper's convention: change per discrete step of the
                sequence) or ``"unit"`` (change per unit of the source's property values, e.g.
                per degree; uses the actual, possibly non-uniform, spacing).
            batch_size: Images per forward pass.
            seed: Seed for the source's random choices and the permutations.
            show_progress: Show progress bars.

        Returns:
            An :class:`~propgrad.result.Explanation` for a single image, a list of them (one per
            input) for a batch.
        """
        from propgrad.scoring import score_sequences

        if per not in ("step", "unit"):
            raise ValueError(f"per must be 'step' or 'unit', got {per!r}")
        batched = isinstance(inputs, torch.Tensor) and inputs.dim() == 4
        images = check_images(inputs if batched else _as_batch(inputs), "inputs", batched=True)
        src = _resolve_source(source, source_params)
        targets = _resolve_targets(target, images.shape[0])
        extra = _as_tuple(additional_forward_args)
        per_image = tuple(_is_per_image(arg, images.shape[0]) for arg in extra)
        sequences = [src.generate(image, seed=seed, show_progress=show_progress) for image in images]
        scores = score_sequences(
            self.forward_func,
            images,
            sequences,
            targets=targets,
            preprocess=self.preprocess,
            output_transform=self.output_transform,
            additional_forward_args=extra,
            per_image_args=per_image,
            per=per,
            n_permutations=n_permutations,
            alpha=alpha,
            statistic=statistic,
            seed=seed,
            batch_size=batch_size,
            show_progress=show_progress,
        )
        explanations = [
            Explanation(
                flips=scored.flips,
                outputs=scored.outputs,
                target=scored.target,
                sequence=sequence,
                test=scored.test,
                source=src.name or type(src).__name__,
                score_unit="per step" if per == "step" else f"per {sequence.unit}",
                original_outputs=scored.original_outputs,
            )
            for scored, sequence in zip(scores, sequences)
        ]
        return explanations if batched else explanations[0]


def _as_batch(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 3:
        return inputs[None]
    if isinstance(inputs, torch.Tensor):
        raise ValueError(f"inputs must have shape (3, H, W) or (B, 3, H, W), got {tuple(inputs.shape)}")
    return inputs


def _resolve_source(source: str | InterventionSource, params: dict[str, Any] | None) -> InterventionSource:
    if isinstance(source, InterventionSource):
        if params:
            raise ValueError("source_params can only be used with a source name, not a source instance")
        return source
    if isinstance(source, str):
        from propgrad.plugins import get_source

        return get_source(source)(**(params or {}))
    if isinstance(source, type) and issubclass(source, InterventionSource):
        return source(**(params or {}))
    raise TypeError(f"source must be a source name or an InterventionSource, got {type(source).__name__}")


def _resolve_targets(target: Target, n: int) -> list[int | None]:
    if target is None:
        return [None] * n
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer column indices, got a tensor of dtype {target.dtype}")
        target = target.tolist()
    elif isinstance(target, np.ndarray):
        target = target.tolist()
    if _is_index(target):
        return [int(target)] * n
    if isinstance(target, (str, bytes)) or not isinstance(target, Sequence):
        raise TypeError(f"target must be an int, None, or {n} ints (one per input), got {target!r}")
    targets = list(target)
    bad = [t for t in targets if not _is_index(t)]
    if bad:
        raise TypeError(
            f"target must hold integer column indices, got {bad[0]!r} ({type(bad[0]).__name__}); "
            "bools and floats are not column indices"
        )
    if len(targets) != n:
        raise ValueError(f"target must be an int, None, or {n} ints (one per input), got {len(targets)} values")
    return [int(t) for t in targets]


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_per_image(arg: Any, n_images: int) -> bool:
    """Captum's rule: a tensor extra argument with one row per input image is expanded per image."""
    return isinstance(arg, torch.Tensor) and arg.dim() >= 1 and arg.shape[0] == n_images


def _as_tuple(args: Any) -> tuple[Any, ...]:
    if args is None:
        return ()
    return tuple(args) if isinstance(args, tuple) else (args,)
