"""``report.html`` of ``propgrad explain --out``: one explanation in one self-contained page.

The page shows the filmstrip of the intervention; a slider that scrubs through every step of the
sequence, showing the frame and the model's outputs (and decision) at that step; the behaviour
curve with the decision threshold and the flip positions; the permutation null distribution with
the observed statistic and the p-value; the effect size beside the p-value; each baseline's
attribution map of the original and of the fully intervened image on one colour scale
(:func:`propgrad.baseline_maps`); and the settings, model, image and versions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from propgrad.core.html_report import HtmlReport, array_png, figure_png

HTML_NAME = "report.html"
MAX_SLIDER_FRAMES = 120
"""Most frames the slider holds (longer sequences are subsampled evenly, first and last kept)."""
SLIDER_WIDTH = 256
"""Pixels the slider's frame is shown at (small images are enlarged without smoothing)."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _few_ticks(ax: Any) -> None:
    """At most four ticks per axis in plain notation, so tick labels never collide."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.tick_params(labelsize=8)


def effect_sizes(explanation: Any, column: int = 0) -> dict[str, float | None]:
    """Effect sizes of one scored column beside its p-value.

    Returns:
        ``score`` (the statistic), ``null_mean``, ``standardised`` ((score - null mean) / null std,
        None without a kept null distribution or with a constant one) and ``output_change``
        (|output at the last step - output at the first| of the column).
    """
    score = float(explanation.score.reshape(-1)[column])
    null = explanation.test.null_distribution
    null_mean = standardised = None
    if null is not None:
        values = (null if null.dim() == 1 else null[:, column]).double()
        null_mean = float(values.mean())
        std = float(values.std())
        standardised = (score - null_mean) / std if std > 0 and math.isfinite(std) else None
    outputs = explanation.outputs if explanation.target is None else explanation.outputs[:, [explanation.target]]
    change = float((outputs[-1, column] - outputs[0, column]).abs())
    return {"score": score, "null_mean": null_mean, "standardised": standardised, "output_change": change}


def _columns(explanation: Any, labels: Sequence[str] | None, limit: int = 8) -> list[tuple[int, str]]:
    """The output columns shown in the slider's table: the explained one, else those that change most."""
    outputs = explanation.outputs
    if explanation.target is not None:
        order = [explanation.target]
    else:
        spread = outputs.max(0).values - outputs.min(0).values
        order = torch.argsort(spread, descending=True)[:limit].tolist()
    return [(j, labels[j] if labels is not None and j < len(labels) else f"output {j}") for j in order]


