"""Tables of a benchmark run as plain text (terminal) and Markdown (report.md).

A report opens with what a run concluded: the verdicts (:func:`verdict_rows`: per model and
intervention, the images the size-aware placebo test calls significant beside the paper's
permutation test, the flips and the practical size) and the suite's validity checks
(:func:`validity_rows`, PASS/FAIL), then a table of contents (:func:`contents`), then the details.
In the terminal the verdicts come last instead, on the screen a finished run leaves. The detail
layouts follow the paper: flip-prediction accuracy in percent, mean ± std over resamples, one row
per model and one column per method (Tab. 2), the same for ROC AUC, under each flip definition
(:mod:`propgrad.harness.definitions`: the paper's two, then extrapolation and held-out
realisation), and per model the mean property score E|∇X| ± std, the images each test calls
significant (raw and after the correction over images) and #flipped (Tabs. 1 and 3). report.md
ends with every model's weights hash (:func:`model_weights_rows`), so two reports show whether
they come from the same models.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

from propgrad.harness.definitions import FLIP_DEFINITIONS
from propgrad.harness.summary import (
    PROPERTY_SCORE_REALISATIONS,
    InterventionSummary,
    MethodEntry,
    ModelScores,
    Summary,
    methods_of,
)
from propgrad.stats.practical_size import format_size

NA = "n/a"


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, *, markdown: bool = False
) -> str:
    """A column-aligned text table (the first ``left`` columns aligned left, the others right), or a
    Markdown pipe table."""
    if markdown:  # a pipe inside a cell (E|∇X|) would end it: escape it
        cells = [[str(c).replace("|", "\\|") for c in row] for row in [headers, *rows]]
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def fmt(row: Sequence[Any]) -> str:
        cells = (str(c).ljust(w) if j < left else str(c).rjust(w) for j, (c, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def _cell(entry: MethodEntry | None, metric: str) -> str:
    if not entry or not entry["available"]:
        return NA
    values: Mapping[str, Any] = entry
    mean, std = values.get(f"{metric}_mean"), values.get(f"{metric}_std")
    if mean is None or mean != mean:  # None (from JSON) or NaN: undefined, e.g. AUC with one label
        return NA
    scale = 100.0 if metric == "accuracy" else 1.0
    digits = 1 if metric == "accuracy" else 3
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


class Table(NamedTuple):
    """One table of a report: column headers and rows of text cells."""

    headers: list[str]
    rows: list[list[str]]
    left: int = 1
    """Leading columns of labels or text, aligned left in the terminal (the others hold numbers)."""


class Section(NamedTuple):
    """One titled part of a report: a table and notes under it (either may be absent)."""

    title: str
    table: Table | None
    notes: list[str]
    suite: str | None = None
    """The suite the section belongs to (None: the whole run)."""
    intervention: str | None = None
    anchor: str = ""
    """The section's id in report.md and report.html, the target of its table-of-contents line."""
    contents: str = ""
    """Its line in the table of contents ("": not listed)."""
    lead: str = ""
    """A paragraph before the table: how to read it."""
    headline: bool = False
    """A conclusion of the whole run (verdicts, validity checks): first in report.md and report.html,
    last in the terminal."""
    verbatim: str = ""
    """Lines shown as they are, in a monospaced block after the notes (a suite's aligned text tables)."""


def flip_rows(block: InterventionSummary, definition: str, metric: str, baselines: Sequence[str]) -> Table:
    """Rows: models; columns: methods; cells: accuracy in % or AUC, mean ± std over resamples."""
    rows_in = block["flip_prediction"][definition]
    realised = any(PROPERTY_SCORE_REALISATIONS in row for row in rows_in.values())
    methods = methods_of(baselines, realisations=realised)
    rows = [[model, *(_cell(row.get(m), metric) for m in methods)] for model, row in rows_in.items()]
    return Table(["model", *methods], rows)


def flip_table(
    block: InterventionSummary, definition: str, metric: str, baselines: Sequence[str], *, markdown: bool = False
) -> str:
    """:func:`flip_rows` as text or Markdown."""
    return render_table(*flip_rows(block, definition, metric, baselines), markdown=markdown)


def score_table(blocks: Mapping[str, InterventionSummary], *, markdown: bool = False) -> str:
    """:func:`score_rows` as text or Markdown."""
    return render_table(*score_rows(blocks), markdown=markdown)


