"""Tables of a benchmark run as plain text (terminal) and Markdown (report.md).

Layouts follow the paper: flip-prediction accuracy in percent, mean ± std over resamples, one row
per model and one column per method (Tab. 2), the same for ROC AUC, under each flip definition
(:mod:`propgrad.harness.definitions`: the paper's two, then extrapolation and held-out
realisation), and per model the mean property score E|∇X| ± std, the images each test calls
significant (raw and after the correction over images) and #flipped (Tabs. 1 and 3). report.md
ends with every model's weights hash (:func:`model_weights_rows`), so two reports show whether
they come from the same models.
"""

from __future__ import annotations

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

NA = "n/a"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False) -> str:
    """A column-aligned text table, or a Markdown pipe table."""
    if markdown:  # a pipe inside a cell (E|∇X|) would end it: escape it
        cells = [[str(c).replace("|", "\\|") for c in row] for row in [headers, *rows]]
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def fmt(row: Sequence[Any]) -> str:
        return "  ".join(str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in enumerate(zip(row, widths)))

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


class Section(NamedTuple):
    """One titled part of a report: a table, or (``table`` None) a list of notes."""

    title: str
    table: Table | None
    notes: list[str]
    suite: str | None = None
    """The suite the section belongs to (None: the whole run)."""
    intervention: str | None = None


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
    corrections = set()
    for intervention, block in blocks.items():
        for model, s in block["scores"].items():
            corrections.add(s.get("correction"))
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
    (correction,) = corrections if len(corrections) == 1 else ("mixed",)
    headers = [
        "model",
        "intervention",
        "mean E|∇X| ± std",
        f"#significant, permutation (raw, {correction or 'uncorrected'})",
        f"#significant, placebo (raw, {correction or 'uncorrected'})",
        "#flipped (anywhere / final)",
        "accuracy on originals (%)",
    ]
    return Table(headers, rows)


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
    return Table(["suite", "model", "weights hash"], rows)


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
    """

    accuracy: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
    model_order: Mapping[str, Sequence[str]] | None = None
    levels: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None
    weights: Mapping[str, Mapping[str, str]] | None = None


def report_sections(summary: Summary, baselines: Sequence[str], tables: SuiteTables = SuiteTables()) -> list[Section]:
    """Every table and note list of a run, in report order (see :func:`format_report`)."""
    accuracy_tables, model_order, level_tables = tables.accuracy, tables.model_order, tables.levels
    sections = []
    for suite, blocks in summary.items():
        order = (model_order or {}).get(suite, ())
        if accuracy_tables and suite in accuracy_tables:
            title = f"{suite}: test accuracy (%) of every model on every split"
            sections.append(Section(title, model_accuracy_rows(accuracy_tables[suite], order=order), [], suite))
        for prop, entry in (level_tables or {}).get(suite, {}).items():
            title = f"{suite}: accuracy (%) by {prop}, fresh images (is every intervention step in distribution?)"
            sections.append(Section(title, level_accuracy_rows(entry, order=order), [], suite))
        for intervention, block in blocks.items():
            for definition in (d for d in FLIP_DEFINITIONS if d in block["flip_prediction"]):
                title = f"{suite} / {intervention}: {FLIP_DEFINITIONS[definition].title}"
                for metric, what in (
                    ("accuracy", "accuracy (%), best threshold, mean ± std over resamples"),
                    ("auc", "ROC AUC (as is; < 0.5 ranks flips lower), mean ± std"),
                ):
                    table = flip_rows(block, definition, metric, baselines)
                    sections.append(Section(f"{title} — {what}", table, [], suite, intervention))
        title = f"{suite}: property scores (E|∇X| of the explained class's probability)"
        sections.append(Section(title, score_rows(blocks), [], suite))
    notes = correction_notes(summary)
    if notes:
        title = "corrections that find nothing significant, or leave none of the raw-significant images"
        sections.append(Section(title, None, notes))
    notes = error_notes(summary)
    if notes:
        sections.append(Section("methods not evaluated (n/a)", None, notes))
    return sections


def format_report(
    summary: Summary,
    baselines: Sequence[str],
    *,
    markdown: bool = False,
    header: str = "",
    tables: SuiteTables = SuiteTables(),
    figures: Sequence[str] = (),
) -> str:
    """Every table of a run, for the terminal (``markdown=False``) or for report.md.

    ``tables`` holds the per-suite tables: each model's test accuracy per split (Tab. 5 layout) in
    the suite's model order, the in-distribution check and, when given, each model's weights hash
    (:func:`model_weights_rows`). ``figures`` (file names beside report.md) are linked in Markdown,
    as images, at the end.
    """
    h1 = (lambda t: f"# {t}") if markdown else (lambda t: f"== {t} ==")
    h2 = (lambda t: f"## {t}") if markdown else (lambda t: f"-- {t} --")
    parts = [h1("propgrad benchmark: predict the flip")]
    if header:
        parts.append(header)
    sections = report_sections(summary, baselines, tables)
    for section in sections:
        parts.append(h2(section.title))
        if section.table is not None:
            parts.append(render_table(*section.table, markdown=markdown))
        else:
            parts.append("\n".join(f"- {n}" for n in section.notes))
    if tables.weights:
        parts.append(h2(WEIGHTS_TITLE))
        parts.append(render_table(*model_weights_rows(tables.weights), markdown=markdown))
    if markdown and figures:
        parts.append(h2("figures"))
        parts.append("\n\n".join(f"[![{name}]({name})]({name})" for name in figures))
    return "\n\n".join(parts) + "\n"
