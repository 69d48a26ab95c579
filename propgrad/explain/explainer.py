"""The Captum-style entry point: ``PropertyGradient(model).attribute(inputs, source)``.

Settings are checked once, at the door: how the model runs (:class:`~propgrad.core.forward.RunSettings`)
when the explainer is built, the test (:class:`~propgrad.stats.settings.TestSettings`), the inputs,
the source and the targets when ``attribute`` is called. Below the door everything travels as those
frozen objects and is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import torch

from propgrad.core.forward import OutputTransform, RunSettings, run_settings
from propgrad.core.validation import Bounds, check_images, check_number
from propgrad.errors import InvalidParameterError
from propgrad.explain.arguments import (
    Target,
    as_batch,
    realisation_seeds,
    refuse_moved_keywords,
    resolve_source,
    resolve_targets,
    resolve_test_settings,
    with_forward_args,
)
from propgrad.explain.explanations import Explanations
from propgrad.explain.realisations import Realisations, summarise_explanations
from propgrad.explain.result import Deferred, Explanation, aggregate_classes
from propgrad.explain.scoring import (
    PropertyAxis,
    SequenceScore,
    placebo_pools,
    placebo_tests,
    score_sequences,
    sequence_effect_size,
)
from propgrad.explain.zero_shot import ClassGrouping, resolve_grouping
from propgrad.sources.base import InterventionSequence, InterventionSource
from propgrad.stats.corrections import adjust_p_values, warn_if_infeasible
from propgrad.stats.decision import decide
from propgrad.stats.placebo_test import PlaceboResult
from propgrad.stats.settings import DEFAULT_PLACEBOS, TestSettings

_WARN_AT_CALLER = 5
"""``stacklevel`` of a warning raised in :meth:`_Job.explain` that points at the user's call: the
warning function, ``explain``, ``attribute`` (or ``attribute_realisations``) and the keyword guard."""


class PropertyGradient:
    """Explain a model by gradual interventions on one property.

    Like a Captum attribution method, the model goes into the constructor and ``attribute`` does
    the work. Instead of a pixel map, the explanation is the expected property gradient magnitude
    of the model's outputs along an intervention sequence, with a permutation-test p-value. How the
    model runs (``preprocess``, ``output_transform``, ``batch_size``, ``show_progress``) is checked
    once here and kept as one :class:`~propgrad.core.forward.RunSettings` (``run_settings``).

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
        batch_size: Images per forward pass (Captum's ``internal_batch_size``); a score does not
            depend on it beyond the model's own float rounding.
        show_progress: Show progress bars (the source's and the forward passes').

    Raises:
        TypeError, ValueError: a ``forward_func`` or ``preprocess`` that is not callable, an unknown
            ``output_transform``, bad ``classes``, ``batch_size`` or ``show_progress``.

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
        *,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> None:
        if not callable(forward_func):
            raise InvalidParameterError(
                f"forward_func must be an nn.Module or a callable, got {type(forward_func).__name__}"
            )
        if output_transform is None:
            output_transform = getattr(forward_func, "preferred_output_transform", None) or "softmax"
        self.run_settings = run_settings(
            preprocess=preprocess, output_transform=output_transform, batch_size=batch_size, show_progress=show_progress
        )
        self.classes = resolve_grouping(classes, forward_func)
        self.forward_func = forward_func

    @property
    def preprocess(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The map from [0, 1] images to what the model eats (None: none)."""
        return self.run_settings.preprocess

    @property
    def output_transform(self) -> OutputTransform:
        """The transform of the model's outputs: ``"softmax"``, ``"sigmoid"``, ``"none"`` or a callable."""
        return self.run_settings.output_transform

    @property
    def batch_size(self) -> int:
        """Images per forward pass."""
        return self.run_settings.batch_size

    @refuse_moved_keywords
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
        seed: int = 0,
        n_placebos: int = DEFAULT_PLACEBOS,
        min_effect: float = 0.0,
        correction: str | None = None,
        settings: TestSettings | None = None,
    ) -> Explanation | list[Explanation]:
        """Intervene on each input, run the model along the sequence and score the change.

        Every setting is checked once, here, before any image is generated or the model runs.

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
            seed: Seed for the source's random choices, the permutations and the placebos, an
                integer in [0, 2**63 - 1].
            n_placebos: M, the most placebos of the size-aware placebo test, run by default beside
                the paper's permutation test (``Explanation.placebo``, ``Explanation.verdict``); 0
                runs the permutation test alone. It answers "does this property move the model more
                than an arbitrary change of the same size?": placebo sequences change the image by
                the real sequence's mean |Δpixel| at every step but along random smooth directions
                (:class:`propgrad.sources.placebo_sequences.PlaceboPool`, seeded from ``seed`` and
                the image's index), the model runs on them in batched rounds, each is scored with
                the same statistic, and an image stops drawing once a placebo reaches its statistic
                (``settings.placebo_stop``, by default the smallest stop whose verdicts equal the
                fixed M-placebo test's: see :mod:`propgrad.stats.placebo_test`), so an image whose
                model ignores the property costs a few placebos and one it drives costs M. With M
                placebos p >= 1 / (M + 1): the default M = 100 resolves alpha = 0.01 (a warning
                says when M is too small for ``alpha``). The permutation test asks only whether the
                outputs change systematically, which a smooth intervention almost always makes them
                do. A periodic sequence (a full turn) has no placebos: its ``placebo`` is None.
            min_effect: δ >= 0, the smallest score worth calling significant (in the score's units,
                e.g. E|∇X| per step): ``significant`` is ``p < alpha and score >= δ`` for both tests.
                The default 0 keeps the plain ``p < alpha`` of a non-negative statistic.
            correction: ``None`` (default), ``"holm"`` (family-wise error) or ``"bh"``
                (Benjamini-Hochberg false discovery rate) over the scored columns of each
                explanation (every output column when ``target`` is None; one column is a family of
                one): the adjusted p-values go to ``Explanation.p_value_adjusted`` (and the placebo
                test's ``p_value_adjusted``) and ``significant`` compares them with ``alpha``. Warns
                (:class:`~propgrad.stats.corrections.InfeasibleCorrectionWarning`) when K (or M) is
                too small for anything to be significant after the correction, with the K needed.
            settings: The rarer test options in one :class:`~propgrad.stats.settings.TestSettings`
                (from :func:`propgrad.stats.settings.test_settings`): ``statistic`` (``"gradient"``,
                the paper's, ``"pearson"`` or a callable), ``per`` (``"step"``, the paper's
                convention, or ``"unit"``: change per unit of the source's property values, e.g. per
                degree, with their actual spacing), ``sequential`` (stop drawing permutations for a
                column once this many null statistics are as extreme as the observed one, Besag &
                Clifford; 10 is usual), ``placebo`` (``"smooth_direction"``, the whole image, or
                ``"region"``: a randomly shifted copy of the pixels the real intervention changes) and
                ``placebo_stop`` (the sequential placebo test's h, or None to draw all M). A
                keyword above left at its default takes the value of ``settings``; one given with
                another value wins, and contradicting a value ``settings`` changed is an error.

        Returns:
            An :class:`~propgrad.explain.result.Explanation` for a single image (3, H, W), a list of
            them (one per input) for a batch. Captum's convergence delta is
            ``explanation.convergence_delta``; R realisations of a random source are
            :meth:`attribute_realisations`.

        Raises:
            TypeError, ValueError: bad inputs or settings, checked before any image is generated
                or the model runs (a keyword of the earlier signature, such as ``realisations``,
                says where it went); a model, ``preprocess`` or ``output_transform`` returning the
                wrong thing (see :func:`propgrad.core.forward.run_model`).
        """
        tests = resolve_test_settings(
            settings,
            n_permutations=n_permutations,
            alpha=alpha,
            seed=seed,
            n_placebos=n_placebos,
            min_effect=min_effect,
            correction=correction,
        )
        job, batched = self._job(inputs, source, target, additional_forward_args, source_params)
        explanations = job.explain(tests)
        return Explanations(explanations) if batched else explanations[0]

    @refuse_moved_keywords
    def attribute_realisations(
        self,
        inputs: torch.Tensor,
        source: str | InterventionSource,
        realisations: int | Sequence[int],
        target: Target = None,
        additional_forward_args: Any = None,
        *,
        source_params: dict[str, Any] | None = None,
        settings: TestSettings | None = None,
        confidence_level: float = 0.95,
    ) -> Realisations | list[Realisations]:
        """The explanation of each input repeated over R realisations of a source with randomness.

        The source's random draw, the permutations and the placebos all follow each realisation's
        seed: realisation r equals ``attribute(..., settings=settings)`` with ``settings.seed``
        replaced by ``seeds[r]``. The summary holds the mean score, its percentile bootstrap
        interval (``scipy.stats.bootstrap``, seeded with ``settings.seed``; NaN for R = 1) and the
        fraction significant.

        Args:
            inputs, source, target, additional_forward_args, source_params: As for :meth:`attribute`.
            realisations: A number R of realisations (seeds ``settings.seed``, ``settings.seed + 1``,
                ...) or a list of seeds.
            settings: The test (:func:`propgrad.stats.settings.test_settings`: K, alpha, seed,
                n_placebos, min_effect, correction and the rarer options); None: its defaults.
            confidence_level: Of the bootstrap interval, in (0, 1).

        Returns:
            A :class:`~propgrad.explain.realisations.Realisations` for a single image, a list of them
            (one per input) for a batch.

        Raises:
            TypeError, ValueError: as :meth:`attribute`; bad ``realisations`` (no seed, a seed twice,
                past the largest seed) or ``confidence_level``.
        """
        tests = resolve_test_settings(
            settings,
            n_permutations=10_000,
            alpha=0.01,
            seed=0,
            n_placebos=DEFAULT_PLACEBOS,
            min_effect=0.0,
            correction=None,
        )
        seeds = realisation_seeds(realisations, tests.seed)
        check_number(confidence_level, "confidence_level", Bounds(0, 1, min_inclusive=False, max_inclusive=False))
        job, batched = self._job(inputs, source, target, additional_forward_args, source_params)
        runs = []
        for realisation_seed in seeds:  # a loop, not a comprehension: warnings point at the caller
            runs.append(job.explain(replace(tests, seed=realisation_seed)))
        results = [
            summarise_explanations(tuple(run[i] for run in runs), seeds, confidence_level, tests.seed)
            for i in range(len(job.images))
        ]
        return results if batched else results[0]

    def _job(
        self,
        inputs: Any,
        source: str | InterventionSource,
        target: Target,
        additional_forward_args: Any,
        source_params: dict[str, Any] | None,
    ) -> tuple[_Job, bool]:
        """The checked work of one call (the inputs checked once, here) and whether ``inputs`` was a batch."""
        batched = isinstance(inputs, torch.Tensor) and inputs.dim() == 4
        images = check_images(inputs if batched else as_batch(inputs), "inputs", batched=True)
        src = resolve_source(source, source_params)
        run = with_forward_args(self.run_settings, additional_forward_args, images.shape[0])
        targets = resolve_targets(target, images.shape[0])
        return _Job(self.forward_func, run, images, src, targets, self.classes), batched


@dataclass(frozen=True)
class _Job:
    """Everything of one ``attribute`` call but the test: ``explain(test)`` is one realisation.

    Attributes:
        forward_func: The model.
        run: How it runs, with this call's extra arguments.
        images: The checked inputs (B, 3, H, W).
        source: The resolved source.
        targets: One target column (or None: every column) per image.
        classes: The class grouping to aggregate by, or None.
    """

    forward_func: Callable[..., Any]
    run: RunSettings
    images: torch.Tensor
    source: InterventionSource
    targets: list[int | None]
    classes: ClassGrouping | None = None

    def explain(self, test: TestSettings) -> list[Explanation]:
        """One explanation per image with every random choice drawn from ``test.seed``."""
        src = self.source
        sequences = [
            src.generate_trusted(image, seed=test.seed, show_progress=self.run.show_progress) for image in self.images
        ]
        pools = placebo_pools(sequences, test, keep=False)  # read once: none kept, one image's round in memory
        scores = score_sequences(self.forward_func, self.images, sequences, self.targets, self.run, test)
        n_tests = int(scores[0].test.p_value.numel()) if scores else 1
        if test.correction is not None:
            warn_if_infeasible(n_tests, test.n_permutations, test.alpha, test.correction, stacklevel=_WARN_AT_CALLER)
        placebos: list[PlaceboResult | None] = [None] * len(scores)
        if any(pool is not None for pool in pools):
            warn_if_infeasible(
                n_tests, test.n_placebos, test.alpha, test.correction, what="placebos", stacklevel=_WARN_AT_CALLER
            )
            placebos = placebo_tests(self.forward_func, self.images, pools, scores, self.run, test)
        return [
            self._explanation(scored, seq, placebo, test) for scored, seq, placebo in zip(scores, sequences, placebos)
        ]

    def _explanation(
        self,
        scored: SequenceScore,
        sequence: InterventionSequence,
        placebo: PlaceboResult | None,
        test: TestSettings,
    ) -> Explanation:
        src = self.source
        return explanation_of(
            scored, sequence, placebo, test, source=src.name or type(src).__name__, classes=self.classes
        )


def explanation_of(
    scored: SequenceScore,
    sequence: InterventionSequence,
    placebo: PlaceboResult | None,
    test: TestSettings,
    *,
    source: str,
    classes: ClassGrouping | None = None,
) -> Explanation:
    """The :class:`Explanation` of one scored sequence: the correction and ``min_effect`` applied through the
    one decision rule, the class aggregation, the effect size. What ``attribute`` returns per image, and what
    ``propgrad track`` keeps per checkpoint.

    Args:
        scored: The sequence's score (:func:`propgrad.explain.scoring.score_outputs`).
        sequence: The intervention sequence.
        placebo: Its placebo test, or None.
        test: The test's settings, checked at their door.
        source: The source's name, as the explanation shows it.
        classes: The class grouping to aggregate by, or None.
    """
    result = scored.test
    adjusted = None
    if test.correction is not None:
        adjusted = adjust_p_values(result.p_value, test.correction)
    if adjusted is not None or test.min_effect != 0:
        p = result.p_value if adjusted is None else adjusted
        result = replace(result, significant=decide(p, test.alpha, result.statistic, test.min_effect))
    axis = PropertyAxis.of(sequence, test.per)
    aggregated = None
    if classes is not None:
        aggregated = aggregate_classes(classes, replace(scored, test=result), axis, test)
    return Explanation(
        flips=scored.flips,
        outputs=scored.outputs,
        target=scored.target,
        sequence=sequence,
        test=result,
        source=source,
        score_unit="per step" if test.per == "step" else f"per {sequence.unit}",
        original_outputs=scored.original_outputs,
        placebo=placebo,
        correction=test.correction,
        p_value_adjusted=adjusted,
        min_effect=test.min_effect,
        classes=aggregated,
        effect_size=Deferred(sequence_effect_size, scored, axis, test),  # computed when first read
    )
