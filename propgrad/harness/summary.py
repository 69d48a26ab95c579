"""Summary tables from the stored cells: flip-prediction accuracy/AUC and property-score tables.

Methods are ``property_score`` (E|∇X| of the explained class's probability), ``output_reference``
(|p_T - p_0| of the same probability) and every baseline's change score, each read under every
flip definition of :mod:`propgrad.harness.definitions` (a definition whose label some image lacks,
such as ``held_out`` for a suite without a second realisation, has no table). A baseline that
failed on any image of a (model, intervention) is not evaluated there (``available: False``, n/a in
the tables) so that every evaluated method sees exactly the same images.

The score table counts the images each test calls significant, raw and after the run's
multiple-testing correction over the images of one (intervention, model) (one family per test),
and keeps the adjusted p-values by image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping, Sequence, TypedDict

import numpy as np

from propgrad.harness.cells import BaselineRecord, CellRecord, PropertyRecord, record_key
from propgrad.harness.definitions import FLIP_DEFINITIONS, FlipDefinition
from propgrad.harness.evaluation import evaluate_method, resample_indices
from propgrad.stats.corrections import adjust_p_values, correction_feasibility, resamples_needed
from propgrad.stats.decision import decide

PROPERTY_SCORE = "property_score"
PROPERTY_SCORE_REALISATIONS = "property_score_mean_R"
"""The mean property score over a run's R > 1 realisations per image (whole-path definitions only)."""
OUTPUT_REFERENCE = "output_reference"


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


class AdjustedPValues(TypedDict):
    """The p-values of one (intervention, model) after the correction over its images."""

    images: list[int]
    permutation: list[float]
    placebo: list[float] | None


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
    n_realisations: int
    """R, realisations scored per image."""
    realisation_score_mean: float
    """The mean score over every image's R realisations."""
    fraction_significant_realisations: float
    """The fraction of the R x images realisations whose permutation test is significant."""
    n_placebos: int
    """M of the placebo test (0: not run; then the placebo counts are None)."""
    n_placebo_significant: int | None
    correction: str | None
    n_significant_adjusted: int
    n_placebo_significant_adjusted: int | None
    p_adjusted: AdjustedPValues
    largest_change_mean: float | None
    """The mean over images of each record's ``largest_change`` (the largest change of the explained
    class's probability from the original's along the intervention); None when the records lack it."""
    feasibility: dict[str, dict[str, Any]]
    """Test ("permutation", "placebo") -> :class:`propgrad.stats.corrections.CorrectionFeasibility` as a
    dict, plus ``n_raw_significant`` and ``k_needed_for_raw`` (the K or M with which that many images
    could stay significant after the correction, :func:`propgrad.stats.corrections.resamples_needed`)."""


class InterventionSummary(TypedDict):
    """Every table of one (suite, intervention)."""

    flip_prediction: dict[str, FlipTable]
    """Flip definition (:data:`propgrad.harness.definitions.FLIP_DEFINITIONS`) -> flip table; empty
    for a score-only intervention, without the definitions whose labels the records lack."""
    scores: dict[str, ModelScores]
    resample_indices: list[list[int]]
    """The images of every resample (the same draws serve every model and method)."""


class SuiteLayout(TypedDict):
    """Which cells of a suite are summarised."""

    interventions: list[str]
    models: list[str]
    pool: list[int]
    images_per_class: int
    score_only_interventions: list[str]


Summary = dict[str, dict[str, InterventionSummary]]
"""suite -> intervention -> summary."""


@dataclass(frozen=True)
class SignificanceCounting:
    """How the score table counts the images a test calls significant.

    Attributes:
        alpha: Significance level of both tests.
        n_permutations: K of the permutation tests (for the correction's feasibility).
        correction: ``"bh"``, ``"holm"`` or None, over the images of each model and test.
    """

    alpha: float
    n_permutations: int
    correction: str | None


def methods_of(baselines: Sequence[str], *, realisations: bool = False) -> list[str]:
    """Column order of the accuracy tables (with the mean over realisations when a run has R > 1)."""
    return [PROPERTY_SCORE, *([PROPERTY_SCORE_REALISATIONS] if realisations else []), OUTPUT_REFERENCE, *baselines]


