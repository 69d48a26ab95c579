"""What ``run_benchmark`` returns: the data of ``results.json`` as a dict that Jupyter shows as the run's tables.

:class:`BenchmarkResult` is the ``dict`` written to ``results.json`` (every key, value and use of a
dict unchanged) with a one-line :meth:`~BenchmarkResult.__repr__` and a ``_repr_html_``: the run's
conclusions first (the verdict table and the suites' validity checks,
:func:`propgrad.harness.report.headline_sections`), then every other table of the report
(:func:`propgrad.harness.report.report_sections`: test accuracy, the flip tables, the property
scores, the notes) folded in a ``<details>`` element, each section drawn as ``report.html`` draws it
(:mod:`propgrad.harness.report_html`). The figures are in the run's folder, with ``report.html``.
"""

from __future__ import annotations

from typing import Any, Mapping

from propgrad.explain.explanation_html import FRAGMENT_CLASS, HtmlFragment, scoped_css
from propgrad.harness.report import SuiteTables, report_sections
from propgrad.harness.report_html import TEXT_COLUMNS_CSS, add_section


def suite_tables(results: Mapping[str, Any]) -> SuiteTables:
    """The per-suite tables of a run from its ``results.json`` data: accuracy, model order, the
    in-distribution check and the validity checks (what ``run_benchmark`` reports them from)."""
    suites = results.get("suites", {})
    return SuiteTables(
        accuracy={name: info["accuracy_table"] for name, info in suites.items() if "accuracy_table" in info},
        model_order={name: info["models"] for name, info in suites.items() if "models" in info},
        levels={name: info["level_accuracy"] for name, info in suites.items() if info.get("level_accuracy")},
        validity=results.get("validity"),
    )


def benchmark_fragment(results: Mapping[str, Any]) -> str:
    """A benchmark run in a notebook cell: its settings in a line, the verdict and validity tables, then
    every other table folded (see the module docstring).

    Args:
        results: The data ``run_benchmark`` returns and writes to ``results.json``.
    """
    settings = results.get("settings", {})
    page = HtmlFragment("propgrad benchmark: predict the flip")
    page.raw(f"<style>{scoped_css(TEXT_COLUMNS_CSS, f'.{FRAGMENT_CLASS}')}</style>")
    baselines = ", ".join(settings.get("baselines", [])) or "none"
    page.paragraph(
        f"Suites {', '.join(settings.get('suites', []))}; baselines {baselines}; "
        f"K = {settings.get('n_permutations')} permutations; M = {settings.get('n_placebos')} placebos; "
        f"alpha = {settings.get('alpha')}; {len(results.get('records', []))} records.",
        "note",
    )
    sections = report_sections(results.get("summary", {}), settings.get("baselines", []), suite_tables(results))
    for section in (s for s in sections if s.headline):
        add_section(page, section)
    rest = [s for s in sections if not s.headline]
    if rest:
        page.raw(f"<details><summary>Every other table of the run ({len(rest)})</summary>")
        for section in rest:
            add_section(page, section)
        page.raw("</details>")
    page.paragraph("The figures and the whole report: report.html in the run's output folder.", "note")
    return page.render()


class BenchmarkResult(dict[str, Any]):
    """The data ``run_benchmark`` wrote to ``results.json``: a plain ``dict``, shown in Jupyter as the run's tables."""

    __slots__ = ()

    def __repr__(self) -> str:
        """One line: the suites, baselines, records and the keys (the dict's own repr holds every record)."""
        settings = self.get("settings", {})
        suites, baselines = list(settings.get("suites", [])), list(settings.get("baselines", []))
        return (
            f"BenchmarkResult(suites {suites}, baselines {baselines}, {len(self.get('records', []))} records; "
            f"keys {list(self)})"
        )

    def _repr_html_(self) -> str:
        """The verdict and validity tables, then the other tables folded (:func:`benchmark_fragment`)."""
        return benchmark_fragment(self)
