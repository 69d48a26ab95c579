"""A track's output folder: ``track.csv``, ``track.jsonl``, ``track.json``, ``report.html`` and the figures.

Everything is built in memory first (the rows, the strict JSON, the figures and the page), then
every file is written atomically, so an error leaves no half-written file behind.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from propgrad.core.atomic_files import atomic_write
from propgrad.core.html_report import HtmlReport, figure_png
from propgrad.core.strict_json import dumps_strict
from propgrad.track.figures import track_figures
from propgrad.track.records import CSV_COLUMNS, TrackSummary
from propgrad.track.tracking import TrackResult, describe_checkpoints, settings_json

CSV_NAME, JSONL_NAME, JSON_NAME, REPORT_NAME = "track.csv", "track.jsonl", "track.json", "report.html"
#: ``track.json``'s format; raise it when its fields change meaning.
TRACK_FORMAT = 1


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, ``nan`` for NaN, the value otherwise."""
    if value is None:
        return ""
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def csv_text(result: TrackResult) -> str:
    """``track.csv``: one row per checkpoint, image and scored column (:data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in result.rows():
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return buffer.getvalue()


def jsonl_text(result: TrackResult) -> str:
    """``track.jsonl``: the CSV's rows with the property values and the scored output along the sequence."""
    return "".join(dumps_strict(row, sort_keys=True) + "\n" for row in result.rows(with_curves=True))


def summary_rows(summaries: Sequence[TrackSummary]) -> list[list[str]]:
    """Tab. 12's rows: image, column, mean score, significant, flips, mean ρ (n/a when undefined)."""
    return [
        [
            str(s.image),
            "all" if s.column is None else str(s.column),
            f"{s.mean_score:.5f}",
            f"{s.n_significant} / {s.n_checkpoints}",
            "" if s.n_verdict is None else f"{s.n_verdict} / {s.n_checkpoints}",
            f"{s.n_flipped} / {s.n_checkpoints}",
            "n/a" if math.isnan(s.mean_pearson) else f"{s.mean_pearson:.5f}",
            f"{s.first_score:.5f} → {s.last_score:.5f}",
        ]
        for s in summaries
    ]


SUMMARY_HEADERS = (
    "image",
    "column",
    "mean E|∇X|",
    "#sig.",
    "#placebo sig.",
    "#flips",
    "mean ρ",
    "first → last",
)


def summary_text(summaries: Sequence[TrackSummary]) -> str:
    """Tab. 12 as aligned text (what the command prints)."""
    rows = [list(SUMMARY_HEADERS), *summary_rows(summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_HEADERS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def track_json(result: TrackResult, provenance: Mapping[str, Any], *, hashes: bool = True) -> dict[str, Any]:
    """``track.json``: provenance (versions, model, source, settings, checkpoints with sizes and hashes),
    Tab. 12 and every row (without the curves, which ``track.jsonl`` holds)."""
    return {
        "format": TRACK_FORMAT,
        "what": "propgrad track: the property score along a model's checkpoints",
        **dict(provenance),
        "test": settings_json(result.test),
        "checkpoints": describe_checkpoints(result.checkpoints, hashes=hashes),
        "sequences": [
            {"image": i, "property": s.property_name, "unit": s.unit, "steps": len(s), "values": s.values.tolist()}
            for i, s in enumerate(result.sequences)
        ],
        "summary": [s.to_dict() for s in result.summary()],
        "rows": result.rows(),
        "timing": {
            "total_s": result.timing.total,
            "load_s": result.timing.load,
            "forward_s": result.timing.forward,
            "test_s": result.timing.test,
            "generate_s": result.timing.generate,
            "computed": result.timing.computed,
            "resumed": result.timing.resumed,
        },
    }


def report_html(result: TrackResult, provenance: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    """The self-contained ``report.html`` (through :class:`propgrad.core.html_report.HtmlReport`)."""
    summaries = result.summary()
    first = result.scores[0] if result.scores else None
    page = HtmlReport("propgrad track: the property score along training")
    page.stats(
        [
            ("checkpoints", str(len(result.checkpoints))),
            ("images", str(len(result.sequences))),
            ("property", first.property if first else "-"),
            ("source", first.source if first else "-"),
            ("test", f"permutation, K = {result.test.n_permutations}, alpha = {result.test.alpha}"),
        ]
    )
    page.heading("Over training (the paper's Tab. 12)")
    page.table(
        SUMMARY_HEADERS,
        summary_rows(summaries),
        caption="Mean score over the checkpoints, checkpoints with a significant test, checkpoints whose prediction "
        "flips along the sequence, mean Pearson ρ of the scored output against the property (n/a where the outputs "
        "are constant at some checkpoint: ρ is undefined there).",
    )
    page.heading("Figures")
    for name, png in pngs.items():
        page.image(png, alt=name, caption=name)
    page.heading("Every checkpoint")
    page.table(
        ["checkpoint", "step", "epoch", "image", "column", "score", "p", "significant", "flips", "decision", "ρ"],
        [
            [
                r["checkpoint"],
                "" if r["step"] is None else r["step"],
                "" if r["epoch"] is None else f"{r['epoch']:g}",
                r["image"],
                "all" if r["column"] is None else r["column"],
                f"{r['score']:.5f}",
                f"{r['p']:.4g}",
                "yes" if r["significant"] else "no",
                r["flips"],
                r["decision"],
                "n/a" if math.isnan(r["pearson"]) else f"{r['pearson']:.3f}",
            ]
            for r in result.rows()
        ],
    )
    page.provenance(dict(provenance.get("versions", {})))
    page.key_values({k: v for k, v in provenance.items() if k != "versions"})
    return page.render()


def write_track_outputs(
    out_dir: Path, result: TrackResult, provenance: Mapping[str, Any], *, hashes: bool = True
) -> list[Path]:
    """Build every output of a track in memory, then write each file atomically into ``out_dir``.

    Args:
        out_dir: The output folder (created if missing).
        result: The track.
        provenance: What ran: ``versions`` (:func:`propgrad.harness.versions.collect_versions`), the
            model, the source and its parameters, the command line ...
        hashes: Hash every checkpoint file for ``track.json`` (sha256).

    Returns:
        The files written.
    """
    import matplotlib.pyplot as plt

    label = "track"
    figures = track_figures({label: result.scores}, {label: result.summary()})
    try:
        pngs = {name: figure_png(fig, dpi=120) for name, fig in figures.items()}
        texts = {
            CSV_NAME: csv_text(result),
            JSONL_NAME: jsonl_text(result),
            JSON_NAME: dumps_strict(track_json(result, provenance, hashes=hashes), indent=2, sort_keys=True),
            REPORT_NAME: report_html(result, provenance, pngs),
        }
    finally:
        for fig in figures.values():
            plt.close(fig)
    out_dir = Path(out_dir)
    written = [
        atomic_write(out_dir / name, lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
        for name, text in texts.items()
    ]
    written += [atomic_write(out_dir / name, lambda tmp, b=png: tmp.write_bytes(b)) for name, png in pngs.items()]
    return written
