"""The Captum-style entry point: ``PropertyGradient(model).attribute(inputs, source)``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import numpy as np
import torch

from propgrad.forward import OutputTransform, check_output_transform
from propgrad.result import Explanation
from propgrad.sources.base import InterventionSource
from propgrad.stats.permutation import check_test_settings
from propgrad.validation import check_bool, check_choice, check_images, check_int

Target = int | Sequence[int] | torch.Tensor | None


class PropertyGradient:
    """Explain a model by gradual interventions on one property.

    Like a Captum attribution method, the model goes into the constructor and ``attribute`` does
    the work. Instead of a pixel map, the explanation is the expected property gradient magnitude
    of the model's outputs along an intervention sequence, with a permutation-test p-value.

    Args:
        forward_func: Any ``nn.Module`` or callable mapping a batch of images to outputs (B, C)
            or (B,) (a binary classifier's single logit or score; (B, 1) is the same case), or to
            an object whose ``.logits`` is such a tensor, as Hugging Face ``*ForImageClassification``
            models return. A module runs in eval mode without gradients, on its own device and in
            its floating dtype (images are cast to it), and each submodule's mode is restored
            afterwards, so a model in train mode (BatchNorm) is neither batch-dependent nor updated.
        preprocess: Optional map from [0, 1] RGB images to what ``forward_func`` eats
            (normalisation, resizing). Sources always work on [0, 1] images.
        output_transform: ``"softmax"`` (default; probabilities, the paper's convention; a single
            output column gets the sigmoid), ``"sigmoid"``, ``"none"`` (raw outputs, e.g. CLIP
            similarities) or a callable.

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
            target: Output column to explain: an int (Python or numpy) for all inputs, one per
                input (a list, array or integer tensor), or None to score every output column.
                Bools and floats are refused, not rounded.
            additional_forward_args: Extra arguments for ``forward_func`` (a single value or a
                tuple), passed after the images, as in Captum: a tensor with one row per input
                image is expanded to that image's sequence (row i goes with every step of image
                i); anything else is passed unchanged to every forward pass.
            source_params: Parameters for the source when ``source`` is a name (a dict).
            n_permutations: Permutations of the significance test (the paper uses 10,000).
            alpha: Significance level.
            statistic: Test statistic: ``"gradient"`` (the paper's), ``"pearson"`` or a callable.
            per: ``"step"`` (default, the paper's convention: change per discrete step of the
                sequence) or ``"unit"`` (change per unit of the source's property values, e.g.
                per degree; uses the actual, possibly non-uniform, spacing).
            batch_size: Images per forward pass.
            seed: Seed for the source's random choices and the permutations, an integer in
                [0, 2**63 - 1].
            show_progress: Show progress bars.

        Returns:
            An :class:`~propgrad.result.Explanation` for a single image, a list of them (one per
            input) for a batch.

        Raises:
            TypeError, ValueError: bad inputs or settings, checked before any image is generated
                or the model runs; a model, ``preprocess`` or ``output_transform`` returning the
                wrong thing (see :func:`propgrad.forward.run_model`).
        """
        from propgrad.scoring import score_sequences

        check_choice(per, "per", ("step", "unit"))
        check_test_settings(n_permutations, alpha, statistic, seed)
        check_int(batch_size, "batch_size")
        check_bool(show_progress, "show_progress")
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
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(
            f"source_params must be a dict of the source's parameters, e.g. {{'steps': 11}}, got "
            f"{type(params).__name__} {_short(params)}"
        )
    bad_keys = [key for key in (params or {}) if not isinstance(key, str)]
    if bad_keys:
        raise TypeError(f"source_params keys must be parameter names (strings), got {bad_keys[0]!r}")
    if isinstance(source, InterventionSource):
        if params:
            raise ValueError("source_params can only be used with a source name, not a source instance")
        return source
    if isinstance(source, str):
        from propgrad.plugins import get_source

        return _construct(get_source(source), source, params or {})
    if isinstance(source, type) and issubclass(source, InterventionSource):
        return _construct(source, source.__name__, params or {})
    raise TypeError(f"source must be a source name or an InterventionSource, got {type(source).__name__}")


def _construct(cls: type[InterventionSource], name: str, params: Mapping[str, Any]) -> InterventionSource:
    """``cls(**params)``, refusing a parameter the source does not take by name, with the ones it does."""
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no signature to read: let the constructor decide
        return cls(**params)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [key for key in params if key not in accepted]
    if unknown and not takes_any:
        names = ", ".join(k for k, p in accepted.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL) or "none"
        raise TypeError(f"source {name!r} has no parameter {unknown[0]!r}; its parameters: {names}")
    return cls(**params)


def _resolve_targets(target: Target, n: int) -> list[int | None]:
    if target is None:
        return [None] * n
    if isinstance(target, (torch.Tensor, np.ndarray)):
        if isinstance(target, torch.Tensor):
            integer = target.dtype in _INTEGER_DTYPES
        else:
            integer = bool(np.issubdtype(target.dtype, np.integer))
        if not integer:
            raise TypeError(
                f"target must hold integer column indices, got {_short(target)} of dtype {target.dtype}; "
                "bools and floats are not column indices (use .long() for a tensor of whole numbers)"
            )
        target = target.tolist()
    if _is_index(target):
        return [int(target)] * n
    if isinstance(target, (str, bytes)) or not isinstance(target, Sequence):
        raise TypeError(
            f"target must be an int, None, or {n} ints (one per input), got {target!r} ({type(target).__name__}); "
            "bools and floats are not column indices"
        )
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


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _short(value: Any) -> str:
    """``repr`` of a value, cut to 60 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_per_image(arg: Any, n_images: int) -> bool:
    """Captum's rule: a tensor extra argument with one row per input image is expanded per image."""
    return isinstance(arg, torch.Tensor) and arg.dim() >= 1 and arg.shape[0] == n_images


def _as_tuple(args: Any) -> tuple[Any, ...]:
    if args is None:
        return ()
    return tuple(args) if isinstance(args, tuple) else (args,)
