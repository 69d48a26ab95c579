"""Summary tables from the stored cells: flip-prediction accuracy/AUC and property-score tables.

Methods are ``property_score`` (E|∇X| of the explained class's probability), ``output_reference``
(|p_T - p_0| of the same probability) and every baseline's change score. A baseline that failed
on any image of a (model, intervention) is not evaluated there (``available: False``, n/a in the
tables) so that every evaluated method sees exactly the same images.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Literal, Mapping, Sequence, TypedDict

import numpy as np

from propgrad.harness.cells import BaselineRecord, CellRecord, PropertyRecord, record_key
from propgrad.harness.evaluation import evaluate_method, resample_indices

PROPERTY_SCORE = "property_score"
OUTPUT_REFERENCE = "output_reference"
FLIP_DEFINITIONS: dict[str, str] = {
    "anywhere": "flipped_anywhere",  # the paper code: the decision changes anywhere along the sequence
    "final": "final_differs",  # the final decision differs from the original one
}


class EvaluatedMethod(TypedDict):
    """A method's flip prediction on one (model, intervention): :class:`MethodEvaluation` and counts."""

    available: Literal[True]
    n_images: int
    n_flipped: int
    accuracy_mean: float
    accuracy_std: float
    auc_mean: float
    auc_std: float
    auc_all: float
    threshold_all: float
    accuracy_all: float
    accuracies: list[float]


class UnavailableMethod(TypedDict):
    """A baseline not evaluated on one (model, intervention): it failed or missed some image."""

    available: Literal[False]
    n_errors: int
    n_missing: int
    error: str


MethodEntry = EvaluatedMethod | UnavailableMethod
FlipTable = dict[str, dict[str, MethodEntry]]
"""model -> method -> entry, for one flip definition."""


class ModelScores(TypedDict):
    """Property scores and flip counts of one model under one intervention (Tabs. 1 and 3)."""

    score_mean: float
    score_std: float
    n_significant: int
    n_images: int
    n_flipped_anywhere: int
    n_flipped_final: int
    original_accuracy: float
    reference_mean: float


class InterventionSummary(TypedDict):
    """Every table of one (suite, intervention)."""

    flip_prediction: dict[str, FlipTable]
    """Flip definition (:data:`FLIP_DEFINITIONS`) -> flip table."""
    scores: dict[str, ModelScores]
    resample_indices: list[list[int]]
    """The images of every resample (the same draws serve every model and method)."""


class SuiteLayout(TypedDict):
    """Which cells of a suite are summarised."""

    interventions: list[str]
    models: list[str]
    pool: list[int]
    images_per_class: int


Summary = dict[str, dict[str, InterventionSummary]]
"""suite -> intervention -> summary."""


def methods_of(baselines: Sequence[str]) -> list[str]:
    """Column order of the accuracy tables."""
    return [PROPERTY_SCORE, OUTPUT_REFERENCE, *baselines]