def summarise_intervention(
    properties: Mapping[str, Mapping[int, PropertyRecord]],
    baselines: Mapping[str, Mapping[str, Mapping[int, BaselineRecord]]],
    baseline_names: Sequence[str],
    *,
    images_per_class: int,
    n_resamples: int,
    seed: int,
    counting: SignificanceCounting,
    flip_tables: bool = True,
) -> InterventionSummary:
    """Flip-prediction and score tables of one (suite, intervention).

    Args:
        properties: model -> image index -> property record.
        baselines: model -> baseline name -> image index -> baseline record.
        baseline_names: Baselines in column order.
        images_per_class: Images per class in each resample.
        n_resamples: Number of resamples.
        seed: Seed of the resampling (the same draws serve every model and method).
        counting: Level, K and correction of the significance counts.
        flip_tables: False for a score-only intervention (score table only).

    Returns:
        The :class:`InterventionSummary`.
    """
    flip: dict[str, FlipTable] = {}
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
        for name, definition in FLIP_DEFINITIONS.items() if flip_tables else ():
            labels = [r.get(definition.label) for r in recs]
            if any(y is None for y in labels):
                continue
            columns = _method_columns(recs, images, baselines.get(model, {}), baseline_names, definition)
            y = np.array(labels, dtype=bool)
            row: dict[str, MethodEntry] = {}
            for method, column in columns.items():
                if isinstance(column, dict):
                    row[method] = column
                    continue
                ev = asdict(evaluate_method(column, y, draws))
                ev["accuracies"] = list(ev["accuracies"])
                row[method] = {"available": True, "n_images": len(images), "n_flipped": int(y.sum()), **ev}  # type: ignore[typeddict-item]
            flip.setdefault(name, {})[model] = row
        scores[model] = model_scores(recs, images, counting)
    return {"flip_prediction": flip, "scores": scores, "resample_indices": draws_out}


def _method_columns(
    recs: Sequence[PropertyRecord],
    images: Sequence[int],
    cells_by_method: Mapping[str, Mapping[int, BaselineRecord]],
    baseline_names: Sequence[str],
    definition: FlipDefinition,
) -> dict[str, list[float] | UnavailableMethod]:
    """Every method's scores under one definition, or why a baseline is not evaluated."""
    columns: dict[str, list[float] | UnavailableMethod] = {}
    columns[PROPERTY_SCORE] = [float(r[definition.property_score]) for r in recs]  # type: ignore[literal-required]
    if definition.property_score == "score" and all(len(r.get("realisation_scores", ())) > 1 for r in recs):
        columns[PROPERTY_SCORE_REALISATIONS] = [float(np.mean(r["realisation_scores"])) for r in recs]
    columns[OUTPUT_REFERENCE] = [float(r[definition.reference]) for r in recs]  # type: ignore[literal-required]
    for name in baseline_names:
        cells = cells_by_method.get(name, {})
        errors = [str(cells[i]["error"]) for i in images if i in cells and cells[i]["error"]]
        missing = [
            i
            for i in images
            if i not in cells or (not cells[i]["error"] and cells[i].get(definition.baseline_score) is None)
        ]
        if errors or missing:
            reason = errors[0] if errors else f"{len(missing)} image(s) not computed"
            columns[name] = {"available": False, "n_errors": len(errors), "n_missing": len(missing), "error": reason}
        else:
            columns[name] = [float(cells[i][definition.baseline_score]) for i in images]  # type: ignore[literal-required]
    return columns


def _feasibility(n: int, k: int, alpha: float, correction: str | None, n_raw: int) -> dict[str, Any]:
    """:class:`~propgrad.stats.corrections.CorrectionFeasibility` as a dict, with the raw count and the K
    (or M) with which that many images could stay significant after the correction."""
    out = correction_feasibility(n, k, alpha, correction).to_dict()
    out["n_raw_significant"] = n_raw
    out["k_needed_for_raw"] = resamples_needed(n, n_raw, alpha, correction) if n_raw else None
    return out


