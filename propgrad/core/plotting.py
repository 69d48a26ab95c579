"""Plots of explanations: behaviour curves, null distributions and filmstrips (matplotlib, no LaTeX)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from propgrad.core.atomic_files import atomic_write


def _pyplot() -> Any:
    """matplotlib.pyplot, imported on first use (it picks a non-interactive backend when headless)."""
    import matplotlib.pyplot as plt

    return plt


def plot_behaviour(
    ax: Any,
    values: torch.Tensor,
    outputs: torch.Tensor,
    *,
    labels: Sequence[str] | None = None,
    threshold: float | None = None,
    xlabel: str = "property value",
    ylabel: str = "model output",
    max_lines: int = 10,
) -> Any:
    """Draw the model's outputs along the sequence, one line per column, with the decision threshold.

    Args:
        ax: A matplotlib Axes.
        values: Property values (N,).
        outputs: Outputs (N,) or (N, C); with many columns only the ``max_lines`` that change most are drawn.
        labels: Names of the columns.
        threshold: Draw a dotted horizontal line here (0.5 for binary probabilities).
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.
        max_lines: Most columns drawn.

    Returns:
        The Axes.
    """
    out = outputs.detach().cpu().float()
    out = out[:, None] if out.dim() == 1 else out
    x = values.detach().cpu().float().numpy()
    spread = out.max(0).values - out.min(0).values
    order = torch.argsort(spread, descending=True)[:max_lines].tolist()
    for j in sorted(order):
        name = labels[j] if labels is not None and j < len(labels) else f"output {j}"
        ax.plot(x, out[:, j].numpy(), marker="o", markersize=2.5, linewidth=1.5, label=name)
    if threshold is not None:
        ax.axhline(threshold, color="red", linestyle=":", linewidth=1.2, label="decision threshold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return ax


def plot_realisations(
    ax: Any,
    curves: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    seeds: Sequence[int] | None = None,
    xlabel: str = "property value",
    ylabel: str = "model output",
    title: str | None = None,
    max_legend: int = 10,
) -> Any:
    """Draw the behaviour curves of R realisations of one intervention together (one output column each).

    Args:
        ax: A matplotlib Axes.
        curves: R pairs ``(values (N_r,), outputs (N_r,))``.
        seeds: The realisations' seeds, for the legend.
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.
        title: Axes title.
        max_legend: Legend entries shown at most (none when there are more curves).

    Returns:
        The Axes.
    """
    alpha = 0.9 if len(curves) <= 5 else max(0.25, 4.0 / len(curves))
    for r, (values, outputs) in enumerate(curves):
        name = f"seed {seeds[r]}" if seeds is not None else f"realisation {r}"
        x = values.detach().cpu().float().numpy()
        ax.plot(x, outputs.detach().cpu().float().numpy(), marker="o", markersize=2, alpha=alpha, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(curves) <= max_legend:
        ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return ax


@dataclass(frozen=True)
class NullSides:
    """What an observed statistic left of, right of or inside its shuffled null means, for one statistic.

    Attributes:
        left: What a value left of the null says about the outputs.
        right: What a value right of the null says.
        inside: What a value inside the null says.
        rule: One sentence: on which side an ordered response lies.
        hints: Short labels for the two ends of the histogram's axis, ``(left, right)``.
    """

    left: str
    right: str
    inside: str
    rule: str
    hints: tuple[str, str]


_SMOOTHNESS = NullSides(  # mean over steps of |derivative|: an ordered response is smoother than a shuffle
    left="the outputs change more smoothly along the property than the same outputs in a random order: "
    "an ordered, systematic response, however small",
    right="the outputs jump between neighbouring steps more than in a random order: a jagged, oscillating response",
    inside="the outputs change along the property about as smoothly as the same outputs shuffled: "
    "no systematic response to the property",
    rule="An ordered response lies left of the null, a jagged one right of it; neither side says how large it is.",
    hints=("ordered, smooth", "jagged"),
)
NULL_SIDES: dict[str, NullSides] = {
    "gradient": _SMOOTHNESS,
    "vector_l1": _SMOOTHNESS,
    "vector_l2": _SMOOTHNESS,
    "pearson": NullSides(
        left="the outputs correlate with the property less than the same outputs shuffled usually do: no trend",
        right="the outputs follow the property more linearly than the same outputs shuffled: an ordered, "
        "monotone response, however small",
        inside="the outputs have no more linear trend along the property than the same outputs shuffled",
        rule="An ordered (monotone) response lies right of the null; that side does not say how large it is.",
        hints=("no trend", "ordered, monotone"),
    ),
}
"""What either side of the shuffled null means, per built-in statistic name (``propgrad.stats.statistic.STATISTICS``).

