"""The validity checks of the ``orientation`` suite, read from a run's ``results.json``.

What the suite was expected to show, stated in ``docs/orientation-suite-design.md`` before any
run (the rendering issue's last section):

1. the ``upright`` model's mean tilt score is higher than the ``all_orientations`` model's;
2. the ``upright`` model flips on more test images than the ``all_orientations`` model, under each
   of the paper's two definitions (anywhere, final);
3. the ``upright`` model's accuracy at tilt 0 in the suite's level check is at least
   ``min_accuracy``: the models must know the classes in distribution before their flips mean
   anything.

:func:`orientation_lines` is informational, with no pass/fail: the in-distribution table (every
model's accuracy by tilt angle), a one-sided Wilcoxon signed-rank test of the per-image tilt score
(``upright`` over ``all_orientations``, paired by image), the flip counts under every definition
the run holds, and the property score's flip-prediction accuracy beside the best baseline's.

Run them with ``python -m propgrad_rendered_rotation.orientation_validity RUN/results.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import wilcoxon

from propgrad.errors import InvalidParameterError
from propgrad.harness.definitions import FLIP_DEFINITIONS
from propgrad.suites.validity import Check, best_baseline, property_records, report_runs, summary_block

SUITE = "orientation"
INTERVENTION = "tilt"
UPRIGHT = "upright"
ALL_ORIENTATIONS = "all_orientations"
LEVEL_PROPERTY = "tilt about x"
"""The property of the suite's level check (:meth:`OrientationSuite.level_data`)."""


def level_table(results: Mapping[str, Any], suite: str = SUITE) -> Mapping[str, Any]:
    """The suite's accuracy-by-tilt entry of a run's results.

    Raises:
        ValueError: The run holds no level check of the suite.
    """
    try:
        return results["suites"][suite]["level_accuracy"][LEVEL_PROPERTY]
    except (KeyError, TypeError):
        raise InvalidParameterError(
            f"results hold no {LEVEL_PROPERTY!r} level check of suite {suite!r}; "
            f"run `propgrad benchmark --suite {suite}` first"
        ) from None


def orientation_checks(
    results: Mapping[str, Any],
    *,
    suite: str = SUITE,
    intervention: str = INTERVENTION,
    upright: str = UPRIGHT,
    all_orientations: str = ALL_ORIENTATIONS,
    min_accuracy: float = 0.9,
) -> list[Check]:
    """The checks on one run's results, one line each (see the module docstring for the list).

    Args:
        results: A benchmark run's results (the dict written to ``results.json``).
        suite: Suite name.
        intervention: The tilt intervention's name.
        upright: Name of the model trained on upright views.
        all_orientations: Name of the model trained on views in every orientation.
        min_accuracy: Smallest accuracy of the ``upright`` model at tilt 0, in [0, 1].

    Raises:
        ValueError: The results lack the suite, the intervention, a model or the level check.
    """
    scores = summary_block(results, suite, intervention)["scores"]
    for model in (upright, all_orientations):
        if model not in scores:
            raise InvalidParameterError(
                f"model {model!r} is missing from the {suite!r} results (found {sorted(scores)})"
            )
    up, anyo = scores[upright], scores[all_orientations]
    checks = [
        Check(
            f"{upright} model's mean {intervention} score above the {all_orientations} model's",
            up["score_mean"] > anyo["score_mean"],
            f"{upright} {up['score_mean']:.4g} vs {all_orientations} {anyo['score_mean']:.4g}",
        )
    ]
    for definition, key in (("anywhere", "n_flipped_anywhere"), ("final", "n_flipped_final")):
        checks.append(
            Check(
                f"{upright} model flips on more images than the {all_orientations} model ({definition})",
                up[key] > anyo[key],
                f"{up[key]}/{up['n_images']} vs {anyo[key]}/{anyo['n_images']}",
            )
        )
    entry = level_table(results, suite)
    if upright not in entry.get("accuracy", {}):
        raise InvalidParameterError(
            f"the level check holds no model {upright!r} (found {sorted(entry.get('accuracy', {}))})"
        )
    at_zero = entry["accuracy"][upright][0]
    checks.append(
        Check(
            f"{upright} model's accuracy at tilt {entry['levels'][0]} at least {100 * min_accuracy:g}%",
            at_zero is not None and at_zero >= min_accuracy,
            "no image at that level" if at_zero is None else f"{100 * at_zero:.1f}%",
        )
    )
    return checks


