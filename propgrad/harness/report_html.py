"""``report.html`` of a benchmark run: every table and figure in one self-contained page.

The page opens with the run's conclusions (the verdict table and the suites' validity checks,
PASS/FAIL, :func:`propgrad.harness.report.headline_sections`) and a table of contents; then per
suite its tables (:func:`propgrad.harness.report.report_sections`: test accuracy, the Tab. 2-style
flip tables, the property scores) and per intervention the figures of
:mod:`propgrad.harness.figures` (behaviour curves, ROC curves, score distributions, the filmstrip
and the before/after maps), embedded as PNG; then the settings with the timing, the provenance
(with every model's weights hash, as in report.md) and the seeds.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Sequence

from propgrad.core.html_report import HtmlReport
from propgrad.harness.figures import roc_left_out
from propgrad.harness.report import (
    WEIGHTS_TITLE,
    ContentsLine,
    Section,
    anchor,
    contents,
    model_weights_rows,
    suite_anchor,
)

HTML_NAME = "report.html"
FIGURE_KINDS = (
    ("behaviour", "Behaviour along the intervention: flipping (red) and non-flipping (blue) images"),
    ("roc", "ROC curves per method (flip anywhere)"),
    ("scores", "Score distributions of flipped vs. not flipped images"),
    ("filmstrip", "Filmstrip of the intervention (kept images)"),
    ("maps", "Attribution maps before and after the intervention"),
)
_TRAILING = (("Settings and timing", "settings"), ("Versions and provenance", "versions"), ("Seeds", "seeds"))
_MOST_LEFT = 6
#: Left-aligned, wrapping text columns of the tables (``left-<n>``: the first n), for the page and the notebook view.
TEXT_COLUMNS_CSS = "".join(
    f".left-{n} td:nth-child(-n+{n}),.left-{n} th:nth-child(-n+{n}){{text-align:left;white-space:normal}}"
    for n in range(2, _MOST_LEFT + 1)
)
"""A table's leading label and text columns (:attr:`propgrad.harness.report.Table.left`) read left-aligned
and wrap; the page's own style aligns every column but the first right, for numbers."""


def benchmark_html(
    results: Mapping[str, Any],
    sections: Sequence[Section],
    out_dir: Path,
    *,
    timing_line: str = "",
    links: Sequence[str] = (),
) -> HtmlReport:
    """Build the benchmark page.

    Args:
        results: The data written to ``results.json`` (settings, versions, suites, summary, figures).
        sections: The report's tables and notes (:func:`propgrad.harness.report.report_sections`).
        out_dir: The folder holding the figures named in ``results["figures"]``.
        timing_line: The report's timing sentence.
        links: Files beside the report to link (``results.json``, ``records.csv`` ...).
    """
    page = HtmlReport("propgrad benchmark: predict the flip")
    page.raw(f"<style>{TEXT_COLUMNS_CSS}</style>")
    settings = results.get("settings", {})
    suites_text = ", ".join(settings.get("suites", []))
    baselines_text = ", ".join(settings.get("baselines", [])) or "none"
    page.paragraph(
        f"Suites {suites_text}; baselines {baselines_text}; K = {settings.get('n_permutations')} permutations; "
        f"M = {settings.get('n_placebos')} placebos{_variant(settings)}; alpha = {settings.get('alpha')}."
    )
    if links:
        page.raw(
            '<p class="note">Machine-readable: '
            + ", ".join(f'<a href="{name}">{name}</a>' for name in links)
            + " (strict JSON; CSV of per-image records).</p>"
        )
    figures = [str(f) for f in results.get("figures", [])]
    suites = list(results.get("suites", {})) or list(dict.fromkeys(s.suite for s in sections if s.suite))
    present = {suite: _figures_of(results, suite, figures) for suite in suites}
    per_suite = {
        suite: [(f"{intervention}: figures", _figures_anchor(suite, intervention)) for intervention in found]
        for suite, found in present.items()
    }
    trailing = list(_TRAILING)
    if results.get("versions", {}).get("model_weights"):
        trailing.insert(2, ("Model weights", "model-weights"))
    _contents(page, contents(sections, per_suite=per_suite, trailing=trailing))
    for section in (s for s in sections if s.suite is None and s.headline):
        add_section(page, section)
    for suite in suites:
        page.heading(f"Suite {suite}", 2, anchor=suite_anchor(suite))
        description = results.get("suites", {}).get(suite, {}).get("description")
        if description:
            page.paragraph(description, "note")
        for section in (s for s in sections if s.suite == suite):
            add_section(page, section)
        for intervention, kinds in present[suite].items():
            page.heading(f"{suite} / {intervention}: figures", 3, anchor=_figures_anchor(suite, intervention))
            for kind, text in kinds:
                name = f"{kind}_{suite}_{intervention}.png"
                png = (Path(out_dir) / name).read_bytes()
                caption = f"{text} — {name}"
                if kind == "roc":
                    caption += _roc_note(results, suite, intervention)
                page.image(png, alt=f"{text} ({suite} / {intervention})", caption=caption)
    for section in (s for s in sections if s.suite is None and not s.headline):
        add_section(page, section)
    page.heading("Settings and timing", 2, anchor="settings")
    if timing_line:
        page.paragraph(timing_line, "note")
    page.key_values({k: v for k, v in settings.items()})
    versions = dict(results.get("versions", {}))
    model_weights = versions.pop("model_weights", None)
    page.provenance(versions, anchor="versions")
    if model_weights:
        page.heading(WEIGHTS_TITLE, 3, anchor="model-weights")
        weights = model_weights_rows(model_weights)
        page.table(weights.headers, weights.rows)
    page.heading("Seeds", 3, anchor="seeds")
    page.key_values(results.get("seeds", {}))
    return page