E|grad| and the whole-vector norms average the size of the outputs' derivative along the steps: a
response that follows the property changes little between neighbouring steps, much less than the
same outputs in a random order, so it lies LEFT of the null however small it is. |Pearson r| is
large for a response that follows the property, so it lies RIGHT of the null."""

NULL_TAIL = 0.025
"""An observed statistic below this fraction of the null is "left of the null", above ``1 - NULL_TAIL``
of it "right of the null" (the two-sided 5 % tails); anywhere else "inside the null"."""


def null_position(observed: float, null: torch.Tensor) -> str:
    """Where an observed statistic lies against its null distribution: ``"left"``, ``"right"`` or ``"inside"``.

    ``"left"`` when fewer than :data:`NULL_TAIL` of the null's finite values are at most the observed
    value, ``"right"`` when fewer than that are at least it, ``"inside"`` otherwise (also for a NaN
    observed value or a null without finite values).
    """
    values = null.detach().cpu().double().reshape(-1)
    values = values[torch.isfinite(values)]
    if values.numel() == 0 or not math.isfinite(observed):
        return "inside"
    if float((values <= observed).double().mean()) < NULL_TAIL:
        return "left"
    if float((values >= observed).double().mean()) < NULL_TAIL:
        return "right"
    return "inside"


def null_caption(statistic: str, observed: float, null: torch.Tensor, *, label: str | None = None) -> str:
    """One sentence under a null histogram: where the observed statistic lies and what that means.

    Args:
        statistic: The statistic's name (``"gradient"``, ``"pearson"``, ``"vector_l1"``, ``"vector_l2"``
            or a callable's name).
        observed: The observed statistic.
        null: Its null distribution (K,) over shuffled orders of the same outputs.
        label: What the caption calls the statistic (default: ``statistic``).

    Returns:
        E.g. ``"Observed E|grad| left of the null: the outputs change more smoothly along the property
        than the same outputs in a random order: an ordered, systematic response, however small. ..."``.
    """
    label = label or statistic
    position = null_position(observed, null)
    where = "inside the null" if position == "inside" else f"{position} of the null"
    sides = NULL_SIDES.get(statistic)
    if sides is None:
        return f"Observed {label} {where}. The test is two-sided; what either side means depends on the statistic."
    return f"Observed {label} {where}: {getattr(sides, position)}. {sides.rule}"


def plot_null_distribution(
    ax: Any, null: torch.Tensor, observed: float, *, p_value: float, name: str, label: str | None = None
) -> Any:
    """Histogram of the permutation null distribution with the observed statistic marked.

    For a built-in statistic (:data:`NULL_SIDES`) the two ends of the axis say what either side of
    the null means (for E|grad|: "← ordered, smooth" on the left, "jagged →" on the right);
    :func:`null_caption` is the sentence to print under the figure.

    Args:
        ax: A matplotlib Axes.
        null: The null distribution (K,).
        observed: The observed statistic.
        p_value: Its p-value, for the legend.
        name: The statistic's name (``"gradient"``, ``"pearson"``, ...).
        label: The x axis label (default: ``name``).

    Returns:
        The Axes.
    """
    ax.hist(null.detach().cpu().float().numpy(), bins=50, color="0.6", label="shuffled order")
    ax.axvline(observed, color="red", linewidth=2, label=f"observed (p = {p_value:.4g})")
    ax.set_xlabel(label or name)
    ax.set_ylabel("count")
    sides = NULL_SIDES.get(name)
    if sides is not None:
        for x, align, text in ((0.0, "left", f"← {sides.hints[0]}"), (1.0, "right", f"{sides.hints[1]} →")):
            ax.text(x, 1.01, text, transform=ax.transAxes, ha=align, va="bottom", fontsize="small", color="0.3")
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_filmstrip(
    axes: Sequence[Any], images: torch.Tensor, values: torch.Tensor, *, captions: Sequence[str] | None = None
) -> None:
    """Show evenly spaced steps of a sequence, one per Axes, captioned with the property value."""
    n = images.shape[0]
    picks = torch.linspace(0, n - 1, len(axes)).round().long().tolist()
    for ax, i in zip(axes, picks):
        ax.imshow(images[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        caption = f"{float(values[i]):.3g}"
        if captions is not None:
            caption += f"\n{captions[i]}"
        ax.set_title(caption, fontsize="small")
        ax.axis("off")


def save_filmstrip(
    path: Path,
    images: torch.Tensor,
    values: torch.Tensor,
    *,
    frames: int = 8,
    title: str | None = None,
    captions: Sequence[str] | None = None,
) -> Path:
    """Save a row of evenly spaced steps of a sequence as a PNG (atomically)."""
    plt = _pyplot()
    frames = max(1, min(frames, images.shape[0]))
    fig, axes = plt.subplots(1, frames, figsize=(1.6 * frames, 2.1), squeeze=False)
    plot_filmstrip(list(axes[0]), images, values, captions=captions)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def save_figure(fig: Any, path: Path, dpi: int = 120) -> Path:
    """Write a figure atomically and close it."""
    plt = _pyplot()
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)
    return path


def curve_extrema(curve: torch.Tensor, n: int = 1, *, periodic: bool = False) -> tuple[list[int], list[int]]:
    """The steps of the ``n`` highest maxima and ``n`` lowest minima of a curve (N,).

    The global maximum and minimum come first; further ones must be local extrema (a periodic
    curve wraps around, so its ends are neighbours) at least a quarter of the sequence away from
    the ones already picked, so that two marks never sit on the same peak.

    Args:
        curve: Values (N,) along the sequence.
        n: Maxima and minima wanted (each); fewer are returned when the curve has fewer.
        periodic: The sequence wraps around.

    Returns:
        ``(maxima, minima)``: lists of step indices, the most extreme first.
    """
    y = curve.detach().cpu().double()
    length = y.numel()
    separation = max(1, length // 4)

    def pick(values: torch.Tensor) -> list[int]:
        if periodic:
            left, right = torch.roll(values, 1), torch.roll(values, -1)
        else:
            inf = torch.tensor([float("-inf")], dtype=values.dtype)
            left, right = torch.cat([inf, values[:-1]]), torch.cat([values[1:], inf])
        local = (values >= left) & (values >= right)
        chosen: list[int] = []
        for i in torch.argsort(values, descending=True).tolist():
            if len(chosen) >= n:
                break
            if chosen and not bool(local[i]):
                continue
            if all(_distance(i, j, length, periodic) >= separation for j in chosen):
                chosen.append(i)
        return chosen

    return pick(y), pick(-y)


def _distance(i: int, j: int, length: int, periodic: bool) -> int:
    d = abs(i - j)
    return min(d, length - d) if periodic else d


def is_degrees(unit: str) -> bool:
    """A unit of angles in degrees (``"degree"``, ``"degrees"``, ``"deg"``, ``"°"``)."""
    return unit.strip().lower() in ("degree", "degrees", "deg", "°")


def format_angle_axis(ax: Any, values: torch.Tensor, *, periodic: bool, unit: str) -> None:
    """Angles in degrees on the x axis: ticks every 45° (90° beyond a full turn), labels with °.

    A periodic sequence's axis spans one full period from the first value, so the wrap-around is
    visible; other units are left alone.
    """
    if not is_degrees(unit):
        return
    x = values.detach().cpu().double()
    lo, hi = float(x.min()), float(x.max())
    if periodic and hi - lo < 360:  # one full period: the last step's neighbour is the first
        hi = lo + 360.0
    ax.set_xlim(lo, hi)
    spacing = 90.0 if hi - lo > 360 else 45.0 if hi - lo >= 90 else 15.0 if hi - lo >= 30 else None
    if spacing is not None:
        first = spacing * math.ceil(lo / spacing)
        ax.set_xticks([first + k * spacing for k in range(int((hi - first) // spacing) + 1)])
    ax.xaxis.set_major_formatter(_degree_formatter())


def _degree_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}°")


def format_value(value: float, unit: str) -> str:
    """A property value for a caption: ``135°`` for degrees, ``0.25 fraction`` otherwise."""
    return f"{value:.4g}°" if is_degrees(unit) else f"{value:.4g} {unit}".rstrip()


@dataclass(frozen=True)
class ClassCurves:
    """Per-class curves along one sequence: what :func:`plot_class_bands` draws.

    Attributes:
        values: Property values (N,).
        mean: Per-class means (N, K).
        std: Per-class standard deviations (N, K).
        class_names: K names.
        periodic: The sequence wraps around (a full turn).
        unit: The values' unit (degrees get a degree axis).
    """

    values: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    class_names: Sequence[str]
    periodic: bool = False
    unit: str = ""


@dataclass(frozen=True)
class BandStyle:
    """How :func:`plot_class_bands` and :func:`class_figure` draw the curves.

    Attributes:
        true_class: The ground-truth class index (its maxima and minima are marked), or None (no marks).
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.
        max_classes: Most classes drawn.
        n_extrema: Maxima and minima marked, each.
        true_class_note: What the legend says of the marked class, in parentheses.
    """

    true_class: int | None = None
    xlabel: str = "property value"
    ylabel: str = "cosine similarity"
    max_classes: int = 6
    n_extrema: int = 1
    true_class_note: str = "true class"


def plot_class_bands(ax: Any, curves: ClassCurves, style: BandStyle = BandStyle()) -> tuple[list[int], list[int]]:
    """Per-class mean ± std bands along the sequence, with the true class's maxima and minima marked.

    The paper's Fig. 8 / Fig. 36 curve: one line per class (the mean over its descriptors) in a
    band of ± one standard deviation over the descriptors. With many classes only
    ``style.max_classes`` are drawn: the true class and those with the highest mean along the
    sequence. The true class's line is thicker; its maxima (▲) and minima (▼) are lettered ``A``,
    ``B``, ... for the frames beside the curve (:func:`class_figure`).

    Args:
        ax: A matplotlib Axes.
        curves: The per-class curves.
        style: The marked class, labels and how many classes and extrema are drawn.

    Returns:
        ``(maxima, minima)``: the marked steps of the true class (empty without one), in letter order.
    """
    values, class_names, periodic, unit = curves.values, curves.class_names, curves.periodic, curves.unit
    true_class, max_classes, true_class_note = style.true_class, style.max_classes, style.true_class_note
    mean, std = curves.mean, curves.std
    x = values.detach().cpu().double().numpy()
    m = mean.detach().cpu().double()
    s = std.detach().cpu().double()
    order = torch.argsort(m.mean(0), descending=True).tolist()
    shown = ([true_class] if true_class is not None else []) + [k for k in order if k != true_class]
    shown = shown[: max(1, max_classes)]
    colours = _pyplot().get_cmap("tab10")
    for rank, k in enumerate(sorted(shown, key=lambda k: (k != true_class, order.index(k)))):
        colour = colours(rank % 10)
        truth = k == true_class
        label = f"{class_names[k]} ({true_class_note})" if truth else class_names[k]
        ax.fill_between(x, (m[:, k] - s[:, k]).numpy(), (m[:, k] + s[:, k]).numpy(), color=colour, alpha=0.2, lw=0)
        ax.plot(x, m[:, k].numpy(), color=colour, linewidth=2.4 if truth else 1.4, label=label)
    maxima: list[int] = []
    minima: list[int] = []
    if true_class is not None:
        maxima, minima = curve_extrema(m[:, true_class], style.n_extrema, periodic=periodic)
        for letter, i, marker in _lettered(maxima, minima):
            y = float(m[i, true_class])
            ax.plot([x[i]], [y], marker=marker, color="black", markersize=8, zorder=5)
            ax.annotate(
                letter,
                (x[i], y),
                textcoords="offset points",
                xytext=(0, 9 if marker == "^" else -15),
                ha="center",
                fontweight="bold",
            )
    hidden = len(class_names) - len(shown)
    ax.set_xlabel(style.xlabel)
    ax.set_ylabel(style.ylabel)
    format_angle_axis(ax, values, periodic=periodic, unit=unit)
    title = "mean ± std over descriptors"
    ax.set_title(title + (f" ({len(shown)} of {len(class_names)} classes)" if hidden > 0 else ""), fontsize="medium")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(3, len(shown)), frameon=False)
    ax.grid(alpha=0.3)
    return maxima, minima


def _lettered(maxima: Sequence[int], minima: Sequence[int]) -> list[tuple[str, int, str]]:
    """(letter, step, marker) of the marked maxima (▲) then minima (▼)."""
    marks = [(i, "^") for i in maxima] + [(i, "v") for i in minima]
    return [(chr(ord("A") + r), i, marker) for r, (i, marker) in enumerate(marks)]


def class_figure(curves: ClassCurves, images: torch.Tensor, style: BandStyle, title: str | None = None) -> Any:
    """The per-class similarity bands with the true class's extreme frames beside the curve (Fig. 8 layout).

    Args:
        curves: The per-class curves.
        images: The sequence's frames (N, 3, H, W).
        style: The marked class (its maxima and minima are shown as frames), labels, how many classes and extrema.
        title: Figure title.

    Returns:
        The matplotlib Figure.
    """
    plt = _pyplot()
    true_class, values, mean, unit = style.true_class, curves.values, curves.mean, curves.unit
    rows = max(1, style.n_extrema) if true_class is not None else 0
    fig = plt.figure(figsize=(10.5 if rows else 7.5, 5.2), layout="constrained")
    grid = fig.add_gridspec(max(rows, 1), 3 if rows else 1, width_ratios=[2.4, 1, 1] if rows else [1])
    ax = fig.add_subplot(grid[:, 0])
    maxima, minima = plot_class_bands(ax, curves, style)
    marks = _lettered(maxima, minima)
    for r, (letter, i, marker) in enumerate(marks):
        column = 1 if marker == "^" else 2
        row = r if marker == "^" else r - len(maxima)
        frame = fig.add_subplot(grid[row, column])
        frame.imshow(images[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        kind = "max" if marker == "^" else "min"
        frame.set_title(
            f"{letter}: {kind} {float(mean[i, true_class]):.4f}\nat {format_value(float(values[i]), unit)}",
            fontsize="small",
        )
        frame.set_xticks([])
        frame.set_yticks([])
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def readable_ylim(
    low: float, high: float, threshold: float | None = None, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float, bool]:
    """A y range that shows the data's change however small, and the threshold when it is close.

    Args:
        low: The smallest value drawn.
        high: The largest value drawn.
        threshold: A reference line (the decision threshold); included when it lies within the
            data's span of the data (farther, it would flatten the curves).
        bounds: The values' possible range (probabilities: 0 to 1); the limits stay within it, padded.

    Returns:
        ``(bottom, top, threshold_shown)``.
    """
    span = max(high - low, 0.0)
    shown = threshold is not None and low - span <= threshold <= high + span
    if threshold is not None and shown:
        low, high = min(low, threshold), max(high, threshold)
        span = high - low
    pad = max(0.08 * span, 0.002 * (bounds[1] - bounds[0]))
    pad_bounds = 0.02 * (bounds[1] - bounds[0])
    return max(low - pad, bounds[0] - pad_bounds), min(high + pad, bounds[1] + pad_bounds), shown
