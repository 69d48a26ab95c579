"""The scientific-validity checks of the ``fur`` suite, read from a run's ``results.json``.

What the fur suite must show for its flip tables to mean something (the benchmark issue's
acceptance criteria, with the background check restated in section 5 of the statistics issue);
``FurSuite.validity_checks`` states them and ``propgrad validate RUN`` runs them on one or more runs:

1. both biased models' fur score is higher than the unbiased model's;
2. for each biased model, the per-image fur score exceeds the same image's background score: a
   one-sided Wilcoxon signed-rank test across the test images, paired by image index, with
   p < ``wilcoxon_alpha`` (one line per biased model);
3. the unbiased model rarely flips under the fur intervention (at most ``rare_flips`` of the
   images, under both flip definitions);
4. the unbiased model flips on at most ``unbiased_flips`` of the test images under each
   intervention (fur and background), under both flip definitions (one line per intervention).
   Only these two: the restated check (b) was fixed before the suite had its third, score-only
   ``background_equal_size`` intervention, and is not extended to it;
5. on the biased models, the property score predicts flips at least ``margin`` accuracy points
   better than the best attribution baseline (the paper's claim), under every flip definition the
   run holds: the paper's two, then extrapolation and held-out realisation (statistics issue,
   section 4: checked under all four, a failure reported as such).

The old "background score at least 10x lower than the fur score, every model" check is gone: its
10x came from one image of the paper's Tab. 1, and the paper's own Gaussian-vignette averages
(App. B, Tabs. 6-7) are below 10x in 4 of 6 cases.

:func:`equal_size_lines` is informational, with no pass/fail: the score table of an equal-size
background intervention (strength set per image so its pixel change equals the fur
intervention's) next to the fur and background tables, when a run holds one. Every check above
reads the fur and background blocks only, so a run with or without the equal-size intervention
gets the same checks.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from propgrad.errors import InvalidParameterError
from propgrad.stats.decision import decide
from propgrad.suites.validity import Check, best_baseline, property_records, summary_block

EQUAL_SIZE_INTERVENTION = "background_equal_size"
"""Name of the equal-size background intervention that check (c) looks for."""

FUR_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"wilcoxon_alpha": 0.01, "rare_flips": 0.1, "unbiased_flips": 0.02, "margin": 10.0}
)
"""The thresholds of :func:`fur_checks` and their defaults (``FurSuite.validity_thresholds``)."""


def fur_checks(
    results: Mapping[str, Any],
    *,
    suite: str = "fur",
    unbiased: str = "unbiased",
    biased: Sequence[str] = ("dark_is_cat", "dark_is_dog"),
    wilcoxon_alpha: float = FUR_THRESHOLDS["wilcoxon_alpha"],
    rare_flips: float = FUR_THRESHOLDS["rare_flips"],
    unbiased_flips: float = FUR_THRESHOLDS["unbiased_flips"],
    margin: float = FUR_THRESHOLDS["margin"],
) -> list[Check]:
    """The checks on one run's results, one line each (see the module docstring for the list).

    Args:
        results: A benchmark run's results (the dict written to ``results.json``, with its records).
        suite: Suite name; it needs a ``fur`` and a ``background`` intervention.
        unbiased: Name of the unbiased model.
        biased: Names of the biased models.
        wilcoxon_alpha: The one-sided Wilcoxon test of fur over background must have p below this.
        rare_flips: Largest fraction of images on which the unbiased model may flip under fur
            (the benchmark issue's check).
        unbiased_flips: Largest fraction of test images on which the unbiased model may flip under
            each intervention (the restated background check).
        margin: Required lead of the property score over the best baseline, accuracy points.

    Raises:
        ValueError: The results lack the suite, an intervention, a model or its per-image records,
            or the fur and background records of a model cover different images.
    """
    fur, background = summary_block(results, suite, "fur"), summary_block(results, suite, "background")
    for model in (unbiased, *biased):
        if model not in fur["scores"] or model not in background["scores"]:
            raise InvalidParameterError(
                f"model {model!r} is missing from the {suite!r} results (found {sorted(fur['scores'])})"
            )
    score = {m: fur["scores"][m]["score_mean"] for m in (unbiased, *biased)}
    checks = [
        Check(
            "biased models' fur score above the unbiased model's",
            all(score[m] > score[unbiased] for m in biased),
            ", ".join(f"{m} {score[m]:.3g}" for m in biased) + f" vs {unbiased} {score[unbiased]:.3g}",
        )
    ]
    checks += [_wilcoxon_check(results, suite, m, wilcoxon_alpha) for m in biased]
    s = fur["scores"][unbiased]
    n = s["n_images"]
    checks.append(
        Check(
            f"unbiased model flips on at most {100 * rare_flips:g}% of images under fur",
            max(s["n_flipped_anywhere"], s["n_flipped_final"]) <= rare_flips * n,
            f"{s['n_flipped_anywhere']}/{n} anywhere, {s['n_flipped_final']}/{n} final",
        )
    )
    checks += [_flip_check(results, suite, i, unbiased, unbiased_flips) for i in ("fur", "background")]
    for definition, table in fur["flip_prediction"].items():
        checks.append(_lead_check(table, biased, definition, margin))
    return checks


def _wilcoxon_check(results: Mapping[str, Any], suite: str, model: str, alpha: float) -> Check:
    """Check (a) for one model: per-image fur score above background score, one-sided Wilcoxon."""
    fur = property_records(results, suite, "fur", model)
    background = property_records(results, suite, "background", model)
    if fur.keys() != background.keys():
        raise InvalidParameterError(
            f"{model!r}: the fur and background records cover different images "
            f"({len(fur)} and {len(background)}, {len(fur.keys() ^ background.keys())} unpaired)"
        )
    images = sorted(fur)
    x = np.array([fur[i]["score"] for i in images], dtype=float)
    y = np.array([background[i]["score"] for i in images], dtype=float)
    from scipy.stats import wilcoxon  # here: listing the suites (every command) stays free of scipy.stats

    test = wilcoxon(x, y, alternative="greater")
    p = float(test.pvalue)
    return Check(
        f"{model}: per-image fur score above background score (one-sided Wilcoxon, p < {alpha:g})",
        bool(decide(p, alpha)),
        f"W = {float(test.statistic):.6g}, p = {p:.3g}, n = {len(images)} pairs, "
        f"median fur - background = {float(np.median(x - y)):.3g}",
    )


def _flip_check(results: Mapping[str, Any], suite: str, intervention: str, model: str, largest: float) -> Check:
    """Check (b) for one intervention: the model flips on at most ``largest`` of the test images."""
    records = property_records(results, suite, intervention, model).values()
    n = len(records)
    anywhere = sum(bool(r["flipped_anywhere"]) for r in records)
    final = sum(bool(r["final_differs"]) for r in records)
    return Check(
        f"{model} model flips on at most {100 * largest:g}% of test images under {intervention} (both definitions)",
        anywhere / n <= largest and final / n <= largest,
        f"{anywhere}/{n} = {100 * anywhere / n:.1f}% anywhere, {final}/{n} = {100 * final / n:.1f}% final",
    )


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


def equal_size_lines(
    results: Mapping[str, Any],
    *,
    suite: str = "fur",
    equal_size: str = EQUAL_SIZE_INTERVENTION,
    models: Sequence[str] = ("unbiased", "dark_is_cat", "dark_is_dog"),
) -> list[str]:
    """Informational, no pass/fail: the equal-size background's score table beside fur and background.

    Args:
        results: A benchmark run's results.
        suite: Suite name.
        equal_size: Name of the equal-size background intervention.
        models: Models to list, in order (a model an intervention lacks is left out of its rows).

    Returns:
        Lines for the terminal: one saying the intervention is not in this run, or a header and one
        row per (intervention, model) with the mean score, significant images and flips; when a
        score entry holds ``n_placebo_significant`` (significant against the placebo sequences),
        a column shows it too. A count an entry lacks (or holds as None) shows as ``-``.
    """
    if equal_size not in results.get("summary", {}).get(suite, {}):
        return [f"INFO equal-size background intervention {equal_size!r} is not in this run"]
    rows = []
    for intervention in ("fur", "background", equal_size):
        scores = summary_block(results, suite, intervention)["scores"]
        rows += [(intervention, m, scores[m]) for m in models if m in scores]
    placebo = any("n_placebo_significant" in s for _, _, s in rows)
    header = f"  {'intervention':<24} {'model':<12} {'score mean':>10} {'significant':>11} {'anywhere':>9} {'final':>9}"
    lines = [
        f"INFO equal-size background intervention {equal_size!r} (no pass/fail), score tables:",
        header + (f" {'placebo sig.':>12}" if placebo else ""),
    ]
    for intervention, m, s in rows:
        n = s["n_images"]
        line = (
            f"  {intervention:<24} {m:<12} {s['score_mean']:>10.3g} {_count(s, 'n_significant', n):>11} "
            f"{_count(s, 'n_flipped_anywhere', n):>9} {_count(s, 'n_flipped_final', n):>9}"
        )
        lines.append(line + (f" {_count(s, 'n_placebo_significant', n):>12}" if placebo else ""))
    return lines


def _count(entry: Mapping[str, Any], key: str, n: int) -> str:
    """``k/n`` padded as the table's columns are, or ``-`` when ``entry`` has no count for ``key``."""
    value = entry.get(key)
    return "-" if value is None else f"{value:>5}/{n:<3}"
