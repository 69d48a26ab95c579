"""``report.html`` of ``propgrad explain --out``: one explanation in one self-contained page.

The page opens with the verdict: the size-aware placebo test's decision first, the paper's
permutation test beside it (labelled for what it tests: an ordered, systematic response, however
small), the practical size (the largest output change, the flips) and a one-line reading. Then
the filmstrip of the intervention; a slider that scrubs through every step of the sequence,
showing the frame and the model's outputs (and decision) at that step; the behaviour curve with
the decision threshold and the flip positions; the permutation null distribution with the
observed statistic, the p-value and a caption saying what the observed value's side of the null
means; each baseline's attribution map of the original and of the fully intervened image on one
colour scale per baseline (:func:`propgrad.baseline_maps`), a constant map labelled with its value
instead of drawn blank; and the settings, model, image and versions. Every output is called by one
name throughout (its label, else ``output j``): the cards, the slider, the curves and the maps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from propgrad.core.html_report import HtmlReport, array_png
from propgrad.core.plotting import NULL_SIDES
from propgrad.explain.explanation_html import (
    add_behaviour,
    add_filmstrip,
    add_maps,
    add_null,
    add_verdict_card,
    behaviour_figure,
    constant_label,
    constant_maps,
    filmstrip_figure,
    headline,
    maps_figure,
    null_figure,
    null_figure_caption,
    output_name,
    verdict_rows,
)
from propgrad.stats.vector_statistic import VECTOR_NORMS

__all__ = [
    "HTML_NAME",
    "behaviour_figure",
    "compute_maps",
    "constant_label",
    "constant_maps",
    "effect_sizes",
    "explain_html",
    "filmstrip_figure",
    "headline",
    "maps_figure",
    "maps_target",
    "null_figure",
    "null_figure_caption",
    "output_name",
    "verdict_rows",
    "write_explain_report",
]
"""The page's builders; the verdict card, figures and maps are :mod:`propgrad.explain.explanation_html`'s,
shared with the notebook views, and named here too."""

HTML_NAME = "report.html"
MAX_SLIDER_FRAMES = 120
"""Most frames the slider holds (longer sequences are subsampled evenly, first and last kept)."""
SLIDER_WIDTH = 256
"""Pixels the slider's frame is shown at (small images are enlarged without smoothing)."""


def effect_sizes(explanation: Any, column: int = 0) -> dict[str, float | None]:
    """Effect sizes of one scored column beside its p-value.

    Args:
        explanation: The explanation.
        column: Index into ``explanation.score.reshape(-1)``.

    Returns:
        ``score`` (the statistic), ``null_mean`` (the mean of the kept null distribution),
        ``ratio`` (the explanation's ``effect_size``: score / the exact mean of its shuffled null, 1
        for a random order; None where it is not defined), ``standardised`` ((score - null mean) /
        null std; None without a kept null distribution or with a constant one) and
        ``output_change`` (|output at the last step - output at the first| of the scored output;
        None for a whole-vector statistic).
    """
    score = float(explanation.score.reshape(-1)[column])
    null = explanation.test.null_distribution
    null_mean = standardised = ratio = None
    if null is not None:
        values = (null if null.dim() == 1 else null[:, column]).double()
        null_mean = float(values.mean())
        std = float(values.std())
        standardised = (score - null_mean) / std if std > 0 and math.isfinite(std) else None
    if explanation.effect_size is not None and math.isfinite(float(explanation.effect_size.reshape(-1)[column])):
        ratio = float(explanation.effect_size.reshape(-1)[column])
    change = None
    if explanation.test.statistic_name not in VECTOR_NORMS:
        j = explanation.target if explanation.target is not None else column
        change = float((explanation.outputs[-1, j] - explanation.outputs[0, j]).abs())
    return {
        "score": score,
        "null_mean": null_mean,
        "ratio": ratio,
        "standardised": standardised,
        "output_change": change,
    }


def _columns(explanation: Any, labels: Sequence[str] | None, limit: int = 8) -> list[tuple[int, str]]:
    """The output columns shown in the slider's table: the explained one, else those that change most."""
    outputs = explanation.outputs
    if explanation.target is not None:
        order = [explanation.target]
    else:
        spread = outputs.max(0).values - outputs.min(0).values
        order = torch.argsort(spread, descending=True)[:limit].tolist()
    return [(j, output_name(j, labels)) for j in order]


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
        name = output_name(decision, labels)
        flip = " (decision flips here)" if k in explanation.flips.flip_steps.tolist() else ""
        captions.append(
            f"step {k + 1} of {n}: {seq.property_name} = {float(seq.values[k]):.4g} {seq.unit}; decision: {name}{flip}"
        )
        rows.append(
            [[label, f"{float(explanation.outputs[k, j]):.4f}", "◀" if j == decision else ""] for j, label in columns]
        )
    return frames, captions, rows


def maps_target(explanation: Any) -> int:
    """The output column the maps explain: the verdict card's (:func:`headline`), else (a whole-vector
    statistic) the model's decision on the original image."""
    column = headline(explanation)[1]
    if column is not None:
        return column
    original = explanation.original_outputs if explanation.original_outputs is not None else explanation.outputs[0]
    return int(original.argmax())


def compute_maps(model: Any, explanation: Any, names: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """Every named baseline's maps of the original and the fully intervened image, of :func:`maps_target`.

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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # failures are listed in the report
        maps = baseline_maps(model, explanation.sequence, target=maps_target(explanation), baselines=baselines)
    slic = {
        name: [dict(info) for info in getattr(b, "last_segmentation_info", [])]
        for name, b in baselines.items()
        if getattr(b, "last_segmentation_info", None)
    }
    return maps, slic


def _ratio_text(ratio: float | None, statistic: str) -> str:
    """The effect size (score / exact shuffled-null mean) in 2 significant digits, with what either side of 1 means."""
    if ratio is None:
        return "n/a (no exact null mean for this statistic or output)"
    sides = NULL_SIDES.get(statistic)
    meaning = "1: no order" + (f"; below 1: {sides.hints[0]}; above: {sides.hints[1]}" if sides else "")
    return f"{ratio:.2g} ({meaning})"


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
    k, column = headline(explanation)
    name = output_name(column, labels)
    effect = effect_sizes(explanation, k)
    page.heading("Verdict", 2)
    add_verdict_card(page, explanation, labels)
    statistic = explanation.test.statistic_name
    details = [
        (f"{explanation.statistic_label} of {name}", f"{effect['score']:.4g} {explanation.score_unit}"),
        (
            f"effect size: {explanation.statistic_label} / a random order's mean",
            _ratio_text(effect["ratio"], statistic),
        ),
        (
            "distance from the null mean",
            "n/a" if effect["standardised"] is None else f"{effect['standardised']:.2g} null standard deviations",
        ),
    ]
    if effect["output_change"] is not None:
        details.append((f"|change of {name}| first → last step", f"{effect['output_change']:.3g}"))
    page.stats(details)
    page.preformatted(explanation.summary(labels))
    page.heading("The intervention", 2)
    add_filmstrip(page, explanation)
    frames, captions, rows = _slider_data(explanation, labels)
    page.paragraph(f"Move the slider to scrub through the {len(seq)} steps of the sequence.", "note")
    page.slider(frames, captions, ["output", "value", "decision"], rows, width=SLIDER_WIDTH)
    page.heading("Behaviour and test", 2)
    add_behaviour(page, explanation, labels)
    add_null(page, explanation, k)
    page.heading("Attribution maps before and after", 2)
    if maps is not None:
        add_maps(page, maps, labels)
    else:
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
