"""From intervention sequences and a model to outputs, the permutation test and the flips.

The one scoring path of the project: :meth:`propgrad.PropertyGradient.attribute` and the
benchmark harness both call :func:`score_sequences`, so the benchmark validates the code users
run. Per sequence, the model runs on the original image followed by every step (one stacked
forward pass, :func:`propgrad.core.forward.run_model`), the outputs are transformed, the scored
column(s) are tested in float64 (:func:`propgrad.stats.permutation.permutation_test`) and the
flips are found against the original image's decision (:func:`propgrad.stats.flips.prediction_flips`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from propgrad.core.forward import OutputTransform, check_output_transform, run_model, transform_outputs
from propgrad.core.validation import check_choice, check_device
from propgrad.sources.base import InterventionSequence
from propgrad.stats.flips import FlipResult, prediction_flips
from propgrad.stats.permutation import PermutationResult, check_test_settings, permutation_test

#: ``target`` value meaning "the decision on the original image" (the benchmark's explained class).
PREDICTED = "predicted"
SequenceTarget = int | None | Literal["predicted"]


@dataclass(frozen=True)
class SequenceScore:
    """What scoring one intervention sequence gives.

    Attributes:
        outputs: Transformed outputs (N, C) along the sequence.
        original_outputs: Transformed outputs (C,) on the original image.
        target: The scored column, or None when every column was scored.
        test: The permutation test of the scored column(s), computed in float64.
        flips: Decision flips along the sequence, against the original image's decision.
    """

    outputs: torch.Tensor
    original_outputs: torch.Tensor
    target: int | None
    test: PermutationResult
    flips: FlipResult


def score_outputs(
    outputs: torch.Tensor,
    original_outputs: torch.Tensor,
    *,
    target: SequenceTarget = None,
    values: torch.Tensor | None = None,
    periodic: bool = False,
    n_permutations: int = 10_000,
    alpha: float = 0.01,
    statistic: str | Callable[..., torch.Tensor] = "gradient",
    seed: int = 0,
    period: float | None = None,
    sequential: int | None = None,
) -> SequenceScore:
    """Test and flips of transformed outputs along one sequence.

    Args:
        outputs: Transformed outputs (N, C) along the sequence.
        original_outputs: Transformed outputs (C,) on the original image.
        target: Column to score, None for every column, or :data:`PREDICTED` for the column of
            the original image's decision.
        values: Property values (N,) for scores per unit, None for per step.
        periodic: The sequence wraps around.
        n_permutations: K of the permutation test.
        alpha: Significance level.
        statistic: ``"gradient"``, ``"pearson"`` or a callable (see ``permutation_test``).
        seed: Seed of the permutations.
        period: Period of ``values`` for a periodic sequence (None: the span plus one mean step).
        sequential: Stop a column's permutations after this many as extreme as the observed
            statistic (Besag-Clifford; see ``permutation_test``), None for the fixed-K test.

    Raises:
        TypeError: ``target`` is not an integer column, None or :data:`PREDICTED`.
        ValueError: ``target`` out of range for the outputs; bad test settings (see
            :func:`propgrad.stats.permutation.permutation_test`).
    """
    n_columns = outputs.shape[1]
    flips = prediction_flips(outputs, reference=original_outputs)
    if isinstance(target, str) and target == PREDICTED:  # one binary column: its decision is 0/1, its column 0
        column: int | None = flips.reference_decision if n_columns > 1 else 0
    elif target is None:
        column = None
    elif is_column_index(target):
        column = int(target)
    else:
        raise TypeError(
            f"target must be an integer column index, None or {PREDICTED!r}, got {target!r} ({type(target).__name__})"
        )
    if column is not None and not 0 <= column < n_columns:
        raise ValueError(f"target {column} is out of range for a model with {n_columns} outputs")
    scored = outputs.double() if column is None else outputs[:, column].double()
    test = permutation_test(
        scored,
        values,
        n_permutations=n_permutations,
        alpha=alpha,
        statistic=statistic,
        seed=seed,
        periodic=periodic,
        period=period if periodic and values is not None else None,
        sequential=sequential,
    )
    return SequenceScore(outputs=outputs, original_outputs=original_outputs, target=column, test=test, flips=flips)


def sequence_statistic(
    scored: torch.Tensor,
    values: torch.Tensor | None = None,
    *,
    periodic: bool = False,
    statistic: str | Callable[..., torch.Tensor] = "gradient",
    period: float | None = None,
) -> torch.Tensor:
    """The test statistic of scored outputs, without a test: what :func:`score_outputs` reports.

    It is the observed statistic of :func:`propgrad.stats.permutation.permutation_test` (which does
    not depend on the permutations), so every score of the project has one definition: the
    placebos', the extrapolation definition's first half, the real sequence's.

    Args:
        scored: Scored outputs (N,) or (N, C), float64 for the project's scores.
        values: Property values (N,) for scores per unit, None for per step.
        periodic: The sequence wraps around.
        statistic: ``"gradient"``, ``"pearson"`` or a callable (see ``permutation_test``).
        period: Period of ``values`` for a periodic sequence (None: the span plus one mean step).

    Returns:
        A 0-d tensor for (N,) outputs, (C,) for (N, C).
    """
    period = period if periodic and values is not None else None
    return permutation_test(
        scored, values, n_permutations=1, statistic=statistic, periodic=periodic, period=period
    ).statistic


def sequence_period(seq: Any, per: str) -> float | None:
    """The period of a periodic sequence's values when scored per unit (its ``metadata["period"]``, e.g. 360
    for a full turn in degrees), else None: per step the default, N steps, is exact."""
    if per != "unit" or not seq.periodic:
        return None
    period = seq.metadata.get("period")
    return None if period is None else float(period)


def is_column_index(value: Any) -> bool:
    """An integer (Python or numpy) that is not a bool: what may index an output column."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def score_sequences(
    forward_func: Callable[..., Any],
    originals: torch.Tensor,
    sequences: Sequence[InterventionSequence],
    *,
    targets: Sequence[SequenceTarget],
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    output_transform: OutputTransform = "softmax",
    additional_forward_args: tuple[Any, ...] = (),
    per_image_args: Sequence[bool] | None = None,
    per: Literal["step", "unit"] = "step",
    n_permutations: int = 10_000,
    alpha: float = 0.01,
    statistic: str | Callable[..., torch.Tensor] = "gradient",
    seed: int = 0,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    show_progress: bool = False,
    sequential: int | None = None,
) -> list[SequenceScore]:
    """Run the model on each original image and its sequence, then test and find the flips.

    Every original and its steps are stacked in order ``[original_0, *sequence_0, original_1,
    ...]`` and run in batches of ``batch_size`` (a score does not depend on which other images
    share its batches beyond float rounding of the model itself).

    Args:
        forward_func: The model: images (B, 3, H, W) -> outputs (B, C) or (B,).
        originals: The original images (M, 3, H, W), one per sequence.
        sequences: M intervention sequences.
        targets: M targets: a column, None (every column) or :data:`PREDICTED`.
        preprocess: Map from [0, 1] images to what the model eats.
        output_transform: ``"softmax"``, ``"sigmoid"``, ``"none"`` or a callable.
        additional_forward_args: Extra positional model arguments, as in Captum.
        per_image_args: One flag per extra argument: True for a tensor with one row per original
            image, expanded to that image's original and steps (Captum's expansion).
        per: ``"step"`` (scores per discrete step) or ``"unit"`` (per unit of the values).
        n_permutations: K of each permutation test.
        alpha: Significance level.
        statistic: Test statistic.
        seed: Seed of the permutations (the same for every sequence).
        batch_size: Images per forward pass.
        device: Where the model runs (default: its own device).
        show_progress: Progress counter over forward batches.
        sequential: The sequential test's limit (see :func:`score_outputs`), None for fixed K.

    Returns:
        One :class:`SequenceScore` per sequence.

    Raises:
        TypeError, ValueError: bad settings (checked before the model runs), a model or transform
            returning bad outputs (see :func:`propgrad.core.forward.run_model`), a target out of range.
    """
    check_test_settings(n_permutations, alpha, statistic, seed)
    _check_run_settings(output_transform, per, device)
    if len(sequences) != originals.shape[0] or len(targets) != len(sequences):
        raise ValueError(
            f"give one original image and one target per sequence: {originals.shape[0]} originals, "
            f"{len(sequences)} sequences, {len(targets)} targets"
        )
    for i, seq in enumerate(sequences):
        if tuple(seq.images.shape[1:]) != tuple(originals.shape[1:]):
            raise ValueError(
                f"sequence {i} has images of shape {tuple(seq.images.shape[1:])} but its original image has shape "
                f"{tuple(originals.shape[1:])}: the model scores both, so they must be the same size (resize the "
                "original to the frames, or the frames to the original)"
            )
    stacks = [torch.cat([originals[i][None], seq.images.to(originals.device)]) for i, seq in enumerate(sequences)]
    blocks = _run_stacked(
        forward_func,
        stacks,
        preprocess=preprocess,
        output_transform=output_transform,
        additional_forward_args=additional_forward_args,
        per_image_args=per_image_args,
        batch_size=batch_size,
        device=device,
        show_progress=show_progress,
    )
    scores = []
    for seq, target, block in zip(sequences, targets, blocks):
        scores.append(
            score_outputs(
                block[1:],
                block[0],
                target=target,
                values=seq.values if per == "unit" else None,
                periodic=seq.periodic,
                n_permutations=n_permutations,
                alpha=alpha,
                statistic=statistic,
                seed=seed,
                period=sequence_period(seq, per),
                sequential=sequential,
            )
        )
    return scores