def model_scores(recs: Sequence[PropertyRecord], images: Sequence[int], counting: SignificanceCounting) -> ModelScores:
    """The score-table row of one model under one intervention: scores, both tests' counts, raw and corrected.

    The placebo test's counts are None unless every image has a placebo p-value (a run without
    placebos, or periodic sequences, has none); so is the mean largest change unless every record
    has its ``largest_change``.
    """
    alpha, n_permutations, correction = counting.alpha, counting.n_permutations, counting.correction
    s = np.array([r["score"] for r in recs], dtype=np.float64)
    p_perm = np.array([r["p_value"] for r in recs], dtype=np.float64)
    placebo_ps = [r.get("placebo_p_value") for r in recs]
    has_placebo = all(p is not None for p in placebo_ps)
    p_placebo = np.array(placebo_ps, dtype=np.float64) if has_placebo else None
    adjusted_perm = adjust_p_values(p_perm, correction)
    adjusted_placebo = None if p_placebo is None else adjust_p_values(p_placebo, correction)
    n_placebos = int(recs[0].get("n_placebos", 0)) if has_placebo else 0
    n_significant = int(sum(r["significant"] for r in recs))
    n_placebo_significant = None if p_placebo is None else int(decide(p_placebo, alpha).sum())
    changes = [r.get("largest_change") for r in recs]
    largest_change_mean = None if any(c is None for c in changes) else float(np.mean(np.array(changes, dtype=float)))
    feasibility = {"permutation": _feasibility(len(recs), n_permutations, alpha, correction, n_significant)}
    if n_placebo_significant is not None:
        feasibility["placebo"] = _feasibility(len(recs), n_placebos, alpha, correction, n_placebo_significant)
    return {
        "score_mean": float(s.mean()),
        "score_std": float(s.std()),
        "n_significant": n_significant,
        "n_images": len(recs),
        "n_flipped_anywhere": int(sum(r["flipped_anywhere"] for r in recs)),
        "n_flipped_final": int(sum(r["final_differs"] for r in recs)),
        "original_accuracy": float(np.mean([r["original_prediction_correct"] for r in recs])),
        "reference_mean": float(np.mean([r["reference"] for r in recs])),
        "n_realisations": min(len(r.get("realisation_scores", [r["score"]])) for r in recs),
        "realisation_score_mean": float(np.mean([np.mean(r.get("realisation_scores", [r["score"]])) for r in recs])),
        "fraction_significant_realisations": float(
            np.mean([decide(p, alpha) for r in recs for p in r.get("realisation_p_values", [r["p_value"]])])
        ),
        "n_placebos": n_placebos,
        "n_placebo_significant": n_placebo_significant,
        "correction": correction,
        "n_significant_adjusted": int(decide(adjusted_perm, alpha).sum()),
        "n_placebo_significant_adjusted": (
            None if adjusted_placebo is None else int(decide(adjusted_placebo, alpha).sum())
        ),
        "p_adjusted": {
            "images": [int(i) for i in images],
            "permutation": [float(p) for p in adjusted_perm],
            "placebo": None if adjusted_placebo is None else [float(p) for p in adjusted_placebo],
        },
        "largest_change_mean": largest_change_mean,
        "feasibility": feasibility,
    }


def summarise(
    records: Sequence[CellRecord],
    layout: Mapping[str, SuiteLayout],
    baseline_names: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
    alpha: float,
    n_permutations: int,
    correction: str | None,
) -> Summary:
    """Summary tables of every suite and intervention.

    Args:
        records: Property and baseline records (from the cell store).
        layout: suite -> :class:`SuiteLayout`; only these cells are summarised.
        baseline_names: Baselines in column order.
        n_resamples: Resamples per evaluation.
        seed: Seed of the resampling.
        alpha, n_permutations, correction: As for :class:`SignificanceCounting`.

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
    counting = SignificanceCounting(alpha, n_permutations, correction)
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
                counting=counting,
                flip_tables=intervention not in info.get("score_only_interventions", ()),
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
