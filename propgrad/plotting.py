"""Plots of explanations: behaviour curves, null distributions and filmstrips (matplotlib, no LaTeX)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from propgrad.atomic_files import atomic_write


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


def plot_null_distribution(ax: Any, null: torch.Tensor, observed: float, *, p_value: float, name: str) -> Any:
    """Histogram of the permutation null distribution with the observed statistic marked."""
    ax.hist(null.detach().cpu().float().numpy(), bins=50, color="0.6", label="permuted order")
    ax.axvline(observed, color="red", linewidth=2, label=f"observed (p = {p_value:.4g})")
    ax.set_xlabel(name)
    ax.set_ylabel("count")
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
