"""An explanation in HTML: the pieces ``propgrad explain``'s report.html and the notebook views share.

The verdict card (:func:`verdict_rows`: the size-aware placebo test's decision first, the paper's
permutation test beside it, the practical size and the flips, under the one-line reading), the
behaviour curve, the permutation null with its caption, the filmstrip and the baselines' maps
before and after (a constant map labelled with its value) are built here, once, and added to an
:class:`~propgrad.core.html_report.HtmlReport` by the ``add_*`` functions. ``propgrad explain
--out`` puts them on its page (:mod:`propgrad.cli.explain_report`); in Jupyter an
:class:`~propgrad.explain.result.Explanation`, a batch's
:class:`~propgrad.explain.explanations.Explanations`,
:class:`~propgrad.explain.realisations.Realisations` and
:class:`~propgrad.explain.maps.BaselineMaps` show them through ``_repr_html_``
(:func:`explanation_fragment`, :func:`explanations_fragment`, :func:`realisations_fragment`,
:func:`maps_fragment`) as an :class:`HtmlFragment`: self-contained HTML with every image a data URI,
no script, no external style sheet, no LaTeX.

Every figure is a ``matplotlib.figure.Figure`` drawn on the Agg canvas, never a pyplot figure: it is
not registered with pyplot (nothing to close, no figure left behind in a notebook loop) and drawing
it changes neither the backend nor ``rcParams``. matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import html
import re
from typing import Any, Sequence

import numpy as np

from propgrad.core.html_report import CSS, HtmlReport, array_png, figure_png, png_data_uri
from propgrad.core.plotting import null_caption, readable_ylim
from propgrad.stats.practical_size import format_size, why_untested
from propgrad.stats.vector_statistic import VECTOR_NORMS

FRAGMENT_CLASS = "propgrad-view"
"""The class of a notebook view's outer ``<div>``; its style applies inside it only."""
NOTEBOOK_DPI = 80
"""Resolution of a notebook view's figures (the report's are 110 dpi): two fit side by side in a cell."""
THUMBNAIL = 64
"""Pixels of an image in a batch's table (larger images are subsampled, smaller enlarged)."""
MAX_ROWS = 50
"""Most explanations a batch's table shows (the first; a note says how many more there are)."""
BEHAVIOUR_CAPTION = "Model outputs along the intervention, with the decision threshold and the flips (dashed)"
_FRAGMENT_CSS = (
    # the root (the page's body): no page margins, readable in a notebook's dark theme too
    "body{margin:0;padding:.4em .6em;max-width:none;background:#fff;color:#222}"
    ".figures{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}"
    ".figures figure{display:table;margin:0}"
    ".figures figcaption{display:table-caption;caption-side:bottom}"
    "td img{border:1px solid #ddd;vertical-align:middle}"
    "td.text{text-align:left;white-space:normal;min-width:8em}"
)


def scoped_css(css: str, root: str) -> str:
    """Rules of a style sheet that apply inside ``root`` only (a selector such as ``.propgrad-view``).

    ``body`` becomes ``root`` itself; every other selector is prefixed with ``root``, so a notebook's
    own headings, tables and text keep their style.
    """
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        names = [s.strip() for s in selectors.split(",")]
        rules.append(",".join(root if s == "body" else f"{root} {s}" for s in names) + "{" + body.strip() + "}")
    return "".join(rules)


class HtmlFragment(HtmlReport):
    """An :class:`~propgrad.core.html_report.HtmlReport` rendered for a notebook cell, not as a page.

    :meth:`render` gives one ``<div class="propgrad-view">`` holding its style (the report's, scoped
    to the div by :func:`scoped_css`), the title as a heading and the parts: no ``<html>``, no script
    (a notebook does not run an output's scripts; the report's slider is left out). Every method of
    the report adds what it adds there.
    """

    def render(self) -> str:
        """The fragment: the scoped style, the title and the parts in one ``<div>``."""
        style = scoped_css(CSS + _FRAGMENT_CSS, f".{FRAGMENT_CLASS}")
        title = f"<h3>{html.escape(self.title)}</h3>"
        return f'<div class="{FRAGMENT_CLASS}"><style>{style}</style>{title}' + "".join(self._parts) + "</div>"


def rendered(fig: Any, dpi: int = 110) -> bytes:
    """The PNG bytes of a figure of this module; the figure is cleared and left to be freed.

    The figures are ``matplotlib.figure.Figure`` objects on the Agg canvas that pyplot never saw, so
    there is no figure manager to close; clearing drops the artists (and the image data they hold)
    at once.
    """
    try:
        return figure_png(fig, dpi=dpi)
    finally:
        fig.clear()


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


