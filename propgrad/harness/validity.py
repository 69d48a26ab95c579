"""The scientific-validity checks of the ``fur`` benchmark, read from a run's ``results.json``.

A benchmark on which every method scores the same, or on which the property score wins only by
construction, shows nothing. These checks state what the fur suite must show for its flip
tables to mean something (the benchmark issue's acceptance criteria), each with the measured
numbers, so anyone can rerun them on their own results:

1. both biased models' fur score is higher than the unbiased model's;
2. for every model the background score is at least ``background_ratio`` times lower than its
   fur score;
3. the unbiased model rarely flips under the fur intervention (at most ``rare_flips`` of the
   images, under both flip definitions);
4. on the biased models, the property score predicts flips at least ``margin`` accuracy points
   better than the best attribution baseline, under both flip definitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

REFERENCE_METHODS = ("property_score", "output_reference")
"""Methods in the flip tables that are not attribution baselines."""


@dataclass(frozen=True)
class Check:
    """One validity check: what it asks, whether it passed, and the numbers behind it."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``PASS name: detail`` (or ``FAIL``) for the terminal."""
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.detail}"


def _block(results: Mapping[str, Any], suite: str, intervention: str) -> Mapping[str, Any]:
    try:
        return results["summary"][suite][intervention]
    except KeyError:
        raise ValueError(
            f"results hold no {suite!r} / {intervention!r} block; run `propgrad benchmark "
            f"--suite {suite}` first (found suites: {sorted(results.get('summary', {}))})"
        ) from None


def best_baseline(row: Mapping[str, Mapping[str, Any]]) -> tuple[str, float] | None:
    """The attribution baseline with the highest mean accuracy in one flip-table row (None if none)."""
    scored = [
        (m, e["accuracy_mean"])
        for m, e in row.items()
        if m not in REFERENCE_METHODS and e.get("available") and e.get("accuracy_mean") is not None
    ]
    return max(scored, key=lambda item: item[1]) if scored else None


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
    """The four checks on one run's results (the dict written to ``results.json``).

    Args:
        results: A benchmark run's results.
        suite: Suite name; it needs a ``fur`` and a ``background`` intervention.
        unbiased: Name of the unbiased model.
        biased: Names of the biased models.
        background_ratio: How many times lower the background score must be.
        rare_flips: Largest fraction of images on which the unbiased model may flip.
        margin: Required lead of the property score over the best baseline, accuracy points.

    Raises:
        ValueError: The results lack the suite, an intervention or a model.
    """
    fur, background = _block(results, suite, "fur"), _block(results, suite, "background")
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
        parts, ok = [], True
        for m in biased:
            row = fur["flip_prediction"][definition][m]
            best = best_baseline(row)
            prop = 100 * row["property_score"]["accuracy_mean"]
            if best is None:
                ok = False
                parts.append(f"{m}: no baseline evaluated")
                continue
            lead = prop - 100 * best[1]
            ok = ok and lead >= margin
            parts.append(f"{m} {prop:.1f} vs {100 * best[1]:.1f} ({best[0]}), {lead:+.1f}")
        checks.append(
            Check(f"property score >= {margin:g} points above the best baseline ({definition})", ok, "; ".join(parts))
        )
    return checks