def orientation_lines(
    results: Mapping[str, Any],
    *,
    suite: str = SUITE,
    intervention: str = INTERVENTION,
    models: Sequence[str] = (UPRIGHT, ALL_ORIENTATIONS),
) -> list[str]:
    """Informational, no pass/fail: accuracy by tilt, the paired Wilcoxon test, flips and flip prediction.

    Args:
        results: A benchmark run's results.
        suite: Suite name.
        intervention: The tilt intervention's name.
        models: The two models, the one expected to score higher first.

    Raises:
        ValueError: The results lack the suite, the intervention or a model's records.
    """
    lines = ["INFO accuracy (%) by tilt angle, fresh images:"]
    entry = level_table(results, suite)
    lines.append("  " + f"{'model':<18}" + "".join(f"{level:>7}" for level in entry["levels"]))
    for m in models:
        values = entry["accuracy"].get(m, [])
        lines.append("  " + f"{m:<18}" + "".join("      -" if a is None else f"{100 * a:>7.1f}" for a in values))
    first, second = (property_records(results, suite, intervention, m) for m in models)
    images = sorted(first.keys() & second.keys())
    x = np.array([first[i]["score"] for i in images], dtype=float)
    y = np.array([second[i]["score"] for i in images], dtype=float)
    if images and np.any(x != y):
        test = wilcoxon(x, y, alternative="greater")
        lines.append(
            f"INFO per-image {intervention} score, {models[0]} over {models[1]} (one-sided Wilcoxon): "
            f"W = {float(test.statistic):.6g}, p = {float(test.pvalue):.3g}, n = {len(images)} pairs, "
            f"median difference = {float(np.median(x - y)):.3g}"
        )
    else:
        lines.append(f"INFO per-image {intervention} scores: no paired difference to test ({len(images)} pairs)")
    for m, records in zip(models, (first, second)):
        counts = []
        for definition, fields in FLIP_DEFINITIONS.items():
            labels = [r.get(fields.label) for r in records.values()]
            known = [bool(v) for v in labels if v is not None]
            if known:
                counts.append(f"{definition} {sum(known)}/{len(known)}")
        lines.append(f"INFO {m} flips: " + ", ".join(counts))
    tables = summary_block(results, suite, intervention)["flip_prediction"]
    for definition in (d for d in FLIP_DEFINITIONS if d in tables):  # table order, not the JSON's sorted keys
        table = tables[definition]
        parts = []
        for m in models:
            row = table.get(m)
            if row is None:
                continue
            prop = 100 * row["property_score"]["accuracy_mean"]
            best = best_baseline(row)
            parts.append(
                f"{m} {prop:.1f}" + (f" vs {100 * best[1]:.1f} ({best[0]})" if best else " (no baseline evaluated)")
            )
        lines.append(
            f"INFO flip prediction accuracy (%), property score vs best baseline ({definition}): " + "; ".join(parts)
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the checks and the informational lines of one or more runs; exit 1 if a check fails."""
    parser = argparse.ArgumentParser(
        prog="python -m propgrad_rendered_rotation.orientation_validity",
        description="Does an orientation benchmark run show what the suite was expected to show?",
    )
    parser.add_argument(
        "results",
        type=Path,
        nargs="*",
        default=[Path("propgrad-benchmark/results.json")],
        help="results.json of one or more runs (default: propgrad-benchmark/results.json)",
    )
    parser.add_argument(
        "--min-accuracy", type=float, default=0.9, help="smallest accuracy of the upright model at tilt 0"
    )
    args = parser.parse_args(argv)
    return report_runs(
        args.results,
        lambda results: (orientation_checks(results, min_accuracy=args.min_accuracy), orientation_lines(results)),
    )


if __name__ == "__main__":
    raise SystemExit(main())
