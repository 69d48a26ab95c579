"""Figures of a benchmark run (matplotlib with the Agg backend, no LaTeX), written as PNG at paper size.

Every figure is at most about 7.2 inches wide (a two-column page) with 7-8 pt text, few ticks per
axis and labelled axes, so it stays readable when printed:

- ``behaviour_<suite>_<intervention>.png``: per model, the explained class's probability along the
  intervention, flipping and non-flipping images in two colours (thin lines each image, a bold
  line each group's mean), with the decision threshold; the y range follows the data, so a change
  from 0.99 to 0.98 is visible when it is the whole effect.
- ``scores_<suite>_<intervention>.png``: per model and method, histograms of log10 scores of
  flipped vs. not flipped images (flip anywhere along the sequence); only the methods that scored
  the intervention (a score-only intervention has no baseline panels).
- ``roc_<suite>_<intervention>.png``: per model, the ROC curve of every method predicting a flip
  anywhere; no panel for a model on which no image flips, or every image does
  (:func:`roc_left_out`: a ROC curve needs both), and no figure when no model has both.
- ``filmstrip_<suite>_<intervention>.png``: frames of the kept images' sequences.
- ``maps_<suite>_<intervention>.png``: each baseline's map of one kept image before and after the
  intervention, per model, before and after on one colour scale.

The last two need the maps and sequences the runner keeps (:mod:`propgrad.harness.kept_maps`).
"""

from __future__ import annotations

import functools
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np

from propgrad.core.atomic_files import atomic_write
from propgrad.core.collector import collector_paused
from propgrad.core.forked import run_split
from propgrad.core.plotting import readable_ylim
from propgrad.harness.cells import BaselineRecord, CellRecord, PropertyRecord, record_key
from propgrad.harness.kept_maps import KeptMaps
from propgrad.harness.summary import OUTPUT_REFERENCE, PROPERTY_SCORE, ModelScores, Summary

PAGE_WIDTH = 7.2
"""Inches: the widest figure (a two-column page)."""
DPI = 150
FLIPPED_COLOUR, STABLE_COLOUR = "#c0392b", "#2471a3"
_T = TypeVar("_T")
_LINE2D_ENDS = {"capstyle": "projecting", "joinstyle": "round"}
"""A collection's line ends and joins as a plain Line2D draws them (its solid cap and join styles)."""


def _figure(n_rows: int, n_cols: int, size: tuple[float, float]) -> tuple[Any, np.ndarray]:
    """A figure of ``n_rows`` x ``n_cols`` panels of ``size`` inches each, scaled down to the page width."""
    from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg on save

    width, height = size[0] * n_cols, size[1] * n_rows
    if width > PAGE_WIDTH:
        height, width = height * PAGE_WIDTH / width, PAGE_WIDTH
    fig = Figure(figsize=(width, max(height, 1.2)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def _style(ax: Any, nbins: int = 4, integer_y: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=nbins))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=nbins, integer=integer_y))
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(axis="both", style="plain", useOffset=False)  # 0.985, not 1e-3 + 0.98


