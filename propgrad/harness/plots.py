"""Figures of a benchmark run (matplotlib with the Agg backend, no LaTeX), written as PNG.

- ``behaviour_<suite>_<intervention>.png``: per model, the mean ± std of the explained class's
  probability along the intervention, with the 0.5 decision line (like the paper's Fig. 3).
- ``scores_<suite>_<intervention>.png``: per model and method, the score distributions of
  flipped vs. not flipped images (flip anywhere along the sequence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from propgrad.atomic_files import atomic_write
from propgrad.harness.cells import BaselineRecord, CellRecord, PropertyRecord, record_key
from propgrad.harness.summary import OUTPUT_REFERENCE, PROPERTY_SCORE, ModelScores, Summary


def _figure(n_rows: int, n_cols: int, size: tuple[float, float]) -> tuple[Any, np.ndarray]:
    from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg on save

    fig = Figure(figsize=(size[0] * n_cols, size[1] * n_rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def mean_curves(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of curves on a common grid in [0, 1] (curves of other lengths are interpolated).

    Returns:
        ``(x, mean, std)``; x is the fraction of the intervention.
    """
    n = max(len(c) for c in curves)
    x = np.linspace(0.0, 1.0, n)
    grid = np.stack([np.interp(x, np.linspace(0.0, 1.0, len(c)), np.asarray(c, dtype=float)) for c in curves])
    return x, grid.mean(axis=0), grid.std(axis=0)


def plot_behaviour(
    path: Path,
    title: str,
    properties: Mapping[str, Sequence[PropertyRecord]],
    scores: Mapping[str, ModelScores],
) -> Path:
    """Mean ± std of the explained-class probability along the intervention, one panel per model."""
    models = [m for m, recs in properties.items() if recs]
    fig, axes = _figure(1, max(len(models), 1), (3.6, 2.8))
    for ax, model in zip(axes[0], models):
        recs = properties[model]
        x, mean, std = mean_curves([r["curve"] for r in recs])
        ax.plot(x, mean, color="C0", label="mean p(explained class)")
        ax.fill_between(x, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color="C0", alpha=0.25, label="± std")
        ax.axhline(0.5, color="red", linestyle=":", label="decision threshold")
        s = scores.get(model)
        mean_score = s["score_mean"] if s else float("nan")
        n_flipped, n_images = (s["n_flipped_anywhere"], s["n_images"]) if s else (0, len(recs))
        ax.set_title(
            f"{model}\nE|∇X| = {mean_score:.3g}, flips {n_flipped}/{n_images}",
            fontsize=9,
        )
        prop = recs[0].get("property_name") or "property"
        ax.set_xlabel(f"{prop} (fraction of the intervention)")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("probability")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_score_distributions(
    path: Path,
    title: str,
    properties: Mapping[str, Sequence[PropertyRecord]],
    baselines: Mapping[str, Mapping[str, Sequence[BaselineRecord]]],
    baseline_names: Sequence[str],
) -> Path:
    """Per model (rows) and method (columns): scores of flipped vs. not flipped images (log10)."""
    models = [m for m, recs in properties.items() if recs]
    methods = [PROPERTY_SCORE, OUTPUT_REFERENCE, *baseline_names]
    fig, axes = _figure(max(len(models), 1), len(methods), (2.4, 2.0))
    for r, model in enumerate(models):
        flipped = {rec["image"]: rec["flipped_anywhere"] for rec in properties[model]}
        for c, method in enumerate(methods):
            ax = axes[r][c]
            if method == PROPERTY_SCORE:
                pairs = [(rec["score"], flipped[rec["image"]]) for rec in properties[model]]
            elif method == OUTPUT_REFERENCE:
                pairs = [(rec["reference"], flipped[rec["image"]]) for rec in properties[model]]
            else:
                pairs = [
                    (rec["score"], flipped[rec["image"]])
                    for rec in baselines.get(model, {}).get(method, [])
                    if rec["score"] is not None and rec["image"] in flipped
                ]
            _distribution(ax, pairs)
            if r == 0:
                ax.set_title(method, fontsize=8)
            if c == 0:
                ax.set_ylabel(model, fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"{title}: log10 score, flipped (anywhere) vs. not", fontsize=10)
    return _save(fig, path)


def _distribution(ax: Any, pairs: Sequence[tuple[float, bool]]) -> None:
    if not pairs:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
        return
    values = np.log10(np.maximum(np.array([p[0] for p in pairs], dtype=float), 1e-12))
    mask = np.array([p[1] for p in pairs], dtype=bool)
    bins = np.linspace(values.min(), values.max() + 1e-9, 16)
    ax.hist(values[~mask], bins=bins, alpha=0.6, color="C0", label="not flipped")
    ax.hist(values[mask], bins=bins, alpha=0.6, color="C3", label="flipped")
    ax.tick_params(labelsize=6)


def write_plots(
    out_dir: Path, records: Sequence[CellRecord], summary: Summary, baseline_names: Sequence[str]
) -> list[Path]:
    """Write both figures for every (suite, intervention) of ``summary``; returns the paths."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        key = record_key(rec)
        g = grouped.setdefault((key.suite, key.intervention), {"property": {}, "baseline": {}})
        if rec["kind"] == "property":
            g["property"].setdefault(key.model, []).append(rec)
        elif rec["kind"] == "baseline":
            g["baseline"].setdefault(key.model, {}).setdefault(key.baseline, []).append(rec)
    paths = []
    for suite, blocks in summary.items():
        for intervention, block in blocks.items():
            g = grouped.get((suite, intervention))
            if not g or not g["property"]:
                continue
            stem = f"{suite}_{intervention}"
            paths.append(
                plot_behaviour(
                    out_dir / f"behaviour_{stem}.png", f"{suite} / {intervention}", g["property"], block["scores"]
                )
            )
            paths.append(
                plot_score_distributions(
                    out_dir / f"scores_{stem}.png",
                    f"{suite} / {intervention}",
                    g["property"],
                    g["baseline"],
                    baseline_names,
                )
            )
    return paths