def _check_run_settings(output_transform: Any, per: Any, device: Any) -> None:
    """The checks :func:`score_sequences` and :func:`placebo_statistics` share, before the model runs."""
    check_output_transform(output_transform)
    check_choice(per, "per", ("step", "unit"))
    if device is not None:
        check_device(device)


def _run_stacked(
    forward_func: Callable[..., Any],
    stacks: Sequence[torch.Tensor],
    *,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None,
    output_transform: OutputTransform,
    additional_forward_args: tuple[Any, ...],
    per_image_args: Sequence[bool] | None,
    batch_size: int,
    device: torch.device | str | None,
    show_progress: bool,
) -> list[torch.Tensor]:
    """Transformed outputs (L_i, C) of each stack of images (L_i, 3, H, W), from one run over all of them.

    A per-image extra argument (``per_image_args``) has one row per stack, expanded to its images.
    """
    lengths = [stack.shape[0] for stack in stacks]
    stacked = torch.cat(list(stacks))
    flags = tuple(per_image_args) if per_image_args is not None else (False,) * len(additional_forward_args)
    extra = tuple(
        _expand_rows(arg, lengths) if flag else arg for arg, flag in zip(additional_forward_args, flags, strict=True)
    )
    raw = run_model(
        forward_func,
        stacked,
        preprocess=preprocess,
        additional_forward_args=extra,
        row_aligned=flags,
        batch_size=batch_size,
        device=device,
        show_progress=show_progress,
    )
    outputs = transform_outputs(raw, output_transform)
    return list(torch.split(outputs, lengths))


