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

from propgrad.core.html_report import HtmlReport, array_png, figure_png
from propgrad.core.plotting import NULL_SIDES, null_caption
from propgrad.stats.practical_size import format_size, why_untested
from propgrad.stats.vector_statistic import VECTOR_NORMS

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


def output_name(column: int | None, labels: Sequence[str] | None) -> str:
    """The one name of an output column on the page: its label, else ``output j``; ``all outputs`` for
    None (a whole-vector statistic scores every column at once)."""
    if column is None:
        return "all outputs"
    return labels[column] if labels is not None and 0 <= column < len(labels) else f"output {column}"


def headline(explanation: Any) -> tuple[int, int | None]:
    """The scored result the verdict card reads and the output column it scores: ``(k, column)``.

    ``k`` indexes ``explanation.score.reshape(-1)``: 0 for a ``target``, else the top-scored column
    (the column of :attr:`~propgrad.explain.result.Explanation.reading`). ``column`` is the output
    column (None for a whole-vector statistic, whose one score covers every column).
    """
    if explanation.target is not None:
        return 0, int(explanation.target)
    k = explanation.top_index
    whole_vector = explanation.test.statistic_name in VECTOR_NORMS
    return k, None if whole_vector else k


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


def _direction(sequence: Any) -> str:
    """The direction of a signed intervention in words (``", darkening"``), "" for none.

    A source whose property values are a magnitude (``gaussian_vignette``: ``|s|``) says its sign in
    ``metadata["direction"]``; the page shows the values and states the sign once, here.
    """
    direction = sequence.metadata.get("direction")
    words = {"darken": "darkening", "brighten": "brightening"}
    return f", {words.get(direction, direction)}" if isinstance(direction, str) and direction else ""


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


def null_figure(explanation: Any, column: int = 0) -> Any:
    """The permutation null distribution of scored column ``column`` with the observed statistic and the p-value."""
    fig = _figure(4.6, 3.4)
    ax = fig.add_subplot()
    explanation.plot_null(ax, column=column)
    ax.set_xlabel(explanation.statistic_label)
    _few_ticks(ax)
    fig.suptitle("permutation test: null distribution (shuffled orders)", fontsize=9)
    return fig


def null_figure_caption(explanation: Any, column: int = 0) -> str:
    """The null figure's caption: the p-value and what the observed value's side of the null means
    (:func:`propgrad.core.plotting.null_caption`)."""
    observed = float(explanation.score.reshape(-1)[column])
    p_value = float(explanation.p_value.reshape(-1)[column])
    null = explanation.test.null_distribution
    head = f"Null distribution of the permutation test; observed {observed:.4g}, p = {p_value:.4g}."
    if null is None:
        return f"{head} The null distribution was not kept (many output columns)."
    null = null if null.dim() == 1 else null[:, column]
    return f"{head} {null_caption(explanation.test.statistic_name, observed, null, label=explanation.statistic_label)}"


def filmstrip_figure(explanation: Any, frames: int = 8) -> Any:
    """Evenly spaced steps of the sequence, captioned with the property value."""
    from propgrad.core.plotting import plot_filmstrip

    frames = max(1, min(frames, len(explanation.sequence)))
    fig = _figure(1.0 * frames, 1.45)
    axes = fig.subplots(1, frames, squeeze=False)[0]
    plot_filmstrip(list(axes), explanation.images, explanation.values)
    seq = explanation.sequence
    fig.suptitle(f"{explanation.source}: {seq.property_name} [{seq.unit}]{_direction(seq)}", fontsize=9)
    return fig


def constant_label(value: float) -> str:
    """The label of a constant attribution map: ``constant map: all values = 0``."""
    return f"constant map: all values = {value:.3g}"


def constant_maps(maps: Any) -> list[str]:
    """One line per baseline with a constant map (:meth:`~propgrad.explain.maps.BaselineMaps.constant`):
    which of its maps, the value, and, for a map of zeros whose channels are not zero, that they cancel."""
    lines = []
    for name in maps.maps:
        steps = {"before": 0, "after": -1}
        found = {kind: maps.constant(name, step) for kind, step in steps.items()}
        found = {kind: value for kind, value in found.items() if value is not None}
        if not found:
            continue
        if len(set(found.values())) == 1:
            label = f"{' and '.join(found)}: {constant_label(next(iter(found.values())))}"
        else:
            label = "; ".join(f"{kind}: {constant_label(value)}" for kind, value in found.items())
        zeros = [kind for kind, value in found.items() if value == 0]
        reach = max((float(np.abs(maps.map(name, steps[kind])).max()) for kind in zeros), default=0.0)
        cancel = f" (the channels, summed as drawn, reach ±{reach:.3g} but cancel at every pixel)" if reach > 0 else ""
        lines.append(f"{name} {label}{cancel}")
    return lines


