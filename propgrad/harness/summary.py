"""Summary tables from the stored cells: flip-prediction accuracy/AUC and property-score tables.

Methods are ``property_score`` (E|∇X| of the explained class's probability), ``output_reference``
(|p_T - p_0| of the same probability) and every baseline's change score. A baseline that failed
on any image of a (model, intervention) is not evaluated there (``available: False``, n/a in the
tables) so that every evaluated method sees exactly the same images.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Mapping, Sequence

import numpy as np

from propgrad.harness.evaluation import evaluate_method, resample_indices

PROPERTY_SCORE = "property_score"
OUTPUT_REFERENCE = "output_reference"
FLIP_DEFINITIONS: dict[str, str] = {
    "anywhere": "flipped_anywhere",  # the paper code: the decision changes anywhere along the sequence
    "final": "final_differs",  # the final decision differs from the original one
}


def methods_of(baselines: Sequence[str]) -> list[str]:
    """Column order of the accuracy tables."""
    return [PROPERTY_SCORE, OUTPUT_REFERENCE, *baselines]


def summarise_intervention(
    properties: Mapping[str, Mapping[int, dict[str, Any]]],
    baselines: Mapping[str, Mapping[str, Mapping[int, dict[str, Any]]]],
    baseline_names: Sequence[str],
    *,
    images_per_class: int,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Flip-prediction and score tables of one (suite, intervention).

    Args:
        properties: model -> image index -> property record.
        baselines: model -> baseline name -> image index -> baseline record.
        baseline_names: Baselines in column order.
        images_per_class: Images per class in each resample.
        n_resamples: Number of resamples.
        seed: Seed of the resampling (the same draws serve every model and method).

    Returns:
        ``{"flip_prediction": {definition: {model: {method: evaluation}}}, "scores": {model:
        {...}}, "resample_indices": [[image, ...], ...]}``.
    """
    flip: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in FLIP_DEFINITIONS}
    scores: dict[str, dict[str, Any]] = {}
    draws_out: list[list[int]] = []
    for model, by_image in properties.items():
        images = sorted(by_image)
        if not images:
            continue
        recs = [by_image[i] for i in images]
        draws = resample_indices([r["label"] for r in recs], images_per_class, n_resamples, seed)
        if not draws_out:
            draws_out = [[images[j] for j in d] for d in draws]
        columns = {
            PROPERTY_SCORE: ([r["score"] for r in recs], None),
            OUTPUT_REFERENCE: ([r["reference"] for r in recs], None),
        }
        for name in baseline_names:
            cells = baselines.get(model, {}).get(name, {})
            errors = [cells[i]["error"] for i in images if i in cells and cells[i]["error"]]
            missing = [i for i in images if i not in cells]
            if errors or missing:
                reason = errors[0] if errors else f"{len(missing)} image(s) not computed"
                columns[name] = (
                    None,
                    {"available": False, "n_errors": len(errors), "n_missing": len(missing), "error": reason},
                )
            else:
                columns[name] = ([cells[i]["score"] for i in images], None)
        for definition, field in FLIP_DEFINITIONS.items():
            labels = np.array([r[field] for r in recs], dtype=bool)
            row = {}
            for method, (values, unavailable) in columns.items():
                if unavailable is not None:
                    row[method] = unavailable
                    continue
                ev = asdict(evaluate_method(values, labels, draws))
                ev["accuracies"] = list(ev["accuracies"])
                row[method] = {"available": True, "n_images": len(images), "n_flipped": int(labels.sum()), **ev}
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
    records: Sequence[dict[str, Any]],
    layout: Mapping[str, Mapping[str, Any]],
    baseline_names: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Summary tables of every suite and intervention.

    Args:
        records: Property and baseline records (from the cell store).
        layout: suite -> ``{"interventions": [...], "models": [...], "pool": [...],
            "images_per_class": int}``; only these cells are summarised.
        baseline_names: Baselines in column order.
        n_resamples: Resamples per evaluation.
        seed: Seed of the resampling.

    Returns:
        suite -> intervention -> :func:`summarise_intervention` output.
    """
    props: dict[tuple[str, str], dict[str, dict[int, dict[str, Any]]]] = {}
    bases: dict[tuple[str, str], dict[str, dict[str, dict[int, dict[str, Any]]]]] = {}
    pools = {suite: set(info["pool"]) for suite, info in layout.items()}
    for r in records:
        kind, suite, intervention, model, image = r["key"][:5]
        if suite not in pools or image not in pools[suite]:
            continue
        if kind == "property":
            props.setdefault((suite, intervention), {}).setdefault(model, {})[image] = r
        elif kind == "baseline":
            bases.setdefault((suite, intervention), {}).setdefault(model, {}).setdefault(r["key"][5], {})[image] = r
    out: dict[str, dict[str, Any]] = {}
    for suite, info in layout.items():
        out[suite] = {}
        for intervention in info["interventions"]:
            key = (suite, intervention)
            per_model = {m: props.get(key, {}).get(m, {}) for m in info["models"]}
            out[suite][intervention] = summarise_intervention(
                per_model,
                bases.get(key, {}),
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
