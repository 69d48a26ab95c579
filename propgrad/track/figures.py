"""The figures of a track: the score per epoch (the paper's Fig. 7), the behaviour curves of every
epoch on one axis (Figs. 26-27) and the mean score against the number of flips (Fig. 6).

Each ``plot_*`` draws on a matplotlib Axes it is given (or a new figure) and returns the Axes;
:func:`save_track_figures` writes the three as PNG files (atomically, through
:func:`propgrad.core.plotting.save_figure`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from propgrad.core.plotting import save_figure
from propgrad.track.records import CheckpointScore, TrackSummary

#: File names of the figures in a track's output folder.
SCORE_FIGURE, BEHAVIOUR_FIGURE, FLIPS_FIGURE = "track_score.png", "track_behaviour.png", "track_score_vs_flips.png"


def _axes(ax: Any, size: tuple[float, float] = (6.4, 3.6)) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1]


def _column_index(score: CheckpointScore, column: int | None) -> int:
    """Where ``column`` sits among a score's scored columns (the first one for None)."""
    return 0 if column is None or column not in score.columns else score.columns.index(column)


def training_axis_label(scores: Sequence[CheckpointScore]) -> str:
    """``epoch`` when every checkpoint has one, else ``step``, else ``checkpoint``."""
    if scores and all(s.checkpoint.epoch is not None for s in scores):
        return "epoch"
    if scores and all(s.checkpoint.step is not None for s in scores):
        return "step"
    return "checkpoint"


def plot_score_over_training(
    scores: Sequence[CheckpointScore],
    ax: Any = None,
    *,
    column: int | None = None,
    label: str | None = None,
    unit: str | None = None,
) -> Any:
    """The score of one image along the checkpoints, flip checkpoints marked (Fig. 7).

    Args:
        scores: One image's scores, one per checkpoint (:meth:`TrackResult.of_image`).
        ax: Axes to draw on (None: a new figure).
        column: The scored column to draw (None: the first scored one).
        label: The line's legend label.
        unit: The score's unit for the y label (default: the scores' own).
    """
    ax = _axes(ax)
    ordered = sorted(scores, key=lambda s: s.checkpoint.order)
    x = [s.checkpoint.x for s in ordered]
    y = [s.score[_column_index(s, column)] for s in ordered]
    (line,) = ax.plot(x, y, marker="o", markersize=3, linewidth=1.4, label=label)
    flipped = [(xi, yi) for s, xi, yi in zip(ordered, x, y) if s.flipped]
    if flipped:
        ax.scatter(
            [p[0] for p in flipped],
            [p[1] for p in flipped],
            marker="x",
            s=42,
            color=line.get_color(),
            zorder=3,
            label=f"{label + ': ' if label else ''}prediction flips",
        )
    ax.set_xlabel(training_axis_label(ordered))
    unit = unit or (ordered[0].unit if ordered else "per step")
    ax.set_ylabel(f"E|∇X| ({unit})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_behaviour_over_training(
    scores: Sequence[CheckpointScore],
    ax: Any = None,
    *,
    column: int | None = None,
    threshold: float | None = None,
    cmap: str = "viridis",
) -> Any:
    """The scored output along the sequence at every checkpoint, on one axis, coloured by epoch (Figs. 26-27).

    Args:
        scores: One image's scores, one per checkpoint.
        ax: Axes to draw on (None: a new figure).
        column: The output column to draw (None: the first scored one, or column 0).
        threshold: Where the prediction flips, drawn as a red dotted line (default: 0.5 for two
            columns or one, else none).
        cmap: The colour map of the training axis.
    """
    import matplotlib as mpl

    ax = _axes(ax)
    ordered = sorted(scores, key=lambda s: s.checkpoint.order)
    if not ordered:
        return ax
    first = ordered[0]
    col = column if column is not None else next((c for c in first.columns if c is not None), 0)
    n_columns = len(first.original_outputs)
    if threshold is None and n_columns <= 2:
        threshold = 0.5
    x = [s.checkpoint.x for s in ordered]
    norm = mpl.colors.Normalize(vmin=min(x), vmax=max(x) if max(x) > min(x) else min(x) + 1)
    colours = mpl.colormaps[cmap]
    for s, xi in zip(ordered, x):
        ax.plot(s.values, [row[col] for row in s.outputs], color=colours(norm(xi)), linewidth=1.1)
    if threshold is not None:
        ax.axhline(threshold, color="red", linestyle=":", linewidth=1.2, label="decision threshold")
        ax.legend(fontsize="small", loc="best")
    mapping = mpl.cm.ScalarMappable(norm=norm, cmap=colours)
    ax.figure.colorbar(mapping, ax=ax, label=training_axis_label(ordered))
    ax.set_xlabel(first.property)
    ax.set_ylabel(f"output {col}")
    ax.grid(alpha=0.3)
    return ax


def plot_score_vs_flips(groups: Mapping[str, Sequence[TrackSummary]], ax: Any = None) -> Any:
    """Mean score over training against the number of checkpoints whose prediction flips (Fig. 6).

    Args:
        groups: Summaries per label (a model, a start): one point per image and scored column.
        ax: Axes to draw on (None: a new figure).
    """
    ax = _axes(ax, (5.0, 3.8))
    for label, summaries in groups.items():
        ax.scatter([s.n_flipped for s in summaries], [s.mean_score for s in summaries], label=label, s=28)
    ax.set_xlabel("checkpoints whose prediction flips")
    ax.set_ylabel("mean E|∇X| over training")
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(fontsize="small", loc="best")
    return ax


def track_figures(
    runs: Mapping[str, Sequence[CheckpointScore]],
    summaries: Mapping[str, Sequence[TrackSummary]],
    *,
    image: int = 0,
    column: int | None = None,
) -> dict[str, Any]:
    """The three figures of one or more tracks (one label per track) for one image: name -> figure."""
    import matplotlib.pyplot as plt

    score_fig, score_ax = plt.subplots(figsize=(6.4, 3.6))
    behaviour_fig, behaviour_axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 3.6), squeeze=False)
    for (label, scores), ax in zip(runs.items(), behaviour_axes[0]):
        own = [s for s in scores if s.image == image]
        plot_score_over_training(own, score_ax, column=column, label=label if len(runs) > 1 else f"image {image}")
        plot_behaviour_over_training(own, ax, column=column)
        if len(runs) > 1:
            ax.set_title(label, fontsize="medium")
    score_ax.set_title(
        f"image {image}: score per checkpoint (x: prediction flips along the sequence)", fontsize="small"
    )
    flips_fig = plot_score_vs_flips(summaries).figure
    for fig in (score_fig, behaviour_fig, flips_fig):
        fig.tight_layout()
    return {SCORE_FIGURE: score_fig, BEHAVIOUR_FIGURE: behaviour_fig, FLIPS_FIGURE: flips_fig}


def save_track_figures(figures: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write figures (name -> figure, from :func:`track_figures`) into ``out_dir`` atomically and close them."""
    return [save_figure(fig, Path(out_dir) / name) for name, fig in figures.items()]