def score_rows(blocks: Mapping[str, InterventionSummary]) -> Table:
    """Rows: model × intervention; E|∇X| ± std, the images each test calls significant (raw, then
    after the correction over images), #flipped (both of the paper's definitions)."""
    rows = []
    for intervention, block in blocks.items():
        for model, s in block["scores"].items():
            rows.append(
                [
                    model,
                    intervention,
                    f"{s['score_mean']:.4g} ± {s['score_std']:.3g}",
                    _count(s, "n_significant"),
                    _count(s, "n_placebo_significant"),
                    f"{s['n_flipped_anywhere']} / {s['n_flipped_final']}",
                    f"{100 * s['original_accuracy']:.1f}",
                ]
            )
    correction = _correction([s for block in blocks.values() for s in block["scores"].values()])
    headers = [
        "model",
        "intervention",
        "mean E|∇X| ± std",
        f"#significant, permutation (raw, {correction})",
        f"#significant, placebo (raw, {correction})",
        "#flipped (anywhere / final)",
        "accuracy on originals (%)",
    ]
    return Table(headers, rows, left=2)


def _correction(rows: Sequence[ModelScores]) -> str:
    """The correction behind the rows' adjusted counts ("uncorrected" for none, "mixed" for several)."""
    corrections = {s.get("correction") for s in rows}
    (correction,) = corrections if len(corrections) == 1 else ("mixed",)
    return correction or "uncorrected"


VERDICT_TITLE = "summary: verdicts (does the property drive the decision?)"
"""Title of the verdict table (:func:`verdict_rows`) in every report."""
VALIDITY_TITLE = "validity checks of the suites (what a run must show for its flip tables to mean something)"
"""Title of the validity table (:func:`validity_rows`) in every report."""


def verdict_rows(summary: Summary) -> Table:
    """Rows: (suite,) intervention and model; the size-aware verdict count, the paper's count, the flips.

    Cells: the images the placebo test calls significant (raw, then after the run's correction
    over images, of all images; "not run" without it), the same for the permutation test, the
    flips (anywhere / final) and, when the records carry it, the mean over images of the largest
    change of the explained class's probability along the intervention (percentage points). The
    suite column is left out when the run has one suite.
    """
    several = len(summary) > 1
    rows, scores = [], []
    for suite, blocks in summary.items():
        for intervention, block in blocks.items():
            for model, s in block["scores"].items():
                scores.append(s)
                rows.append(
                    [
                        *([suite] if several else []),
                        intervention,
                        model,
                        _count(s, "n_placebo_significant"),
                        _count(s, "n_significant"),
                        f"{s['n_flipped_anywhere']} / {s['n_flipped_final']}",
                        s.get("largest_change_mean"),
                    ]
                )
    correction = _correction(scores)
    headers = [
        *(["suite"] if several else []),
        "intervention",
        "model",
        f"verdict: #significant, placebo (size-aware; raw, {correction})",
        f"#significant, permutation (the paper's: an ordered response, however small; raw, {correction})",
        "#flipped (anywhere / final)",
        "mean largest change of p(explained class)",
    ]
    labels = 3 if several else 2
    if all(row[-1] is None for row in rows):  # records without the practical size: no column
        return Table(headers[:-1], [row[:-1] for row in rows], labels)
    return Table(headers, [[*row[:-1], NA if row[-1] is None else format_size(row[-1], True)] for row in rows], labels)


def verdict_lead(summary: Summary) -> str:
    """What :func:`verdict_rows` counts, and plainly whether the size-aware test ran."""
    scores = _all_scores(summary)
    ran = [s for s in scores if s.get("n_placebo_significant") is not None]
    ordered = (
        "an ordered, systematic response along the intervention, however small (an output that drifts steadily by "
        "a fraction of a point passes it)"
    )
    if not ran:
        return (
            "The placebo test was not run (M = 0 placebos), so this run gives no size-aware verdict: its only counts "
            f"are the paper's permutation test, which tests for {ordered}. Run with --placebos 100 for the verdict."
        )
    m = max(int(s.get("n_placebos", 0)) for s in ran)
    text = (
        "Verdict: the images on which the placebo test finds the explained class's probability moved more than "
        f"by an arbitrary change of the image of the same pixel size (M = {m} placebos per image). Beside it, "
        f"the paper's permutation test, which tests for {ordered}."
    )
    if len(ran) < len(scores):
        text += " Not run: some image of that row has no placebo p-value (periodic sequences have no placebos)."
    lost = [s for s in ran if s["n_placebo_significant"] and not s.get("n_placebo_significant_adjusted")]
    if lost:
        text += (
            f" On {len(lost)} row(s) the correction over the images keeps none of the placebo test's significant "
            f"images: with M = {m} no p-value is below 1 / (M + 1), too large to survive it. The raw count is "
            "each image's own verdict; the corrections section names the M that would keep them."
        )
    return text