def maps_figure(maps: Any, labels: Sequence[str] | None = None) -> Any:
    """Rows: baselines; columns: original image, its map, final image, its map (one colour scale per row).

    A map is drawn as Captum's ``visualize_image_attr`` draws it, summed over the channels, on one
    colour scale per baseline (the largest absolute channel sum of its maps). A constant map is not
    drawn (it would be a blank panel): its panel says ``constant map: all values = <value>``.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    names = list(maps.maps)
    fig = _figure(6.4, 1.55 * max(len(names), 1) + 0.4)
    axes = fig.subplots(max(len(names), 1), 4, squeeze=False)
    for r, name in enumerate(names):
        bound = maps.scale(name, summed=True) or 1.0
        drawn = False
        for c, (kind, step) in enumerate((("image", 0), ("map", 0), ("image", -1), ("map", -1))):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if kind == "image":
                ax.imshow(np.clip(maps.image(step), 0, 1), interpolation="nearest")
                ax.set_title("original" if step == 0 else "fully intervened", fontsize=7)
                continue
            ax.set_title(f"{name}: {'before' if step == 0 else 'after'}", fontsize=7)
            constant = maps.constant(name, step)
            if constant is not None:
                ax.set_facecolor("0.93")
                text = constant_label(constant).replace(": ", ":\n", 1)
                ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=6.5)
                continue
            ax.imshow(maps.channel_sum(name, step), cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
            drawn = True
        if drawn:
            scale = ScalarMappable(norm=Normalize(-bound, bound), cmap="RdBu_r")
            fig.colorbar(scale, ax=list(axes[r]), shrink=0.8, label="attribution", location="right")
    fig.suptitle(
        f"attribution maps of {output_name(maps.target, labels)}, before and after (one colour scale per baseline)",
        fontsize=8,
    )
    return fig


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


def _decision(significant: bool) -> str:
    return "significant" if significant else "not significant"


def verdict_rows(explanation: Any, k: int) -> list[tuple[str, str]]:
    """The verdict card's rows for scored result ``k``: the size-aware test first, the paper's test beside it.

    Returns:
        ``(name, value)`` pairs: the placebo test's decision with its p-value (and where a sequential
        test stopped), the permutation test's, the practical size and the decision flips.
    """
    rows = []
    placebo, alpha = explanation.placebo, explanation.test.alpha
    size_aware = "size-aware test (placebo): larger than an arbitrary change of the image of the same size?"
    if placebo is None:
        why = why_untested(explanation.sequence.periodic) or "no placebos were drawn"
        rows.append((size_aware, f"not run ({why})"))
    else:
        p = float(placebo.p_value.reshape(-1)[k])
        used = placebo.n_placebos if placebo.n_used is None else int(placebo.n_used.reshape(-1)[k])
        drawn = (
            f"stopped after {used} of {placebo.n_placebos} placebos"
            if used < placebo.n_placebos
            else f"{placebo.n_placebos} placebos"
        )
        adjusted = ""
        if placebo.p_value_adjusted is not None:
            adjusted = f", {placebo.correction}-adjusted p = {float(placebo.p_value_adjusted.reshape(-1)[k]):.3g}"
        verdict = bool(explanation.verdict.reshape(-1)[k])
        rows.append((size_aware, f"{_decision(verdict)}, p = {p:.3g}{adjusted} at alpha = {placebo.alpha:g}; {drawn}"))
    p = float(explanation.p_value.reshape(-1)[k])
    adjusted = ""
    if explanation.p_value_adjusted is not None:
        adjusted = f", {explanation.correction}-adjusted p = {float(explanation.p_value_adjusted.reshape(-1)[k]):.3g}"
    systematic = bool(explanation.significant.reshape(-1)[k])
    rows.append(
        (
            "permutation test (paper): an ordered, systematic response, however small",
            f"{_decision(systematic)}, p = {p:.3g}{adjusted} at alpha = {alpha:g}; "
            f"{explanation.test.n_permutations:,} shuffles",
        )
    )
    practical, column = explanation.practical, headline(explanation)[1]
    if column is None:  # a whole-vector statistic: the output that moves most
        size = format_size(float(practical.largest_change.max()), practical.in_points) + " (the output that moves most)"
    else:
        size = practical.describe(column)
    rows.append(("practical size: largest output change from the original image", size))
    rows.append(("decision flips along the sequence", str(explanation.flips.n_flips)))
    return rows


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
    page.card(f"Verdict for {name}", verdict_rows(explanation, k), lead=f"reading: {explanation.reading}")
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
    page.image(
        figure_png(filmstrip_figure(explanation)),
        alt="filmstrip of the intervention",
        caption=f"Filmstrip: {seq.property_name} from {float(seq.values[0]):.3g} to {float(seq.values[-1]):.3g} "
        f"{seq.unit}{_direction(seq)}",
    )
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
        figure_png(null_figure(explanation, k)), alt="null distribution", caption=null_figure_caption(explanation, k)
    )
    page.heading("Attribution maps before and after", 2)
    if maps is not None and maps.maps:
        page.image(
            figure_png(maps_figure(maps, labels)),
            alt="attribution maps before and after",
            caption=f"Baseline maps of {output_name(maps.target, labels)}",
        )
        for line in constant_maps(maps):
            page.paragraph(line, "note constant-map")
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