def _variant(settings: Mapping[str, Any]) -> str:
    """`` (variant)`` of the run's placebos when it ran any, else ""."""
    return f" ({settings['placebo']})" if settings.get("n_placebos") and settings.get("placebo") else ""


def _figures_anchor(suite: str, intervention: str) -> str:
    return anchor(suite, intervention, "figures")


def _figures_of(results: Mapping[str, Any], suite: str, figures: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Per intervention of ``suite`` that has figures, the ``(kind, caption)`` of each one written."""
    interventions = results.get("suites", {}).get(suite, {}).get("interventions", [])
    found = {
        intervention: [(kind, text) for kind, text in FIGURE_KINDS if f"{kind}_{suite}_{intervention}.png" in figures]
        for intervention in interventions
    }
    return {intervention: kinds for intervention, kinds in found.items() if kinds}


def _roc_note(results: Mapping[str, Any], suite: str, intervention: str) -> str:
    """The models the ROC figure leaves out, with why (:func:`propgrad.harness.figures.roc_left_out`)."""
    scores = results.get("summary", {}).get(suite, {}).get(intervention, {}).get("scores", {})
    left_out = roc_left_out(scores)
    if not left_out:
        return ""
    named = "; ".join(f"{model} ({why})" for model, why in left_out.items())
    return f". No panel for {named}: a ROC curve needs flipped and unflipped images."


def _contents(page: HtmlReport, lines: Sequence[ContentsLine]) -> None:
    """The table of contents as a list of links, a suite's parts nested under it (depths 0 and 1)."""
    page.heading("Contents", 2, anchor="contents")
    markup = ['<nav class="toc"><ul>']
    for k, line in enumerate(lines):
        after = lines[k + 1].depth if k + 1 < len(lines) else 0
        markup.append(f'<li><a href="#{_esc(line.target)}">{_esc(line.text)}</a>')
        if after > line.depth:
            markup.append("<ul>")
        else:
            markup.append("</li>" + "</ul></li>" * (line.depth - after))
    markup.append("</ul></nav>")
    page.raw("".join(markup))


def add_section(page: HtmlReport, section: Section) -> None:
    """Write one report section (its heading, lead, tables, figures) to ``page``: the page's and the notebook view's."""
    page.heading(section.title, 3 if section.suite is not None else 2, anchor=section.anchor or None)
    if section.lead:
        page.paragraph(section.lead, "note")
    if section.table is not None and section.table.left > 1:
        page.raw(f'<div class="left-{min(section.table.left, _MOST_LEFT)}">')
        page.table(section.table.headers, section.table.rows)
        page.raw("</div>")
    elif section.table is not None:
        page.table(section.table.headers, section.table.rows)
    if section.notes:
        page.raw("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in section.notes) + "</ul>")
    if section.verbatim:
        page.preformatted(section.verbatim)


def _esc(text: str) -> str:
    return html.escape(text)


def write_benchmark_html(
    path: Path,
    results: Mapping[str, Any],
    sections: Sequence[Section],
    *,
    timing_line: str = "",
    links: Sequence[str] = (),
) -> Path:
    """Write :func:`benchmark_html` to ``path`` (atomically); figures are read from its folder."""
    path = Path(path)
    return benchmark_html(results, sections, path.parent, timing_line=timing_line, links=links).write(path)