def verdict_legend(summary: Summary) -> list[str]:
    """What each other column of :func:`verdict_rows` holds, one line each."""
    lines = [
        "#significant: raw, then after the correction over the images, of all images.",
        "#flipped: the images whose decision changes anywhere along the intervention / at its end.",
    ]
    if any(s.get("largest_change_mean") is not None for s in _all_scores(summary)):
        lines.append(
            "largest change: the largest change of the explained class's probability from the original's along the "
            "intervention, in percentage points, averaged over the images."
        )
    return lines


def _all_scores(summary: Summary) -> list[ModelScores]:
    return [s for blocks in summary.values() for block in blocks.values() for s in block["scores"].values()]


def validity_rows(validity: Mapping[str, Mapping[str, Any]]) -> Table:
    """Rows: every validity check of every suite, PASS or FAIL, with the measured numbers.

    Args:
        validity: Per suite, its checks (``results.json`` ``validity``: ``checks`` as
            ``{"name", "passed", "detail"}``, ``notes``, ``error``).
    """
    rows = [
        [suite, c["name"], "PASS" if c["passed"] else "FAIL", c["detail"]]
        for suite, entry in validity.items()
        for c in entry.get("checks", [])
    ]
    return Table(["suite", "check", "result", "measured"], rows, left=4)


def validity_notes(validity: Mapping[str, Mapping[str, Any]]) -> tuple[str, list[str]]:
    """The lead sentence of the validity table (how many checks passed) and, for each suite whose
    checks could not be run on the results, why."""
    checks = [c for entry in validity.values() for c in entry.get("checks", [])]
    failed = [c["name"] for c in checks if not c["passed"]]
    lead = f"{len(checks) - len(failed)} of {len(checks)} checks passed"
    lead += f" (FAIL: {'; '.join(failed)})." if failed else "."
    lead += " Rerun them on a finished run, with other thresholds too: propgrad validate RUN."
    return lead, [
        f"{suite}: the checks could not be run: {e['error']}" for suite, e in validity.items() if e.get("error")
    ]


def _count(s: ModelScores, field: str) -> str:
    """``"raw, adjusted / n"`` of one test's significance count, or "not run"."""
    raw, adjusted = s.get(field), s.get(f"{field}_adjusted")  # type: ignore[misc]
    if raw is None:
        return "not run"
    return f"{raw}, {adjusted} / {s['n_images']}" if adjusted is not None else f"{raw} / {s['n_images']}"


def correction_notes(summary: Summary) -> list[str]:
    """One line per (suite, intervention, model, test) whose correction can find nothing significant,
    or leaves none of the images the uncorrected test calls significant."""
    notes = []
    for suite, blocks in summary.items():
        for intervention, block in blocks.items():
            for model, s in block["scores"].items():
                for test, f in s.get("feasibility", {}).items():
                    symbol = "K" if test == "permutation" else "M"
                    where = f"{suite}/{intervention}/{model}: the {f['method']} correction over {f['n_tests']} images"
                    adjusted = s.get(
                        "n_significant_adjusted" if test == "permutation" else "n_placebo_significant_adjusted"
                    )
                    if not f["feasible"]:
                        notes.append(
                            f"{where} cannot make a {test} test significant at {symbol} = {f['k']} (the smallest "
                            f"p-value {f['min_p']:.3g} adjusts to {f['best_adjusted_p']:.3g}); "
                            f"{symbol} >= {f['k_needed']} is needed"
                        )
                    elif adjusted == 0 and f.get("n_raw_significant"):
                        notes.append(
                            f"{where} leaves none of the {f['n_raw_significant']} images significant before it "
                            f"({test} test, {symbol} = {f['k']}, smallest p-value {f['min_p']:.3g}); with "
                            f"{symbol} >= {f['k_needed_for_raw']} that many could stay significant"
                        )
    return notes


def model_accuracy_table(
    accuracy: Mapping[str, Mapping[str, float]], *, order: Sequence[str] = (), markdown: bool = False
) -> str:
    """:func:`model_accuracy_rows` as text or Markdown."""
    return render_table(*model_accuracy_rows(accuracy, order=order), markdown=markdown)