def _slider_data(
    explanation: Any, labels: Sequence[str] | None
) -> tuple[list[bytes], list[str], list[list[list[str]]]]:
    seq = explanation.sequence
    n = len(seq)
    steps = np.unique(np.linspace(0, n - 1, min(n, MAX_SLIDER_FRAMES)).round().astype(int)).tolist()
    height, width = seq.images.shape[-2:]
    scale = max(1, SLIDER_WIDTH // max(int(width), 1))
    decisions = explanation.flips.decisions.tolist()
    columns = _columns(explanation, labels)
    frames, captions, rows = [], [], []
    for k in steps:
        frames.append(array_png(seq.images[k], scale=scale))
        decision = decisions[k]
        name = labels[decision] if labels is not None and decision < len(labels) else f"output {decision}"
        flip = " (decision flips here)" if k in explanation.flips.flip_steps.tolist() else ""
        captions.append(
            f"step {k + 1} of {n}: {seq.property_name} = {float(seq.values[k]):.4g} {seq.unit}; decision: {name}{flip}"
        )
        rows.append(
            [[label, f"{float(explanation.outputs[k, j]):.4f}", "◀" if j == decision else ""] for j, label in columns]
        )
    return frames, captions, rows


def behaviour_figure(explanation: Any, labels: Sequence[str] | None) -> Any:
    """The outputs along the property with the decision threshold and a dashed line at every flip."""
    from propgrad.harness.figures import readable_ylim

    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    explanation.plot_behaviour(ax, labels=labels)
    seq = explanation.sequence
    values = seq.values.detach().cpu().double()
    for n, step in enumerate(explanation.flips.flip_steps.tolist()):
        where = float(values[step - 1] + values[step]) / 2.0  # between the two steps whose decisions differ
        ax.axvline(where, color="0.25", linestyle="--", linewidth=1.0, label="decision flip" if n == 0 else None)
    drawn = explanation.outputs if explanation.target is None else explanation.outputs[:, [explanation.target]]
    binary = explanation.outputs.shape[1] <= 2 and bool(((explanation.outputs >= 0) & (explanation.outputs <= 1)).all())
    if bool(((drawn >= 0) & (drawn <= 1)).all()):
        bottom, top, shown = readable_ylim(float(drawn.min()), float(drawn.max()), 0.5 if binary else None)
        ax.set_ylim(bottom, top)
        if binary and not shown:
            ax.text(0.01, 0.02, "decision threshold 0.5 off the axis", transform=ax.transAxes, fontsize=7)
    if not binary:
        ax.text(0.01, 0.95, "decision: the largest output (argmax)", transform=ax.transAxes, fontsize=7, va="top")
    ax.legend(fontsize=7, loc="best")
    _few_ticks(ax)
    return fig


def null_figure(explanation: Any) -> Any:
    """The permutation null distribution with the observed statistic and the p-value."""
    fig = _figure(4.6, 3.4)
    ax = fig.add_subplot()
    explanation.plot_null(ax)
    _few_ticks(ax)
    ax.set_title("permutation test: null distribution", fontsize=9)
    return fig


def filmstrip_figure(explanation: Any, frames: int = 8) -> Any:
    """Evenly spaced steps of the sequence, captioned with the property value."""
    from propgrad.core.plotting import plot_filmstrip

    frames = max(1, min(frames, len(explanation.sequence)))
    fig = _figure(1.0 * frames, 1.45)
    axes = fig.subplots(1, frames, squeeze=False)[0]
    plot_filmstrip(list(axes), explanation.images, explanation.values)
    seq = explanation.sequence
    fig.suptitle(f"{explanation.source}: {seq.property_name} [{seq.unit}]", fontsize=9)
    return fig


def maps_figure(maps: Any) -> Any:
    """Rows: baselines; columns: original image, its map, final image, its map (one colour scale per row)."""
    names = list(maps.maps)
    fig = _figure(6.4, 1.55 * max(len(names), 1) + 0.4)
    axes = fig.subplots(max(len(names), 1), 4, squeeze=False)
    for r, name in enumerate(names):
        bound = maps.scale(name) or 1.0
        for c, (kind, step) in enumerate((("image", 0), ("map", 0), ("image", -1), ("map", -1))):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if kind == "image":
                ax.imshow(np.clip(maps.image(step), 0, 1), interpolation="nearest")
                ax.set_title("original" if step == 0 else "fully intervened", fontsize=7)
            else:
                shown = ax.imshow(
                    maps.map(name, step).sum(-1), cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest"
                )
                ax.set_title(f"{name}: {'before' if step == 0 else 'after'}", fontsize=7)
        fig.colorbar(shown, ax=list(axes[r]), shrink=0.8, label="attribution", location="right")
    fig.suptitle(
        f"attribution maps of class {maps.target}, before and after (one colour scale per baseline)", fontsize=8
    )
    return fig


def compute_maps(model: Any, explanation: Any, names: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """Every named baseline's maps of the original and the fully intervened image.

    Returns:
        ``(maps, slic)``: a :class:`propgrad.explain.maps.BaselineMaps` (None when no baseline was
        named or the model cannot be attributed) and the SLIC strategies LIME and Kernel SHAP used.
    """
    import warnings

    from propgrad import baseline_maps
    from propgrad.plugins import get_baseline

    if not names:
        return None, {}
    baselines = {name: get_baseline(name)() for name in names}
    target = explanation.target
    if target is None:
        original = explanation.original_outputs if explanation.original_outputs is not None else explanation.outputs[0]
        target = int(original.argmax())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # failures are listed in the report
        maps = baseline_maps(model, explanation.sequence, target=target, baselines=baselines)
    slic = {
        name: [dict(info) for info in getattr(b, "last_segmentation_info", [])]
        for name, b in baselines.items()
        if getattr(b, "last_segmentation_info", None)
    }
    return maps, slic


def explain_html(
    explanation: Any,
    *,
    labels: Sequence[str] | None,
    settings: Mapping[str, Any],
    provenance: Mapping[str, Any],
    maps: Any = None,
    maps_error: str | None = None,
) -> HtmlReport:
    """Build the explanation's page (see the module docstring)."""
    seq = explanation.sequence
    page = HtmlReport(f"propgrad explain: {explanation.source} on {settings.get('image') or 'the image'}")
    columns = _columns(explanation, labels, limit=1)
    column_name = columns[0][1]
    k = 0 if explanation.target is not None else int(torch.argmax(explanation.score.reshape(-1)))
    effect = effect_sizes(explanation, k)
    p_value = float(explanation.p_value.reshape(-1)[k])
    page.heading("Result", 2)
    page.stats(
        [
            (f"{explanation.statistic_label} of {column_name}", f"{effect['score']:.4g} {explanation.score_unit}"),
            ("p-value", f"{p_value:.4g}"),
            ("significant", f"{bool(explanation.significant.reshape(-1)[k])} at alpha = {explanation.test.alpha}"),
            (
                "effect size (score - null mean) / null std",
                "n/a" if effect["standardised"] is None else f"{effect['standardised']:.3g}",
            ),
            ("|output change| first → last step", f"{effect['output_change']:.4g}"),
            ("decision flips", str(explanation.flips.n_flips)),
        ]
    )
    page.preformatted(explanation.summary(labels))
    page.heading("The intervention", 2)
    page.image(figure_png(filmstrip_figure(explanation)), alt="filmstrip of the intervention", caption="Filmstrip")
    frames, captions, rows = _slider_data(explanation, labels)
    page.paragraph(f"Move the slider to scrub through the {len(seq)} steps of the sequence.", "note")
    page.slider(frames, captions, ["output", "value", "decision"], rows, width=SLIDER_WIDTH)
    page.heading("Behaviour and test", 2)
    page.image(
        figure_png(behaviour_figure(explanation, labels)),
        alt="behaviour curve",
        caption="Model outputs along the intervention, with the decision threshold and the flips (dashed)",
    )
    page.image(
        figure_png(null_figure(explanation)),
        alt="null distribution",
        caption=f"Null distribution of the permutation test; observed {effect['score']:.4g}, p = {p_value:.4g}",
    )
    page.heading("Attribution maps before and after", 2)
    if maps is not None and maps.maps:
        page.image(figure_png(maps_figure(maps)), alt="attribution maps before and after", caption="Baseline maps")
    if maps is not None and maps.failures:
        page.table(["baseline", "error"], [[n, e] for n, e in maps.failures.items()])
    if maps is None:
        page.paragraph(maps_error or "No baselines were run (--report-baselines none).", "note")
    page.heading("Settings, model and image", 2)
    page.key_values(dict(settings))
    page.provenance(provenance)
    return page


def write_explain_report(
    out_dir: Path,
    explanation: Any,
    *,
    model: Any,
    labels: Sequence[str] | None,
    settings: Mapping[str, Any],
    baselines: Sequence[str],
    device: str,
    written: Sequence[Path] = (),
) -> list[Path]:
    """Write ``report.html`` and add the provenance and settings to the JSON records ``written``.

    Args:
        out_dir: The ``--out`` folder (``explanation.save`` has written into it).
        explanation: The :class:`~propgrad.explain.result.Explanation`.
        model: The model, for the baselines' maps.
        labels: Names of the output columns, or None.
        settings: The command's settings (model, image, source, parameters ...), shown in the report.
        baselines: The baselines whose maps are shown (none: no maps).
        device: Where the model ran.
        written: What ``explanation.save`` wrote; its ``.json`` files get ``provenance`` and ``settings``.

    Returns:
        The paths written.
    """
    import json

    from propgrad.core.atomic_files import write_json
    from propgrad.harness.versions import collect_versions

    maps, error = None, None
    slic: dict[str, Any] = {}
    try:
        maps, slic = compute_maps(model, explanation, baselines)
    except Exception as exc:  # noqa: BLE001 - the report is written without maps, saying why
        error = f"no attribution maps: {type(exc).__name__}: {exc}"
    strategies: dict[str, dict[str, int]] = {}
    for name, infos in slic.items():
        for info in infos:
            strategies.setdefault(name, {})[str(info.get("strategy"))] = (
                strategies.get(name, {}).get(str(info.get("strategy")), 0) + 1
            )
    provenance = collect_versions(device=device, slic_fallbacks=strategies)
    out_dir = Path(out_dir)
    paths = []
    for path in (Path(p) for p in written if Path(p).suffix == ".json"):  # add where the records came from
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(record, dict):
            record["provenance"] = provenance
            record["settings"] = dict(settings)
            paths.append(write_json(path, record))
    page = explain_html(
        explanation, labels=labels, settings=settings, provenance=provenance, maps=maps, maps_error=error
    )
    paths.append(page.write(out_dir / HTML_NAME))
    return paths
