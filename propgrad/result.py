"""The result of ``PropertyGradient.attribute``: scores, test, flips, the sequence, and plots."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from propgrad.atomic_files import write_json
from propgrad.plotting import (
    _pyplot,
    plot_behaviour,
    plot_filmstrip,
    plot_null_distribution,
    save_figure,
    save_filmstrip,
)
from propgrad.sources.base import InterventionSequence

if TYPE_CHECKING:
    from propgrad.stats.flips import FlipResult
    from propgrad.stats.permutation import PermutationResult
    from propgrad.stats.placebo import PlaceboResult


_STATISTIC_LABELS = {"gradient": "E|grad|", "pearson": "|Pearson r|"}


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
        placebo: The placebo-controlled test (``attribute(..., test="both")``), reported beside the
            permutation test: does the property move the model more than an arbitrary change of the
            same size? None when it was not run.
        correction: The multiple-testing correction over the scored columns (``"holm"``, ``"bh"``) or None.
        p_value_adjusted: The permutation p-values adjusted by ``correction`` (None without one).
        min_effect: The effect-size floor of both tests' ``significant`` (0.0: none).
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
        """``p_value < alpha`` (adjusted p-values with a ``correction``; score >= ``min_effect`` too)."""
        return self.test.significant

    @property
    def values(self) -> torch.Tensor:
        """The property values (N,)."""
        return self.sequence.values

    @property
    def images(self) -> torch.Tensor:
        """The intervened images (N, 3, H, W)."""
        return self.sequence.images

    def summary(self, labels: Sequence[str] | None = None) -> str:
        """A few lines for a terminal: score, p-value, significance and flips."""
        seq = self.sequence
        lines = [
            f"source {self.source}: {seq.property_name} over {len(seq)} steps "
            f"({float(seq.values[0]):.4g} to {float(seq.values[-1]):.4g} {seq.unit}"
            f"{', periodic' if seq.periodic else ''})"
        ]
        scores = self.score.reshape(-1)
        columns = [self.target] if self.target is not None else list(range(scores.numel()))
        order = torch.argsort(scores, descending=True)[:10].tolist()
        for k in order:
            j = columns[k]
            name = labels[j] if labels is not None and j is not None and j < len(labels) else f"output {j}"
            p = float(self.p_value.reshape(-1)[k])
            sig = "significant" if bool(self.significant.reshape(-1)[k]) else "not significant"
            adjusted = "" if self.p_value_adjusted is None else f" ({self.correction}: {self._adjusted(k):.4g})"
            lines.append(
                f"  {name:<16} E|grad| = {float(scores[k]):.4g} {self.score_unit}   p = {p:.4g}{adjusted}   "
                f"({sig} at alpha={self.test.alpha}{self._floor()})"
            )
            if self.placebo is not None:
                lines.append("  " + " " * 16 + " " + self._placebo_line(k))
        if len(columns) > len(order):
            lines.append(f"  ... {len(columns) - len(order)} more output columns")
        f = self.flips
        where = ", ".join(f"{float(seq.values[i]):.4g}" for i in f.flip_steps.tolist()) or "none"
        lines.append(
            f"  decision flips: {f.n_flips} (at {seq.property_name} = {where}); "
            f"final decision {'differs from' if f.final_differs else 'equals'} the original"
        )
        return "\n".join(lines)

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
        mean = float(plc.placebo_scores.reshape(plc.n_placebos, -1)[:, k].mean())
        return (
            f"placebo test: p = {p:.4g}{adjusted} against {plc.n_placebos} changes of the same size "
            f"(mean {mean:.4g}) ({sig} at alpha={plc.alpha}{self._floor()})"
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
            "sequence_metadata": json.loads(json.dumps(seq.metadata, default=str)),
        }

    def plot(self, labels: Sequence[str] | None = None, frames: int = 8) -> Any:
        """A figure with the behaviour curve, the null distribution and a filmstrip of the sequence."""
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

    def save(self, out_dir: Path, labels: Sequence[str] | None = None, stem: str = "explanation") -> list[Path]:
        """Write ``<stem>.json``, ``<stem>.png`` (the figure) and ``<stem>_filmstrip.png`` atomically."""
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
        return paths