def model_accuracy_rows(accuracy: Mapping[str, Mapping[str, float]], *, order: Sequence[str] = ()) -> Table:
    """Rows: models; columns: evaluation splits; test accuracy in % (Tab. 5).

    Models (and splits named like them) come in ``order`` first, so a table read back from the
    cache (whose JSON keys are sorted) looks like a freshly computed one.
    """
    rank = {name: i for i, name in enumerate(order)}
    models = sorted(accuracy, key=lambda m: (rank.get(m, len(rank)), m))
    seen = list(dict.fromkeys(split for model in models for split in accuracy[model]))
    splits = sorted(seen, key=lambda s: (rank.get(s, len(rank)), seen.index(s)))
    rows = [[m, *(f"{100 * accuracy[m][s]:.1f}" if s in accuracy[m] else NA for s in splits)] for m in models]
    return Table(["model \\ test split", *splits], rows)


def level_accuracy_table(entry: Mapping[str, Any], *, order: Sequence[str] = (), markdown: bool = False) -> str:
    """:func:`level_accuracy_rows` as text or Markdown."""
    return render_table(*level_accuracy_rows(entry, order=order), markdown=markdown)


def level_accuracy_rows(entry: Mapping[str, Any], *, order: Sequence[str] = ()) -> Table:
    """Rows: models (each followed by one row per class if the entry has ``class_accuracy``);
    columns: levels of one property; accuracy in % on fresh images."""
    rank = {name: i for i, name in enumerate(order)}
    models = sorted(entry["accuracy"], key=lambda m: (rank.get(m, len(rank)), m))
    by_class = entry.get("class_accuracy", {})

    def cells(values: Sequence[float | None]) -> list[str]:
        return [NA if a is None else f"{100 * a:.1f}" for a in values]

    rows = []
    for m in models:
        rows.append([m, *cells(entry["accuracy"][m])])
        rows.extend([f"{m}: {name}", *cells(values)] for name, values in by_class.get(m, {}).items())
    return Table(["model \\ level", *entry["levels"]], rows)


WEIGHTS_TITLE = "model weights (SHA-256 of the state_dict: names, dtypes, shapes, bytes; first 24 hex digits)"
"""Title of the weights table in report.md and report.html (:func:`model_weights_rows`)."""


def model_weights_rows(model_weights: Mapping[str, Mapping[str, str]]) -> Table:
    """Rows: suite and model, in run order; the model's weights hash.

    Args:
        model_weights: Per suite, each model's hash (``results.json`` ``versions.model_weights``,
            from :func:`propgrad.harness.identity.weights_hash`).
    """
    rows = [[suite, model, digest] for suite, models in model_weights.items() for model, digest in models.items()]
    return Table(["suite", "model", "weights hash"], rows, left=3)


def error_notes(summary: Summary) -> list[str]:
    """One line per (suite, intervention, model, method) that is n/a, with the reason."""
    notes = []
    for suite, blocks in summary.items():
        for intervention, block in blocks.items():
            for model, row in block["flip_prediction"].get("anywhere", {}).items():
                for method, entry in row.items():
                    if not entry["available"]:
                        notes.append(f"{suite}/{intervention}/{model}/{method}: n/a ({entry['error']})")
    return notes


@dataclass(frozen=True)
class SuiteTables:
    """The per-suite tables a report shows beside the summary, each a mapping from the suite's name.

    Attributes:
        accuracy: Each model's test accuracy per split (Tab. 5 layout).
        model_order: The suite's model order.
        levels: The in-distribution check (:meth:`propgrad.suites.base.BenchmarkSuite.level_accuracy`).
        weights: Each model's weights hash (:func:`model_weights_rows`), so two reports can be compared.
        validity: The suites' validity checks (:func:`validity_rows`).
    """

    accuracy: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
    model_order: Mapping[str, Sequence[str]] | None = None
    levels: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None
    weights: Mapping[str, Mapping[str, str]] | None = None
    validity: Mapping[str, Mapping[str, Any]] | None = None
    """The suites' validity checks as ``results.json`` holds them (``validity``; a suite that states
    none is absent)."""


def anchor(*parts: str) -> str:
    """A section id from names: lower case, runs of other characters than letters and digits as "-"."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def suite_anchor(suite: str) -> str:
    """The id of a suite's heading in report.md and report.html."""
    return anchor("suite", suite)


