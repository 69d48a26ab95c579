"""``records.csv``: one row per (suite, intervention, model, image), for pandas and spreadsheets.

Each row holds the property cell's fields (the score, p-values, every flip label, the output
reference) and, per baseline, its change scores and error, so ``pandas.read_csv("records.csv")``
gives the per-image data behind every table. Missing or undefined values are empty cells (NaN in
pandas); the probability curve and the realisations' lists stay in ``results.json``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

from propgrad.core.atomic_files import write_text
from propgrad.harness.cells import CellRecord, record_key

PROPERTY_COLUMNS = (
    "label",
    "explained",
    "original_prediction_correct",
    "score",
    "p_value",
    "significant",
    "flipped_anywhere",
    "final_differs",
    "n_flips",
    "reference",
    "half_score",
    "half_reference",
    "flipped_second_half",
    "heldout_flipped",
    "n_placebos",
    "placebo_p_value",
    "placebo_significant",
    "placebo_n_used",
    "largest_change",
    "reading",
    "property_name",
    "unit",
)
KEY_COLUMNS = ("suite", "intervention", "model", "image")
BASELINE_FIELDS = ("score", "half_score", "error")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def records_table(records: Sequence[CellRecord], baselines: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of ``records.csv`` (property cells joined with their baseline cells).

    Returns:
        ``(columns, rows)``: key columns, the property fields, ``n_steps``, then
        ``<baseline>_score``, ``<baseline>_half_score`` and ``<baseline>_error`` per baseline.
    """
    by_cell: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for rec in records:
        key = record_key(rec)
        row = by_cell.setdefault((key.suite, key.intervention, key.model, key.image), {})
        if rec["kind"] == "property":
            row.update({c: rec.get(c) for c in PROPERTY_COLUMNS}, n_steps=len(rec.get("curve", [])))
        elif rec["kind"] == "baseline":
            row.update({f"{key.baseline}_{f}": rec.get(f) for f in BASELINE_FIELDS})
    columns = [*KEY_COLUMNS, *PROPERTY_COLUMNS, "n_steps", *(f"{b}_{f}" for b in baselines for f in BASELINE_FIELDS)]
    rows = []
    for cell_key in sorted(by_cell):
        values = by_cell[cell_key]
        if "score" not in values:  # a baseline cell without its property cell (not in this layout)
            continue
        rows.append([*(str(k) for k in cell_key), *(_text(values.get(c)) for c in columns[len(KEY_COLUMNS) :])])
    return columns, rows


def write_records_csv(path: Path, records: Sequence[CellRecord], baselines: Sequence[str]) -> Path:
    """Write :func:`records_table` as CSV (RFC 4180 quoting, UTF-8), atomically."""
    columns, rows = records_table(records, baselines)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return write_text(Path(path), buffer.getvalue())
