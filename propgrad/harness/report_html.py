"""``report.html`` of a benchmark run: every table and figure in one self-contained page.

The page holds the Tab. 2-style flip tables and the property-score table of
:func:`propgrad.harness.report.report_sections`, then per suite and intervention the figures of
:mod:`propgrad.harness.figures` (behaviour curves, ROC curves, score distributions, the filmstrip
and the before/after maps), embedded as PNG, and the settings, provenance (with every model's
weights hash, as in report.md) and timing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from propgrad.core.html_report import HtmlReport
from propgrad.harness.report import WEIGHTS_TITLE, Section, model_weights_rows

HTML_NAME = "report.html"
FIGURE_KINDS = (
    ("behaviour", "Behaviour along the intervention: flipping (red) and non-flipping (blue) images"),
    ("roc", "ROC curves per method (flip anywhere)"),
    ("scores", "Score distributions of flipped vs. not flipped images"),
    ("filmstrip", "Filmstrip of the intervention (kept images)"),
    ("maps", "Attribution maps before and after the intervention"),
)


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
        results: The data written to ``results.json`` (settings, versions, suites, figures).
        sections: The report's tables and notes (:func:`propgrad.harness.report.report_sections`).
        out_dir: The folder holding the figures named in ``results["figures"]``.
        timing_line: The report's timing sentence.
        links: Files beside the report to link (``results.json``, ``records.csv`` ...).
    """
    page = HtmlReport("propgrad benchmark: predict the flip")
    settings = results.get("settings", {})
    suites_text = ", ".join(settings.get("suites", []))
    baselines_text = ", ".join(settings.get("baselines", [])) or "none"
    page.paragraph(
        f"Suites {suites_text}; baselines {baselines_text}; K = {settings.get('n_permutations')} permutations; "
        f"alpha = {settings.get('alpha')}."
    )
    if timing_line:
        page.paragraph(timing_line, "note")
    if links:
        page.raw(
            '<p class="note">Machine-readable: '
            + ", ".join(f'<a href="{name}">{name}</a>' for name in links)
            + " (strict JSON; CSV of per-image records).</p>"
        )
    figures = [str(f) for f in results.get("figures", [])]
    suites = list(results.get("suites", {})) or sorted({s.suite for s in sections if s.suite})
    for suite in suites:
        page.heading(f"Suite {suite}", 2, anchor=f"suite-{suite}")
        description = results.get("suites", {}).get(suite, {}).get("description")
        if description:
            page.paragraph(description, "note")
        for section in (s for s in sections if s.suite == suite):
            _section(page, section)
        interventions = results.get("suites", {}).get(suite, {}).get("interventions", [])
        for intervention in interventions:
            stem = f"{suite}_{intervention}"
            present = [(kind, text) for kind, text in FIGURE_KINDS if f"{kind}_{stem}.png" in figures]
            if not present:
                continue
            page.heading(f"{suite} / {intervention}: figures", 3)
            for kind, text in present:
                name = f"{kind}_{stem}.png"
                png = (Path(out_dir) / name).read_bytes()
                page.image(png, alt=f"{text} ({suite} / {intervention})", caption=f"{text} — {name}")
    for section in (s for s in sections if s.suite is None):
        _section(page, section)
    page.heading("Settings", 2, anchor="settings")
    page.key_values({k: v for k, v in settings.items()})
    versions = dict(results.get("versions", {}))
    model_weights = versions.pop("model_weights", None)
    page.provenance(versions, anchor="versions")
    if model_weights:
        page.heading(WEIGHTS_TITLE, 3, anchor="model-weights")
        page.table(*model_weights_rows(model_weights))
    page.heading("Seeds", 3)
    page.key_values(results.get("seeds", {}))
    return page


def _section(page: HtmlReport, section: Section) -> None:
    page.heading(section.title, 3)
    if section.table is not None:
        page.table(section.table.headers, section.table.rows)
    else:
        page.raw("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in section.notes) + "</ul>")


def _esc(text: str) -> str:
    import html

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