def summarise_intervention(
    properties: Mapping[str, Mapping[int, PropertyRecord]],
    baselines: Mapping[str, Mapping[str, Mapping[int, BaselineRecord]]],
    baseline_names: Sequence[str],
    *,
    images_per_class: int,
    n_resamples: int,
    seed: int,
) -> InterventionSummary:
    """Flip-prediction and score tables of one (suite, intervention).

    Args:
        properties: model -> image index -> property record.
        baselines: model -> baseline name -> image index -> baseline record.
        baseline_names: Baselines in column order.
        images_per_class: Images per class in each resample.
        n_resamples: Number of resamples.
        seed: Seed of the resampling (the same draws serve every model and method).

    Returns:
        The :class:`InterventionSummary`.
    """
    flip: dict[str, FlipTable] = {d: {} for d in FLIP_DEFINITIONS}
    scores: dict[str, ModelScores] = {}
    draws_out: list[list[int]] = []
    for model, by_image in properties.items():
        images = sorted(by_image)
        if not images:
            continue
        recs = [by_image[i] for i in images]
        draws = resample_indices([r["label"] for r in recs], images_per_class, n_resamples, seed)
        if not draws_out:
            draws_out = [[images[j] for j in d] for d in draws]
        columns: dict[str, tuple[list[float] | None, UnavailableMethod | None]] = {
            PROPERTY_SCORE: ([r["score"] for r in recs], None),
            OUTPUT_REFERENCE: ([r["reference"] for r in recs], None),
        }
        for name in baseline_names:
            cells = baselines.get(model, {}).get(name, {})
            errors = [str(cells[i]["error"]) for i in images if i in cells and cells[i]["error"]]
            missing = [i for i in images if i not in cells]
            if errors or missing:
                reason = errors[0] if errors else f"{len(missing)} image(s) not computed"
                columns[name] = (
                    None,
                    {"available": False, "n_errors": len(errors), "n_missing": len(missing), "error": reason},
                )
            else:
                columns[name] = ([float(cells[i]["score"]) for i in images], None)  # type: ignore[arg-type]
        for definition, field in FLIP_DEFINITIONS.items():
            labels = np.array([r[field] for r in recs], dtype=bool)
            row: dict[str, MethodEntry] = {}
            for method, (values, unavailable) in columns.items():
                if unavailable is not None or values is None:
                    assert unavailable is not None
                    row[method] = unavailable
                    continue
                ev = asdict(evaluate_method(values, labels, draws))
                ev["accuracies"] = list(ev["accuracies"])
                row[method] = {"available": True, "n_images": len(images), "n_flipped": int(labels.sum()), **ev}  # type: ignore[typeddict-item]
            flip[definition][model] = row
        s = np.array([r["score"] for r in recs], dtype=np.float64)
        scores[model] = {
            "score_mean": float(s.mean()),
            "score_std": float(s.std()),
            "n_significant": int(sum(r["significant"] for r in recs)),
            "n_images": len(recs),
            "n_flipped_anywhere": int(sum(r["flipped_anywhere"] for r in recs)),
            "n_flipped_final": int(sum(r["final_differs"] for r in recs)),
            "original_accuracy": float(np.mean([r["original_prediction_correct"] for r in recs])),
            "reference_mean": float(np.mean([r["reference"] for r in recs])),
        }
    return {"flip_prediction": flip, "scores": scores, "resample_indices": draws_out}


def summarise(
    records: Sequence[CellRecord],
    layout: Mapping[str, SuiteLayout],
    baseline_names: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
) -> Summary:
    """Summary tables of every suite and intervention.

    Args:
        records: Property and baseline records (from the cell store).
        layout: suite -> :class:`SuiteLayout`; only these cells are summarised.
        baseline_names: Baselines in column order.
        n_resamples: Resamples per evaluation.
        seed: Seed of the resampling.

    Returns:
        suite -> intervention -> :func:`summarise_intervention` output.
    """
    props: dict[tuple[str, str], dict[str, dict[int, PropertyRecord]]] = {}
    bases: dict[tuple[str, str], dict[str, dict[str, dict[int, BaselineRecord]]]] = {}
    pools = {suite: set(info["pool"]) for suite, info in layout.items()}
    for r in records:
        key = record_key(r)
        if key.suite not in pools or key.image not in pools[key.suite]:
            continue
        where = (key.suite, key.intervention)
        if r["kind"] == "property":
            props.setdefault(where, {}).setdefault(key.model, {})[key.image] = r
        elif r["kind"] == "baseline":
            by_method = bases.setdefault(where, {}).setdefault(key.model, {})
            by_method.setdefault(str(key.baseline), {})[key.image] = r
    out: Summary = {}
    for suite, info in layout.items():
        out[suite] = {}
        for intervention in info["interventions"]:
            where = (suite, intervention)
            per_model = {m: props.get(where, {}).get(m, {}) for m in info["models"]}
            out[suite][intervention] = summarise_intervention(
                per_model,
                bases.get(where, {}),
                baseline_names,
                images_per_class=int(info["images_per_class"]),
                n_resamples=n_resamples,
                seed=seed,
            )
    return out


def finite_or_none(x: Any) -> Any:
    """Make data strict JSON: NaN becomes None, ±inf becomes the strings "inf"/"-inf"."""
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    return x
