"""From intervention sequences and a model to outputs, the permutation test and the flips.

The one scoring path of the project: :meth:`propgrad.PropertyGradient.attribute` and the
benchmark harness both call :func:`score_sequences`, so the benchmark validates the code users
run. Per sequence, the model runs on the original image followed by every step (one stacked
forward pass, :func:`propgrad.core.forward.forward_batches`), the outputs are transformed, the scored
column(s) are tested in float64 (:func:`propgrad.stats.permutation.permutation_test`) and the
flips are found against the original image's decision (:func:`propgrad.stats.flips.prediction_flips`).

The settings arrive as two checked, frozen objects: how the model runs
(:class:`~propgrad.core.forward.RunSettings`) and how the outputs are tested
(:class:`~propgrad.stats.settings.TestSettings`). Their doors checked them; nothing here checks
them again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
import torch

from propgrad.core.forward import RunSettings, apply_output_transform, forward_batches
from propgrad.errors import InvalidParameterError
from propgrad.sources.base import InterventionSequence
from propgrad.stats.backends import KEEP_NULL_MAX_COLUMNS
from propgrad.stats.flips import FlipResult, flips_along, prediction_flips
from propgrad.stats.null_mean import effect_size
from propgrad.stats.permutation import PermutationResult, permutation_test_with
from propgrad.stats.placebo_test import PlaceboResult, placebo_result, placebo_stopped
from propgrad.stats.statistic import observed_statistic
from propgrad.stats.vector_statistic import VECTOR_NORMS

if TYPE_CHECKING:
    from propgrad.sources.placebo_sequences import PlaceboPool
    from propgrad.stats.settings import TestSettings

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


@dataclass(frozen=True)
class PropertyAxis:
    """What one sequence's scores are measured along: its discrete steps, or the units of its property values.

    Attributes:
        values: Property values (N,) for scores per unit; None for scores per step (the paper's convention).
        periodic: The sequence wraps around (a full turn).
        period: The period of ``values`` for a periodic sequence scored per unit (None: the span
            plus one mean step; per step the default, N steps, is exact).
    """

    values: torch.Tensor | None = None
    periodic: bool = False
    period: float | None = None

    @classmethod
    def of(cls, sequence: Any, per: str) -> PropertyAxis:
        """The axis of a sequence scored ``per`` ``"step"`` or ``"unit"``."""
        values = sequence.values if per == "unit" else None
        return cls(values=values, periodic=bool(sequence.periodic), period=sequence_period(sequence, per))


def score_outputs(
    outputs: torch.Tensor,
    original_outputs: torch.Tensor,
    target: SequenceTarget,
    axis: PropertyAxis,
    test: TestSettings,
) -> SequenceScore:
    """Test and flips of transformed outputs along one sequence.

    Args:
        outputs: Transformed outputs (N, C) along the sequence.
        original_outputs: Transformed outputs (C,) on the original image.
        target: Column to score, None for every column, or :data:`PREDICTED` for the column of
            the original image's decision.
        axis: What the scores are measured along (:meth:`PropertyAxis.of` a sequence).
        test: The test's settings (K, alpha, statistic, seed, sequential), checked at their door.

    Raises:
        TypeError: ``target`` is not an integer column, None or :data:`PREDICTED`.
        ValueError: ``target`` out of range for the outputs.
    """
    flips = prediction_flips(outputs, reference=original_outputs)
    column = _scored_column(flips, outputs.shape[1], target)
    scored = outputs.double() if column is None else outputs[:, column].double()
    result = _permutation_test(scored, axis, test)
    return SequenceScore(outputs=outputs, original_outputs=original_outputs, target=column, test=result, flips=flips)


def _scored_column(flips: FlipResult, n_columns: int, target: SequenceTarget) -> int | None:
    """The column a target scores (None: every column), given the flips along the outputs."""
    if isinstance(target, str) and target == PREDICTED:  # one binary column: its decision is 0/1, its column 0
        column: int | None = flips.reference_decision if n_columns > 1 else 0
    elif target is None:
        column = None
    elif is_column_index(target):
        column = int(target)
    else:
        raise InvalidParameterError(
            f"target must be an integer column index, None or {PREDICTED!r}, got {target!r} ({type(target).__name__})"
        )
    if column is not None and not 0 <= column < n_columns:
        raise InvalidParameterError(f"target {column} is out of range for a model with {n_columns} outputs")
    return column


def score_outputs_together(
    blocks: Sequence[torch.Tensor],
    targets: Sequence[SequenceTarget],
    axes: Sequence[PropertyAxis],
    test: TestSettings,
) -> list[SequenceScore]:
    """:func:`score_outputs` of several sequences, the permutation tests of those on one axis run as one.

    Sequences with the same number of steps on the same axis are shuffled by the same permutations
    (``test.seed`` seeds every sequence alike), and a column-wise statistic tests each column on its
    own; so their scored columns side by side in one test give every sequence the statistic,
    p-value and null of its own test, for one call's overhead (a batch of images, the checkpoints
    of a track). Up to ``KEEP_NULL_MAX_COLUMNS`` columns share a test, so each keeps its null
    distribution as it would alone; a whole-vector or callable statistic is tested per sequence.

    Args:
        blocks: Transformed outputs (1 + N_i, C) of each sequence: the original image's row, then the steps'.
        targets: One target per block (see :func:`score_outputs`).
        axes: One axis per block (:meth:`PropertyAxis.of`).
        test: The test's settings, checked at their door.
    """
    flips = [flips_along(block) for block in blocks]
    columns = [_scored_column(f, block.shape[1], target) for f, block, target in zip(flips, blocks, targets)]
    scored = [
        block[1:].double() if column is None else block[1:, column].double() for block, column in zip(blocks, columns)
    ]
    together = isinstance(test.statistic, str) and test.statistic not in VECTOR_NORMS
    groups: dict[Any, list[int]] = {}
    for i, (y, axis) in enumerate(zip(scored, axes)):
        key = _axis_key(y.shape[0], axis) if together else i
        groups.setdefault(key, []).append(i)
    tests: list[PermutationResult | None] = [None] * len(blocks)
    for members in groups.values():
        for chunk in _column_chunks(members, [1 if scored[i].dim() == 1 else scored[i].shape[1] for i in members]):
            if len(chunk) == 1:
                tests[chunk[0]] = _permutation_test(scored[chunk[0]], axes[chunk[0]], test)
                continue
            result = _permutation_test(
                torch.cat([scored[i].reshape(scored[i].shape[0], -1) for i in chunk], 1), axes[chunk[0]], test
            )
            start = 0
            for i in chunk:
                width = 1 if scored[i].dim() == 1 else scored[i].shape[1]
                tests[i] = _columns_of(result, start, width, one=scored[i].dim() == 1)
                start += width
    return [
        SequenceScore(outputs=block[1:], original_outputs=block[0], target=column, test=result, flips=f)  # type: ignore[arg-type]
        for block, column, f, result in zip(blocks, columns, flips, tests)
    ]


def _axis_key(n: int, axis: PropertyAxis) -> tuple[Any, ...]:
    """What sequences must share to be shuffled by the same permutations: steps, values, wrap-around, period."""
    values = None if axis.values is None else tuple(axis.values.double().tolist())
    return (n, values, axis.periodic, axis.period)


def _column_chunks(members: list[int], widths: list[int]) -> list[list[int]]:
    """``members`` in order, cut into runs of at most ``KEEP_NULL_MAX_COLUMNS`` columns (a wider one alone)."""
    chunks: list[list[int]] = []
    used = KEEP_NULL_MAX_COLUMNS + 1
    for member, width in zip(members, widths):
        if used + width > KEEP_NULL_MAX_COLUMNS:
            chunks.append([])
            used = 0
        chunks[-1].append(member)
        used += width
    return chunks


def _columns_of(result: PermutationResult, start: int, width: int, *, one: bool) -> PermutationResult:
    """The test of columns ``start .. start + width - 1`` of a joint test (a 0-d result for one scored column)."""

    def pick(t: torch.Tensor | None, copy: bool = False) -> torch.Tensor | None:
        if t is None:
            return None
        part = t[..., start] if one else t[..., start : start + width]
        return part.clone() if copy else part

    # views of the joint test's (C,) results; the (K, C) null is copied, so one sequence's result does not
    # keep every other sequence's null alive
    return replace(
        result,
        statistic=pick(result.statistic),
        p_value=pick(result.p_value),
        significant=pick(result.significant),
        null_distribution=pick(result.null_distribution, copy=True),
        n_drawn=pick(result.n_drawn),
    )


def _permutation_test(scored: torch.Tensor, axis: PropertyAxis, test: TestSettings) -> PermutationResult:
    """The permutation test of scored outputs along ``axis`` under settings checked at their door."""
    period = axis.period if axis.periodic and axis.values is not None else None
    return permutation_test_with(scored, axis.values, test, periodic=axis.periodic, period=period)


def sequence_effect_size(scored: SequenceScore, axis: PropertyAxis, test: TestSettings) -> torch.Tensor:
    """The scored column(s)' statistic over the exact mean of its shuffled null, without resampling
    (:func:`propgrad.stats.null_mean.effect_size`): 1 is what a random order of the same outputs gives
    on average, an ordered response is well below 1; NaN where no exact mean exists (``"pearson"``,
    a callable, a constant column). Shaped like the statistic, float64 on the CPU."""
    outputs = scored.outputs.double() if scored.target is None else scored.outputs[:, scored.target].double()
    period = axis.period if axis.periodic and axis.values is not None else None
    return effect_size(outputs, axis.values, statistic=test.statistic, periodic=axis.periodic, period=period)


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
    not depend on the permutations), computed directly (:func:`propgrad.stats.statistic.observed_statistic`),
    so every score of the project has one definition: the placebos', the extrapolation definition's
    first half, the real sequence's.

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
    return observed_statistic(scored, values, statistic=statistic, periodic=periodic, period=period)


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
    targets: Sequence[SequenceTarget],
    run: RunSettings,
    test: TestSettings,
) -> list[SequenceScore]:
    """Run the model on each original image and its sequence, then test and find the flips.

    Every original and its steps are stacked in order ``[original_0, *sequence_0, original_1,
    ...]`` and run in batches of ``run.batch_size`` (a score does not depend on which other images
    share its batches beyond float rounding of the model itself).

    Args:
        forward_func: The model: images (B, 3, H, W) -> outputs (B, C) or (B,).
        originals: The original images (M, 3, H, W), one per sequence.
        sequences: M intervention sequences.
        targets: M targets: a column, None (every column) or :data:`PREDICTED`.
        run: How the model runs (checked by :func:`propgrad.core.forward.run_settings`); a per-image
            extra argument has one row per original image, expanded to its original and steps.
        test: The test's settings (checked at their door); ``test.per`` chooses scores per step or
            per unit of the values, and ``test.seed`` seeds every sequence's permutations alike.

    Returns:
        One :class:`SequenceScore` per sequence.

    Raises:
        TypeError, ValueError: sequences, originals and targets that do not fit together, a model
            or transform returning bad outputs (see :func:`propgrad.core.forward.run_model`), a target
            out of range.
    """
    if len(targets) != len(sequences):
        raise InvalidParameterError(f"give one target per sequence: {len(sequences)} sequences, {len(targets)} targets")
    blocks = sequence_outputs(forward_func, originals, sequences, run)
    return score_outputs_together(blocks, targets, [PropertyAxis.of(seq, test.per) for seq in sequences], test)


def sequence_outputs(
    forward_func: Callable[..., Any],
    originals: torch.Tensor,
    sequences: Sequence[InterventionSequence],
    run: RunSettings,
    *,
    extra: Sequence[Sequence[torch.Tensor] | None] = (),
) -> list[torch.Tensor]:
    """Transformed outputs (1 + N_i, C) of each original image followed by its sequence's steps.

    The forward pass of :func:`score_sequences` without the test: one stacked run in the order
    ``[original_0, *sequence_0, original_1, ...]``. Row 0 of each block is the original's outputs,
    what :func:`propgrad.stats.flips.prediction_flips` compares the steps with.

    Args:
        forward_func: The model.
        originals: The original images (M, 3, H, W), one per sequence.
        sequences: M intervention sequences.
        run: How the model runs (see :func:`score_sequences`); with per-image extra arguments,
            ``extra`` must be empty.
        extra: More stacks of images to run in the same pass (a placebo test's :func:`first_round`),
            each None or a sequence of pieces (L_jk, 3, H, W) of the originals' size taken in order;
            their outputs (L_j, C), L_j the pieces' images in all, follow the M blocks in the
            list, None for a None stack.

    Raises:
        ValueError: not one original per sequence, or a sequence whose images differ in size
            from its original's; a model or transform returning bad outputs.
    """
    if len(sequences) != originals.shape[0]:
        raise InvalidParameterError(
            f"give one original image per sequence: {originals.shape[0]} originals, {len(sequences)} sequences"
        )
    for i, seq in enumerate(sequences):
        if tuple(seq.images.shape[1:]) != tuple(originals.shape[1:]):
            raise InvalidParameterError(
                f"sequence {i} has images of shape {tuple(seq.images.shape[1:])} but its original image has shape "
                f"{tuple(originals.shape[1:])}: the model scores both, so they must be the same size (resize the "
                "original to the frames, or the frames to the original)"
            )
    stacks = [(originals[i][None], seq.images.to(originals.device)) for i, seq in enumerate(sequences)]
    more = [tuple(stack) for stack in extra if stack is not None]
    outputs = iter(_run_stacked(forward_func, stacks + more, run))
    blocks = [next(outputs) for _ in stacks]
    return blocks + [None if stack is None else next(outputs) for stack in extra]  # type: ignore[misc]


def _run_stacked(
    forward_func: Callable[..., Any], stacks: Sequence[Sequence[torch.Tensor]], run: RunSettings
) -> list[torch.Tensor]:
    """Transformed outputs (L_i, C) of each stack of images, from one run over all of them.

    Stack i is a sequence of image tensors (L_ij, 3, H, W) taken in order (L_i images in all). The model
    runs on batches of their concatenation, copied from the pieces a few batches at a time
    (:func:`propgrad.core.forward.forward_batches`), so the images are never copied into one tensor.
    A per-image extra argument (``run.per_image_args``) has one row per stack, expanded to its images.
    """
    lengths = [sum(piece.shape[0] for piece in stack) for stack in stacks]
    pieces = [piece for stack in stacks for piece in stack]
    extra = tuple(
        _expand_rows(arg, lengths) if flag else arg
        for arg, flag in zip(run.additional_forward_args, run.per_image_args, strict=True)
    )
    raw = forward_batches(forward_func, pieces, replace(run, additional_forward_args=extra))
    outputs = apply_output_transform(raw, run.output_transform)
    return list(torch.split(outputs, lengths))


def placebo_bounds(n_placebos: int, stop: int | None) -> list[int]:
    """Where the placebo test's rounds end: ``[0, M]`` for the fixed test, else ``0, 4, 20, 100, 500, ..., M``
    (each round five times the placebos of all before it). Under the null about four in five images
    stop after the first round of 4 placebos; an image the property drives runs ``log5(M)`` rounds,
    each with its fixed cost of a forward pass and a drawing pass (3 for M = 100)."""
    if stop is None:
        return [0, n_placebos]
    bounds, b = [0], 4
    while b < n_placebos:
        bounds.append(b)
        b *= 5
    return [*bounds, n_placebos]


def placebo_tests(
    forward_func: Callable[..., Any],
    originals: torch.Tensor,
    pools: Sequence[PlaceboPool | None],
    scores: Sequence[SequenceScore],
    run: RunSettings,
    test: TestSettings,
    *,
    first: Sequence[torch.Tensor | None] | None = None,
) -> list[PlaceboResult | None]:
    """The size-aware placebo test of every scored sequence that has placebos.

    Placebos are drawn from each image's pool in rounds (:func:`placebo_bounds`); every round runs
    the placebos of all images still drawing through one stacked forward pass (each image's extra
    per-image arguments expanded to its placebos' steps; a placebo's first image is the real
    sequence's, whose outputs it reuses instead of running it again), scores each placebo with the statistic
    :func:`score_sequences` reports for a real sequence, and, with ``test.placebo_stop``, lets an
    image stop once every scored column has h placebos at least its statistic
    (:func:`propgrad.stats.placebo_test.placebo_stopped`). The p-values and verdicts are
    :func:`propgrad.stats.placebo_test.placebo_result`'s.

    Args:
        forward_func: The model.
        originals: The original images (B, 3, H, W).
        pools: B placebo pools (:class:`~propgrad.sources.placebo_sequences.PlaceboPool` of each
            image's real sequence, drawing at most ``test.n_placebos``), None for an image without
            placebos (a periodic sequence).
        scores: The B real sequences' scores (:func:`score_sequences`): their statistics and target columns.
        run: How the model runs, as for :func:`score_sequences`.
        test: The test's settings: statistic, per, alpha, min_effect, correction, M and h.
        first: The transformed outputs of each image's first round, when the caller ran the
            images of :func:`first_round` in a forward pass of its own (beside the real sequence,
            say, to fill one batch): B tensors (k (N - 1), C), None where the pool is None.

    Returns:
        B results (None where the pool is None).
    """
    if not len(pools) == len(scores) == originals.shape[0]:
        raise InvalidParameterError(
            f"give one placebo pool and one score per original image: {originals.shape[0]} originals, "
            f"{len(pools)} pools, {len(scores)} scores"
        )
    from propgrad.sources.placebo_sequences import StepsBuffer

    drawn: dict[int, list[torch.Tensor]] = {i: [] for i, pool in enumerate(pools) if pool is not None}
    active = list(drawn)
    bounds = placebo_bounds(test.n_placebos, test.placebo_stop)
    buffer = StepsBuffer()  # what pools that keep nothing draw into, round after round (each run before the next)
    for start, stop in zip(bounds, bounds[1:]):
        still = []
        for i in active:  # image by image: a round's placebos of one image at a time are in memory
            pool, scored, k = pools[i], scores[i], stop - start
            if start == 0 and first is not None:
                out = first[i]
            else:
                chunk = pool.steps(start, stop, into=None if pool.keep else buffer)  # type: ignore[union-attr]
                (out,) = _run_stacked(forward_func, [_placebo_stack(chunk, originals.device)], _rows(run, [i]))
                del chunk
            real_first = scored.outputs[:1].to(out.device).expand(k, 1, -1)
            block = torch.cat([real_first, out.reshape(k, -1, out.shape[-1])], dim=1)  # (k, N, C)
            drawn[i].append(_placebo_statistics(block, scored.target, pool.sequence, test))  # type: ignore[union-attr]
            if test.placebo_stop is None:
                continue
            observed = scored.test.statistic.double()
            so_far = torch.cat(drawn[i]).to(observed.device)
            if not bool(placebo_stopped(observed, so_far, test.placebo_stop).all()):
                still.append(i)
        active = still
        if not active:
            break
    return [
        None if i not in drawn else placebo_result(scores[i].test.statistic.double(), torch.cat(drawn[i]), test)
        for i in range(len(pools))
    ]


def placebo_seed(seed: int, index: int) -> int:
    """The placebo seed of image ``index`` of a batch: a 63-bit hash of ``(seed, index)`` (numpy's SeedSequence)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def placebo_pools(
    sequences: Sequence[InterventionSequence], test: TestSettings, *, keep: bool = True
) -> list[PlaceboPool | None]:
    """Each sequence's pool of placebos for ``test`` (drawn on demand), seeded per image from ``test.seed``
    (:func:`placebo_seed`); None for a periodic sequence, all None without placebos (``test.n_placebos`` 0).
    ``keep=False`` for pools one :func:`placebo_tests` call reads once (they keep none of their placebos;
    :class:`~propgrad.sources.placebo_sequences.PlaceboPool`), True for pools several models share."""
    from propgrad.sources.placebo_sequences import PlaceboDraw, PlaceboPool

    if not test.n_placebos:
        return [None] * len(sequences)
    draw = PlaceboDraw(test.n_placebos, variant=test.placebo)  # checked with the test
    return [
        None if seq.periodic else PlaceboPool(seq, replace(draw, seed=placebo_seed(test.seed, i)), keep=keep)
        for i, seq in enumerate(sequences)
    ]


def first_round(
    pools: Sequence[PlaceboPool | None], test: TestSettings, device: torch.device
) -> list[list[torch.Tensor] | None]:
    """The images each pool's placebos run in the placebo test's first round, one piece (k (N - 1), 3, H, W)
    (None for a None pool), for a caller that runs them in a forward pass of its own (``sequence_outputs``'s
    ``extra``) and hands :func:`placebo_tests` the outputs (``first=``)."""
    stop = placebo_bounds(test.n_placebos, test.placebo_stop)[1]
    return [None if pool is None else _placebo_stack(pool.steps(0, stop), device) for pool in pools]


def _placebo_stack(chunk: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """The images k placebos run, one piece (k (N - 1), 3, H, W) of their steps (k, N - 1, 3, H, W): every step
    but the first, which is the real sequence's (:class:`~propgrad.sources.placebo_sequences.PlaceboPool`'s
    contract), so its outputs are the real first step's. A chunk as the pool draws it is one block, so the
    piece is a view the model's batches are cut from."""
    return [chunk.flatten(0, 1).to(device)]


def _rows(run: RunSettings, images: Sequence[int]) -> RunSettings:
    """``run`` with its per-image extra arguments cut to the rows of ``images`` (in that order)."""
    if not any(run.per_image_args):
        return run
    index = list(images)
    extra = tuple(
        arg[index] if flag else arg for arg, flag in zip(run.additional_forward_args, run.per_image_args, strict=True)
    )
    return replace(run, additional_forward_args=extra)


def _placebo_statistics(
    block: torch.Tensor, target: int | None, sequence: InterventionSequence, test: TestSettings
) -> torch.Tensor:
    """The statistics (k,) or (k, C) of k placebos of one real sequence from their outputs (k, N, C).

    A placebo has the real sequence's values and is never periodic. A built-in statistic is
    computed column by column, so the placebos side by side as columns give each placebo's own
    statistic in one call; a callable or a whole-vector norm mixes columns and is called per placebo.
    """
    scored = block.double() if target is None else block[:, :, target].double()
    values = sequence.values if test.per == "unit" else None
    statistic = test.statistic
    if not isinstance(statistic, str) or statistic in VECTOR_NORMS:
        return torch.stack([sequence_statistic(x, values, statistic=statistic) for x in scored])
    columns = scored.movedim(0, 1)  # (N, k) or (N, k, C)
    result = sequence_statistic(columns.reshape(columns.shape[0], -1), values, statistic=statistic)
    return result.reshape(columns.shape[1:])


def _expand_rows(arg: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Repeat row i of a per-image argument ``lengths[i]`` times (one per forward row of that image)."""
    repeats = torch.as_tensor(lengths, device=arg.device)
    return arg.repeat_interleave(repeats, dim=0)
