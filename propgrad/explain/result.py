"""The result of ``PropertyGradient.attribute``: scores, test, flips, the sequence, and plots."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from propgrad.core.atomic_files import write_json
from propgrad.core.plotting import (
    BandStyle,
    ClassCurves,
    _pyplot,
    class_figure,
    format_angle_axis,
    plot_behaviour,
    plot_filmstrip,
    plot_null_distribution,
    save_figure,
    save_filmstrip,
)
from propgrad.errors import InvalidParameterError
from propgrad.explain.zero_shot import ClassGrouping
from propgrad.sources.base import InterventionSequence
from propgrad.stats.practical_size import PracticalSize, practical_size, reading, why_untested
from propgrad.stats.statistic import LABELS as _STATISTIC_LABELS
from propgrad.stats.vector_statistic import VECTOR_NORMS

if TYPE_CHECKING:
    from propgrad.explain.scoring import PropertyAxis, SequenceScore
    from propgrad.stats.flips import FlipResult
    from propgrad.stats.permutation import PermutationResult
    from propgrad.stats.placebo_test import PlaceboResult
    from propgrad.stats.settings import TestSettings


@dataclass(frozen=True)
class ClassScores:
    """An explanation aggregated per class, for models with several output columns (descriptors) per class.

    The paper's CLIP analysis (Sec. 4.4, Appendix E): each class has D text descriptors, each an
    output column; the curves are the per-class mean ± std over the descriptors along the
    sequence (Figs. 8, 36-39), and the scores are those of the class-mean curves (Tab. 15: "the
    scores achieved by the visualized means"; Tab. 14's layout: one row per intervention, one
    column per class) beside the score of every descriptor.

    Attributes:
        grouping: Class names, the (K, D) columns of each class and their labels.
        mean: Per-class mean over the descriptors along the sequence (N, K), float64.
        std: Per-class standard deviation over the descriptors (N, K) (population, ``ddof=0``).
        original_mean: Per-class mean on the original image (K,).
        test: The test of the K class-mean curves (same statistic, K, seed and alpha as the
            explanation's; ``significant`` with its correction over the K classes and ``min_effect``).
        flips: Where the class with the highest mean similarity changes, against the original image.
        descriptor_score: The explanation's score of every descriptor (K, D); NaN for columns
            that were not scored (a ``target`` was given).
        descriptor_p_value: Their p-values (K, D) (NaN when not scored).
        descriptor_significant: Their significance (K, D), as the explanation's ``significant``.
        p_value_adjusted: The class tests' p-values adjusted over the K classes, or None.
    """

    grouping: ClassGrouping
    mean: torch.Tensor
    std: torch.Tensor
    original_mean: torch.Tensor
    test: PermutationResult
    flips: FlipResult
    descriptor_score: torch.Tensor
    descriptor_p_value: torch.Tensor
    descriptor_significant: torch.Tensor
    p_value_adjusted: torch.Tensor | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        """The K class names."""
        return self.grouping.class_names

    @property
    def score(self) -> torch.Tensor:
        """The statistic of each class-mean curve (K,)."""
        return self.test.statistic

    @property
    def p_value(self) -> torch.Tensor:
        """The permutation p-value of each class-mean curve (K,)."""
        return self.test.p_value

    @property
    def significant(self) -> torch.Tensor:
        """Significance of each class-mean curve (K,)."""
        return self.test.significant

    @property
    def top_class(self) -> torch.Tensor:
        """The class with the highest mean similarity at each step (N,)."""
        return self.mean.argmax(dim=1)

    @property
    def original_top_class(self) -> int:
        """The class with the highest mean similarity on the original image."""
        return int(self.original_mean.argmax())

    @property
    def descriptor_score_mean(self) -> torch.Tensor:
        """Mean of the descriptors' scores per class (K,), over the scored ones."""
        return self.descriptor_score.nanmean(dim=1)

    @property
    def descriptor_score_std(self) -> torch.Tensor:
        """Population standard deviation of the descriptors' scores per class (K,), over the scored ones."""
        centred = self.descriptor_score - self.descriptor_score_mean[:, None]
        return centred.pow(2).nanmean(dim=1).sqrt()

    @property
    def n_significant_descriptors(self) -> torch.Tensor:
        """Significant descriptors per class (K,)."""
        return self.descriptor_significant.sum(dim=1)

    def class_index(self, name: str | int) -> int:
        """The index of a class given by name or index.

        Raises:
            ValueError: an unknown name or an index out of range, listing the classes.
        """
        names = self.class_names
        if isinstance(name, int) and not isinstance(name, bool) and 0 <= name < len(names):
            return name
        if isinstance(name, str) and name in names:
            return names.index(name)
        shown = ", ".join(repr(n) for n in names[:10]) + (" ..." if len(names) > 10 else "")
        raise InvalidParameterError(f"true_class {name!r} is not one of the {len(names)} classes ({shown})")

    def summary_lines(self, values: torch.Tensor, property_name: str, score_unit: str, label: str) -> list[str]:
        """The per-class block of :meth:`Explanation.summary`: up to 10 classes, then the true class's descriptors."""
        g = self.grouping
        k_total, d = g.n_classes, g.n_descriptors
        order = torch.argsort(self.mean.mean(0), descending=True)[:10].tolist()
        lines = [
            f"  per class ({k_total} classes x {d} descriptors; similarity = mean ± std over the descriptors, "
            f"averaged along the sequence; {label} of the class-mean curve, then of each descriptor):",
            f"    {'class':<20} {'similarity':>17}  {label + ' of mean':>16}  {'p':>8}  "
            f"{'descriptors: ' + label:>28}  significant",
        ]
        mean_similarity, mean_std = self.mean.mean(0), self.std.mean(0)
        score_mean, score_std = self.descriptor_score_mean, self.descriptor_score_std
        for k in order:
            sig = "yes" if bool(self.significant[k]) else "no"
            adjusted = "" if self.p_value_adjusted is None else f" (adj. {float(self.p_value_adjusted[k]):.3g})"
            scored = int((~torch.isnan(self.descriptor_score[k])).sum())
            lines.append(
                f"    {g.class_names[k][:20]:<20} {float(mean_similarity[k]):>8.4f} ± {float(mean_std[k]):<6.4f}  "
                f"{float(self.score[k]):>16.4g}  {float(self.p_value[k]):>8.3g}{adjusted}  "
                f"{float(score_mean[k]):>14.4g} ± {float(score_std[k]):<11.4g}  "
                f"{sig} (descriptors {int(self.n_significant_descriptors[k])}/{scored})"
            )
        if k_total > len(order):
            lines.append(f"    ... {k_total - len(order)} more classes")
        top = self.top_class
        counts = torch.bincount(top, minlength=k_total)
        ranked = [k for k in torch.argsort(counts, descending=True).tolist() if counts[k] > 0][:3]
        shares = ", ".join(f"{g.class_names[k]} at {int(counts[k])}" for k in ranked)
        where = ", ".join(f"{float(values[i]):.4g}" for i in self.flips.flip_steps.tolist()[:10]) or "none"
        more = " ..." if self.flips.n_flips > 10 else ""
        lines.append(
            f"  highest mean similarity along the sequence: {shares} of {top.numel()} steps; it changes "
            f"{self.flips.n_flips} times (at {property_name} = {where}{more})"
        )
        k = self.original_top_class
        lines.append(f"  descriptors of {g.class_names[k]!r} (highest mean similarity on the original image):")
        for j, text in enumerate(g.descriptor_labels()[k]):
            score = float(self.descriptor_score[k, j])
            if score != score:  # NaN: not scored
                lines.append(f"    {text[:32]:<32} not scored (a target column was given)")
                continue
            sig = "significant" if bool(self.descriptor_significant[k, j]) else "not significant"
            lines.append(
                f"    {text[:32]:<32} {label} = {score:.4g} {score_unit}   "
                f"p = {float(self.descriptor_p_value[k, j]):.4g} ({sig})"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record: the curves, the class tests, the (K, D) descriptor tables (NaN: null)."""
        return {
            **self.grouping.to_dict(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "original_mean": self.original_mean.tolist(),
            "top_class": self.top_class.tolist(),
            "original_top_class": self.original_top_class,
            "score": self.score.tolist(),
            "p_value": self.p_value.tolist(),
            "significant": self.significant.tolist(),
            "p_value_adjusted": None if self.p_value_adjusted is None else self.p_value_adjusted.tolist(),
            "test": self.test.to_dict(),
            "flips": self.flips.to_dict(),
            "descriptor_score": self.descriptor_score.tolist(),
            "descriptor_p_value": self.descriptor_p_value.tolist(),
            "descriptor_significant": self.descriptor_significant.tolist(),
            "descriptor_score_mean": self.descriptor_score_mean.tolist(),
            "descriptor_score_std": self.descriptor_score_std.tolist(),
            "n_significant_descriptors": self.n_significant_descriptors.tolist(),
        }


def aggregate_classes(
    grouping: ClassGrouping, scored: SequenceScore | Explanation, axis: PropertyAxis, test: TestSettings
) -> ClassScores:
    """Aggregate one explanation's outputs and per-column test per class.

    The class-mean curves are scored by the project's one scoring path
    (:func:`propgrad.explain.scoring.score_outputs`, which also finds where the top class changes) with
    the explanation's settings; ``test.correction`` (over the K classes) and ``test.min_effect``
    apply as they do to the columns. The class test is the fixed-K test whatever ``test.sequential``
    says (as it always was).

    Args:
        grouping: The classes and their columns.
        scored: The explanation's scoring (a :class:`~propgrad.explain.scoring.SequenceScore`, or an
            :class:`Explanation`): transformed ``outputs`` (N, C) along the sequence and
            ``original_outputs`` (C,), the ``target`` column (None: every column) and its ``test``,
            (C,) for ``target=None``, 0-d for a target column, whose ``significant`` is reported per descriptor.
        axis: What the scores are measured along (per step, or per unit of the sequence's values).
        test: The explanation's test settings, checked at their door.

    Raises:
        ValueError: the grouping names a column the outputs do not have.
    """
    from propgrad.explain.scoring import score_outputs
    from propgrad.stats.corrections import adjust_p_values
    from propgrad.stats.decision import decide

    outputs, original_outputs, column_test, target = (
        scored.outputs,
        scored.original_outputs,
        scored.test,
        scored.target,
    )
    grouping.check_fits(outputs.shape[1])
    mean, std = grouping.mean_std(outputs.double())
    original_mean, _ = grouping.mean_std(original_outputs.double())
    classes = score_outputs(mean, original_mean, None, axis, replace(test, sequential=None))
    result, adjusted = classes.test, None
    if test.correction is not None:
        adjusted = adjust_p_values(result.p_value, test.correction)
    if adjusted is not None or test.min_effect != 0:
        p = result.p_value if adjusted is None else adjusted
        result = replace(result, significant=decide(p, test.alpha, result.statistic, test.min_effect))
    n_columns = outputs.shape[1]
    column_score = torch.full((n_columns,), float("nan"), dtype=torch.float64)
    column_p = torch.full((n_columns,), float("nan"), dtype=torch.float64)
    column_significant = torch.zeros(n_columns, dtype=torch.bool)
    where = slice(None) if target is None else target
    column_score[where] = column_test.statistic.detach().cpu().double()
    column_p[where] = column_test.p_value.detach().cpu().double()
    column_significant[where] = column_test.significant.detach().cpu().bool()
    return ClassScores(
        grouping=grouping,
        mean=mean,
        std=std,
        original_mean=original_mean,
        test=result,
        flips=classes.flips,
        descriptor_score=grouping.gather(column_score),
        descriptor_p_value=grouping.gather(column_p),
        descriptor_significant=grouping.gather(column_significant),
        p_value_adjusted=adjusted,
    )


def null_margin(test: PermutationResult) -> torch.Tensor:
    """Observed statistic minus the ``1 - alpha`` quantile of its permutation null, per column.

    Positive when the statistic lies beyond the test's critical value, by how much (in the
    statistic's units); NaN where the null distribution was not kept.
    """
    statistic = test.statistic.double()
    if test.null_distribution is None:
        return torch.full_like(statistic, float("nan"))
    critical = torch.quantile(test.null_distribution.double(), 1 - test.alpha, dim=0)
    return statistic - critical


class Deferred:
    """A value computed when first read: ``Deferred(fn, *args)`` stands for ``fn(*args)``.

    Given as the ``effect_size`` of an :class:`Explanation`, the value is computed the first time
    ``explanation.effect_size`` is read (by :meth:`Explanation.to_dict`, :meth:`Explanation.summary`,
    comparison, pickling ...) and kept; an explanation whose effect size nobody reads (each checkpoint
    of ``propgrad track``) never computes it.
    """

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __call__(self) -> Any:
        return self.fn(*self.args)


class _ComputedOnFirstRead:
    """A frozen dataclass field that may be given as a :class:`Deferred`: computed on first read, then kept.

    The dataclass's ``__init__`` stores the given value through :meth:`__set__`; reading it resolves a
    :class:`Deferred` once (the instance stays frozen for users: assigning still raises). Its default is None.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_value"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return None  # the field's default
        value = obj.__dict__.get(self.slot)
        if isinstance(value, Deferred):
            value = value()
            obj.__dict__[self.slot] = value  # the frozen class's __setattr__ is not involved
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class Explanation:
    """One input's explanation.

    Attributes:
        score: The test statistic, one per scored output column (a 0-d tensor when a ``target``
            was given). With ``statistic="gradient"`` (the default) it is the expected property
            gradient magnitude E|∇X|, in output units per property step (or per unit of the
            property values with ``per="unit"``); with ``"pearson"`` it is |Pearson r| between
            the values and the outputs (unitless); with a callable, whatever it returns.
            ``test.statistic_name`` says which.
        p_value: Permutation-test p-value, same shape as ``score``.
        significant: ``p_value < alpha`` (by default). With ``correction`` the adjusted p-values are
            compared instead, and with ``min_effect`` the score must also be at least that.
        flips: Where the decision (argmax, or 0.5 for a single output) changes along the sequence;
            both flip labels compare with the decision on the original image.
        outputs: The transformed model outputs (N, C) along the sequence.
        original_outputs: The transformed outputs (C,) on the original image.
        target: The explained output column, or None when every column was scored.
        sequence: The intervention sequence (images, property values, name, unit, periodicity).
        test: The full permutation-test result (null distribution included when small).
        source: Name of the intervention source.
        score_unit: ``"per step"`` (the paper's convention) or ``"per <unit of the values>"``.
        placebo: The size-aware placebo-controlled test (run by default, ``n_placebos``), reported
            beside the permutation test: does the property move the model more than an arbitrary
            change of the same size? None when it was not run (``n_placebos=0``, or a periodic
            sequence, which has no placebos). ``verdict`` is its decision.
        correction: The multiple-testing correction over the scored columns (``"holm"``, ``"bh"``) or None.
        p_value_adjusted: The permutation p-values adjusted by ``correction`` (None without one).
        min_effect: The effect-size floor of both tests' ``significant`` (0.0: none).
        classes: The explanation aggregated per class (:class:`ClassScores`) when the model carries a
            class grouping (a :class:`~propgrad.explain.zero_shot.ZeroShotClassifier`: several descriptors per
            class) or ``PropertyGradient(..., classes=...)`` was given; None otherwise.
        effect_size: The score over the exact mean of its shuffled null (shape of ``score``,
            :func:`propgrad.stats.null_mean.effect_size`, no resampling): 1 is what a random order
            of the same outputs gives on average, an ordered response is well below 1 (a straight
            ramp of 31 steps: 0.18). NaN where no exact mean exists (``"pearson"``, a callable, a
            constant output); None when not computed. Given as a :class:`Deferred` (as
            :func:`propgrad.explain.explainer.explanation_of` does), it is computed when first read.
    """

    flips: FlipResult
    outputs: torch.Tensor
    target: int | None
    sequence: InterventionSequence
    test: PermutationResult
    source: str
    score_unit: str = "per step"
    original_outputs: torch.Tensor | None = None
    placebo: PlaceboResult | None = None
    correction: str | None = None
    p_value_adjusted: torch.Tensor | None = None
    min_effect: float = 0.0
    classes: ClassScores | None = None
    effect_size: torch.Tensor | None = _ComputedOnFirstRead()  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        """The instance's state for pickle and copy, with the effect size computed (a :class:`Deferred` is not kept)."""
        _ = self.effect_size
        return dict(self.__dict__)

    @property
    def score(self) -> torch.Tensor:
        """The test's statistic per scored column: E|∇X| for the default ``statistic="gradient"``."""
        return self.test.statistic

    @property
    def p_value(self) -> torch.Tensor:
        """The permutation-test p-values."""
        return self.test.p_value

    @property
    def significant(self) -> torch.Tensor:
        """The paper's permutation test: ``p_value < alpha`` (adjusted p-values with a ``correction``;
        score >= ``min_effect`` too). It says the outputs respond in an ordered, systematic way along
        the property, however small the response; :attr:`verdict` says whether it is larger than an
        arbitrary change of the image of the same size."""
        return self.test.significant

    @property
    def verdict(self) -> torch.Tensor | None:
        """The size-aware verdict per scored column (shape of ``score``): the placebo test's
        ``significant`` (``p < alpha``, adjusted with a ``correction``, score >= ``min_effect``);
        None when the placebo test did not run."""
        return None if self.placebo is None else self.placebo.significant

    @property
    def practical(self) -> PracticalSize:
        """The practical size: the largest change of every output column from the original image's
        value along the sequence (:func:`propgrad.stats.practical_size.practical_size`)."""
        original = self.original_outputs if self.original_outputs is not None else self.outputs[0]
        return practical_size(self.outputs, original)

    @property
    def reading(self) -> str:
        """One line reading the result of the top-scored column (the target's when one was given):
        both tests, the practical size and the flips, e.g. ``"systematic but small: 0.8 points,
        no decision flip"``."""
        return self.reading_of(self.top_index)

    @property
    def top_index(self) -> int:
        """The scored column :attr:`reading` reads: 0 for a ``target``, else the top-scored column (an
        index into ``score.reshape(-1)``; NaN scores rank last)."""
        return int(torch.argmax(torch.nan_to_num(self.score.reshape(-1), nan=-1.0)))

    def _size_column(self, k: int) -> int:
        """The output column whose practical size goes with scored column ``k``: that column, or for a
        whole-vector statistic (one score for every output) the column that changes most."""
        if self.test.statistic_name in VECTOR_NORMS:
            return int(torch.argmax(self.practical.largest_change))
        return self.target if self.target is not None else k

    def reading_of(self, k: int) -> str:
        """:attr:`reading` of scored column ``k`` (an index into ``score.reshape(-1)``)."""
        column = self._size_column(k)
        size_aware = None if self.verdict is None else bool(self.verdict.reshape(-1)[k])
        return reading(
            bool(self.significant.reshape(-1)[k]),
            size_aware,
            self.practical.describe(column),
            self.flips.n_flips,
            why_untested(self.sequence.periodic),
        )

    @property
    def convergence_delta(self) -> torch.Tensor:
        """Captum's check of a result, here the permutation test's margin: see :func:`null_margin`.

        The observed statistic minus the ``1 - alpha`` quantile of its null distribution, per scored
        column (shape of ``score``): positive when the statistic lies beyond the test's critical value,
        by how much, in the statistic's units; NaN where the null was not kept (above 16 columns).
        ``torch.stack([e.convergence_delta for e in explanations])`` is Captum's per-input delta.
        """
        return null_margin(self.test)

    @property
    def values(self) -> torch.Tensor:
        """The property values (N,)."""
        return self.sequence.values

    @property
    def images(self) -> torch.Tensor:
        """The intervened images (N, 3, H, W)."""
        return self.sequence.images

    def __repr__(self) -> str:
        """One line: the source, property, steps and outputs, the top-scored result and its reading (the
        tensors are attributes; :meth:`summary` lists every column)."""
        seq, k = self.sequence, self.top_index
        if self.test.statistic_name in VECTOR_NORMS:
            name = "all outputs"
        else:
            column = self.target if self.target is not None else k
            labels = None if self.classes is None else self.classes.grouping.column_labels
            name = labels[column] if labels is not None and column < len(labels) else f"output {column}"
        return (
            f"Explanation({self.source}: {seq.property_name} over {len(seq)} steps, {self.outputs.shape[1]} outputs; "
            f"{name}: {self.statistic_label} = {float(self.score.reshape(-1)[k]):.4g} {self.score_unit}, "
            f"p = {float(self.p_value.reshape(-1)[k]):.3g}; reading: {self.reading})"
        )

    def _repr_html_(self) -> str:
        """The explanation in a notebook cell: the verdict card, the behaviour curve beside the null
        distribution with its caption, and the filmstrip, as self-contained HTML (every image a data URI,
        no script; :func:`propgrad.explain.explanation_html.explanation_fragment`)."""
        from propgrad.explain.explanation_html import explanation_fragment

        return explanation_fragment(self)

    def summary(self, labels: Sequence[str] | None = None) -> str:
        """A few lines for a terminal: score, p-value, significance and flips (and the per-class block).

        Args:
            labels: Names of the output columns (default: the class grouping's descriptor labels).
        """
        seq = self.sequence
        if labels is None and self.classes is not None:
            labels = self.classes.grouping.column_labels
        lines = [
            f"source {self.source}: {seq.property_name} over {len(seq)} steps "
            f"({float(seq.values[0]):.4g} to {float(seq.values[-1]):.4g} {seq.unit}"
            f"{', periodic' if seq.periodic else ''})",
            f"  reading: {self.reading}",
        ]
        scores = self.score.reshape(-1)
        columns = [self.target] if self.target is not None else list(range(scores.numel()))
        order = torch.argsort(scores, descending=True)[:10].tolist()
        practical = self.practical
        whole = self.test.statistic_name in VECTOR_NORMS
        for k in order:
            j = columns[k]
            name = labels[j] if labels is not None and j is not None and j < len(labels) else f"output {j}"
            if whole:
                name = "all outputs"
            p = float(self.p_value.reshape(-1)[k])
            sig = "significant" if bool(self.significant.reshape(-1)[k]) else "not significant"
            adjusted = "" if self.p_value_adjusted is None else f" ({self.correction}: {self._adjusted(k):.4g})"
            lines.append(
                f"  {name:<16} {self.statistic_label} = {float(scores[k]):.4g} {self.score_unit}   "
                f"largest change {practical.describe(self._size_column(k))}"
            )
            indent = "  " + " " * 16 + " "
            if self.placebo is not None:
                lines.append(indent + self._placebo_line(k))
            lines.append(
                f"{indent}permutation test (the paper's; an ordered response, however small): p = {p:.4g}{adjusted} "
                f"({sig} at alpha={self.test.alpha}{self._floor()}){self._ordering(k)}"
            )
        if len(columns) > len(order):
            lines.append(f"  ... {len(columns) - len(order)} more output columns")
        f = self.flips
        where = ", ".join(f"{float(seq.values[i]):.4g}" for i in f.flip_steps.tolist()) or "none"
        lines.append(
            f"  decision flips: {f.n_flips} (at {seq.property_name} = {where}); "
            f"final decision {'differs from' if f.final_differs else 'equals'} the original"
        )
        if self.classes is not None:
            lines += self.classes.summary_lines(seq.values, seq.property_name, self.score_unit, self.statistic_label)
        return "\n".join(lines)

    def _ordering(self, k: int) -> str:
        """``"; 0.18x a random order's"``: the effect size of column k, or "" when there is none."""
        if self.effect_size is None:
            return ""
        value = float(self.effect_size.reshape(-1)[k])
        return "" if value != value else f"; {self.statistic_label} {value:.2g}x that of a random order (1: no order)"

    def _adjusted(self, k: int) -> float:
        return float(self.p_value_adjusted.reshape(-1)[k]) if self.p_value_adjusted is not None else float("nan")

    def _floor(self) -> str:
        return f", score >= {self.min_effect:g}" if self.min_effect else ""

    def _placebo_line(self, k: int) -> str:
        plc = self.placebo
        assert plc is not None
        p = float(plc.p_value.reshape(-1)[k])
        adjusted = (
            ""
            if plc.p_value_adjusted is None
            else f" ({plc.correction}: {float(plc.p_value_adjusted.reshape(-1)[k]):.4g})"
        )
        sig = "significant" if bool(plc.significant.reshape(-1)[k]) else "not significant"
        used = plc.n_placebos if plc.n_used is None else int(plc.n_used.reshape(-1)[k])
        mean = float(plc.placebo_scores.reshape(plc.n_drawn, -1)[:used, k].mean())
        stopped = ", stopped early" if used < plc.n_placebos else ""
        return (
            f"placebo test (size-aware; larger than a change of the same size?): p = {p:.4g}{adjusted} over "
            f"{used} of {plc.n_placebos} placebo changes of the same size{stopped} (their mean {mean:.4g}) "
            f"({sig} at alpha={plc.alpha}{self._floor()})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record (without the images)."""
        seq = self.sequence
        return {
            "source": self.source,
            "property": seq.property_name,
            "unit": seq.unit,
            "periodic": seq.periodic,
            "target": self.target,
            "score_unit": self.score_unit,
            "score": self.score.tolist(),
            "p_value": self.p_value.tolist(),
            "significant": self.significant.tolist(),
            "flips": self.flips.to_dict(),
            "values": seq.values.tolist(),
            "outputs": self.outputs.tolist(),
            "original_outputs": None if self.original_outputs is None else self.original_outputs.tolist(),
            "test": self.test.to_dict(),
            "correction": self.correction,
            "p_value_adjusted": None if self.p_value_adjusted is None else self.p_value_adjusted.tolist(),
            "min_effect": self.min_effect,
            "placebo": None if self.placebo is None else self.placebo.to_dict(),
            "verdict": None if self.verdict is None else self.verdict.tolist(),
            "practical": self.practical.to_dict(),
            "reading": self.reading,
            "effect_size": None if self.effect_size is None else self.effect_size.tolist(),
            "sequence_metadata": json.loads(json.dumps(seq.metadata, default=str)),
            "classes": None if self.classes is None else self.classes.to_dict(),
        }

    def plot(self, labels: Sequence[str] | None = None, frames: int = 8) -> Any:
        """A figure with the behaviour curve, the null distribution and a filmstrip of the sequence."""
        if labels is None and self.classes is not None:
            labels = self.classes.grouping.column_labels
        plt = _pyplot()
        fig = plt.figure(figsize=(11, 6.5))
        grid = fig.add_gridspec(2, frames, height_ratios=[2.2, 1])
        self.plot_behaviour(fig.add_subplot(grid[0, : frames // 2]), labels=labels)
        self.plot_null(fig.add_subplot(grid[0, frames // 2 :]))
        plot_filmstrip([fig.add_subplot(grid[1, k]) for k in range(frames)], self.images, self.values)
        fig.tight_layout()
        return fig

    def plot_behaviour(self, ax: Any = None, labels: Sequence[str] | None = None) -> Any:
        """The outputs along the property axis with the decision threshold (binary outputs)."""
        ax = ax if ax is not None else _pyplot().subplots(figsize=(6, 4))[1]
        outputs = self.outputs if self.target is None else self.outputs[:, self.target]
        col_labels = labels if self.target is None or labels is None else [labels[self.target]]
        binary = self.outputs.shape[1] <= 2 and bool(((self.outputs >= 0) & (self.outputs <= 1)).all())
        seq = self.sequence
        plot_behaviour(
            ax,
            seq.values,
            outputs,
            labels=col_labels,
            threshold=0.5 if binary else None,
            xlabel=f"{seq.property_name} [{seq.unit}]",
        )
        format_angle_axis(ax, seq.values, periodic=seq.periodic, unit=seq.unit)
        ax.set_title(
            f"{self.statistic_label} = {float(self.score.reshape(-1).max()):.4f}, "
            f"p = {float(self.p_value.reshape(-1).min()):.3g}"
        )
        return ax

    @property
    def statistic_label(self) -> str:
        """What ``score`` is, for a title: ``E|grad|``, ``|Pearson r|`` or a callable statistic's name."""
        return _STATISTIC_LABELS.get(self.test.statistic_name, self.test.statistic_name)

    def plot_null(self, ax: Any = None, column: int = 0) -> Any:
        """The permutation null distribution with the observed statistic (when it was kept)."""
        ax = ax if ax is not None else _pyplot().subplots(figsize=(6, 4))[1]
        null = self.test.null_distribution
        if null is None:
            ax.text(0.5, 0.5, "null distribution not kept\n(many output columns)", ha="center", va="center")
            ax.axis("off")
            return ax
        null = null if null.dim() == 1 else null[:, column]
        plot_null_distribution(
            ax,
            null,
            float(self.score.reshape(-1)[column]),
            p_value=float(self.p_value.reshape(-1)[column]),
            name=self.test.statistic_name,
        )
        return ax

    def plot_classes(
        self, true_class: str | int | None = None, *, max_classes: int = 6, n_extrema: int | None = None
    ) -> Any:
        """Per-class mean ± std bands with the true class's maxima and minima and their frames (Fig. 8 layout).

        Args:
            true_class: The ground-truth class, by name or index (default: the class with the
                highest mean similarity on the original image).
            max_classes: Most classes drawn (the true class and the highest on average).
            n_extrema: Maxima and minima of the true class marked and shown, each (default: 2 for a
                periodic sequence, whose orientation responses often have two peaks per turn, else 1).

        Raises:
            ValueError: the explanation has no per-class aggregation, or an unknown class.
        """
        c = self.classes
        if c is None:
            raise InvalidParameterError(
                "this explanation has no per-class aggregation; use a ZeroShotClassifier or "
                "PropertyGradient(model, classes={...})"
            )
        k = c.original_top_class if true_class is None else c.class_index(true_class)
        seq = self.sequence
        curves = ClassCurves(seq.values, c.mean, c.std, c.class_names, periodic=seq.periodic, unit=seq.unit)
        style = BandStyle(
            true_class=k,
            xlabel=f"{seq.property_name} [{seq.unit}]",
            max_classes=max_classes,
            n_extrema=n_extrema if n_extrema is not None else 2 if seq.periodic else 1,
            true_class_note="true class" if true_class is not None else "highest on the original image",
        )
        title = (
            f"{self.source}: {seq.property_name}; {self.statistic_label} of {c.class_names[k]!r} = "
            f"{float(c.score[k]):.4g} {self.score_unit}, p = {float(c.p_value[k]):.3g}"
        )
        return class_figure(curves, seq.images, style, title=title)

    def save(
        self,
        out_dir: Path,
        labels: Sequence[str] | None = None,
        stem: str = "explanation",
        true_class: str | int | None = None,
    ) -> list[Path]:
        """Write ``<stem>.json``, ``<stem>.png`` (the figure) and ``<stem>_filmstrip.png`` atomically.

        With a per-class aggregation, also ``<stem>_classes.png`` (:meth:`plot_classes` of ``true_class``).
        """
        if labels is None and self.classes is not None:
            labels = self.classes.grouping.column_labels
        if true_class is not None and self.classes is not None:
            self.classes.class_index(true_class)  # an unknown class fails before anything is written
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        record = self.to_dict()
        if labels is not None:
            record["labels"] = list(labels)
        paths = [write_json(out_dir / f"{stem}.json", record), save_figure(self.plot(labels), out_dir / f"{stem}.png")]
        fidelity = self.sequence.metadata.get("fidelity", {}).get("ssim")
        captions = [f"SSIM {s:.2f}" for s in fidelity] if fidelity else None
        paths.append(
            save_filmstrip(
                out_dir / f"{stem}_filmstrip.png",
                self.images,
                self.values,
                title=f"{self.source}: {self.sequence.property_name}",
                captions=captions,
            )
        )
        if self.classes is not None:
            paths.append(save_figure(self.plot_classes(true_class), out_dir / f"{stem}_classes.png"))
        return paths
