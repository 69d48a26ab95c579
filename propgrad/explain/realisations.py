"""The result of ``PropertyGradient.attribute_realisations(inputs, source, R)``: one input over R seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from propgrad.core.plotting import _pyplot, plot_realisations
from propgrad.explain.result import Explanation
from propgrad.stats.bootstrap import RealisationSummary, summarise_realisations


@dataclass(frozen=True)
class Realisations:
    """One input's explanations over R realisations of a source with randomness (``attribute_realisations``).

    Realisation r is exactly ``attribute(..., seed=seeds[r])``: the source draws its sequence and
    the permutation test (and placebos) its randomness from that seed.

    Attributes:
        explanations: The R :class:`Explanation` objects, in the order of ``seeds``.
        seeds: The seed of each realisation.
        scores: Mean score over the realisations, the percentile-bootstrap confidence interval of
            that mean (NaN for R = 1; the value itself when every realisation scores the same) and
            the fraction of realisations significant under the permutation test.
        placebo: The same fraction (and score summary) for the placebo test, None when it was not run.
    """

    explanations: tuple[Explanation, ...]
    seeds: tuple[int, ...]
    scores: RealisationSummary
    placebo: RealisationSummary | None = None

    @property
    def mean_score(self) -> torch.Tensor:
        """Mean score over the realisations, shape () or (C,)."""
        return self.scores.mean

    @property
    def ci(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` of the bootstrap confidence interval of the mean score."""
        return self.scores.ci_low, self.scores.ci_high

    @property
    def fraction_significant(self) -> torch.Tensor:
        """Share of realisations significant under the permutation test."""
        return self.scores.fraction_significant

    def __len__(self) -> int:
        return len(self.explanations)

    def __repr__(self) -> str:
        """One line: the source and property, the seeds, the top mean score, its interval and share significant."""
        first, s = self.explanations[0], self.scores
        k = int(torch.argmax(torch.nan_to_num(s.mean.reshape(-1), nan=-1.0)))
        seeds = ", ".join(map(str, self.seeds[:6])) + (", ..." if len(self.seeds) > 6 else "")
        column = first.target if first.target is not None else k
        return (
            f"Realisations({first.source}: {first.sequence.property_name}, {len(self)} realisations (seeds {seeds}); "
            f"output {column}: mean {first.statistic_label} = {float(s.mean.reshape(-1)[k]):.4g} {first.score_unit} "
            f"[{float(s.ci_low.reshape(-1)[k]):.4g}, {float(s.ci_high.reshape(-1)[k]):.4g}], significant in "
            f"{100 * float(s.fraction_significant.reshape(-1)[k]):.0f}%)"
        )

    def _repr_html_(self) -> str:
        """The realisations in a notebook cell: the mean scores with their intervals, the R curves together and
        one row per realisation, as self-contained HTML
        (:func:`propgrad.explain.explanation_html.realisations_fragment`)."""
        from propgrad.explain.explanation_html import realisations_fragment

        return realisations_fragment(self)

    def summary(self, labels: Sequence[str] | None = None) -> str:
        """A few lines for a terminal: mean score, interval and share significant of the explained columns."""
        first = self.explanations[0]
        s = self.scores
        lines = [f"source {first.source}: {len(self)} realisations (seeds {', '.join(map(str, self.seeds))})"]
        columns = [first.target] if first.target is not None else list(range(s.mean.numel()))
        order = torch.argsort(s.mean.reshape(-1), descending=True)[:10].tolist()
        for k in order:
            j = columns[k]
            name = labels[j] if labels is not None and j is not None and j < len(labels) else f"output {j}"
            line = (
                f"  {name:<16} mean {first.statistic_label} = {float(s.mean.reshape(-1)[k]):.4g} {first.score_unit}, "
                f"{100 * s.confidence_level:g}% CI [{float(s.ci_low.reshape(-1)[k]):.4g}, "
                f"{float(s.ci_high.reshape(-1)[k]):.4g}], significant in "
                f"{100 * float(s.fraction_significant.reshape(-1)[k]):.0f}%"
            )
            if self.placebo is not None:
                line += f" (placebo test: {100 * float(self.placebo.fraction_significant.reshape(-1)[k]):.0f}%)"
            lines.append(line)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record: the summary and every realisation's :meth:`Explanation.to_dict`."""
        return {
            "seeds": list(self.seeds),
            "scores": self.scores.to_dict(),
            "placebo": None if self.placebo is None else self.placebo.to_dict(),
            "realisations": [e.to_dict() for e in self.explanations],
        }

    def plot_behaviour(self, ax: Any = None, column: int | None = None, label: str | None = None) -> Any:
        """The R behaviour curves of one output column together (default: the target, else the top mean score)."""
        ax = ax if ax is not None else _pyplot().subplots(figsize=(6, 4))[1]
        first = self.explanations[0]
        if column is None:
            column = first.target if first.target is not None else int(torch.argmax(self.scores.mean.reshape(-1)))
        curves = [(e.values, e.outputs[:, column]) for e in self.explanations]
        s = self.scores
        k = 0 if first.target is not None else column
        plot_realisations(
            ax,
            curves,
            seeds=self.seeds,
            xlabel=f"{first.sequence.property_name} [{first.sequence.unit}]",
            title=(
                f"{label or f'output {column}'}: mean {first.statistic_label} = {float(s.mean.reshape(-1)[k]):.4f} "
                f"[{float(s.ci_low.reshape(-1)[k]):.4f}, {float(s.ci_high.reshape(-1)[k]):.4f}]"
            ),
        )
        return ax


def summarise_explanations(
    explanations: tuple[Explanation, ...], seeds: tuple[int, ...], confidence_level: float, seed: int
) -> Realisations:
    """The :class:`Realisations` of one input's explanations over ``seeds``.

    Holds the mean score, its bootstrap interval and the share significant (under the permutation
    test, and under the placebo test when it was run).
    """
    scores = torch.stack([e.score.cpu() for e in explanations])
    summary = summarise_realisations(
        scores, torch.stack([e.significant.cpu() for e in explanations]), confidence_level=confidence_level, seed=seed
    )
    placebo = None
    if explanations[0].placebo is not None:
        placebo = summarise_realisations(
            scores,
            torch.stack([e.placebo.significant.cpu() for e in explanations if e.placebo is not None]),
            confidence_level=confidence_level,
            seed=seed,
        )
    return Realisations(explanations=explanations, seeds=seeds, scores=summary, placebo=placebo)