def _save(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def _one_figure(plot: Callable[..., _T]) -> Callable[..., _T]:
    """``plot`` with the collector's automatic passes off while it draws (:func:`collector_paused`)."""

    @functools.wraps(plot)
    def drawn(*args: Any, **kwargs: Any) -> _T:
        with collector_paused():
            return plot(*args, **kwargs)

    return drawn


def mean_curves(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of curves on a common grid in [0, 1] (curves of other lengths are interpolated).

    Returns:
        ``(x, mean, std)``; x is the fraction of the intervention.
    """
    x, grid = _on_grid(curves)
    return x, grid.mean(axis=0), grid.std(axis=0)


def _on_grid(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(c) for c in curves)
    x = np.linspace(0.0, 1.0, n)
    grid = np.stack([np.interp(x, np.linspace(0.0, 1.0, len(c)), np.asarray(c, dtype=float)) for c in curves])
    return x, grid


@_one_figure
def plot_behaviour(
    path: Path,
    title: str,
    properties: Mapping[str, Sequence[PropertyRecord]],
    scores: Mapping[str, ModelScores],
) -> Path:
    """The explained-class probability along the intervention, one panel per model, flipping and
    non-flipping images (a flip anywhere) apart: each image thin, each group's mean bold."""
    from matplotlib.collections import LineCollection

    models = [m for m, recs in properties.items() if recs]
    fig, axes = _figure(1, max(len(models), 1), (2.5, 2.3))
    for ax, model in zip(axes[0], models):
        recs = properties[model]
        x, grid = _on_grid([r["curve"] for r in recs])
        flipped = np.array([bool(r["flipped_anywhere"]) for r in recs])
        for mask, colour in ((~flipped, STABLE_COLOUR), (flipped, FLIPPED_COLOUR)):
            if not mask.any():
                continue
            # every image's curve in one collection, not one Line2D each: drawn alike (Line2D's caps and
            # joins), a fraction of the artists to lay out and draw
            thin = np.stack(np.broadcast_arrays(x[None, :], grid[mask]), axis=-1)
            ax.add_collection(LineCollection(thin, colors=colour, alpha=0.18, linewidths=0.6, **_LINE2D_ENDS))
            ax.plot(x, grid[mask].mean(axis=0), color=colour, linewidth=2.0)
        bottom, top, shown = readable_ylim(float(grid.min()), float(grid.max()), 0.5)
        if shown:
            ax.axhline(0.5, color="black", linestyle=":", linewidth=1.0)
        else:
            ax.text(0.02, 0.02, "threshold 0.5 off the axis", transform=ax.transAxes, fontsize=6.5, color="0.3")
        ax.set_ylim(bottom, top)
        s = scores.get(model)
        mean_score = f"{s['score_mean']:.3g}" if s and s.get("score_mean") is not None else "n/a"
        n_flipped, n_images = (s["n_flipped_anywhere"], s["n_images"]) if s else (int(flipped.sum()), len(recs))
        ax.set_title(f"{model}\nE|∇X| {mean_score}, flips {n_flipped}/{n_images}", fontsize=7.5)
        prop = recs[0].get("property_name") or "property"
        ax.set_xlabel(f"{prop}\n(fraction of the intervention)", fontsize=8)
        ax.set_ylabel("p(explained class)", fontsize=8)
        _style(ax)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=STABLE_COLOUR, linewidth=2.0, label="not flipped: mean (bold), each image (thin)"),
        Line2D([], [], color=FLIPPED_COLOUR, linewidth=2.0, label="flipped anywhere: mean (bold), each image (thin)"),
        Line2D([], [], color="black", linestyle=":", linewidth=1.0, label="decision threshold 0.5"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=6.5)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _method_pairs(
    method: str,
    properties: Sequence[PropertyRecord],
    baselines: Mapping[str, Sequence[BaselineRecord]],
) -> list[tuple[float, bool]]:
    """(score, flipped anywhere) of every image a method scored on one model."""
    flipped = {rec["image"]: rec["flipped_anywhere"] for rec in properties}
    if method == PROPERTY_SCORE:
        return [(rec["score"], flipped[rec["image"]]) for rec in properties]
    if method == OUTPUT_REFERENCE:
        return [(rec["reference"], flipped[rec["image"]]) for rec in properties]
    return [
        (rec["score"], flipped[rec["image"]])
        for rec in baselines.get(method, [])
        if rec["score"] is not None and rec["image"] in flipped
    ]


@_one_figure
def plot_score_distributions(
    path: Path,
    title: str,
    properties: Mapping[str, Sequence[PropertyRecord]],
    baselines: Mapping[str, Mapping[str, Sequence[BaselineRecord]]],
    baseline_names: Sequence[str],
) -> Path:
    """Per model and method: histograms of log10 scores of flipped vs. not flipped images.

    Only the methods that scored some image of some model have panels (a score-only intervention
    has no baseline cells, so no baseline panels); a model a method did not score shows "n/a".
    Panels wrap four methods to a row, so the figure keeps to the page width.
    """
    models = [m for m, recs in properties.items() if recs]
    methods = [
        method
        for method in (PROPERTY_SCORE, OUTPUT_REFERENCE, *baseline_names)
        if any(_method_pairs(method, properties[m], baselines.get(m, {})) for m in models)
    ] or [PROPERTY_SCORE]
    per_row = min(4, len(methods))
    rows_per_model = -(-len(methods) // per_row)
    fig, axes = _figure(max(len(models), 1) * rows_per_model, per_row, (1.8, 1.45))
    for ax in axes.flat:
        ax.set_visible(False)
    for r, model in enumerate(models):
        for c, method in enumerate(methods):
            ax = axes[r * rows_per_model + c // per_row][c % per_row]
            ax.set_visible(True)
            _distribution(ax, _method_pairs(method, properties[model], baselines.get(model, {})))
            ax.set_title(f"{model}\n{method}", fontsize=6.5)
            ax.set_xlabel("log10 score", fontsize=7)
            ax.set_ylabel("images", fontsize=7)
            _style(ax, nbins=3, integer_y=True)
    handles = [ax for ax in axes.flat if ax.get_visible() and ax.get_legend_handles_labels()[0]]
    if handles:
        fig.legend(*handles[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=7)
    fig.suptitle(f"{title}:\nscores of flipped (anywhere) vs. not flipped images", fontsize=9)
    return _save(fig, path)


def _distribution(ax: Any, pairs: Sequence[tuple[float, bool]]) -> None:
    if not pairs:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
        return
    values = np.log10(np.maximum(np.array([p[0] for p in pairs], dtype=float), 1e-12))
    mask = np.array([p[1] for p in pairs], dtype=bool)
    bins = np.linspace(values.min(), values.max() + 1e-9, 16)
    # ax.hist's bars as one filled step patch per group, not one Rectangle per bin: drawn alike, fewer artists
    for group, colour, label in ((~mask, STABLE_COLOUR, "not flipped"), (mask, FLIPPED_COLOUR, "flipped")):
        counts, _ = np.histogram(values[group], bins=bins)
        ax.stairs(counts, bins, fill=True, alpha=0.6, color=colour, label=label)


def roc_points(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of ``scores`` predicting ``labels`` (higher score: positive), ties as one step.

    Returns:
        ``(fpr, tpr)`` from (0, 0) to (1, 1); its trapezoid area is the AUC of
        :func:`propgrad.harness.evaluation.roc_auc`. Without both labels, a rate is 0 / 0 and the
        curve is ``([0, 1], [0, 1])``.
    """
    s = np.asarray(scores, dtype=float).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp, fp = np.cumsum(y)[last_of_tie], np.cumsum(~y)[last_of_tie]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def roc_left_out(scores: Mapping[str, ModelScores]) -> dict[str, str]:
    """The models without a ROC panel, each with why: no image flips, or every image does.

    A ROC curve needs flipped and unflipped images (with one kind only, a rate is 0 / 0 and the
    curve would be the chance diagonal, AUC 0.50, where the flip tables say n/a).

    Args:
        scores: The score rows of one (suite, intervention) (the summary's ``scores``).
    """
    left_out = {}
    for model, s in scores.items():
        if s["n_flipped_anywhere"] == 0:
            left_out[model] = "no image flips"
        elif s["n_flipped_anywhere"] == s["n_images"]:
            left_out[model] = "every image flips"
    return left_out


@_one_figure
def plot_roc(
    path: Path,
    title: str,
    properties: Mapping[str, Sequence[PropertyRecord]],
    baselines: Mapping[str, Mapping[str, Sequence[BaselineRecord]]],
    baseline_names: Sequence[str],
    left_out: Mapping[str, str] | None = None,
) -> Path | None:
    """Per model: the ROC curve of every method predicting a flip anywhere (AUC in the legend).

    Args:
        path: Where the PNG goes.
        title: The figure's title.
        properties: model -> its property records.
        baselines: model -> baseline name -> its records.
        baseline_names: Baselines in legend order.
        left_out: Models without a panel, with why (:func:`roc_left_out`); named under the title.

    Returns:
        ``path``, or None (nothing written) when every model is left out.
    """
    left_out = dict(left_out or {})
    models = [m for m, recs in properties.items() if recs and m not in left_out]
    if not models:
        return None
    methods = [PROPERTY_SCORE, OUTPUT_REFERENCE, *baseline_names]
    fig, axes = _figure(1, len(models), (2.4, 4.5))
    for ax, model in zip(axes[0], models):
        for k, method in enumerate(methods):
            pairs = _method_pairs(method, properties[model], baselines.get(model, {}))
            if not pairs:
                continue
            fpr, tpr = roc_points([p[0] for p in pairs], [p[1] for p in pairs])
            area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
            style = {"linewidth": 2.0} if method == PROPERTY_SCORE else {"linewidth": 1.0}
            ax.plot(fpr, tpr, color=f"C{k % 10}", label=f"{method} ({area:.2f})", **style)
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.set_ylabel("true positive rate (flips)", fontsize=8)
        _style(ax, nbins=3)
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), title="method (AUC)", title_fontsize=6.5)
    missing = "; ".join(f"{m}: {why}" for m, why in left_out.items())
    fig.suptitle(
        f"{title}: ROC, predicting a flip anywhere" + (f"\nno panel for {missing}" if missing else ""), fontsize=9
    )
    return _save(fig, path)


@_one_figure
def plot_kept_filmstrip(path: Path, title: str, sequences: Sequence[Any], max_rows: int = 4) -> Path:
    """Rows: kept images (at most ``max_rows``); columns: their kept frames, captioned with the value."""
    shown = list(sequences[:max_rows])
    n_cols = max(len(s.frames) for s in shown)
    fig, axes = _figure(len(shown), n_cols, (0.95, 1.1))
    for r, seq in enumerate(shown):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            ax.set_xticks([])  # no ticks to lay out: drawn alike (the axis is off), placing the titles is cheaper
            ax.set_yticks([])
            if c < len(seq.frames):
                ax.imshow(np.clip(np.moveaxis(seq.frames[c], 0, -1), 0, 1), interpolation="nearest")
                ax.set_title(f"{float(seq.values[c]):.3g}", fontsize=7)
        axes[r][0].text(
            -0.08,
            0.5,
            f"image {seq.image}",
            transform=axes[r][0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=7,
        )
    prop = f"{shown[0].property_name} [{shown[0].unit}]" if shown else ""
    fig.suptitle(f"{title}: {prop}", fontsize=9)
    return _save(fig, path)


def _map_2d(a: np.ndarray) -> np.ndarray:
    """A map as (H, W): channels summed (Captum's ``visualize_image_attr`` with ``sign="all"``)."""
    a = np.asarray(a, dtype=float)
    while a.ndim > 2:
        a = a.sum(axis=0)
    return a


@_one_figure
def plot_before_after(
    path: Path, title: str, sequence: Any, maps: Sequence[Any], models: Sequence[str], baselines: Sequence[str]
) -> Path:
    """One kept image: the original and final image, then each baseline's map before and after per model.

    Rows: the images, then one row per baseline; columns: (before, after) per model. Before and
    after of one baseline and model share one symmetric colour scale (red positive, blue
    negative; its bound in the "after" panel's title).
    """
    by = {(m.model, m.baseline): m for m in maps if m.image == sequence.image}
    models = [m for m in models if any((m, b) in by for b in baselines)]
    baselines = [b for b in baselines if any((m, b) in by for m in models)]
    fig, axes = _figure(1 + len(baselines), 2 * max(len(models), 1), (1.05, 1.15))
    original, final = (np.clip(np.moveaxis(f, 0, -1), 0, 1) for f in (sequence.frames[0], sequence.frames[-1]))
    for j, model in enumerate(models):
        for k, (img, name) in enumerate(((original, "original"), (final, "final"))):
            ax = axes[0][2 * j + k]
            ax.imshow(img, interpolation="nearest")
            ax.set_title(f"{model}\n{name} image" if k == 0 else f"\n{name} image", fontsize=6.5)
        for r, baseline in enumerate(baselines, start=1):
            kept = by.get((model, baseline))
            for k in range(2):
                ax = axes[r][2 * j + k]
                if kept is None:
                    ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, fontsize=7)
                    continue
                before, after = _map_2d(kept.before), _map_2d(kept.after)
                bound = float(max(np.abs(before).max(), np.abs(after).max())) or 1.0
                ax.imshow(before if k == 0 else after, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
                ax.set_title("before" if k == 0 else f"after (±{bound:.2g})", fontsize=6.5)
            axes[r][2 * j].text(
                -0.08,
                0.5,
                baseline,
                transform=axes[r][2 * j].transAxes,
                rotation=90,
                ha="right",
                va="center",
                fontsize=6.5,
            )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}: image {sequence.image}\nmaps before and after, one colour scale per pair", fontsize=8)
    return _save(fig, path)


def write_plots(
    out_dir: Path,
    records: Sequence[CellRecord],
    summary: Summary,
    baseline_names: Sequence[str],
    kept_maps: KeptMaps | None = None,
    workers: int = 1,
) -> list[Path]:
    """Write the figures for every (suite, intervention) of ``summary``; returns the paths.

    The filmstrip and the before/after maps need ``kept_maps`` (and images kept in it). With
    ``workers`` of 2 or more, a forked child process draws figures too, taking the next one in turn
    (:func:`propgrad.core.forked.run_split`): matplotlib holds the GIL, so a second core is a second process.
    """
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        key = record_key(rec)
        g = grouped.setdefault((key.suite, key.intervention), {"property": {}, "baseline": {}})
        if rec["kind"] == "property":
            g["property"].setdefault(key.model, []).append(rec)
        elif rec["kind"] == "baseline":
            g["baseline"].setdefault(key.model, {}).setdefault(key.baseline, []).append(rec)
    jobs: list[Callable[[], Path | None]] = []
    for suite, blocks in summary.items():
        for intervention, block in blocks.items():
            found = grouped.get((suite, intervention))
            if not found or not found["property"]:
                continue
            g = found
            order = {m: k for k, m in enumerate(block["scores"])}  # the suite's model order, not the keys'
            g["property"] = dict(sorted(g["property"].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
            stem, name = f"{suite}_{intervention}", f"{suite} / {intervention}"
            jobs.append(
                partial(plot_behaviour, out_dir / f"behaviour_{stem}.png", name, g["property"], block["scores"])
            )
            jobs.append(
                partial(
                    plot_score_distributions,
                    out_dir / f"scores_{stem}.png",
                    name,
                    g["property"],
                    g["baseline"],
                    baseline_names,
                )
            )
            if g["baseline"]:
                roc = partial(
                    plot_roc,
                    out_dir / f"roc_{stem}.png",
                    name,
                    g["property"],
                    g["baseline"],
                    baseline_names,
                    roc_left_out(block["scores"]),
                )
                jobs.append(partial(_roc_or_none, roc, out_dir / f"roc_{stem}.png"))
            if kept_maps is None:
                continue
            sequences = kept_maps.sequences(suite, intervention)
            if sequences:
                jobs.append(partial(plot_kept_filmstrip, out_dir / f"filmstrip_{stem}.png", name, sequences))
            models = list(g["property"])
            maps = kept_maps.maps(suite, intervention, models, baseline_names)
            with_maps = [s for s in sequences if any(m.image == s.image for m in maps)]
            if with_maps:
                jobs.append(
                    partial(
                        plot_before_after,
                        out_dir / f"maps_{stem}.png",
                        name,
                        with_maps[0],
                        maps,
                        models,
                        list(baseline_names),
                    )
                )
    return [path for path in run_split(jobs, workers) if path is not None]


def _roc_or_none(plot: Callable[[], Path | None], path: Path) -> Path | None:
    """The ROC figure, or None when no model has flipped and unflipped images (and no figure left from a former run)."""
    roc = plot()
    if roc is None:
        path.unlink(missing_ok=True)
    return roc
