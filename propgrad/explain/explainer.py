"""The Captum-style entry point: ``PropertyGradient(model).attribute(inputs, source)``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from propgrad.core.forward import OutputTransform, check_output_transform
from propgrad.core.validation import check_bool, check_choice, check_images, check_int, check_number
from propgrad.explain.arguments import (
    Target,
    as_batch,
    as_tuple,
    check_test_choice,
    is_per_image,
    null_margin,
    realisation_seeds,
    resolve_batch_size,
    resolve_source,
    resolve_targets,
)
from propgrad.explain.realisations import Realisations, summarise_explanations
from propgrad.explain.result import ClassScores, Explanation, aggregate_classes
from propgrad.explain.zero_shot import ClassGrouping, resolve_grouping
from propgrad.sources.base import InterventionSource
from propgrad.sources.placebo_sequences import VARIANTS, placebo_sequences
from propgrad.stats.corrections import METHODS, adjust_p_values, warn_if_infeasible
from propgrad.stats.permutation import check_test_settings
from propgrad.stats.placebo_test import placebo_test, significant_with_min_effect


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
            similarities) or a callable. None (the default) is ``"softmax"``, or the model's
            ``preferred_output_transform`` when it has one (a
            :class:`~propgrad.explain.zero_shot.ZeroShotClassifier` prefers ``"none"``: raw cosine similarities).
        classes: Aggregate every explanation per class (:class:`~propgrad.explain.result.ClassScores` in
            ``Explanation.classes``): a mapping ``class name -> list of output columns`` (equally many
            per class) or a :class:`~propgrad.explain.zero_shot.ClassGrouping`. None (default) uses the model's
            own grouping when it carries one (a ``ZeroShotClassifier``'s descriptors per class).

    Example:
        >>> pg = PropertyGradient(model, preprocess=normalise)
        >>> explanation = pg.attribute(image, source="alpha_patch", target=1)
        >>> explanation.score, explanation.p_value, explanation.significant
    """

    def __init__(
        self,
        forward_func: Callable[..., torch.Tensor],
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_transform: OutputTransform | None = None,
        classes: ClassGrouping | Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be an nn.Module or a callable, got {type(forward_func).__name__}")
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be callable or None, got {type(preprocess).__name__}")
        if output_transform is None:
            output_transform = getattr(forward_func, "preferred_output_transform", None) or "softmax"
        check_output_transform(output_transform)
        self.classes = resolve_grouping(classes, forward_func)
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
        test: str = "permutation",
        n_placebos: int = 199,
        placebo: str = "smooth_direction",
        min_effect: float = 0.0,
        correction: str | None = None,
        realisations: int | Sequence[int] | None = None,
        confidence_level: float = 0.95,
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        sequential: int | None = None,
    ) -> (
        Explanation
        | list[Explanation]
        | Realisations
        | list[Realisations]
        | tuple[Explanation | list[Explanation], torch.Tensor]
    ):
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
            sequential: Stop drawing permutations for a column once this many null statistics are
                as extreme as the observed one (Besag & Clifford; 10 is usual): p = limit / L
                after L permutations, far fewer for clearly non-significant columns; None
                (default) for the fixed-K test (:func:`propgrad.stats.permutation.permutation_test`).
            per: ``"step"`` (default, the paper's convention: change per discrete step of the
                sequence) or ``"unit"`` (change per unit of the source's property values, e.g.
                per degree; uses the actual, possibly non-uniform, spacing).
            batch_size: Images per forward pass.
            internal_batch_size: Captum's name for ``batch_size`` (either may be given; both with
                different values is an error).
            return_convergence_delta: As in Captum, also return a per-input check of the result:
                ``(explanations, delta)`` with ``delta`` a float tensor (B,) for one target column,
                (B, C) for every column, of :func:`propgrad.explain.arguments.null_margin`: the observed
                statistic minus the null distribution's ``1 - alpha`` quantile (positive: beyond the
                critical value; NaN when the null was not kept, above 16 columns). Not with
                ``realisations``.
            seed: Seed for the source's random choices and the permutations, an integer in
                [0, 2**63 - 1].
            show_progress: Show progress bars.
            test: ``"permutation"`` (default: the paper's test only) or ``"both"``: also the
                placebo-controlled test, reported beside it in ``Explanation.placebo``. The placebo
                test answers "does this property move the model more than an arbitrary change of the
                same size?": it builds ``n_placebos`` placebo sequences per image that change the
                image by the real sequence's mean |Δpixel| at every step but along random smooth
                directions (:func:`propgrad.sources.placebo_sequences.placebo_sequences`, seeded from ``seed``
                and the image's index), runs the model on them through the same batched forward pass,
                scores each with the same statistic and gives ``p = (b + 1) / (M + 1)``, b the placebos
                scoring at least the real sequence. The permutation test asks only whether the outputs
                change systematically, which a smooth intervention almost always makes them do.
                Periodic sequences have no placebos (ValueError).
            n_placebos: M, placebos per image (``p >= 1 / (M + 1)``: the default 199 resolves
                alpha = 0.01; a warning says when M is too small for ``alpha``).
            placebo: How placebos change the image: ``"smooth_direction"`` (the whole image) or
                ``"region"`` (a randomly shifted copy of the pixels the real intervention changes).
            min_effect: δ, the smallest score worth calling significant (in the score's units, e.g.
                E|∇X| per step): ``significant`` is ``p < alpha and score >= δ`` for both tests.
                The default 0 keeps the plain ``p < alpha`` of a non-negative statistic.
            correction: ``None`` (default), ``"holm"`` (family-wise error) or ``"bh"``
                (Benjamini-Hochberg false discovery rate) over the scored columns of each
                explanation (every output column when ``target`` is None; one column is a family of
                one): the adjusted p-values go to ``Explanation.p_value_adjusted`` (and the placebo
                test's ``p_value_adjusted``) and ``significant`` compares them with ``alpha``. Warns
                (:class:`~propgrad.stats.corrections.InfeasibleCorrectionWarning`) when K (or M) is
                too small for anything to be significant after the correction, with the K needed.
            realisations: None (default), a number R of realisations (seeds ``seed, seed + 1, ...``)
                or a list of seeds: the whole explanation is repeated per seed (the source's random
                draw, the permutations and the placebos all follow it; realisation r equals
                ``attribute(..., seed=seeds[r])``) and summarised in a
                :class:`~propgrad.explain.realisations.Realisations`: mean score, percentile bootstrap CI of the
                mean (``scipy.stats.bootstrap``, seeded with ``seed``; NaN for R = 1) and the
                fraction significant.
            confidence_level: Of the realisations' bootstrap interval.

        Returns:
            An :class:`~propgrad.explain.result.Explanation` for a single image, a list of them (one per
            input) for a batch; with ``realisations``, a :class:`~propgrad.explain.realisations.Realisations`
            (a list of them for a batch) instead; with ``return_convergence_delta``, the pair
            ``(explanations, delta)``.

        Raises:
            TypeError, ValueError: bad inputs or settings, checked before any image is generated
                or the model runs; a model, ``preprocess`` or ``output_transform`` returning the
                wrong thing (see :func:`propgrad.core.forward.run_model`).
        """
        check_choice(per, "per", ("step", "unit"))
        check_test_settings(n_permutations, alpha, statistic, seed)
        batch_size = resolve_batch_size(batch_size, internal_batch_size)
        if sequential is not None:
            sequential = check_int(sequential, "sequential", hint="extreme null statistics before a column stops")
        check_bool(return_convergence_delta, "return_convergence_delta")
        if return_convergence_delta and realisations is not None:
            raise ValueError("return_convergence_delta cannot be combined with realisations (one test per realisation)")
        check_bool(show_progress, "show_progress")
        test = check_test_choice(test)
        n_placebos = check_int(n_placebos, "n_placebos", hint="placebo sequences per image, e.g. 199")
        check_choice(placebo, "placebo", VARIANTS)
        min_effect = check_number(min_effect, "min_effect", hint="the smallest score worth calling significant")
        correction = check_choice(correction, "correction", METHODS)
        seeds = realisation_seeds(realisations, seed)
        check_number(
            confidence_level, "confidence_level", minimum=0, maximum=1, min_inclusive=False, max_inclusive=False
        )
        batched = isinstance(inputs, torch.Tensor) and inputs.dim() == 4
        images = check_images(inputs if batched else as_batch(inputs), "inputs", batched=True)
        src = resolve_source(source, source_params)
        job = _Job(
            forward_func=self.forward_func,
            preprocess=self.preprocess,
            output_transform=self.output_transform,
            images=images,
            source=src,
            targets=resolve_targets(target, images.shape[0]),
            extra=as_tuple(additional_forward_args),
            per=per,
            n_permutations=n_permutations,
            alpha=alpha,
            statistic=statistic,
            batch_size=batch_size,
            show_progress=show_progress,
            n_placebos=n_placebos if test == "both" else 0,
            placebo=placebo,
            min_effect=min_effect,
            correction=correction,
            classes=self.classes,
            sequential=sequential,
        )
        if seeds is None:
            explanations = job.explain(seed)
            result = explanations if batched else explanations[0]
            if return_convergence_delta:
                return result, torch.stack([null_margin(e.test) for e in explanations])
            return result
        runs = []
        for realisation_seed in seeds:  # a loop, not a comprehension: warnings point at the caller
            runs.append(job.explain(realisation_seed))
        results = [
            summarise_explanations(tuple(run[i] for run in runs), seeds, confidence_level, seed)
            for i in range(len(images))
        ]
        return results if batched else results[0]


@dataclass(frozen=True)
class _Job:
    """Everything of one ``attribute`` call but the seed: ``explain(seed)`` is one realisation."""

    forward_func: Callable[..., Any]
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None
    output_transform: OutputTransform
    images: torch.Tensor
    source: InterventionSource
    targets: list[int | None]
    extra: tuple[Any, ...]
    per: str
    n_permutations: int
    alpha: float
    statistic: str | Callable[..., torch.Tensor]
    batch_size: int
    show_progress: bool
    n_placebos: int  # 0: no placebo test
    placebo: str
    min_effect: float
    correction: str | None
    classes: ClassGrouping | None = None
    sequential: int | None = None

    def _forward_kwargs(self) -> dict[str, Any]:
        return {
            "preprocess": self.preprocess,
            "output_transform": self.output_transform,
            "additional_forward_args": self.extra,
            "per_image_args": tuple(is_per_image(arg, self.images.shape[0]) for arg in self.extra),
            "per": self.per,
            "statistic": self.statistic,
            "batch_size": self.batch_size,
            "show_progress": self.show_progress,
        }

    def explain(self, seed: int) -> list[Explanation]:
        """One explanation per image with every random choice drawn from ``seed``."""
        from propgrad.explain.scoring import placebo_statistics, score_sequences

        src = self.source
        sequences = [src.generate(image, seed=seed, show_progress=self.show_progress) for image in self.images]
        placebos = None
        if self.n_placebos:  # generated (and checked: no periodic sequence) before any model runs
            placebos = [
                placebo_sequences(seq, self.n_placebos, seed=_placebo_seed(seed, i), variant=self.placebo)
                for i, seq in enumerate(sequences)
            ]
        kwargs = self._forward_kwargs()
        scores = score_sequences(
            self.forward_func,
            self.images,
            sequences,
            targets=self.targets,
            n_permutations=self.n_permutations,
            alpha=self.alpha,
            seed=seed,
            sequential=self.sequential,
            **kwargs,
        )
        n_tests = int(scores[0].test.p_value.numel()) if scores else 1
        if self.correction is not None:  # stacklevel 4: the user's call of attribute
            warn_if_infeasible(n_tests, self.n_permutations, self.alpha, self.correction, stacklevel=4)
        placebo_scores = None
        if placebos is not None:
            warn_if_infeasible(n_tests, self.n_placebos, self.alpha, self.correction, what="placebos", stacklevel=4)
            targets = [scored.target for scored in scores]
            placebo_scores = placebo_statistics(self.forward_func, self.images, placebos, targets=targets, **kwargs)
        return [
            self._explanation(scored, seq, None if placebo_scores is None else placebo_scores[i], seed)
            for i, (scored, seq) in enumerate(zip(scores, sequences))
        ]

    def _explanation(
        self, scored: Any, sequence: Any, placebo_scores: torch.Tensor | None, seed: int = 0
    ) -> Explanation:
        test = scored.test
        adjusted = None
        if self.correction is not None:
            adjusted = adjust_p_values(test.p_value, self.correction)
        if adjusted is not None or self.min_effect != 0:
            p = test.p_value if adjusted is None else adjusted
            test = replace(
                test, significant=significant_with_min_effect(p, test.statistic, self.alpha, self.min_effect)
            )
        placebo = None
        if placebo_scores is not None:
            placebo = placebo_test(
                test.statistic, placebo_scores, alpha=self.alpha, min_effect=self.min_effect, correction=self.correction
            )
        src = self.source
        return Explanation(
            flips=scored.flips,
            outputs=scored.outputs,
            target=scored.target,
            sequence=sequence,
            test=test,
            source=src.name or type(src).__name__,
            score_unit="per step" if self.per == "step" else f"per {sequence.unit}",
            original_outputs=scored.original_outputs,
            placebo=placebo,
            correction=self.correction,
            p_value_adjusted=adjusted,
            min_effect=self.min_effect,
            classes=self._classes(scored, sequence, test, seed),
        )

    def _classes(self, scored: Any, sequence: Any, test: Any, seed: int) -> ClassScores | None:
        """The per-class aggregation of one explanation (None without a class grouping)."""
        from propgrad.explain.scoring import sequence_period

        if self.classes is None:
            return None
        return aggregate_classes(
            self.classes,
            scored.outputs,
            scored.original_outputs,
            test,
            scored.target,
            values=sequence.values if self.per == "unit" else None,
            periodic=sequence.periodic,
            period=sequence_period(sequence, self.per),
            n_permutations=self.n_permutations,
            alpha=self.alpha,
            statistic=self.statistic,
            seed=seed,
            correction=self.correction,
            min_effect=self.min_effect,
        )


def _placebo_seed(seed: int, index: int) -> int:
    """The placebo seed of image ``index`` of a batch: a 63-bit hash of ``(seed, index)`` (numpy's SeedSequence)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))