def placebo_statistics(
    forward_func: Callable[..., Any],
    originals: torch.Tensor,
    placebos: Sequence[Sequence[InterventionSequence]],
    *,
    targets: Sequence[int | None],
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    output_transform: OutputTransform = "softmax",
    additional_forward_args: tuple[Any, ...] = (),
    per_image_args: Sequence[bool] | None = None,
    per: Literal["step", "unit"] = "step",
    statistic: str | Callable[..., torch.Tensor] = "gradient",
    batch_size: int = 32,
    device: torch.device | str | None = None,
    show_progress: bool = False,
) -> list[torch.Tensor]:
    """The test statistic of every placebo sequence of every original image, for the placebo test.

    The placebos of all images go through the same stacked forward pass as :func:`score_sequences`
    (each placebo after its image's original, extra per-image arguments expanded to it), and each
    placebo's statistic is the one :func:`score_sequences` reports for a real sequence (the
    observed statistic of :func:`propgrad.stats.permutation.permutation_test`, which does not depend
    on the permutations).

    Args:
        forward_func: The model.
        originals: The original images (B, 3, H, W).
        placebos: B lists of placebo sequences (M_i >= 1 each), e.g. from
            :func:`propgrad.sources.placebo_sequences.placebo_sequences`.
        targets: B scored columns (an integer, or None for every column), as resolved for the real
            sequences (:attr:`SequenceScore.target`).
        preprocess, output_transform, additional_forward_args, per_image_args, per, statistic,
            batch_size, device, show_progress: As for :func:`score_sequences`.

    Returns:
        B tensors (float64): (M_i,) for an integer target, (M_i, C) for None.

    Raises:
        TypeError, ValueError: as :func:`score_sequences`; an image without placebos.
    """
    check_test_settings(1, 0.5, statistic, 0)
    _check_run_settings(output_transform, per, device)
    if len(placebos) != originals.shape[0] or len(targets) != len(placebos):
        raise ValueError(
            f"give one list of placebos and one target per original image: {originals.shape[0]} originals, "
            f"{len(placebos)} placebo lists, {len(targets)} targets"
        )
    counts = [len(group) for group in placebos]
    if min(counts, default=1) < 1:
        raise ValueError("every original image needs at least one placebo sequence")
    flat = [seq for group in placebos for seq in group]
    # one stack per image: its placebos' steps, with no original (its outputs are not needed)
    stacks = [torch.cat([seq.images.to(originals.device) for seq in group]) for group in placebos]
    outputs = _run_stacked(
        forward_func,
        stacks,
        preprocess=preprocess,
        output_transform=output_transform,
        additional_forward_args=additional_forward_args,
        per_image_args=per_image_args,
        batch_size=batch_size,
        device=device,
        show_progress=show_progress,
    )
    blocks = [
        block
        for image_outputs, group in zip(outputs, placebos)
        for block in torch.split(image_outputs, [len(seq) for seq in group])
    ]
    stats, offset = [], 0
    for target, count in zip(targets, counts):
        group, outs = flat[offset : offset + count], blocks[offset : offset + count]
        offset += count
        n_columns = outs[0].shape[1]
        if target is not None and not 0 <= target < n_columns:
            raise ValueError(f"target {target} is out of range for a model with {n_columns} outputs")
        scored = [block.double() if target is None else block[:, target].double() for block in outs]
        stats.append(_placebo_group_statistics(scored, group, per, statistic))
    return stats