def headline_sections(summary: Summary, validity: Mapping[str, Mapping[str, Any]] | None = None) -> list[Section]:
    """The run's conclusions: the verdict table (when the run has scores), then the validity checks
    when a suite states any."""
    sections = []
    verdicts = verdict_rows(summary)
    if verdicts.rows:
        sections.append(
            Section(
                VERDICT_TITLE,
                verdicts,
                verdict_legend(summary),
                anchor="summary",
                contents="summary: verdicts",
                lead=verdict_lead(summary),
                headline=True,
            )
        )
    if validity:
        lead, errors = validity_notes(validity)
        table = validity_rows(validity)
        lines = [f"{suite}: {line}" for suite, entry in validity.items() for line in entry.get("notes", [])]
        sections.append(
            Section(
                VALIDITY_TITLE,
                table if table.rows else None,
                errors,
                anchor="validity",
                contents="validity checks (PASS/FAIL)",
                lead=lead,
                headline=True,
                verbatim="\n".join(lines),
            )
        )
    return sections


def report_sections(summary: Summary, baselines: Sequence[str], tables: SuiteTables = SuiteTables()) -> list[Section]:
    """Every table and note list of a run, in report order (see :func:`format_report`).

    The run's conclusions (:func:`headline_sections`) come first; then per suite its test
    accuracy, in-distribution check, the flip tables of each intervention and the property
    scores; then the notes on corrections and on methods not evaluated.
    """
    accuracy_tables, model_order, level_tables = tables.accuracy, tables.model_order, tables.levels
    sections = headline_sections(summary, tables.validity)
    for suite, blocks in summary.items():
        order = (model_order or {}).get(suite, ())
        if accuracy_tables and suite in accuracy_tables:
            title = f"{suite}: test accuracy (%) of every model on every split"
            sections.append(
                Section(
                    title,
                    model_accuracy_rows(accuracy_tables[suite], order=order),
                    [],
                    suite,
                    anchor=anchor(suite, "accuracy"),
                    contents="test accuracy of the models",
                )
            )
        for prop, entry in (level_tables or {}).get(suite, {}).items():
            title = f"{suite}: accuracy (%) by {prop}, fresh images (is every intervention step in distribution?)"
            sections.append(
                Section(
                    title,
                    level_accuracy_rows(entry, order=order),
                    [],
                    suite,
                    anchor=anchor(suite, "levels", prop),
                    contents=f"accuracy by {prop}",
                )
            )
        for intervention, block in blocks.items():
            for k, definition in enumerate(d for d in FLIP_DEFINITIONS if d in block["flip_prediction"]):
                title = f"{suite} / {intervention}: {FLIP_DEFINITIONS[definition].title}"
                for metric, what in (
                    ("accuracy", "accuracy (%), best threshold, mean ± std over resamples"),
                    ("auc", "ROC AUC (as is; < 0.5 ranks flips lower), mean ± std"),
                ):
                    table = flip_rows(block, definition, metric, baselines)
                    first = k == 0 and metric == "accuracy"
                    sections.append(
                        Section(
                            f"{title} — {what}",
                            table,
                            [],
                            suite,
                            intervention,
                            anchor=anchor(suite, intervention, definition, metric),
                            contents=f"{intervention}: predicting the flip" if first else "",
                        )
                    )
        title = f"{suite}: property scores (E|∇X| of the explained class's probability)"
        sections.append(
            Section(title, score_rows(blocks), [], suite, anchor=anchor(suite, "scores"), contents="property scores")
        )
    notes = correction_notes(summary)
    if notes:
        title = "corrections that find nothing significant, or leave none of the raw-significant images"
        sections.append(Section(title, None, notes, anchor="corrections", contents="corrections"))
    notes = error_notes(summary)
    if notes:
        sections.append(
            Section(
                "methods not evaluated (n/a)", None, notes, anchor="not-evaluated", contents="methods not evaluated"
            )
        )
    return sections


class ContentsLine(NamedTuple):
    """One line of a table of contents: its depth (0 or 1), text and the id it links to."""

    depth: int
    text: str
    target: str