def default_labels(explanation: Any) -> Sequence[str] | None:
    """The output columns' names an explanation carries: its class grouping's descriptor labels, else None."""
    classes = getattr(explanation, "classes", None)
    return None if classes is None else classes.grouping.column_labels


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


def direction_text(sequence: Any) -> str:
    """The direction of a signed intervention in words (``", darkening"``), "" for none.

    A source whose property values are a magnitude (``gaussian_vignette``: ``|s|``) says its sign in
    ``metadata["direction"]``; the page shows the values and states the sign once, here.
    """
    direction = sequence.metadata.get("direction")
    words = {"darken": "darkening", "brighten": "brightening"}
    return f", {words.get(direction, direction)}" if isinstance(direction, str) and direction else ""


def _decision(significant: bool) -> str:
    return "significant" if significant else "not significant"


def _not_run(explanation: Any) -> str:
    """Why the placebo test did not run: ``not run (...)``."""
    return f"not run ({why_untested(explanation.sequence.periodic) or 'no placebos were drawn'})"


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
        rows.append((size_aware, _not_run(explanation)))
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


def behaviour_figure(explanation: Any, labels: Sequence[str] | None) -> Any:
    """The outputs along the property with the decision threshold and a dashed line at every flip."""
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
    fig.suptitle(f"{explanation.source}: {seq.property_name} [{seq.unit}]{direction_text(seq)}", fontsize=9)
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


def add_verdict_card(page: HtmlReport, explanation: Any, labels: Sequence[str] | None) -> None:
    """Add the verdict card of the :func:`headline` result: the one-line reading, then :func:`verdict_rows`."""
    k, column = headline(explanation)
    page.card(
        f"Verdict for {output_name(column, labels)}",
        verdict_rows(explanation, k),
        lead=f"reading: {explanation.reading}",
    )


def add_filmstrip(page: HtmlReport, explanation: Any, *, dpi: int = 110) -> None:
    """Add the filmstrip of the intervention, captioned with the property's range (and direction)."""
    seq = explanation.sequence
    page.image(
        rendered(filmstrip_figure(explanation), dpi),
        alt="filmstrip of the intervention",
        caption=f"Filmstrip: {seq.property_name} from {float(seq.values[0]):.3g} to {float(seq.values[-1]):.3g} "
        f"{seq.unit}{direction_text(seq)}",
    )


def add_behaviour(page: HtmlReport, explanation: Any, labels: Sequence[str] | None, *, dpi: int = 110) -> None:
    """Add the behaviour curve (:func:`behaviour_figure`)."""
    page.image(rendered(behaviour_figure(explanation, labels), dpi), alt="behaviour curve", caption=BEHAVIOUR_CAPTION)


def add_null(page: HtmlReport, explanation: Any, k: int, *, dpi: int = 110) -> None:
    """Add the null distribution of scored result ``k`` with :func:`null_figure_caption`."""
    page.image(
        rendered(null_figure(explanation, k), dpi),
        alt="null distribution",
        caption=null_figure_caption(explanation, k),
    )


def add_maps(page: HtmlReport, maps: Any, labels: Sequence[str] | None, *, dpi: int = 110) -> None:
    """Add the baselines' maps before and after (:func:`maps_figure`), a note per constant map
    (:func:`constant_maps`) and a table of the baselines that failed."""
    if maps.maps:
        page.image(
            rendered(maps_figure(maps, labels), dpi),
            alt="attribution maps before and after",
            caption=f"Baseline maps of {output_name(maps.target, labels)}",
        )
        for line in constant_maps(maps):
            page.paragraph(line, "note constant-map")
    if maps.failures:
        page.table(["baseline", "error"], [[n, e] for n, e in maps.failures.items()])


class _Markup(str):
    """A table cell that is already HTML (an image); every other cell is escaped."""


