"""The scientific-validity checks of the ``fur`` suite, read from a run's ``results.json``.

What the fur suite must show for its flip tables to mean something (the benchmark issue's
acceptance criteria); ``benchmarks/fur_validity.py`` runs them on one or more runs:

1. both biased models' fur score is higher than the unbiased model's;
2. for every model the background score is at least ``background_ratio`` times lower than its
   fur score;
3. the unbiased model rarely flips under the fur intervention (at most ``rare_flips`` of the
   images, under both flip definitions);
4. on the biased models, the property score predicts flips at least ``margin`` accuracy points
   better than the best attribution baseline, under both flip definitions.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from propgrad.suites.validity import Check, best_baseline, summary_block


def fur_checks(
    results: Mapping[str, Any],
    *,
    suite: str = "fur",
    unbiased: str = "unbiased",
    biased: Sequence[str] = ("dark_is_cat", "dark_is_dog"),
    background_ratio: float = 10.0,
    rare_flips: float = 0.1,
    margin: float = 10.0,
) -> list[Check]:
    """The four checks (five lines: the fourth per flip definition) on one run's results.

    Args:
        results: A benchmark run's results (the dict written to ``results.json``).
        suite: Suite name; it needs a ``fur`` and a ``background`` intervention.
        unbiased: Name of the unbiased model.
        biased: Names of the biased models.
        background_ratio: How many times lower the background score must be.
        rare_flips: Largest fraction of images on which the unbiased model may flip.
        margin: Required lead of the property score over the best baseline, accuracy points.

    Raises:
        ValueError: The results lack the suite, an intervention or a model.
    """
    fur, background = summary_block(results, suite, "fur"), summary_block(results, suite, "background")
    for model in (unbiased, *biased):
        if model not in fur["scores"] or model not in background["scores"]:
            raise ValueError(f"model {model!r} is missing from the {suite!r} results (found {sorted(fur['scores'])})")
    score = {m: fur["scores"][m]["score_mean"] for m in (unbiased, *biased)}
    bg = {m: background["scores"][m]["score_mean"] for m in (unbiased, *biased)}
    checks = [
        Check(
            "biased models' fur score above the unbiased model's",
            all(score[m] > score[unbiased] for m in biased),
            ", ".join(f"{m} {score[m]:.3g}" for m in biased) + f" vs {unbiased} {score[unbiased]:.3g}",
        )
    ]
    ratios = {m: (score[m] / bg[m]) if bg[m] > 0 else float("inf") for m in score}
    checks.append(
        Check(
            f"background score >= {background_ratio:g}x lower than fur score, every model",
            all(r >= background_ratio for r in ratios.values()),
            ", ".join(f"{m} {score[m]:.3g}/{bg[m]:.3g} = {ratios[m]:.1f}x" for m in score),
        )
    )
    s = fur["scores"][unbiased]
    n = s["n_images"]
    checks.append(
        Check(
            f"unbiased model flips on at most {100 * rare_flips:g}% of images under fur",
            max(s["n_flipped_anywhere"], s["n_flipped_final"]) <= rare_flips * n,
            f"{s['n_flipped_anywhere']}/{n} anywhere, {s['n_flipped_final']}/{n} final",
        )
    )
    for definition in ("anywhere", "final"):
        checks.append(_lead_check(fur["flip_prediction"][definition], biased, definition, margin))
    return checks


def _lead_check(table: Mapping[str, Any], biased: Sequence[str], definition: str, margin: float) -> Check:
    parts, ok = [], True
    for m in biased:
        row = table[m]
        best = best_baseline(row)
        prop = 100 * row["property_score"]["accuracy_mean"]
        if best is None:
            ok = False
            parts.append(f"{m}: no baseline evaluated")
            continue
        lead = prop - 100 * best[1]
        ok = ok and lead >= margin
        parts.append(f"{m} {prop:.1f} vs {100 * best[1]:.1f} ({best[0]}), {lead:+.1f}")
    return Check(f"property score >= {margin:g} points above the best baseline ({definition})", ok, "; ".join(parts))