def contents(
    sections: Sequence[Section],
    *,
    per_suite: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    trailing: Sequence[tuple[str, str]] = (),
) -> list[ContentsLine]:
    """The table of contents of a report: the run's sections, each suite's heading with its parts.

    Args:
        sections: The report's sections (:func:`report_sections`); those with ``contents`` are listed.
        per_suite: ``(text, id)`` lines a renderer adds at the end of a suite's part (its figures).
        trailing: ``(text, id)`` lines of the parts a renderer adds after the sections.
    """
    lines: list[ContentsLine] = []
    suites = list(dict.fromkeys(s.suite for s in sections if s.suite is not None))
    for section in (s for s in sections if s.suite is None and s.headline):
        lines.append(ContentsLine(0, section.contents, section.anchor))
    for suite in suites:
        lines.append(ContentsLine(0, f"suite {suite}", suite_anchor(suite)))
        lines += [ContentsLine(1, s.contents, s.anchor) for s in sections if s.suite == suite and s.contents]
        lines += [ContentsLine(1, text, target) for text, target in (per_suite or {}).get(suite, ())]
    for section in (s for s in sections if s.suite is None and not s.headline and s.contents):
        lines.append(ContentsLine(0, section.contents, section.anchor))
    return lines + [ContentsLine(0, text, target) for text, target in trailing]


SETTINGS_TITLE = "settings"


def format_report(
    summary: Summary,
    baselines: Sequence[str],
    *,
    markdown: bool = False,
    header: str = "",
    tables: SuiteTables = SuiteTables(),
    figures: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
) -> str:
    """Every table of a run, for the terminal (``markdown=False``) or for report.md.

    report.md opens with the run's conclusions (the verdicts and the validity checks,
    :func:`headline_sections`) and a table of contents, then each suite's tables under its
    heading; the terminal prints the conclusions last, on the screen a finished run leaves.

    ``tables`` holds the per-suite tables: each model's test accuracy per split (Tab. 5 layout) in
    the suite's model order, the in-distribution check, the validity checks and, when given, each
    model's weights hash (:func:`model_weights_rows`). ``figures`` (file names beside report.md) are
    linked in Markdown, as images, and ``settings`` shown as JSON, at the end.
    """
    sections = report_sections(summary, baselines, tables)
    if not markdown:
        return _format_text(sections, header, tables, settings)
    parts = ["# propgrad benchmark: predict the flip"]
    if header:
        parts.append(header)
    trailing = []
    if tables.weights:
        trailing.append(("model weights", "model-weights"))
    if figures:
        trailing.append(("figures", "figures"))
    if settings is not None:
        trailing.append((SETTINGS_TITLE, "settings"))
    parts.append("## Contents")
    parts.append(
        "\n".join(
            f"{'  ' * line.depth}- [{line.text}](#{line.target})" for line in contents(sections, trailing=trailing)
        )
    )
    current_suite = None
    for section in sections:
        if section.suite is not None and section.suite != current_suite:
            current_suite = section.suite
            parts.append(f'<a id="{suite_anchor(current_suite)}"></a>\n\n## suite {current_suite}')
        level = "###" if section.suite is not None else "##"
        parts.append(f'<a id="{section.anchor}"></a>\n\n{level} {section.title}')
        parts += _section_body(section, markdown=True)
    if tables.weights:
        parts.append(f'<a id="model-weights"></a>\n\n## {WEIGHTS_TITLE}')
        parts.append(render_table(*model_weights_rows(tables.weights), markdown=True))
    if figures:
        parts.append('<a id="figures"></a>\n\n## figures')
        parts.append("\n\n".join(f"[![{name}]({name})]({name})" for name in figures))
    if settings is not None:
        parts.append(f'<a id="settings"></a>\n\n## {SETTINGS_TITLE}')
        parts.append(f"`{json.dumps(dict(settings))}`")
    return "\n\n".join(parts) + "\n"


def _format_text(
    sections: Sequence[Section], header: str, tables: SuiteTables, settings: Mapping[str, Any] | None
) -> str:
    parts = ["== propgrad benchmark: predict the flip =="]
    if header:
        parts.append(header)
    for section in [*(s for s in sections if not s.headline), *(s for s in sections if s.headline)]:
        parts.append(f"-- {section.title} --")
        parts += _section_body(section, markdown=False)
    if tables.weights:
        parts.append(f"-- {WEIGHTS_TITLE} --")
        parts.append(render_table(*model_weights_rows(tables.weights)))
    if settings is not None:
        parts.append(f"-- {SETTINGS_TITLE} --")
        parts.append(json.dumps(dict(settings)))
    return "\n\n".join(parts) + "\n"


def _section_body(section: Section, *, markdown: bool) -> list[str]:
    """The lead paragraph, the table and the notes of one section, each a block of text."""
    body = [section.lead] if section.lead else []
    if section.table is not None:
        body.append(render_table(*section.table, markdown=markdown))
    if section.notes:
        body.append("\n".join(f"- {n}" for n in section.notes))
    if section.verbatim:
        body.append(f"```\n{section.verbatim}\n```" if markdown else section.verbatim)
    return body