def _table(page: HtmlReport, headers: Sequence[str], rows: Sequence[Sequence[Any]], text: Sequence[int] = ()) -> None:
    """Add a table whose cells are escaped text or :class:`_Markup`; columns ``text`` read left and wrap."""

    def cell(j: int, value: Any) -> str:
        css = ' class="text"' if j in text else ""
        return f"<td{css}>{value if isinstance(value, _Markup) else html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(j, c) for j, c in enumerate(row)) + "</tr>" for row in rows)
    page.raw(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _img(png: bytes, alt: str) -> _Markup:
    return _Markup(f'<img src="{png_data_uri(png)}" alt="{html.escape(alt, quote=True)}">')


def _thumbnail(image: Any) -> bytes:
    """An image (3, H, W) at about :data:`THUMBNAIL` pixels wide: subsampled when larger, enlarged when smaller."""
    width = int(image.shape[-1])
    step = max(1, width // THUMBNAIL)
    return array_png(image[:, ::step, ::step], scale=max(1, THUMBNAIL // max(width, 1)))


def drawn_column(explanation: Any) -> int:
    """The output column a small curve draws: the :func:`headline` column, or for a whole-vector
    statistic the column that changes most from the original image."""
    column = headline(explanation)[1]
    return int(explanation.practical.largest_change.argmax()) if column is None else column


def curve_png(explanation: Any, dpi: int = NOTEBOOK_DPI) -> bytes:
    """A small curve of :func:`drawn_column` along the sequence, a dashed line at every decision flip."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(2.0, 0.8)
    ax = fig.add_subplot()
    values = explanation.values.detach().cpu().double().numpy()
    ax.plot(values, explanation.outputs[:, drawn_column(explanation)].detach().cpu().double().numpy(), linewidth=1.2)
    for step in explanation.flips.flip_steps.tolist():
        ax.axvline((values[step - 1] + values[step]) / 2.0, color="0.25", linestyle="--", linewidth=0.8)
    ax.set_xticks([])
    ax.tick_params(labelsize=6, length=2)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=2))
    return rendered(fig, dpi)


def _test_cell(significant: bool, p_value: float) -> str:
    return f"{_decision(significant)}, p = {p_value:.3g}"


def _explanation_row(explanation: Any, labels: Sequence[str] | None, frame: int) -> list[Any]:
    """One row of :func:`add_explanations_table` (after its first cell)."""
    k, column = headline(explanation)
    placebo = explanation.placebo
    if placebo is None:
        verdict = _not_run(explanation)
    else:
        verdict = _test_cell(bool(explanation.verdict.reshape(-1)[k]), float(placebo.p_value.reshape(-1)[k]))
    return [
        _img(_thumbnail(explanation.images[frame]), "original image" if frame == 0 else "fully intervened image"),
        output_name(column, labels),
        explanation.reading,
        verdict,
        _test_cell(bool(explanation.significant.reshape(-1)[k]), float(explanation.p_value.reshape(-1)[k])),
        f"{explanation.statistic_label} = {float(explanation.score.reshape(-1)[k]):.4g} {explanation.score_unit}",
        str(explanation.flips.n_flips),
        _img(curve_png(explanation), f"{output_name(drawn_column(explanation), labels)} along the sequence"),
    ]


def add_explanations_table(
    page: HtmlReport,
    explanations: Sequence[Any],
    *,
    first: tuple[str, Sequence[Any]] | None = None,
    frame: int = 0,
) -> None:
    """Add one row per explanation: its image, reading, both tests' verdicts with their p-values, the score,
    the decision flips and a small curve of the explained output (:func:`curve_png`).

    Args:
        page: The page or fragment.
        explanations: The explanations, each read at its :func:`headline` result.
        first: The first column's header and cells (default: ``#`` and the row numbers).
        frame: The step shown as the image: 0 (the original) or -1 (the fully intervened image).
    """
    header, names = first if first is not None else ("#", range(len(explanations)))
    rows = [[name, *_explanation_row(e, default_labels(e), frame)] for name, e in zip(names, explanations)]
    headers = [
        header,
        "image" if frame == 0 else "fully intervened",
        "output",
        "reading",
        "verdict: placebo test (size-aware)",
        "permutation test (paper)",
        "score",
        "flips",
        "output along the sequence",
    ]
    _table(page, headers, rows, text=(3, 4, 5, 6))


def _what(explanations: Sequence[Any]) -> str:
    """``": alpha_patch on alpha"`` when every explanation has the same source and property, else ""."""
    kinds = {(e.source, e.sequence.property_name) for e in explanations}
    return f": {next(iter(kinds))[0]} on {next(iter(kinds))[1]}" if len(kinds) == 1 else ""


def explanation_fragment(explanation: Any, labels: Sequence[str] | None = None) -> str:
    """An :class:`~propgrad.explain.result.Explanation` in a notebook cell: the verdict card, the behaviour
    curve beside the null distribution (with its caption), then the filmstrip.

    Args:
        explanation: The explanation.
        labels: Names of the output columns (default: the class grouping's descriptor labels, else ``output j``).
    """
    labels = labels if labels is not None else default_labels(explanation)
    seq = explanation.sequence
    page = HtmlFragment(f"propgrad explanation: {explanation.source} on {seq.property_name} ({len(seq)} steps)")
    add_verdict_card(page, explanation, labels)
    page.raw('<div class="figures">')
    add_behaviour(page, explanation, labels, dpi=NOTEBOOK_DPI)
    add_null(page, explanation, headline(explanation)[0], dpi=NOTEBOOK_DPI)
    page.raw("</div>")
    add_filmstrip(page, explanation, dpi=NOTEBOOK_DPI)
    return page.render()


def explanations_fragment(explanations: Sequence[Any]) -> str:
    """A batch's explanations in a notebook cell: one table row each (:func:`add_explanations_table`), the
    first :data:`MAX_ROWS` of a larger batch."""
    page = HtmlFragment(f"propgrad explanations of {len(explanations)} images{_what(explanations)}")
    if explanations:
        add_explanations_table(page, explanations[:MAX_ROWS])
        more = f"The first {MAX_ROWS} of {len(explanations)} are shown. " if len(explanations) > MAX_ROWS else ""
        page.paragraph(f"{more}Display one (explanations[i]) for its verdict card, curves and filmstrip.", "note")
    return page.render()


def realisations_fragment(realisations: Any, labels: Sequence[str] | None = None) -> str:
    """A :class:`~propgrad.explain.realisations.Realisations` in a notebook cell: the mean score with its
    bootstrap interval and the share significant per output, the R curves together, then one row per
    realisation (:func:`add_explanations_table`, showing each fully intervened image)."""
    first = realisations.explanations[0]
    labels = labels if labels is not None else default_labels(first)
    seq = first.sequence
    s = realisations.scores
    page = HtmlFragment(
        f"propgrad realisations: {first.source} on {seq.property_name}, {len(realisations)} realisations"
    )
    columns = [first.target] if first.target is not None else list(range(s.mean.numel()))
    whole_vector = first.test.statistic_name in VECTOR_NORMS
    order = np.argsort(-np.nan_to_num(s.mean.reshape(-1).double().numpy(), nan=-np.inf), kind="stable")[:10]
    rows = []
    for k in order.tolist():
        row = [
            output_name(None if whole_vector else columns[k], labels),
            f"{float(s.mean.reshape(-1)[k]):.4g} {first.score_unit}",
            f"[{float(s.ci_low.reshape(-1)[k]):.4g}, {float(s.ci_high.reshape(-1)[k]):.4g}]",
            f"{100 * float(s.fraction_significant.reshape(-1)[k]):.0f}%",
        ]
        if realisations.placebo is not None:
            row.append(f"{100 * float(realisations.placebo.fraction_significant.reshape(-1)[k]):.0f}%")
        rows.append(row)
    headers = [
        "output",
        f"mean {first.statistic_label}",
        f"{100 * s.confidence_level:g}% bootstrap CI",
        "significant (permutation test)",
    ]
    if realisations.placebo is not None:
        headers.append("significant (placebo test)")
    page.table(headers, rows)
    column = first.target if first.target is not None else (drawn_column(first) if whole_vector else int(order[0]))
    fig = _figure(6.0, 3.4)
    realisations.plot_behaviour(fig.add_subplot(), column=column, label=output_name(column, labels))
    page.image(
        rendered(fig, NOTEBOOK_DPI),
        alt="behaviour curves of the realisations",
        caption=f"{output_name(column, labels)} along the intervention, one curve per realisation",
    )
    add_explanations_table(page, realisations.explanations, first=("seed", realisations.seeds), frame=-1)
    return page.render()


def maps_fragment(maps: Any, labels: Sequence[str] | None = None) -> str:
    """A :class:`~propgrad.explain.maps.BaselineMaps` in a notebook cell: the maps before and after
    (:func:`add_maps`; the first and the last of its steps), constant maps labelled, failures listed."""
    page = HtmlFragment(f"propgrad baseline maps of {output_name(maps.target, labels)}")
    steps = ", ".join(f"step {s} ({v:.4g})" for s, v in zip(maps.steps, maps.values))
    page.paragraph(f"Baselines: {', '.join(maps.maps) or 'none with maps'}; steps (property value): {steps}.", "note")
    add_maps(page, maps, labels, dpi=NOTEBOOK_DPI)
    return page.render()