def _placebo_group_statistics(
    scored: list[torch.Tensor],
    group: Sequence[InterventionSequence],
    per: str,
    statistic: str | Callable[..., torch.Tensor],
) -> torch.Tensor:
    """The statistics (M,) or (M, C) of one image's placebos: one call for placebos that share a
    grid (as :func:`propgrad.sources.placebo_sequences.placebo_sequences` draws them), else one per placebo.

    A built-in statistic is computed column by column, so placebos side by side as columns give
    each placebo's own statistic; a callable might mix columns and is called per placebo.
    """
    first = group[0]
    same_grid = isinstance(statistic, str) and all(
        len(seq) == len(first)
        and seq.periodic == first.periodic
        and sequence_period(seq, per) == sequence_period(first, per)
        and (per == "step" or torch.equal(seq.values, first.values))
        for seq in group
    )
    if not same_grid:
        return torch.stack(
            [
                sequence_statistic(
                    x,
                    seq.values if per == "unit" else None,
                    periodic=seq.periodic,
                    statistic=statistic,
                    period=sequence_period(seq, per),
                )
                for x, seq in zip(scored, group)
            ]
        )
    columns = torch.stack(scored, dim=1)  # (N, M) or (N, M, C)
    flat = columns.reshape(columns.shape[0], -1)
    values = first.values if per == "unit" else None
    result = sequence_statistic(
        flat, values, periodic=first.periodic, statistic=statistic, period=sequence_period(first, per)
    )
    return result.reshape(columns.shape[1:])


def _expand_rows(arg: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Repeat row i of a per-image argument ``lengths[i]`` times (one per forward row of that image)."""
    repeats = torch.as_tensor(lengths, device=arg.device)
    return arg.repeat_interleave(repeats, dim=0)
